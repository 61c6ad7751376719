"""Content-hash keys: re-importing or re-running the same thing yields the same key."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from refusaldata.io import sha256_text

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
                         "\u00a0": " "})
_SLUG = re.compile(r"[^a-z0-9]+")


def normalize_prompt(text: str) -> str:
    """The form a prompt is keyed by: NFKC, straight quotes, lower case, one space."""
    return " ".join(unicodedata.normalize("NFKC", text).translate(_QUOTES).lower().split())


def digest(payload: str, length: int = 16) -> str:
    return sha256_text(payload)[:length]


def prompt_id(text: str) -> str:
    """16 hex digits of sha256 over the normalized prompt text."""
    return digest(normalize_prompt(text))


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def slug(text: str, max_len: int = 40) -> str:
    """A path- and shell-safe readable label: lower case, dashes."""
    return _SLUG.sub("-", text.lower()).strip("-")[:max_len].strip("-") or "run"


def run_id(label: str, config: dict[str, Any]) -> str:
    """A readable, content-addressed run id: `<slug(label)>-<10 hex of the config hash>`."""
    return f"{slug(label)}-{digest(canonical_json(config), 10)}"
