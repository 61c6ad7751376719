"""The labelling stage: label stored runs, or texts held in memory, with a labeler of
refusaldata/labelers/ (its registry says which exist and which is the default).

`label` is the one loop every labeler runs through: it reads, for every run with something to do, the answered responses
its labeler has not labelled at its current version (sql/label_pending.sql), scores them in
chunks across runs and replaces each run's partition with the labels it keeps (sql/label_kept.sql) plus
the new ones. A second `label` with nothing new writes nothing; `force` relabels everything.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from refusaldata.errors import InputError, NotFoundError
from refusaldata.labelers.registry import (
    COLUMNS, DEFAULT_LABELER, RULES, Labeler, resolve, get_labeler, in_sample, verdict_table,
)
from refusaldata.queries import sql_text
from refusaldata.runs import now, select_runs
from refusaldata.schemas import LABELS
from refusaldata.store import Store

SUMMARY = pa.schema([("run", pa.string()), ("run_id", pa.string()), ("labeler", pa.string()),
                     *[(name, pa.int64()) for name in ("labelled", "refusals", "undecided", "partials", "new",
                                                       "skipped", "in_sample")]])
"""`label`'s summary: one row per run."""
CHUNK_ROWS = 20_000
"""Responses scored at a time: the progress bar moves per chunk, and memory stays flat."""


def run_ids_for(store: Store, refs: list[str] | None) -> list[str]:
    """The runs named by `refs` (ids, names, unique prefixes or globs), or every run with responses."""
    if refs:
        return select_runs(store, refs)
    con = store.connect(["runs", "responses"])
    try:
        return [row[0] for row in con.sql(
            "SELECT DISTINCT run_id FROM responses ORDER BY run_id").fetchall()]
    finally:
        con.close()


@dataclass(frozen=True)
class Labelled:
    """What `label` did to one run: responses labelled now, kept (already labelled at this
    version), and how many of those labelled now were in the labeler's training data."""

    run_id: str
    new: int
    kept: int
    in_sample: int


def _progress(total: int):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    return Progress(TextColumn("label", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}", markup=False), TimeElapsedColumn(), console=console,
                    transient=True, disable=not console.is_terminal or total <= CHUNK_ROWS)


def _score(entry: Labeler, name: str, store: Store, rows: pa.Table, options: dict) -> dict[str, list]:
    """The labeler's columns for `rows`, scored a chunk at a time (a progress bar with
    responses/s on a terminal when there is more than one chunk)."""
    prompts, responses = rows.column("prompt").to_pylist(), rows.column("response").to_pylist()
    columns: dict[str, list] = {}
    started = time.perf_counter()
    with _progress(len(responses)) as bar:
        task = bar.add_task("label", total=len(responses), rate="")
        for start in range(0, len(responses), CHUNK_ROWS):
            end = min(start + CHUNK_ROWS, len(responses))
            scores = entry.score(prompts[start:end], responses[start:end], name=name, store=store, **options)
            for column in COLUMNS:
                if column in scores:
                    values = scores[column]
                    columns.setdefault(column, []).extend(values.tolist() if hasattr(values, "tolist") else values)
            bar.update(task, completed=end, rate=f"{end / (time.perf_counter() - started):,.0f} responses/s")
    return columns


def _by_run(table: pa.Table) -> dict[str, pa.Table]:
    """`table`'s rows per run_id, as zero-copy slices of it sorted by run."""
    import pyarrow.compute as pc

    table = table.sort_by("run_id")
    slices, begin = {}, 0
    # value_counts lists values in order of first appearance: on sorted rows, each run's span.
    for entry in pc.value_counts(table.column("run_id")).to_pylist():
        slices[entry["values"]] = table.slice(begin, entry["counts"])
        begin += entry["counts"]
    return slices


def label_runs(store: Store, run_ids: list[str], entry: Labeler, name: str, version: str, force: bool = False,
               options: dict | None = None) -> list[Labelled]:
    """Label what `name` has not labelled of the runs at `version` (everything when `force`) and
    write each run's partition: kept labels plus new ones.

    The runs are read in one query and scored together, a chunk at a time: a labeler's fixed
    cost per call (compiling the lexicon, opening the store) is paid once, not once per run,
    which dominated on a corpus of many small runs. A labeler with a `run_labeler` (the rules)
    does all of this inside the store in one pass."""
    if entry.run_labeler is not None:
        counts = resolve(entry.run_labeler)(store, run_ids, name, version, force)
        return [Labelled(run_id, *counts[run_id], 0) for run_id in run_ids]
    params = {"run_ids": run_ids, "labeler": name, "version": version, "force": force}
    con = store.connect(["responses", "prompts", "labels"])
    try:
        pending = _by_run(con.sql(sql_text("label_pending"), params=params).to_arrow_table())
        kept = _by_run(con.sql(sql_text("label_kept"), params=params).to_arrow_table())
    finally:
        con.close()
    training = entry.training_set()
    inside = {run_id: in_sample(rows.column("response").to_pylist(), training) if training is not None else 0
              for run_id, rows in pending.items()}
    if pending:
        rows = pa.concat_tables(list(pending.values()))
        new = _by_run(verdict_table(rows, name, version, _score(entry, name, store, rows, options or {}), now()))
    else:
        new = {}
    done, partitions = {}, []
    for run_id in run_ids:
        fresh = new.get(run_id, LABELS.schema.empty_table())
        old = kept.get(run_id)
        parts = [fresh] if old is None else [old.select(LABELS.schema.names).cast(LABELS.schema), fresh]
        partition = pa.concat_tables(parts)
        if partition.num_rows:
            partitions.append(partition)
        else:  # nothing left to hold: the run's partition goes
            store.replace("labels", partition, partition={"labeler": name, "run_id": run_id},
                          where=f"labels of {name} on {run_id}")
        done[run_id] = Labelled(run_id, fresh.num_rows, 0 if old is None else old.num_rows, inside.get(run_id, 0))
    if partitions:
        # One call writes every run's partition (each file still swapped whole): a call per run
        # checked its rows in a DuckDB connection of its own, seconds on a store of many runs.
        store.replace("labels", pa.concat_tables(partitions), where=f"labels of {name}")
    return [done[run_id] for run_id in run_ids]


def label(store: Store, runs: list[str] | None = None, labeler: str = RULES, force: bool = False,
          **options) -> pa.Table:
    """Label the runs (every run when none is named) with `labeler` (the rules unless named;
    the CLI's default is DEFAULT_LABELER): only responses it has not labelled at its current
    version, every response when `force`. One summary row per run: its name, the partition's
    size and counts, and what this call labelled (`new`), kept (`skipped`) and found in the
    labeler's own training data (`in_sample`)."""
    entry = get_labeler(labeler)
    entry.check_options(labeler, options)
    version = entry.version(labeler, store, options)
    run_ids = run_ids_for(store, runs)
    if not run_ids:
        raise NotFoundError(f"no responses to label in {store.root}")
    con = store.connect(["responses", "labels"])
    try:
        status = con.sql(sql_text("label_status"), params={
            "run_ids": run_ids, "labeler": labeler, "version": version}).fetchall()
    finally:
        con.close()
    # A run whose answered responses all hold a current label, and nothing else, is not read again.
    done, todo = [], []
    for run_id, answered, current, held in status:
        if not force and answered == current == held:
            done.append(Labelled(run_id, 0, current, 0))
        else:
            todo.append(run_id)
    if todo:
        done += label_runs(store, todo, entry, labeler, version, force, options)
    con = store.connect(["runs", "labels"])
    try:
        names = dict(con.sql("SELECT run_id, any_value(name) FROM runs WHERE list_contains($run_ids, run_id) "
                             "GROUP BY run_id", params={"run_ids": run_ids}).fetchall())
        counts = {row[0]: row[1:] for row in con.sql(
            "SELECT run_id, count(*), count(*) FILTER (refusal), count(*) FILTER (refusal IS NULL), "
            "count(*) FILTER (verdict = 'partial') FROM labels "
            "WHERE labeler = $labeler AND list_contains($run_ids, run_id) GROUP BY run_id",
            params={"labeler": labeler, "run_ids": run_ids}).fetchall()}
    finally:
        con.close()
    rows = [{"run": names.get(d.run_id) or d.run_id, "run_id": d.run_id, "labeler": labeler,
             **dict(zip(("labelled", "refusals", "undecided", "partials"), counts.get(d.run_id, (0, 0, 0, 0)))),
             "new": d.new, "skipped": d.kept, "in_sample": d.in_sample} for d in sorted(done, key=lambda d: d.run_id)]
    return pa.Table.from_pylist(rows, schema=SUMMARY)


def summary_lines(summary: pa.Table, labeler: str) -> list[str]:
    """What `refusaldata label` says it did: runs by name, what it labelled and skipped, and
    how many responses it labelled were in the labeler's own training data."""
    rows = summary.to_pylist()
    labelled = [row for row in rows if row["new"]]
    skipped = sum(row["skipped"] for row in rows)
    lines = []
    if labelled:
        runs = ", ".join(f"{row['run']} ({row['new']:,})" for row in labelled)
        lines.append(f"labelled {sum(row['new'] for row in labelled):,} responses with {labeler}: {runs}")
    if skipped or not labelled:
        untouched = [row["run"] for row in rows if not row["new"]]
        where = f" ({', '.join(untouched)} unchanged)" if untouched else ""
        lines.append(f"skipped {skipped:,} responses already labelled by {labeler} at its current version{where}; "
                     "--force relabels them")
    inside = sum(row["in_sample"] for row in rows)
    if inside:
        lines.append(f"{inside:,} of the responses labelled are in {labeler}'s own training data: "
                     "their labels are in-sample")
    return lines


def label_texts(responses: Sequence[str], prompts: Sequence[str | None] | None = None,
                labeler: str = DEFAULT_LABELER) -> list[dict]:
    """Label texts held in memory with `labeler` (the default labeler unless named): one dict per
    response, in order, with verdict, refusal, unsafe, score, marker and opening: the same
    scoring `refusaldata label` stores for a run (the Inspect scorer reads it)."""
    prompts = list(prompts) if prompts is not None else [None] * len(responses)
    if len(prompts) != len(responses):
        raise InputError(f"{len(prompts)} prompts for {len(responses)} responses")
    scores = get_labeler(labeler).score(prompts, [str(r) for r in responses], name=labeler) if responses else {}
    fields = ("verdict", "refusal", "unsafe", "score", "marker", "opening")
    values = {name: list(scores[name]) if name in scores else [None] * len(responses) for name in fields}
    return [{name: values[name][i] for name in fields} for i in range(len(responses))]
