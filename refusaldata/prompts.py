"""Prompt sets: built-in benchmarks and any CSV / JSONL / Parquet file into the prompts table.

Each built-in is declared as data (`BUILTINS`): its upstream file format, which upstream
column plays which role, and where the public copy lives. `--path` reads a local copy in
that format; without it the upstream copy is downloaded. Every prompt is keyed by its
normalized text (`keys.prompt_id`) and assigned to train or test by that key alone, so
re-imports are idempotent and a prompt lands in the same split in every data set.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from refusaldata.errors import InputError, NotFoundError
from refusaldata.io import TABULAR_FORMATS, read_records, write_bytes
from refusaldata.keys import prompt_id
from refusaldata.models import cache_dir, package_file
from refusaldata.queries import sql_text
from refusaldata.runs import now
from refusaldata.store import Store

DEFAULT_TEST_FRACTION = 0.2
_BUCKETS = 16**8
_DOWNLOAD_TIMEOUT_S = 30
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@dataclass(frozen=True)
class HubDataset:
    """A data set on the Hugging Face hub, loaded with `datasets.load_dataset`."""

    dataset_id: str
    split: str
    config: str | None = None

    def describe(self) -> str:
        return f"hub dataset {self.dataset_id}" + (f" ({self.config})" if self.config else "")


@dataclass(frozen=True)
class RemoteFile:
    """A file at a public URL (a repository's raw file)."""

    url: str

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class PackageFile:
    """A data file shipped inside an installed Python package (found without importing it)."""

    package: str
    path: str

    def describe(self) -> str:
        return f"package {self.package}: {self.path}"


@dataclass(frozen=True)
class ColumnMap:
    """Which source column fills each prompts column; each role lists candidates, first present wins.

    Candidates cover the same data set's column names in its different public copies
    (e.g. the hub copy of Do-Not-Answer says `question`, the CSV copy `prompt`).
    harmful: a constant, unless `harmful_column` is given: then a row is harmful when
    that column's value is one of `harmful_values`.
    context_separator: a row with a context is asked as context, separator, text (the
    way HarmBench asks its contextual behaviours), so that is its text and its key.
    """

    text: tuple[str, ...]
    category: tuple[str, ...] = ()
    source_ref: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    harmful: bool = True
    harmful_column: str | None = None
    harmful_values: tuple[str, ...] = ()
    context_separator: str = "\n\n---\n\n"


@dataclass(frozen=True)
class Builtin:
    """A known prompt set: its upstream format, column roles and public location."""

    name: str
    description: str
    format: str
    columns: ColumnMap
    location: HubDataset | RemoteFile | PackageFile
    records_key: str | None = None
    license: str = ""


_GITHUB_RAW = "https://raw.githubusercontent.com"

BUILTINS: dict[str, Builtin] = {b.name: b for b in (
    Builtin("advbench", "AdvBench harmful behaviours (Zou et al. 2023)", "csv",
            ColumnMap(text=("goal",)),
            RemoteFile(f"{_GITHUB_RAW}/llm-attacks/llm-attacks/main/data/advbench/harmful_behaviors.csv"),
            license="MIT"),
    Builtin("harmbench", "HarmBench text behaviours, test split (ContextString kept in `context`)", "csv",
            ColumnMap(text=("Behavior",), category=("SemanticCategory",), source_ref=("BehaviorID",),
                      context=("ContextString",)),
            RemoteFile(f"{_GITHUB_RAW}/centerforaisafety/HarmBench/main/data/behavior_datasets/"
                       "harmbench_behaviors_text_test.csv"),
            license="MIT"),
    Builtin("jbb", "JailbreakBench JBB-Behaviors, the 100 harmful behaviours", "csv",
            ColumnMap(text=("Goal",), category=("Category",), source_ref=("Behavior",)),
            HubDataset("JailbreakBench/JBB-Behaviors", split="harmful", config="behaviors"),
            license="MIT"),
    Builtin("strongreject", "StrongREJECT forbidden prompts", "csv",
            ColumnMap(text=("forbidden_prompt",), category=("category",)),
            RemoteFile(f"{_GITHUB_RAW}/alexandrasouly/strongreject/main/strongreject_dataset/"
                       "strongreject_dataset.csv"),
            license="MIT"),
    Builtin("xstest", "XSTest: 250 safe prompts that look unsafe (harmful=false) and 200 unsafe ones", "csv",
            ColumnMap(text=("prompt",), category=("type",), source_ref=("id",),
                      harmful_column="label", harmful_values=("unsafe",)),
            RemoteFile(f"{_GITHUB_RAW}/paul-rottger/exaggerated-safety/main/xstest_prompts.csv"),
            license="CC-BY-4.0"),
    Builtin("donotanswer", "Do-Not-Answer: 939 prompts a responsible model should not answer", "csv",
            ColumnMap(text=("question", "prompt"), category=("risk_area", "risk_area_file"), source_ref=("id",)),
            HubDataset("LibrAI/do-not-answer", split="train"),
            license="Apache-2.0"),
    Builtin("simplesafetytests", "SimpleSafetyTests: 100 clear-cut harmful prompts", "csv",
            ColumnMap(text=("prompts_final", "prompt"), category=("harm_area",), source_ref=("id",)),
            HubDataset("Bertievidgen/SimpleSafetyTests", split="test"),
            license="CC-BY-4.0"),
    Builtin("coconot", "CoCoNot: requests a model should not comply with (harmful=true: should refuse)", "jsonl",
            ColumnMap(text=("prompt",), category=("category",), source_ref=("id",)),
            HubDataset("allenai/coconot", split="test", config="original"),
            license="MIT"),
    Builtin("coconot-contrast", "CoCoNot contrast set: benign look-alikes a model should answer", "jsonl",
            ColumnMap(text=("prompt",), category=("category",), source_ref=("id",), harmful=False),
            HubDataset("allenai/coconot", split="test", config="contrast"),
            license="MIT"),
    Builtin("uncensorbench", "UncensorBench: 150 harmful prompts in 15 topics, with reference answers", "json",
            ColumnMap(text=("prompt",), category=("topic",), source_ref=("id",)),
            PackageFile("uncensorbench", "data/prompts.json"),
            records_key="prompts", license="MIT"),
    Builtin("benign-controls", "refusaldata's 64 safe requests that look risky (XSTest's idea), for over-refusal",
            "csv", ColumnMap(text=("text",), category=("category",), harmful=False),
            PackageFile("refusaldata", "data/benign_controls.csv"), license="Apache-2.0"),
)}


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


def _as_text(frame: pl.DataFrame, column: str | None) -> pl.Expr:
    if column is None:
        return pl.lit(None, dtype=pl.String)
    if frame.schema[column] == pl.String:
        return pl.col(column)
    return pl.col(column).cast(pl.String, strict=False)


def map_columns(frame: pl.DataFrame, columns: ColumnMap, where: str) -> pl.DataFrame:
    """The source rows as prompt fields: text, category, source_ref, context, harmful.

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
        harmful = _as_text(frame, columns.harmful_column).is_in(list(columns.harmful_values)).fill_null(False)
    else:
        harmful = pl.lit(columns.harmful)
    mapped = frame.select(
        text=_as_text(frame, text_column).str.strip_chars(),
        category=_as_text(frame, _pick(frame, columns.category)),
        source_ref=_as_text(frame, ref_column) if ref_column else pl.int_range(pl.len()).cast(pl.String),
        context=_as_text(frame, context_column).str.strip_chars().replace("", None),
        harmful=harmful,
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
    """Rows for the prompts table, one per distinct prompt (first occurrence wins)."""
    ids = [prompt_id(text) for text in mapped["text"]]
    rows = mapped.with_columns(
        prompt_id=pl.Series(ids, dtype=pl.String),
        dataset=pl.lit(dataset),
        split=pl.Series(split_of(ids, test_fraction), dtype=pl.String),
        imported_at=pl.lit(now()),
    ).unique("prompt_id", keep="first", maintain_order=True)
    return rows.select("prompt_id", "dataset", "category", "text", "harmful", "split", "source_ref",
                       "context", "imported_at").to_arrow()


def check_dataset_name(dataset: str) -> None:
    if not dataset or dataset != dataset.strip() or "/" in dataset or dataset.startswith("."):
        raise InputError(f"invalid dataset name '{dataset}': use letters, digits, '-', '_' or '.'")


def _summary(table: pa.Table, dataset: str, source: str, rows_read: int, new: int) -> ImportSummary:
    test = pc.sum(pc.equal(table.column("split"), "test")).as_py() or 0
    harmful = pc.sum(table.column("harmful")).as_py() or 0
    return ImportSummary(dataset=dataset, source=source, rows_read=rows_read, distinct=table.num_rows, new=new,
                         train=table.num_rows - test, test=test, harmful=harmful, benign=table.num_rows - harmful)


# -- fetching built-ins -------------------------------------------------------------------


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes") for name in _OFFLINE_ENV)


def _offline_error(builtin: Builtin, reason: str) -> InputError:
    return InputError(f"cannot load {builtin.name} from {builtin.location.describe()} ({reason}); "
                      f"pass --path FILE with a local copy in its upstream format ({builtin.format})")


def package_data(location: PackageFile) -> Path:
    """The data file inside an installed package, located without importing the package."""
    return package_file(location.package, location.path, f"pip install {location.package}")


def _download(builtin: Builtin, location: RemoteFile) -> Path:
    """Fetch a remote file once into our cache (not exercised offline; see `fetch_builtin`)."""
    target = cache_dir() / "prompts" / builtin.name / location.url.rsplit("/", 1)[-1]
    if target.is_file():
        return target
    if _offline():
        raise _offline_error(builtin, "offline mode is set")
    try:
        with urllib.request.urlopen(location.url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise _offline_error(builtin, f"download failed: {getattr(exc, 'reason', exc)}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(target, data, InputError)
    return target


def _load_hub(builtin: Builtin, location: HubDataset) -> pl.DataFrame:
    """`datasets.load_dataset` of the hub copy (not exercised offline; see `fetch_builtin`).

    A quick reachability check comes first: offline, `load_dataset` retries for half a
    minute before failing with a multi-line error.
    """
    if _offline():
        raise _offline_error(builtin, "offline mode is set")
    try:
        socket.getaddrinfo("huggingface.co", 443)
    except OSError as exc:
        raise _offline_error(builtin, f"the hub is unreachable: {exc.strerror or exc}") from None
    try:
        import datasets
    except ImportError:
        raise _offline_error(builtin, "loading from the hub needs the `datasets` package") from None
    try:
        loaded = datasets.load_dataset(location.dataset_id, location.config, split=location.split)
    except Exception as exc:  # the hub client raises many unrelated types; all mean "not loaded"
        raise _offline_error(builtin, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return pl.from_arrow(loaded.data.table)


def fetch_builtin(builtin: Builtin, path: Path | None = None) -> tuple[pl.DataFrame, str]:
    """The built-in's rows and a description of where they came from.

    With `path`, a local copy in the upstream format (or, by its suffix, the format the
    hub serves it in, e.g. Parquet). Without it, the upstream copy: a
    package file is read in place; a remote file is downloaded (urllib) into the cache;
    a hub data set is loaded with `datasets.load_dataset`. The last two need the network,
    which this project's test machines lack: they are tested only for their clean one-line
    failure offline (also forced by HF_HUB_OFFLINE=1).
    """
    if path is not None:
        fmt = TABULAR_FORMATS.get(Path(path).suffix.lower(), builtin.format)
        return read_records(path, fmt, builtin.records_key), str(path)
    location = builtin.location
    if isinstance(location, PackageFile):
        found = package_data(location)
        return read_records(found, builtin.format, builtin.records_key), str(found)
    if isinstance(location, RemoteFile):
        return read_records(_download(builtin, location), builtin.format, builtin.records_key), location.url
    return _load_hub(builtin, location), location.describe()


# -- entry points -------------------------------------------------------------------------


def builtin(name: str) -> Builtin:
    try:
        return BUILTINS[name]
    except KeyError:
        raise NotFoundError(f"unknown dataset '{name}'; built-ins: {', '.join(BUILTINS)} "
                            f"(or give --path FILE --text-column COL --dataset NAME)") from None


def import_builtin(store: Store, name: str, path: Path | None = None,
                   test_fraction: float = DEFAULT_TEST_FRACTION) -> ImportSummary:
    """Import a built-in prompt set (from `path` or its public copy) into the store."""
    check_test_fraction(test_fraction)
    known = builtin(name)
    frame, source = fetch_builtin(known, path)
    table = prompt_table(map_columns(frame, known.columns, source), known.name, test_fraction)
    new = store.append("prompts", table, where=source)
    return _summary(table, known.name, source, frame.height, new)


def import_file(store: Store, path: Path, dataset: str, text_column: str, category_column: str | None = None,
                harmful: bool = True, test_fraction: float = DEFAULT_TEST_FRACTION,
                fmt: str | None = None) -> ImportSummary:
    """Import any CSV / JSONL / JSON / Parquet file with named text and category columns."""
    check_test_fraction(test_fraction)
    check_dataset_name(dataset)
    frame = read_records(Path(path), fmt)
    if category_column is not None and category_column not in frame.columns:
        raise InputError(f"{path}: no category column '{category_column}' (columns: {', '.join(frame.columns)})")
    columns = ColumnMap(text=(text_column,), category=(category_column,) if category_column else (),
                        harmful=harmful)
    table = prompt_table(map_columns(frame, columns, str(path)), dataset, test_fraction)
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
