"""Fixtures: a small, self-contained store sampled from runs of a larger one, for a repository's tests/.

The fixture is a store like any other (every command reads it; there is nothing to import):
the exported runs' rows, their responses to a sample of prompts, those prompts, and every
labeler's verdicts on those responses, all written through the store's write path.

The sample is drawn from the prompts every exported run answered, so a gate between any two
of them is paired on all of it, and it is stratified by whether the prompt is harmful and by
each run's refusal verdict on it (proportional allocation, largest remainder): the fixture
keeps the runs' refusal and over-refusal rates and, which a paired gate reads, how often
they disagree. The folder is written beside its destination and moved into place whole,
so a failed export leaves what was there before.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from refusaldata.errors import InputError, NotFoundError, StoreError
from refusaldata.evaluate import resolve_runs
from refusaldata.labelers.registry import BEST
from refusaldata.queries import sql_text
from refusaldata.store import Store


@dataclass(frozen=True)
class FixtureSummary:
    """What an export wrote."""

    root: Path
    runs: list[str]
    shared_prompts: int
    prompts: int
    harmful: int
    responses: int
    labels: int


def allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """`total` split over strata of `counts` in proportion (largest remainder, ties to the first
    stratum), never more than a stratum holds."""
    total = min(total, int(counts.sum()))
    exact = counts * total / counts.sum()
    quota = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[:total - int(quota.sum())]] += 1
    return np.minimum(quota, counts)


def stratified_sample(prompt_ids: np.ndarray, strata: np.ndarray, size: int, seed: int) -> np.ndarray:
    """`size` of `prompt_ids` (sorted), drawn without replacement within each stratum in
    proportion to its share, seeded: the same store, runs and seed give the same sample."""
    names, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    quota = allocate(counts, size)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(inverse == index), quota[index], replace=False)
              for index in range(len(names)) if quota[index]]
    return np.sort(prompt_ids[np.concatenate(chosen)]) if chosen else prompt_ids[:0]


def _check_destination(store: Store, out: Path, replace: bool) -> None:
    """Refuse a destination inside the source store, holding it, or holding anything but a
    store to replace; all before anything is read or written."""
    if not store.remote:
        root, target = Path(os.path.realpath(store.root)), Path(os.path.realpath(out))
        if target == root or root in target.parents:
            raise InputError(f"-o {out} is inside the source store {store.root}; give a folder outside it")
        if target in root.parents:
            raise InputError(f"-o {out} holds the source store {store.root}; give a folder outside it")
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out} is a file; give a folder for the fixture store")
    if out.parent.exists() and not out.parent.is_dir():
        raise InputError(f"-o {out}: {out.parent} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not replace:
            raise InputError(f"-o {out} is not empty; give --replace to replace the fixture store there")
        try:
            found = Store(out).format_version()
        except StoreError:
            found = None
        if found is None:
            raise InputError(f"-o {out} holds files that are not a refusaldata store; --replace replaces only a "
                             "store (give an empty or new folder)")


def _query(con, name: str, params: dict):
    return con.sql(sql_text(name), params=params).to_arrow_table()


def export_fixture(store: Store, runs: Sequence[str], out: str | os.PathLike[str], *, sample: int, seed: int = 0,
                   labeler: str = BEST, replace: bool = False) -> FixtureSummary:
    """Write a fixture store at `out` with `runs` (ids, names, prefixes or globs) on `sample`
    prompts every one of them answered, stratified by harmfulness and each run's refusal
    verdict (`labeler`'s; 'best' by default). All of them when fewer are shared.

    `out` must lie outside the source store and be new (its parent folders are made) or
    empty; with `replace`, an existing fixture store there is replaced whole (a folder
    holding anything else is refused).
    """
    out = Path(out)
    if sample < 1:
        raise InputError(f"--sample must be at least 1 (got {sample})")
    if seed < 0:
        raise InputError(f"--seed must not be negative (got {seed})")
    _check_destination(store, out, replace)
    run_ids = resolve_runs(store, runs)
    con = store.connect(["prompts", "runs", "responses", "labels"])
    try:
        strata = _query(con, "fixture_strata", {"runs": run_ids, "labeler": labeler})
        if strata.num_rows == 0:
            several = "every one of these runs answered" if len(run_ids) > 1 else "this run answered"
            raise NotFoundError(f"no prompt {several} in {store.root}; export runs that share prompts, "
                                "or export them one at a time")
        prompt_ids = np.asarray(strata.column("prompt_id").to_pylist(), dtype=object)
        chosen = stratified_sample(prompt_ids, np.asarray(strata.column("stratum").to_pylist(), dtype=object),
                                   sample, seed).tolist()
        params = {"runs": run_ids, "prompts": chosen}
        tables = {"prompts": _query(con, "fixture_prompts", {"prompts": chosen}),
                  "runs": _query(con, "fixture_runs", {"runs": run_ids}),
                  "responses": _query(con, "fixture_responses", params),
                  "labels": _query(con, "fixture_labels", params)}
    finally:
        con.close()
    harmful = np.asarray(strata.column("harmful").fill_null(False).to_pylist(), dtype=bool)
    chosen_harmful = int((harmful & np.isin(prompt_ids, chosen)).sum())
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.export-{uuid.uuid4().hex}"
    try:
        fixture = Store(staging)
        for table in ("prompts", "runs", "responses"):
            fixture.append(table, tables[table], where=f"fixture {table}")
        if tables["labels"].num_rows:
            fixture.replace("labels", tables["labels"], where="fixture labels")
        shutil.rmtree(staging / ".locks", ignore_errors=True)  # nobody else knows the folder: no lock is held
        _move_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return FixtureSummary(out, run_ids, len(prompt_ids), len(chosen), chosen_harmful,
                          tables["responses"].num_rows, tables["labels"].num_rows)


def _move_into_place(staging: Path, out: Path) -> None:
    """Put the finished store at `out`: a rename onto a missing or empty folder, else the old
    store moved aside first and removed once the new one is in place."""
    if not out.exists() or not any(out.iterdir()):
        os.replace(staging, out)
        return
    old = out.parent / f".{out.name}.replaced-{uuid.uuid4().hex}"
    os.replace(out, old)
    try:
        os.replace(staging, out)
    except OSError:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
