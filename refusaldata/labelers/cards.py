"""Where learned labelers live: <store>/judges/<name>/ with model.safetensors and card.json.

Weights and card are one artefact, written into a staging folder and committed by one
rename, so a reader sees the old judge or the new one, never half of each.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from refusaldata import io
from refusaldata.errors import InputError, NotFoundError
from refusaldata.store import Store

JUDGES_FOLDER = "judges"
CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def judges_dir(store: Store) -> Path:
    return store.local_folder(JUDGES_FOLDER)


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InputError(f"judge name '{name}' must be letters, digits, '.', '_' or '-' (at most 64)")
    return name


def known_judges(store: Store) -> list[str]:
    folder = judges_dir(store)
    if not folder.is_dir():
        return []
    return sorted(p.parent.name for p in folder.glob(f"*/{CARD_FILE}"))


def save(store: Store, name: str, weights: dict[str, np.ndarray], card: dict) -> None:
    """Write the judge `name` (weights as float32 safetensors, card as JSON) atomically."""
    from safetensors.numpy import save_file

    store.create()  # a judge trained into a fresh store makes it a store, not a folder of judges
    with io.atomic_folder(judges_dir(store) / check_name(name)) as staging:
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()},
                  staging / WEIGHTS_FILE, metadata={"name": name, "threshold": str(card["threshold"])})
        (staging / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")


def read(store: Store, name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The card and weights of the judge `name`; a missing one is a NotFoundError naming the known ones."""
    from safetensors.numpy import load_file

    check_name(name)
    folder = judges_dir(store) / name
    if not (folder / CARD_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        known = known_judges(store)
        hint = f" (known: {', '.join(known)})" if known else " (train one with `refusaldata judge train`)"
        raise NotFoundError(f"no learned judge '{name}' in {judges_dir(store)}{hint}")
    return json.loads((folder / CARD_FILE).read_text(encoding="utf-8")), load_file(folder / WEIGHTS_FILE)
