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
                   refusal: list[bool | None] | None = None, markers: list[str | None] | None = None,
                   openings: list[str | None] | None = None, verdicts: list[str | None] | None = None) -> int:
    """Replace the labels partition (labeler, run_id) with one verdict per input row.

    A run without answered responses gets its partition emptied (stale verdicts removed).
    Each column is one value per row, null where not given: unsafe-content labelers pass
    `unsafe`, a refusal labeler `refusal` with its verdicts, markers and openings.
    """
    count = rows.num_rows
    given = {"score": score, "refusal": refusal, "marker": markers, "opening": openings, "unsafe": unsafe,
             "categories": categories, "raw": raw, "verdict": verdicts}
    # Columns not given are left out: the store fills a table's absent nullable columns with nulls.
    labels = pa.table({
        "run_id": rows.column("run_id"),
        "prompt_id": rows.column("prompt_id"),
        "sample_index": rows.column("sample_index"),
        "labeler": pa.array([labeler] * count, pa.string()),
        **{name: pa.array(values, LABELS.schema.field(name).type) for name, values in given.items()
           if values is not None},
        "created_at": pa.array([now()] * count, LABELS.schema.field("created_at").type),
    })
    return store.replace("labels", labels, partition={"labeler": labeler, "run_id": run_id},
                         where=f"labels of {labeler} on {run_id}")
