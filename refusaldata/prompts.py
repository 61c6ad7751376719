"""Prompt sets into the prompts table: a built-in benchmark or any CSV / JSONL / Parquet file.

The built-ins are declared in `registry` and their rows fetched by `fetch`; this module
maps source columns onto the prompts table and stores them. Every prompt is keyed by its
normalized text (`keys.prompt_id`) and assigned to train or test by that key alone, so
re-imports are idempotent and a prompt lands in the same split in every data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz, process

from refusaldata.errors import InputError
from refusaldata.fetch import fetch_builtin
from refusaldata.io import check_plain_column, read_records
from refusaldata.keys import normalize_prompt, prompt_id
from refusaldata.queries import sql_text
from refusaldata.registry import Builtin, ColumnMap, builtin, declared_columns
from refusaldata.runs import now
from refusaldata.store import Store

DEFAULT_TEST_FRACTION = 0.2
# A training-only prompt this similar to a test prompt (rapidfuzz ratio on normalized text) is one.
NEAR_DUPLICATE_RATIO = 90
_BUCKETS = 16**8


@dataclass(frozen=True)
class ImportSummary:
    """What one import did: rows read, distinct prompts, how many were new, the split."""

    dataset: str
    source: str
    rows_read: int
    distinct: int
    new: int
    train: int
    test: int
    harmful: int
    benign: int

    @property
    def already_stored(self) -> int:
        return self.distinct - self.new


# -- mapping ------------------------------------------------------------------------------


def _pick(frame: pl.DataFrame, candidates: tuple[str, ...]) -> str | None:
    return next((name for name in candidates if name in frame.columns), None)


def _as_text(frame: pl.DataFrame, column: str | None, where: str) -> pl.Expr:
    if column is None:
        return pl.lit(None, dtype=pl.String)
    check_plain_column(frame, column, where)
    if frame.schema[column] == pl.String:
        return pl.col(column)
    return pl.col(column).cast(pl.String, strict=False)


def map_columns(frame: pl.DataFrame, columns: ColumnMap, where: str) -> pl.DataFrame:
    """The source rows as prompt fields: text, category, source_ref, context, harmful, attack.

    A missing text column, or a row whose text is empty, is an InputError naming it.
    Without a source_ref column the 0-based row number is the reference.
    """
    text_column = _pick(frame, columns.text)
    if text_column is None:
        raise InputError(f"{where}: no text column {' or '.join(repr(c) for c in columns.text)} "
                         f"(columns: {', '.join(frame.columns)})")
    ref_column = _pick(frame, columns.source_ref)
    context_column = _pick(frame, columns.context)
    if columns.harmful_column is not None:
        if columns.harmful_column not in frame.columns:
            raise InputError(f"{where}: no column '{columns.harmful_column}' (columns: {', '.join(frame.columns)})")
        harmful = _as_text(frame, columns.harmful_column, where).is_in(list(columns.harmful_values)).fill_null(False)
    else:
        harmful = pl.lit(columns.harmful)
    text = _as_text(frame, text_column, where)
    if columns.text_pattern is not None:
        text = pl.coalesce(text.str.extract(columns.text_pattern, 1), text)
    mapped = frame.select(
        text=text.str.strip_chars(),
        category=_as_text(frame, _pick(frame, columns.category), where),
        source_ref=_as_text(frame, ref_column, where) if ref_column else pl.int_range(pl.len()).cast(pl.String),
        context=_as_text(frame, context_column, where).str.strip_chars().replace("", None),
        harmful=harmful,
        attack=_as_text(frame, _pick(frame, columns.attack), where).str.strip_chars().replace("", None),
    )
    empty = mapped.with_row_index("row").filter(pl.col("text").is_null() | (pl.col("text") == ""))
    if empty.height:
        raise InputError(f"{where}: record {empty['row'][0] + 1} has no text in column '{text_column}' "
                         f"({empty.height} such record(s))")
    if context_column is not None:
        rendered = pl.concat_str(pl.col("context"), pl.lit(columns.context_separator), pl.col("text"))
        mapped = mapped.with_columns(
            text=pl.when(pl.col("context").is_not_null()).then(rendered).otherwise(pl.col("text")))
    return mapped


def split_of(prompt_ids: list[str], test_fraction: float) -> list[str]:
    """'test' when the prompt_id's hash bucket falls below test_fraction, else 'train'.

    prompt_id is itself a sha256 digest, so its first 8 hex digits are a uniform bucket:
    the split is stable across runs, machines and data sets that share a prompt.
    """
    threshold = test_fraction * _BUCKETS
    return ["test" if int(pid[:8], 16) < threshold else "train" for pid in prompt_ids]


def check_test_fraction(test_fraction: float) -> None:
    if not 0.0 <= test_fraction <= 1.0:
        raise InputError(f"--test-fraction must be between 0 and 1, got {test_fraction}")


def prompt_table(mapped: pl.DataFrame, dataset: str, test_fraction: float) -> pa.Table:
    """Rows for the prompts table, one per distinct prompt (first occurrence wins); attack NULL if absent."""
    if "attack" not in mapped.columns:
        mapped = mapped.with_columns(attack=pl.lit(None, dtype=pl.String))
    ids = [prompt_id(text) for text in mapped["text"]]
    rows = mapped.with_columns(
        prompt_id=pl.Series(ids, dtype=pl.String),
        dataset=pl.lit(dataset),
        split=pl.Series(split_of(ids, test_fraction), dtype=pl.String),
        imported_at=pl.lit(now()),
    ).unique("prompt_id", keep="first", maintain_order=True)
    return rows.select("prompt_id", "dataset", "category", "text", "harmful", "split", "source_ref",
                       "context", "imported_at", "attack").to_arrow()


def check_dataset_name(dataset: str) -> None:
    if not dataset or dataset != dataset.strip() or "/" in dataset or dataset.startswith("."):
        raise InputError(f"invalid dataset name '{dataset}': use letters, digits, '-', '_' or '.'")


def check_merge(store: Store, table: pa.Table, dataset: str, append: bool, elsewhere: str) -> None:
    """Refuse to add prompts to a data set that already holds others, unless `append`.

    A data set is what later counts as one thing (a refusal rate, a split); prompts from
    another file or attack merged into it silently would change what it means. A rerun of
    the same import adds nothing and passes. `elsewhere` says where else they could go.
    """
    if append:
        return
    con = store.connect(["prompts"])
    try:
        con.register("incoming_prompts", table.select(["prompt_id"]))
        stored, new = con.execute(sql_text("prompts_merge"), {"dataset": dataset}).fetchone()
    finally:
        con.close()
    if stored and new:
        raise InputError(f"data set '{dataset}' exists already with {stored} prompt(s) and this would add {new} "
                         f"more to it; {elsewhere}give --append to add them to '{dataset}'")


def _summary(table: pa.Table, dataset: str, source: str, rows_read: int, new: int) -> ImportSummary:
    test = pc.sum(pc.equal(table.column("split"), "test")).as_py() or 0
    harmful = pc.sum(table.column("harmful")).as_py() or 0
    return ImportSummary(dataset=dataset, source=source, rows_read=rows_read, distinct=table.num_rows, new=new,
                         train=table.num_rows - test, test=test, harmful=harmful, benign=table.num_rows - harmful)


# -- entry points -------------------------------------------------------------------------


def import_builtin(store: Store, name: str, path: Path | None = None,
                   test_fraction: float = DEFAULT_TEST_FRACTION, append: bool = False) -> ImportSummary:
    """Import a built-in prompt set (from `path` or its public copy) into the store.

    Prompts the stored set lacks (another copy or version of it) are added only with `append`.
    """
    check_test_fraction(test_fraction)
    known = builtin(name)
    frame, source = fetch_builtin(known, path)
    mapped = map_columns(frame, known.columns, source)
    if known.training_only:
        check_training_only(store, known, frame, mapped, source)
    table = prompt_table(mapped, known.name, test_fraction)
    check_merge(store, table, known.name, append, "")
    new = store.append("prompts", table, where=source)
    return _summary(table, known.name, source, frame.height, new)


def check_training_only(store: Store, known: Builtin, frame: pl.DataFrame, mapped: pl.DataFrame,
                        source: str) -> None:
    """A training-only set (the shipped boundary look-alikes, or a file given in their place) must
    hold only its declared columns and at least one prompt, and no prompt that is, or nearly is
    (rapidfuzz ratio >= NEAR_DUPLICATE_RATIO), a test prompt of another data set in the store:
    training on a test prompt's twin would flatter every over-refusal figure."""
    declared = declared_columns(known.columns)
    unknown = [column for column in frame.columns if column not in declared]
    if unknown:
        raise InputError(f"{source}: unknown column(s) {', '.join(repr(c) for c in unknown)}; "
                         f"a {known.name} file has columns {', '.join(declared)}")
    if mapped.is_empty():
        raise InputError(f"{source}: no prompts; the {known.name} set needs at least one")
    con = store.connect(["prompts"])
    try:
        tests = [row[0] for row in con.sql(sql_text("prompts_test_texts"), params={"dataset": known.name}).fetchall()]
    finally:
        con.close()
    if not tests:
        return
    texts = mapped["text"].to_list()
    scores = process.cdist([normalize_prompt(t) for t in texts], [normalize_prompt(t) for t in tests],
                           scorer=fuzz.ratio, dtype=np.float32, workers=-1)
    best = scores.argmax(axis=1)
    clashes = [i for i in range(len(texts)) if scores[i, best[i]] >= NEAR_DUPLICATE_RATIO]
    if clashes:
        first = clashes[0]
        raise InputError(f"{source}: {len(clashes)} prompt(s) repeat a test prompt of the store (rapidfuzz ratio >= "
                         f"{NEAR_DUPLICATE_RATIO}), e.g. {texts[first]!r} ~ {tests[best[first]]!r}; "
                         f"the {known.name} set trains, so none may be a test prompt")


def import_file(store: Store, path: Path, dataset: str, text_column: str, category_column: str | None = None,
                harmful: bool = True, test_fraction: float = DEFAULT_TEST_FRACTION,
                fmt: str | None = None, append: bool = False) -> ImportSummary:
    """Import any CSV / JSONL / JSON / Parquet file with named text and category columns.

    Into an existing data set only what it holds already (a rerun), unless `append`.
    """
    check_test_fraction(test_fraction)
    check_dataset_name(dataset)
    frame = read_records(Path(path), fmt)
    if category_column is not None and category_column not in frame.columns:
        raise InputError(f"{path}: no category column '{category_column}' (columns: {', '.join(frame.columns)})")
    columns = ColumnMap(text=(text_column,), category=(category_column,) if category_column else (),
                        harmful=harmful)
    table = prompt_table(map_columns(frame, columns, str(path)), dataset, test_fraction)
    check_merge(store, table, dataset, append, "import into a new --dataset NAME, or ")
    new = store.append("prompts", table, where=str(path))
    return _summary(table, dataset, str(path), frame.height, new)


def list_prompts(store: Store, dataset: str | None = None) -> pa.Table:
    """Counts per data set (harmful/benign, train/test, categories), or per category of one."""
    con = store.connect(["prompts"])
    try:
        if dataset is None:
            return con.sql(sql_text("prompts_by_dataset")).to_arrow_table()
        return con.sql(sql_text("prompts_by_category"), params={"dataset": dataset}).to_arrow_table()
    finally:
        con.close()
