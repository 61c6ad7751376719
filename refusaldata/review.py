"""Human review of the verdicts the machine is least sure of.

`export` writes the N responses of a run whose label is least certain (machine labelers
disagree, or the score is nearest 0.5; sql/review_candidates.sql) as a CSV a person fills
in any spreadsheet: the `human_verdict` column takes compliance, refusal or partial. A cell
a spreadsheet would run as a formula (a response opening with = + - @, a tab or a carriage
return) is written with a leading `'` and read back without it (refusaldata.escape), so
the text is shown, never run, and the round trip is exact.
`import_reviews` stores the filled rows as labeler `human`, with the reviewer's name
(`reviewer`) and the time (`created_at`); `best_labels` and `--labeler best` then prefer
them to the default labeler's.

The least certain rows say where the labels need help, not how good they are. For that,
`export` with `random` writes a seeded uniform sample of the chosen runs' responses, without
the machine's verdict (a person labels blind); its rows carry `sample` = 'random:SEED', which
import keeps (labels.raw), and `accuracy` measures every labeler against those verdicts.

A review file is checked whole before anything is stored: an unknown key, a prompt or
response text that differs from the stored one (the row no longer says what the person
judged), a verdict outside the three, or one response twice with two verdicts is a
one-line error naming the row (the spreadsheet's row number: the header is row 1), and
nothing is written.
"""

from __future__ import annotations

import functools
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from refusaldata import io
from refusaldata.errors import InputError, NotFoundError, excerpt
from refusaldata.escape import FORMULA_LEAD, QUOTED_FORMULA_LEAD
from refusaldata.label import run_ids_for
from refusaldata.labelers.registry import DEFAULT_LABELER, HUMAN, VERDICTS
from refusaldata.queries import sql_text
from refusaldata.runs import now
from refusaldata.schemas import LABELS
from refusaldata.store import Store

COLUMNS = ("run_id", "prompt_id", "sample_index", "prompt", "response", "verdict", "score", "human_verdict")
_NEEDED = ("run_id", "prompt_id", "sample_index", "prompt", "response", "human_verdict")


RANDOM = "random"


def candidates(store: Store, run_id: str | list[str], budget: int, labeler: str = DEFAULT_LABELER) -> pa.Table:
    """The `budget` least certain responses of the run(s) in the review file's columns, most uncertain first."""
    if budget < 1:
        raise InputError(f"--budget must be at least 1, got {budget}")
    run_ids = [run_id] if isinstance(run_id, str) else list(run_id)
    con = store.connect(["prompts", "responses", "labels"])
    try:
        labelled = {row[0] for row in con.sql(
            "SELECT DISTINCT run_id FROM labels_of($labeler) WHERE list_contains($run_ids, run_id)",
            params={"labeler": labeler, "run_ids": run_ids}).fetchall()}
        for one in run_ids:
            if one not in labelled:
                raise NotFoundError(f"run {one} has no labels from '{labeler}'; "
                                    f"run `refusaldata label --run {one} --labeler {labeler}` first")
        return con.sql(sql_text("review_candidates"),
                       params={"run_ids": run_ids, "labeler": labeler, "budget": budget}).to_arrow_table()
    finally:
        con.close()


def random_sample(store: Store, run_ids: list[str], size: int, seed: int = 0) -> pa.Table:
    """A seeded uniform sample of `size` responses of the runs, blind (no machine verdict), with
    `sample` = 'random:SEED' (sql/review_random.sql)."""
    if size < 1:
        raise InputError(f"--random must be at least 1, got {size}")
    if seed < 0:
        raise InputError(f"--seed must not be negative, got {seed}")
    con = store.connect(["prompts", "responses"])
    try:
        return con.sql(sql_text("review_random"),
                       params={"run_ids": run_ids, "size": size, "seed": seed}).to_arrow_table()
    finally:
        con.close()


def export(store: Store, run: str | list[str], budget: int | None, path: Path, labeler: str = DEFAULT_LABELER,
           random: int | None = None, seed: int = 0) -> int:
    """Write the review file for the runs `run` names (names, ids, prefixes or globs) to `path`:
    the `budget` least certain responses, or with `random` a seeded uniform sample of that many;
    returns its rows."""
    if (budget is None) == (random is None):
        raise InputError("give --budget N (the least certain responses) or --random N (a uniform sample), not "
                         "both")
    run_ids = run_ids_for(store, [run] if isinstance(run, str) else list(run))
    rows = (candidates(store, run_ids, budget, labeler) if random is None
            else random_sample(store, run_ids, random, seed))
    text = pl.from_arrow(rows).with_columns(pl.col(pl.String).str.replace(FORMULA_LEAD, "'${1}")).write_csv()
    io.write_text(path, text, error=InputError)
    return rows.num_rows


def _filled(path: Path) -> pl.DataFrame:
    """The review file's rows that have a human_verdict, with their spreadsheet row number, checked."""
    frame = io.read_records(path, "csv")
    frame = frame.with_columns(pl.col(pl.String).str.replace(QUOTED_FORMULA_LEAD, "${1}"))
    missing = [column for column in _NEEDED if column not in frame.columns]
    if missing:
        raise InputError(f"{path}: no column '{missing[0]}' (a review file has {', '.join(COLUMNS)})")
    frame = frame.with_row_index("row", offset=2).with_columns(
        pl.col("human_verdict").str.strip_chars().str.to_lowercase().fill_null(""))
    filled = frame.filter(pl.col("human_verdict") != "")
    if filled.height == 0:
        raise InputError(f"{path}: no row has a human_verdict (fill it with {', '.join(VERDICTS)})")
    bad = filled.filter(~pl.col("human_verdict").is_in(VERDICTS))
    if bad.height:
        row, verdict = bad.select("row", "human_verdict").row(0)
        raise InputError(f"{path} row {row}: human_verdict '{excerpt(verdict)}' is not one of {', '.join(VERDICTS)}")
    index = filled["sample_index"].str.strip_chars().cast(pl.Int32, strict=False)
    if index.is_null().any():
        row = filled.filter(index.is_null())["row"][0]
        raise InputError(f"{path} row {row}: sample_index must be a whole number")
    filled = filled.with_columns(index.alias("sample_index"))
    repeated = filled.filter(pl.struct("run_id", "prompt_id", "sample_index").is_duplicated())
    if repeated.height:
        first, second = repeated["row"][0], repeated["row"][1]
        raise InputError(f"{path} row {second}: the same response as row {first}; keep one row per response")
    return filled


def _same_text(column: str) -> pl.Expr:
    """The file's text equals the stored one, up to spreadsheet line endings (CRLF, CR)."""
    def lines(expr: pl.Expr) -> pl.Expr:
        return expr.fill_null("").str.replace_all("\r\n?", "\n")

    return lines(pl.col(column)) == lines(pl.col(f"stored_{column}"))


def import_reviews(store: Store, path: Path, reviewer: str) -> pa.Table:
    """Store the filled rows of review file `path` as labeler `human`; one summary row per run."""
    path = Path(path)
    if not reviewer.strip():
        raise InputError("--reviewer must not be empty")
    filled = _filled(path)
    con = store.connect(["prompts", "responses"])
    try:
        con.register("reviews", filled.select("row", "run_id", "prompt_id", "sample_index").to_arrow())
        stored = pl.from_arrow(con.sql(
            "SELECT v.row, r.response AS stored_response, p.text AS stored_prompt, r.run_id IS NOT NULL AS known "
            "FROM reviews v LEFT JOIN responses r USING (run_id, prompt_id, sample_index) "
            "LEFT JOIN (SELECT prompt_id, any_value(text) AS text FROM prompts GROUP BY prompt_id) p "
            "ON p.prompt_id = v.prompt_id ORDER BY v.row").to_arrow_table())
    finally:
        con.close()
    checked = filled.join(stored, on="row")
    unknown = checked.filter(~pl.col("known"))
    if unknown.height:
        row = unknown.row(0, named=True)
        raise InputError(f"{path} row {row['row']}: no response {row['run_id']} / {row['prompt_id']} / "
                         f"sample {row['sample_index']} in {store.root} (unknown key)")
    for column in ("prompt", "response"):
        edited = checked.filter(~_same_text(column))
        if edited.height:
            raise InputError(f"{path} row {edited['row'][0]}: the {column} differs from the stored one; "
                             f"a review must keep the exported {column} text as it is")
    return _store_reviews(store, checked, reviewer.strip())


def _sample_raw(checked: pl.DataFrame) -> pa.Array:
    """labels.raw of each reviewed row: {"sample": "random", "seed": S} for a row of a random
    sample (its file's `sample` column says 'random:S'), else null."""
    if "sample" not in checked.columns:
        return pa.nulls(checked.height, pa.string())
    seed = pl.col("sample").cast(pl.String).str.strip_chars().str.extract(r"^random:(\d+)$", 1)
    raw = pl.concat_str([pl.lit('{"sample": "random", "seed": '), seed, pl.lit("}")]).alias("raw")
    return checked.select(raw)["raw"].to_arrow()


def accuracy(store: Store, runs: list[str] | None = None) -> pa.Table:
    """Each labeler's agreement with people on the random sample (sql/review_accuracy.sql): per
    run and over all runs (run 'all runs'), with Wilson 95% intervals. No random sample
    imported (for these runs) is a NotFoundError."""
    run_ids = run_ids_for(store, runs) if runs else []
    con = store.connect(["runs", "labels"])
    try:
        con.execute(sql_text("mine_macros"))
        table = con.sql(sql_text("review_accuracy"), params={"run_ids": run_ids}).to_arrow_table()
        names = dict(con.sql("SELECT run_id, any_value(name) FROM runs GROUP BY run_id").fetchall())
    finally:
        con.close()
    if table.num_rows == 0:
        where = " of these runs" if run_ids else ""
        raise NotFoundError(f"no human verdict on a random sample{where} in {store.root}: export one with "
                            "`refusaldata review export --random N`, fill human_verdict, then `refusaldata review "
                            "import FILE`")
    run_ids_column = table.column("run_id").to_pylist()
    runs_column = ["all runs" if run_id is None else (names.get(run_id) or run_id) for run_id in run_ids_column]
    table = table.add_column(1, "run", pa.array(runs_column, pa.string()))
    return table.select([name for name in table.column_names if name != "run_id"] + ["run_id"])


def _merge_reviews(fresh: pa.Table, stored: pa.Table) -> pa.Table:
    """A run's human labels with `fresh` merged in (sql/review_merge.sql); Store.update calls it
    with the rows it read under the partition's lock, so a concurrent import's verdicts stay."""
    con = duckdb.connect()
    try:
        con.register("fresh", fresh)
        con.register("stored", stored)
        return con.sql(sql_text("review_merge")).to_arrow_table()
    finally:
        con.close()


def _store_reviews(store: Store, checked: pl.DataFrame, reviewer: str) -> pa.Table:
    """Merge the reviews into each run's `human` partition (a later review of a response replaces the earlier)."""
    from refusaldata.labelers.rules import rule_facts

    openings = rule_facts(checked["stored_response"].to_list()).column("opening").to_pylist()
    fresh = pa.table({
        "run_id": checked["run_id"].to_arrow(), "prompt_id": checked["prompt_id"].to_arrow(),
        "sample_index": checked["sample_index"].to_arrow(), "labeler": [HUMAN] * checked.height,
        "refusal": (checked["human_verdict"] != "compliance").to_arrow(),
        "score": (checked["human_verdict"] != "compliance").cast(pl.Float64).to_arrow(),
        "opening": openings, "verdict": checked["human_verdict"].to_arrow(),
        "reviewer": [reviewer] * checked.height,
        "created_at": pa.array([now()] * checked.height, LABELS.schema.field("created_at").type),
        "raw": _sample_raw(checked),
    })
    summary = []
    for run_id in sorted(set(checked["run_id"].to_list())):
        mine_rows = fresh.filter(pc.equal(fresh["run_id"], run_id))
        merged = store.update("labels", {"labeler": HUMAN, "run_id": run_id},
                              functools.partial(_merge_reviews, mine_rows), where=f"human labels of {run_id}")
        mine = checked.filter(pl.col("run_id") == run_id)["human_verdict"]
        summary.append({"run_id": run_id, "reviewed": mine.len(), "compliance": int((mine == "compliance").sum()),
                        "refusal": int((mine == "refusal").sum()), "partial": int((mine == "partial").sum()),
                        "human_labels": merged.num_rows, "reviewer": reviewer})
    return pa.Table.from_pylist(summary)
