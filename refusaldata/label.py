"""The labelling stage: label stored runs, or texts held in memory, with a labeler of
refusaldata/labelers/ (the registry there says which exist and which is the default)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

import pyarrow as pa

from refusaldata.errors import InputError, NotFoundError
from refusaldata.labelers.registry import DEFAULT_LABELER, RULES, labeler_function
from refusaldata.runs import select_runs
from refusaldata.store import Store


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


def label(store: Store, runs: list[str] | None = None, labeler: str = RULES, **options) -> pa.Table:
    """Label the runs (every run when none is named) with `labeler`; a summary per run."""
    function = labeler_function(labeler)
    run_ids = run_ids_for(store, runs)
    if not run_ids:
        raise NotFoundError(f"no responses to label in {store.root}")
    function(store, run_ids, labeler=labeler, **options)
    con = store.connect(["labels"])
    try:
        return con.sql(
            "SELECT run_id, labeler, count(*)::BIGINT AS labelled, count(*) FILTER (refusal)::BIGINT AS refusals, "
            "count(*) FILTER (refusal IS NULL)::BIGINT AS undecided, "
            "count(*) FILTER (verdict = 'partial')::BIGINT AS partials "
            "FROM labels WHERE labeler = $labeler AND list_contains($run_ids, run_id) "
            "GROUP BY ALL ORDER BY run_id",
            params={"labeler": labeler, "run_ids": run_ids}).to_arrow_table()
    finally:
        con.close()


INLINE_RUN = "inline"


def label_texts(responses: Sequence[str], prompts: Sequence[str | None] | None = None,
                labeler: str = DEFAULT_LABELER) -> list[dict]:
    """Label texts held in memory with `labeler` (the default labeler unless named): one dict per
    response, in order, with verdict, refusal, unsafe, score, marker and opening.

    Labelers read runs from a store, so the texts become one run of a throwaway store in a
    temporary folder, labelled exactly as `refusaldata label` labels a stored run: whatever the
    default labeler is, in-memory callers (the Inspect scorer) get its verdicts.
    """
    prompts = list(prompts) if prompts is not None else [None] * len(responses)
    if len(prompts) != len(responses):
        raise InputError(f"{len(prompts)} prompts for {len(responses)} responses")
    ids = [f"{index:016x}" for index in range(len(responses))]
    asked = [(pid, text) for pid, text in zip(ids, prompts) if text is not None]
    with tempfile.TemporaryDirectory(prefix="refusaldata-label-") as folder:
        store = Store(folder)
        if asked:
            store.append("prompts", pa.table({
                "prompt_id": [pid for pid, _ in asked], "dataset": [INLINE_RUN] * len(asked),
                "text": [text for _, text in asked], "harmful": [True] * len(asked),
                "split": ["test"] * len(asked)}))
        store.append("responses", pa.table({
            "run_id": [INLINE_RUN] * len(ids), "prompt_id": ids,
            "sample_index": pa.array([0] * len(ids), pa.int32()), "response": [str(r) for r in responses],
            "finish_reason": ["stop"] * len(ids)}))
        labeler_function(labeler)(store, [INLINE_RUN], labeler=labeler)
        labels = {row["prompt_id"]: row for row in store.read("labels").to_pylist()}
    fields = ("verdict", "refusal", "unsafe", "score", "marker", "opening")
    return [{name: labels.get(pid, {}).get(name) for name in fields} for pid in ids]
