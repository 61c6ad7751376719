"""Checkpoints that survive a kill at any instant, stored without pickle.

A checkpoint is a folder `checkpoint-<step>/` holding the adapter weights and the
optimizer's tensors as safetensors and the rest of its state as JSON. It only counts
once `checkpoint.json` (replaced atomically) names it, so a kill while one is written
leaves the previous one in force. A checkpoint whose adapter id differs from the
current run's (another set, model or hyperparameter) is ignored and removed: the run
restarts cleanly instead of mixing two configurations.

The loop stores the metrics of every step a checkpoint covers before saving it: a
resumed run starts after the checkpoint, so it would never write them again.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from refusaldata import io
from refusaldata.errors import BackendError

POINTER = "checkpoint.json"
_PREFIX = "checkpoint-"


@dataclass
class Checkpoint:
    step: int
    adapter: dict[str, torch.Tensor]
    optimizer: dict
    state: dict


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split torch's optimizer state into safetensors tensors and JSON-able values."""
    tensors, scalars = {}, {}
    for index, values in state_dict["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save(out: Path, step: int, adapter: dict[str, torch.Tensor], optimizer_state: dict, state: dict,
         within: Path | None = None) -> None:
    """Write checkpoint `step`, point checkpoint.json at it, then drop older ones (`within`: the
    store's root, for an `out` inside it, whose files are never written through a link)."""
    folder = out / f"{_PREFIX}{step:08d}"
    tensors, meta = _flatten_optimizer(optimizer_state)
    with io.atomic_folder(folder, BackendError) as staging:
        save_file({name: value.detach().contiguous().cpu() for name, value in adapter.items()},
                  staging / "adapter.safetensors")
        save_file(tensors, staging / "optimizer.safetensors")
        io.write_json(staging / "state.json", {**state, "step": step, "optimizer": meta}, BackendError)
    io.write_json(out / POINTER, {"folder": folder.name, "step": step, "adapter_id": state["adapter_id"]},
                  BackendError, within)
    for stale in out.glob(f"{_PREFIX}*"):
        if stale.name != folder.name:
            shutil.rmtree(stale, ignore_errors=True)


def load(out: Path, adapter_id: str) -> Checkpoint | None:
    """The checkpoint in `out` written by a run of `adapter_id`, else None (after clearing any other)."""
    pointer = out / POINTER
    try:
        record = json.loads(pointer.read_text(encoding="utf-8"))
        if record.get("adapter_id") != adapter_id:
            raise ValueError("another configuration")
        folder = out / record["folder"]
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        adapter = load_file(folder / "adapter.safetensors")
        optimizer = _unflatten_optimizer(load_file(folder / "optimizer.safetensors"), state.pop("optimizer"))
        return Checkpoint(int(state["step"]), adapter, optimizer, state)
    except (OSError, ValueError, KeyError, SafetensorError):
        clear(out)
        return None


def clear(out: Path) -> None:
    """Remove every checkpoint in `out` (after a finished run, or a stale one)."""
    (out / POINTER).unlink(missing_ok=True)
    for folder in out.glob(f"{_PREFIX}*"):
        shutil.rmtree(folder, ignore_errors=True)
