"""Imported runs: responses produced by other tools become runs like any generated one.

Each source file (or each model file of a JailbreakBench artifact folder) becomes one run
(backend 'import') whose config records where the responses came from. Responses link to
prompts by text: the prompt_id is the hash of the prompt's text, and prompts that no data
set holds yet are added under a data set named for the source. A prompt answered several
times in one run gets sample_index 0, 1, ... in file order. Everything is parsed before
anything is written, so a bad file leaves the store unchanged; re-importing a file adds
nothing (same run_id, same keys).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from refusaldata import prompts as prompt_sets
from refusaldata import io
from refusaldata.errors import InputError, excerpt
from refusaldata.fetch import package_data
from refusaldata.keys import prompt_id, run_id
from refusaldata.queries import sql_text
from refusaldata.registry import BUILTINS
from refusaldata.runs import config_text, now, record_run, stored_run_config
from refusaldata.store import Store

FORMATS = ("jbb", "harmbench", "csv", "jsonl", "uncensorbench")
FINISH_REASON = "imported"
BACKEND = "import"
JBB_METADATA_FILES = frozenset({"attack-info.json", "evaluation.json", "submission.json"})
DEFAULT_DATASETS = {"jbb": "jbb-artifacts", "harmbench": "harmbench-completions", "csv": "imported",
                    "jsonl": "imported", "uncensorbench": "uncensorbench"}
UNCENSORBENCH_RUNS = {"uncensorbench-refusals": "censored_response",
                      "uncensorbench-compliant": "uncensored_response"}

_ROW_COLUMNS = {"text": pl.String, "category": pl.String, "source_ref": pl.String, "response": pl.String,
                "n_prompt_tokens": pl.Int32, "n_output_tokens": pl.Int32}


@dataclass
class ImportedRun:
    """One run parsed from a source, not yet stored.

    rows: text (the prompt), category, source_ref, response, n_prompt_tokens,
    n_output_tokens (the last two null where the source does not say).
    """

    name: str
    model: str | None
    config: dict
    dataset: str
    rows: pl.DataFrame
    harmful: bool = True
    fixed_run_id: str | None = None
    label: str | None = None

    @property
    def run_id(self) -> str:
        """`fixed_run_id`, else a content hash of the config behind a readable label."""
        return self.fixed_run_id or run_id(self.label or self.name, self.config)


@dataclass(frozen=True)
class RunImportSummary:
    run_id: str
    name: str
    model: str | None
    responses: int
    new_responses: int
    skipped_empty: int
    new_prompts: int


# -- parsing ------------------------------------------------------------------------------


def _rows(frame: pl.DataFrame, where: str | Path, **sources: str) -> pl.DataFrame:
    """The run's rows: each row column taken from its named source column, null where absent.

    A source column of structs, lists or maps is refused (`io.check_plain_column`), never cast
    to its printed form."""
    if frame.height == 0:
        return pl.DataFrame(schema=_ROW_COLUMNS)
    for name, dtype in _ROW_COLUMNS.items():
        if sources.get(name) in frame.columns:
            io.check_plain_column(frame, sources[name], where, "text" if dtype == pl.String else "a number")
    exprs = {name: (pl.col(sources[name]) if sources.get(name) in frame.columns else pl.lit(None)).cast(
        dtype, strict=False) for name, dtype in _ROW_COLUMNS.items()}
    return frame.select(**exprs)


def _records(path: Path, records: object, what: str) -> pl.DataFrame:
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InputError(f"{path}: expected {what} to be a list of JSON objects")
    return io.records_frame(records, path) if records else pl.DataFrame()


def _require(path: Path, frame: pl.DataFrame, columns: tuple[str, ...]) -> None:
    for column in columns:
        if column not in frame.columns:
            raise InputError(f"{path}: no column '{column}' (columns: {', '.join(frame.columns) or 'none'})")


def parse_jbb(path: Path, model: str | None = None) -> ImportedRun:
    """One JailbreakBench artifact `<method>/<attack type>/<model>.json`.

    The prompt is the attacked prompt the model saw; its category is the JBB category and
    its source_ref the JBB behaviour name (the `source_ref` of the built-in `jbb` set), so
    an attacked prompt joins back to its behaviour. The `parameters` block (method, model,
    attack type, defense, attack success rate, method parameters) goes whole into the run
    config; the per-response judge verdicts are left out (they judge jailbreaks, not refusals).
    """
    value = io.read_json(path)
    if not isinstance(value, dict) or not isinstance(value.get("parameters"), dict) or "jailbreaks" not in value:
        raise InputError(f"{path}: not a JailbreakBench artifact (needs 'parameters' and 'jailbreaks')")
    parameters = value["parameters"]
    frame = _records(path, value["jailbreaks"], "'jailbreaks'")
    if frame.height:
        _require(path, frame, ("prompt", "response"))
    method_folder, attack_type, stem = path.parent.parent.name, path.parent.name, path.stem
    model_name = model if model is not None else (parameters.get("model") or stem)
    config = {"format": "jbb", "artifact": f"{method_folder}/{attack_type}/{path.name}",
              "sha256": io.sha256_file(path), "parameters": parameters, "model": model_name}
    rows = _rows(frame, path, text="prompt", category="category", source_ref="behavior", response="response",
                 n_prompt_tokens="prompt_tokens", n_output_tokens="response_tokens")
    return ImportedRun(name=f"jbb-{method_folder}-{attack_type}-{model_name}", model=model_name,
                       config=config, dataset=DEFAULT_DATASETS["jbb"], rows=rows,
                       label=f"jbb-{model_name}-{method_folder}-{attack_type}")


def jbb_files(folder: Path) -> list[Path]:
    """The model files of an artifact folder, without its attack-info/evaluation/submission files."""
    found = sorted(p for p in folder.rglob("*.json") if p.name not in JBB_METADATA_FILES)
    if not found:
        raise InputError(f"{folder}: no JailbreakBench artifact files (<method>/<type>/<model>.json) in it")
    return found


def parse_harmbench(path: Path, model: str | None = None) -> ImportedRun:
    """HarmBench completions: {behavior_id: [{"test_case": ..., "generation": ...}, ...]}."""
    value = io.read_json(path)
    if not isinstance(value, dict):
        raise InputError(f"{path}: expected a JSON object mapping behavior_id to a list of completions")
    parts = []
    for behavior_id, completions in value.items():
        frame = _records(path, completions, f"the completions of '{behavior_id}'")
        if frame.height:
            _require(path, frame, ("test_case", "generation"))
            parts.append(frame.select(pl.col("test_case"), pl.col("generation"), behavior_id=pl.lit(behavior_id)))
    if not parts:
        raise InputError(f"{path}: empty file (no completions)")
    frame = pl.concat(parts, how="vertical_relaxed")
    model_name = model if model is not None else path.stem
    config = {"format": "harmbench", "source": path.name, "sha256": io.sha256_file(path), "model": model_name}
    rows = _rows(frame, path, text="test_case", source_ref="behavior_id", response="generation")
    return ImportedRun(name=f"harmbench-{model_name}", model=model_name, config=config,
                       dataset=DEFAULT_DATASETS["harmbench"], rows=rows)


def parse_table(path: Path, fmt: str, model: str | None = None, prompt_column: str = "prompt",
                response_column: str = "response") -> ImportedRun:
    """A generic CSV or JSONL file with one prompt and one response per row."""
    frame = io.read_records(path, fmt)
    _require(path, frame, (prompt_column, response_column))
    model_name = model if model is not None else path.stem
    config = {"format": fmt, "source": path.name, "sha256": io.sha256_file(path), "model": model_name,
              "prompt_column": prompt_column, "response_column": response_column}
    rows = _rows(frame, path, text=prompt_column, response=response_column)
    return ImportedRun(name=f"import-{model_name}", model=model_name, config=config,
                       dataset=DEFAULT_DATASETS[fmt], rows=rows)


def parse_uncensorbench(path: Path | None = None) -> list[ImportedRun]:
    """The package's reference refusals and reference compliant answers, as two runs.

    Their run ids are their names, `uncensorbench-refusals` and `uncensorbench-compliant`,
    so other stages can name the teacher run directly.
    """
    source = path or package_data(BUILTINS["uncensorbench"].location)
    frame = io.read_records(source, "json", records_key="prompts")
    _require(source, frame, ("prompt", *UNCENSORBENCH_RUNS.values()))
    version = importlib.metadata.version("uncensorbench") if path is None else None
    runs = []
    for name, column in UNCENSORBENCH_RUNS.items():
        config = {"format": "uncensorbench", "field": column, "package_version": version,
                  "sha256": io.sha256_file(source)}
        rows = _rows(frame, source, text="prompt", category="topic", source_ref="id", response=column)
        runs.append(ImportedRun(name=name, model="uncensorbench-reference", config=config,
                                dataset=DEFAULT_DATASETS["uncensorbench"], rows=rows, fixed_run_id=name))
    return runs


def parse_source(source: str | Path, fmt: str, model: str | None = None, prompt_column: str = "prompt",
                 response_column: str = "response") -> list[ImportedRun]:
    """Every run in `source` (a file, a JBB artifact folder, or 'uncensorbench')."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}' (one of {', '.join(FORMATS)})")
    if fmt == "uncensorbench":
        return parse_uncensorbench(None if str(source) == "uncensorbench" else Path(source))
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if fmt == "jbb":
        return [parse_jbb(p, model) for p in (jbb_files(path) if path.is_dir() else [path])]
    if path.is_dir():
        raise InputError(f"{path}: is a folder; only --format jbb imports a folder")
    if fmt == "harmbench":
        return [parse_harmbench(path, model)]
    return [parse_table(path, fmt, model, prompt_column, response_column)]


# -- storing ------------------------------------------------------------------------------


def _keyed(run: ImportedRun) -> tuple[pl.DataFrame, int]:
    """Non-empty responses with prompt_id and sample_index; and how many were empty."""
    rows = run.rows.with_row_index("record", offset=1)
    empty = rows["response"].is_null() | (rows["response"].str.strip_chars() == "")
    kept = rows.filter(~empty)
    no_prompt = kept.filter(pl.col("text").is_null() | (pl.col("text").str.strip_chars() == ""))
    if no_prompt.height:
        raise InputError(f"{run.config.get('source') or run.config.get('artifact') or run.name}: record "
                         f"{no_prompt['record'][0]} has a response but no prompt ({no_prompt.height} such record(s))")
    kept = kept.with_columns(prompt_id=pl.Series([prompt_id(t) for t in kept["text"]], dtype=pl.String))
    kept = kept.with_columns(sample_index=pl.int_range(pl.len()).over("prompt_id").cast(pl.Int32))
    return kept, int(empty.sum())


def _missing_prompts(store: Store, keyed: pl.DataFrame, run: ImportedRun, test_fraction: float) -> pa.Table:
    """Prompt rows for the run's prompts that no data set holds yet."""
    candidates = keyed.select("text", "category", "source_ref", context=pl.lit(None, dtype=pl.String),
                              harmful=pl.lit(run.harmful))
    incoming = prompt_sets.prompt_table(candidates, run.dataset, test_fraction)
    con = store.connect(["prompts"])
    try:
        con.register("incoming_prompts", incoming)
        return con.sql(sql_text("missing_prompts")).to_arrow_table()
    finally:
        con.close()


def _check_same_source(store: Store, run: ImportedRun) -> None:
    """Refuse to add responses to a stored run that was imported from another source.

    A run id hashes its source, so this only happens to the fixed ids (uncensorbench's runs,
    from another file or package version): their responses would mix two sources under one
    runs row that describes only the first. A rerun of the same import passes.
    """
    stored = stored_run_config(store, run.run_id)
    if stored is not None and stored != config_text(run.config):
        raise InputError(f"run {run.run_id} exists already, imported from another source (its stored config "
                         f"differs: {excerpt(stored, 60)}); its responses are never mixed with another source's")


def _store_run(store: Store, run: ImportedRun, keyed: pl.DataFrame, skipped: int,
               test_fraction: float) -> RunImportSummary:
    """Write the run's missing prompts, its responses, then its runs row (all idempotent)."""
    identifier = run.run_id
    new_prompts = store.append("prompts", _missing_prompts(store, keyed, run, test_fraction), where=run.name)
    created_at = now()
    responses = keyed.select(
        run_id=pl.lit(identifier), prompt_id="prompt_id", sample_index="sample_index", response="response",
        n_prompt_tokens="n_prompt_tokens", n_output_tokens="n_output_tokens",
        finish_reason=pl.lit(FINISH_REASON), created_at=pl.lit(created_at),
    ).to_arrow()
    new_responses = store.append("responses", responses, where=run.name)
    samples = int(keyed["sample_index"].max()) + 1 if keyed.height else 0
    record_run(store, identifier, BACKEND, run.config, name=run.name, model=run.model, n=samples,
               prompts=run.dataset)
    return RunImportSummary(run_id=identifier, name=run.name, model=run.model, responses=keyed.height,
                            new_responses=new_responses, skipped_empty=skipped, new_prompts=new_prompts)


def import_responses(store: Store, source: str | Path, fmt: str, model: str | None = None,
                     dataset: str | None = None, prompt_column: str = "prompt", response_column: str = "response",
                     test_fraction: float = prompt_sets.DEFAULT_TEST_FRACTION) -> list[RunImportSummary]:
    """Parse every run in `source`, then store them; returns one summary per run."""
    prompt_sets.check_test_fraction(test_fraction)
    if model is not None and not model.strip():
        raise InputError("--model is empty; give the run's model name, or leave it out for the source's")
    if model is not None and fmt == "uncensorbench":
        raise InputError("--model does not apply to --format uncensorbench: its runs hold the package's reference "
                         "answers, model 'uncensorbench-reference'")
    runs = parse_source(source, fmt, model, prompt_column, response_column)
    if dataset is not None:
        prompt_sets.check_dataset_name(dataset)
        for run in runs:
            run.dataset = dataset
    prepared = [(run, *_keyed(run)) for run in runs]
    for run in runs:
        _check_same_source(store, run)
    return [_store_run(store, run, keyed, skipped, test_fraction) for run, keyed, skipped in prepared]
