"""Versioned upgrades of a store's layout, applied in place, in order, once.

A store's format version lives in `<root>/store.json`. Stores written before it existed
are format 1. Each migration takes a store from version N - 1 to N; the store runs the
missing ones under its store-wide lock and writes the new version last, so a crash in the
middle leaves the old version number and the next open runs the (idempotent) steps again.

Column additions need no migration: a file without a nullable column declared later reads
it as NULL. A migration is for layout changes only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

if TYPE_CHECKING:
    from refusaldata.store import Store


def templates_by_labeler_run_and_k(store: Store) -> str:
    """Format 2: `templates` partitioned by (labeler, run, k) instead of run alone.

    A run's partition held one file whatever the labeler and k, so mining with another
    --k or --labeler replaced the others' templates. Each old file is split into one
    partition per (labeler, k) it holds; the old file goes only after its rows are stored.
    """
    import pyarrow.compute as pc  # here: every store imports this module, few ever run the upgrade

    folder = store.root / "templates"
    old_files = sorted(folder.glob("run=*/data.parquet")) if folder.is_dir() else []
    moved = 0
    for path in old_files:
        table = pq.read_table(path)
        for combo in table.select(["labeler", "k"]).group_by(["labeler", "k"]).aggregate([]).to_pylist():
            part = table.filter(pc.and_(pc.equal(table.column("labeler"), combo["labeler"]),
                                        pc.equal(table.column("k"), combo["k"])))
            store.replace("templates", part, where=str(path))
            moved += part.num_rows
        path.unlink()
        shutil.rmtree(path.parent, ignore_errors=True)
        # Old partition folders are gone once their file is: fsync so the move is durable.
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return f"templates now partitioned by labeler, run and k ({moved} rows from {len(old_files)} files moved)"


# version reached -> the step that reaches it from the version before
MIGRATIONS: dict[int, Callable[[Store], str]] = {
    2: templates_by_labeler_run_and_k,
}
FORMAT_VERSION = max(MIGRATIONS)


def pending(found: int) -> list[int]:
    """The versions to step through from `found` to FORMAT_VERSION."""
    return [version for version in sorted(MIGRATIONS) if version > found]

