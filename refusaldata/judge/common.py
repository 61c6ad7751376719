"""What every learned or judge labeler shares: reading a run's (prompt, response) rows and
storing its verdicts as one labels partition (labeler, run)."""

from __future__ import annotations

import pyarrow as pa

from refusaldata.queries import sql_text
from refusaldata.runs import now
from refusaldata.schemas import LABELS
from refusaldata.store import Store


def run_inputs(store: Store, run_id: str) -> pa.Table:
    """Rows of run_id, prompt_id, sample_index, prompt, response: a run's answered responses."""
    con = store.connect(["responses", "prompts"])
    try:
        return con.sql(sql_text("judge_inputs"), params={"run_id": run_id}).to_arrow_table()
    finally:
        con.close()


def write_verdicts(store: Store, run_id: str, labeler: str, rows: pa.Table, *,
                   unsafe: list[bool | None] | None = None, score: list[float | None] | None = None,
                   categories: list[str | None] | None = None, raw: list[str | None] | None = None,
                   marker: str | None = None, refusal: list[bool | None] | None = None,
                   markers: list[str | None] | None = None, openings: list[str | None] | None = None) -> int:
    """Replace the labels partition (labeler, run_id) with one verdict per input row.

    A run without answered responses gets its partition emptied (stale verdicts removed).
    Unsafe-content labelers pass `unsafe` (and one `marker` for all rows); a refusal
    labeler passes `refusal` with a marker and opening per row.
    """
    count = rows.num_rows
    labels = pa.table({
        "run_id": rows.column("run_id"),
        "prompt_id": rows.column("prompt_id"),
        "sample_index": rows.column("sample_index"),
        "labeler": pa.array([labeler] * count, pa.string()),
        "score": pa.array(score if score is not None else [None] * count, pa.float64()),
        "refusal": pa.array(refusal if refusal is not None else [None] * count, pa.bool_()),
        "marker": pa.array(markers if markers is not None else [marker] * count, pa.string()),
        "opening": pa.array(openings if openings is not None else [None] * count, pa.string()),
        "unsafe": pa.array(unsafe if unsafe is not None else [None] * count, pa.bool_()),
        "categories": pa.array(categories if categories is not None else [None] * count, pa.string()),
        "raw": pa.array(raw if raw is not None else [None] * count, pa.string()),
        "created_at": pa.array([now()] * count, LABELS.schema.field("created_at").type),
    })
    return store.replace("labels", labels, partition={"labeler": labeler, "run_id": run_id},
                         where=f"labels of {labeler} on {run_id}")
