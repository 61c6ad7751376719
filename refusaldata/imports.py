"""Imported runs: responses produced by other tools become runs like any generated one.

Each source file (or each model file of a JailbreakBench artifact folder) becomes one run
(backend 'import') whose config records where the responses came from. Responses link to
prompts by text: the prompt_id is the hash of the prompt's text, and prompts that no data
set holds yet are added under a data set named for the source. A prompt answered several
times in one run gets sample_index 0, 1, ... in file order. Everything is parsed before
anything is written, so a bad file leaves the store unchanged; re-importing a file adds
nothing (same run_id, same keys).

Inspect logs and garak reports carry more than a prompt and a response: each sample or
output keeps its place (`sample_index` counts every sample of a prompt in log order,
errored or empty ones included, so a re-import keys the same rows the same way), the
tool's own scores go to responses.source_scores (JSON), and the earlier turns of a
multi-turn input go to the run config (`conversations`): the prompt is the last user turn.

A Hugging Face `datasets` table (a save_to_disk folder or a hub id) is read like a CSV file:
one prompt and one response column per row, one split of it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import polars as pl
import pyarrow as pa

from refusaldata import prompts as prompt_sets
from refusaldata import io
from refusaldata.errors import BackendError, InputError, excerpt
from refusaldata.fetch import offline, package_data
from refusaldata.keys import canonical_json, prompt_id, run_id
from refusaldata.queries import sql_text
from refusaldata.registry import BUILTINS
from refusaldata.runs import GLOB_CHARACTERS, check_names, config_text, now, record_run, stored_run_config
from refusaldata.store import Store

FORMATS = ("jbb", "harmbench", "csv", "jsonl", "uncensorbench", "inspect", "garak", "hf")
TABLE_FORMATS = ("csv", "jsonl", "hf")
FINISH_REASON = "imported"
BACKEND = "import"
JBB_METADATA_FILES = frozenset({"attack-info.json", "evaluation.json", "submission.json"})
DEFAULT_DATASETS = {"jbb": "jbb-artifacts", "harmbench": "harmbench-completions", "csv": "imported",
                    "jsonl": "imported", "uncensorbench": "uncensorbench", "inspect": "inspect",
                    "garak": "garak", "hf": "imported"}
UNCENSORBENCH_RUNS = {"uncensorbench-refusals": "censored_response",
                      "uncensorbench-compliant": "uncensored_response"}

_ROW_COLUMNS = {"text": pl.String, "category": pl.String, "source_ref": pl.String, "response": pl.String,
                "n_prompt_tokens": pl.Int32, "n_output_tokens": pl.Int32, "source_scores": pl.String,
                "harmful": pl.Boolean, "attack": pl.String}
# What a --harmful-column may hold (case and surrounding blanks ignored): each value's meaning.
HARMFUL_VALUES = {"true": True, "1": True, "1.0": True, "yes": True, "harmful": True,
                  "false": False, "0": False, "0.0": False, "no": False, "benign": False}
HARMFUL_SPELLINGS = "true/false, 1/0, yes/no or harmful/benign"
# JailbreakBench's own per-response verdicts, kept in responses.source_scores.
JBB_VERDICTS = ("jailbroken", "jailbroken_llama_guard1")


@dataclass
class ImportedRun:
    """One run parsed from a source, not yet stored.

    rows: text (the prompt), category, source_ref, response, n_prompt_tokens,
    n_output_tokens (null where the source does not say), source_scores (JSON or null),
    harmful (null: the run's `harmful`), attack (the attack that made the prompt, or null), and
    optionally sample_index, when the source fixes it (otherwise file order among the kept rows).
    skipped_failed: samples the source itself records as failed, left out of rows.
    run_columns: typed columns of the runs row the source states (max_tokens, temperature, ...).
    """

    name: str
    model: str | None
    config: dict
    dataset: str
    rows: pl.DataFrame
    harmful: bool = True
    fixed_run_id: str | None = None
    label: str | None = None
    skipped_failed: int = 0
    run_columns: dict = field(default_factory=dict)

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
    skipped_failed: int = 0
    new_benign: int = 0


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
    config. `attack` of each prompt is the artifact's method, and the artifact's own verdicts
    (`jailbroken`, `jailbroken_llama_guard1`) go to source_scores as JSON: they judge
    jailbreaks, not refusals, so they are kept beside the labels, never as one.
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
    verdicts = [name for name in JBB_VERDICTS if name in frame.columns]
    for name in verdicts:
        io.check_plain_column(frame, name, path, "a verdict")
    scores = (frame.select(pl.struct(pl.col(verdicts).cast(pl.Boolean, strict=False)).struct.json_encode())
              .to_series() if verdicts and frame.height else None)
    rows = rows.with_columns(attack=pl.lit(str(parameters.get("method") or method_folder)),
                             **({"source_scores": scores} if scores is not None else {}))
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


@dataclass(frozen=True)
class TableColumns:
    """Which columns of a CSV, JSONL or datasets table hold what; model, harmful and category
    are optional (None: the file does not say)."""

    prompt: str = "prompt"
    response: str = "response"
    model: str | None = None
    harmful: str | None = None
    category: str | None = None

    def config(self) -> dict:
        """What the run config records of the columns: the optional ones only when given, so a
        file imported without them keeps its run id."""
        found = {"prompt_column": self.prompt, "response_column": self.response}
        found.update({f"{kind}_column": column for kind, column in
                      (("model", self.model), ("harmful", self.harmful), ("category", self.category)) if column})
        return found


def _harmful(frame: pl.DataFrame, column: str, where: str | Path) -> pl.Series:
    """The --harmful-column as booleans; any value but HARMFUL_VALUES' is an error naming its record."""
    io.check_plain_column(frame, column, where, "true/false")
    text = frame[column].cast(pl.String, strict=False).str.strip_chars().str.to_lowercase()
    parsed = text.replace_strict(HARMFUL_VALUES, default=None, return_dtype=pl.Boolean)
    bad = parsed.is_null()
    if bad.any():
        record = int(bad.arg_true()[0])
        value = frame[column][record]
        shown = "empty" if value is None or not str(value).strip() else f"'{excerpt(str(value))}'"
        raise InputError(f"{where}: record {record + 1}: column '{column}' is {shown}, not one of "
                         f"{HARMFUL_SPELLINGS} ({int(bad.sum())} such record(s)); nothing was stored")
    return parsed


def _check_one_kind(rows: pl.DataFrame, column: str, where: str | Path) -> None:
    """One prompt text marked harmful in one record and benign in another is an error naming both."""
    marked = rows.select("text", "harmful").with_row_index("record", offset=1)
    mixed = marked.group_by("text", maintain_order=True).agg(pl.col("harmful").n_unique().alias("kinds"),
                                                           pl.col("record"), pl.col("harmful"))
    mixed = mixed.filter(pl.col("kinds") > 1)
    if mixed.height:
        records, kinds = mixed["record"][0].to_list(), mixed["harmful"][0].to_list()
        first = records[0]
        other = next(record for record, kind in zip(records, kinds) if kind != kinds[0])
        raise InputError(f"{where}: records {first} and {other} hold the same prompt, one marked harmful and one "
                         f"benign in column '{column}'; nothing was stored")


def _models(frame: pl.DataFrame, column: str, where: str | Path) -> pl.Series:
    """The --model-column as text; a record without a model is an error naming it."""
    io.check_plain_column(frame, column, where, "a model name")
    models = frame[column].cast(pl.String, strict=False).str.strip_chars()
    empty = models.is_null() | (models == "")
    if empty.any():
        record = int(empty.arg_true()[0]) + 1
        raise InputError(f"{where}: record {record} has no model in column '{column}' ({int(empty.sum())} such "
                         "record(s)); give every record its model, or import without --model-column")
    return models


def table_runs(frame: pl.DataFrame, where: str | Path, columns: TableColumns, config: dict, prefix: str,
               dataset: str, model: str) -> list[ImportedRun]:
    """The runs of one prompt-and-response table: one, for `model`, or one per distinct value
    of `columns.model` (in order of first appearance), each named `<prefix>-<model>`."""
    needed = [columns.prompt, columns.response, *(c for c in (columns.model, columns.harmful, columns.category) if c)]
    _require(Path(where), frame, tuple(needed))
    rows = _rows(frame, where, text=columns.prompt, response=columns.response, category=columns.category)
    if columns.harmful:
        rows = rows.with_columns(harmful=_harmful(frame, columns.harmful, where))
        _check_one_kind(rows.with_columns(pl.col("text").str.strip_chars()), columns.harmful, where)
    config = {**config, **columns.config()}
    if not columns.model:
        return [ImportedRun(name=f"{prefix}-{model}", model=model, config={**config, "model": model},
                            dataset=dataset, rows=rows)]
    models = _models(frame, columns.model, where)
    return [ImportedRun(name=f"{prefix}-{name}", model=name, config={**config, "model": name}, dataset=dataset,
                        rows=rows.filter(models == name))
            for name in models.unique(maintain_order=True).to_list()]


def parse_table(path: Path, fmt: str, model: str | None = None, prompt_column: str = "prompt",
                response_column: str = "response", columns: TableColumns | None = None) -> list[ImportedRun]:
    """A generic CSV or JSONL file with one prompt and one response per row: one run, or one per
    model with `columns.model`."""
    columns = columns or TableColumns(prompt_column, response_column)
    frame = io.read_records(path, fmt)
    config = {"format": fmt, "source": path.name, "sha256": io.sha256_file(path)}
    return table_runs(frame, path, columns, config, "import", DEFAULT_DATASETS[fmt],
                      model if model is not None else path.stem)


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


def _tool_rows(records: list[dict], source: Path) -> pl.DataFrame:
    """Rows of `_ROW_COLUMNS` plus sample_index from parsed records (dicts with those keys).

    sample_index counts each prompt's records in order, all of them: a failed or empty record
    keeps its index, so the kept ones are keyed the same in every import of the source.
    """
    schema = {**_ROW_COLUMNS, "sample_index": pl.Int32}
    if not records:
        return pl.DataFrame(schema=schema)
    seen: dict[str, int] = {}
    for record in records:
        key = prompt_id(record["text"] or "")
        record["sample_index"] = seen.get(key, 0)
        seen[key] = record["sample_index"] + 1
    try:
        return pl.DataFrame([{name: record.get(name) for name in schema} for record in records], schema=schema,
                            strict=False)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise InputError(f"{source}: records do not form a table: {str(exc).splitlines()[0]}") from None


def _scores_json(scores: dict) -> str | None:
    return canonical_json(scores) if scores else None


# -- Inspect --------------------------------------------------------------------------------

INSPECT_DONE = "success"


def _inspect_log_api():
    try:
        from inspect_ai import log as inspect_log
    except ImportError:
        raise BackendError("--input-format inspect needs inspect-ai: pip install -e '.[inspect]' in the "
                           "refusaldata checkout") from None
    return inspect_log


def inspect_files(source: Path) -> list[Path]:
    """The Inspect logs (.eval, .json) of a folder as Inspect lists them, or the one file."""
    if not source.is_dir():
        return [source]
    found = sorted(Path(unquote(urlparse(info.name).path))
                   for info in _inspect_log_api().list_eval_logs(str(source), recursive=True))
    if not found:
        raise InputError(f"{source}: no Inspect logs (.eval or .json) in it")
    return found


def _message_text(message: Any) -> str:
    text = getattr(message, "text", None)
    return text if isinstance(text, str) else str(getattr(message, "content", "") or "")


def _inspect_prompt(path: Path, sample: Any) -> tuple[str, list[dict] | None]:
    """The prompt (the last user turn) and, for a multi-message input, every input turn."""
    if isinstance(sample.input, str):
        return sample.input, None
    turns = [{"role": m.role, "content": _message_text(m)} for m in sample.input]
    users = [turn["content"] for turn in turns if turn["role"] == "user"]
    if not users:
        raise InputError(f"{path}: sample {sample.id} (epoch {sample.epoch}) has no user message in its input")
    return users[-1], (turns if len(turns) > 1 else None)


def _score_record(score: Any) -> dict:
    record = {"value": score.value}
    for name in ("answer", "explanation"):
        if getattr(score, name, None) is not None:
            record[name] = getattr(score, name)
    return record


def _read_inspect(path: Path) -> Any:
    inspect_log = _inspect_log_api()
    if path.suffix not in (".eval", ".json"):
        raise InputError(f"{path}: not an Inspect log (.eval or .json)")
    try:
        log = inspect_log.read_eval_log(str(path), resolve_attachments=True)
    except Exception as exc:  # inspect-ai raises zip, JSON and validation errors of its own kinds
        message = excerpt(str(exc).splitlines()[0] if str(exc) else "", 120)
        raise InputError(f"{path}: not a readable Inspect log ({type(exc).__name__}: {message})") from None
    known = type(log).model_fields["version"].default
    if log.version > known:
        raise InputError(f"{path}: Inspect log format version {log.version}, newer than the {known} this "
                         f"inspect-ai reads: upgrade inspect-ai")
    if log.status != INSPECT_DONE:
        raise InputError(f"{path}: the eval's status is '{log.status}', not '{INSPECT_DONE}': its samples are "
                         "not all there; `inspect eval-retry` it and import the retried log")
    return log


def parse_inspect(path: Path, model: str | None = None) -> ImportedRun:
    """One Inspect eval log: one run for its (task, model).

    Each sample's input is the prompt (the last user turn; a multi-message input is kept in the
    config's `conversations`, by sample id), each epoch one more sample of it, the output's
    completion the response and the sample's scores its source_scores. Samples with an error are
    left out and counted; a log whose eval did not succeed (cancelled, error, still running) is
    refused, so no partial run is stored.
    """
    log = _read_inspect(path)
    spec = log.eval
    model_name = model if model is not None else spec.model
    records, conversations, failed = [], [], 0
    for sample in sorted(log.samples or [], key=lambda s: s.epoch):
        text, turns = _inspect_prompt(path, sample)
        if turns is not None and sample.epoch == 1:
            conversations.append({"sample_id": sample.id, "prompt_id": prompt_id(text), "turns": turns})
        if sample.error is not None:
            failed += 1
            records.append({"text": text, "failed": True})
            continue
        output = sample.output
        usage = output.usage if output is not None else None
        scores = {name: _score_record(score) for name, score in (sample.scores or {}).items()}
        records.append({
            "text": text, "source_ref": str(sample.id), "response": output.completion if output else None,
            "n_prompt_tokens": usage.input_tokens if usage else None,
            "n_output_tokens": usage.output_tokens if usage else None,
            "source_scores": _scores_json(scores),
        })
    rows = _tool_rows(records, path)
    rows = rows.filter(pl.Series([not r.get("failed") for r in records], dtype=pl.Boolean)) if records else rows
    generation = log.plan.config.model_dump(mode="json", exclude_none=True) if log.plan is not None else {}
    metrics = {score.name: {name: metric.value for name, metric in score.metrics.items()}
               for score in (log.results.scores if log.results else [])}
    config = {"format": "inspect", "source": path.name, "sha256": io.sha256_file(path), "model": model_name,
              "log_model": spec.model, "task": spec.task, "task_version": spec.task_version,
              "task_file": spec.task_file, "eval_id": spec.eval_id, "inspect_run_id": spec.run_id,
              "created": spec.created, "dataset": spec.dataset.name, "epochs": spec.config.epochs,
              "generate_config": generation, "metrics": metrics,
              "inspect_version": spec.packages.get("inspect_ai"), "conversations": conversations}
    run_columns = {name: generation[name] for name in ("max_tokens", "temperature", "top_p", "seed")
                   if name in generation}
    return ImportedRun(name=f"inspect-{spec.task}-{model_name}", model=model_name, config=config,
                       dataset=DEFAULT_DATASETS["inspect"], rows=rows, skipped_failed=failed,
                       run_columns=run_columns)


# -- garak ----------------------------------------------------------------------------------

def _garak_text(value: Any, where: str) -> str | None:
    """A garak text: a plain string (older reports) or a Message object {"text": ...}."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and (value.get("text") is None or isinstance(value.get("text"), str)):
        return value.get("text")
    raise InputError(f"{where}: a text that is neither a string nor an object with 'text'")


def _garak_prompt(prompt: Any, where: str) -> tuple[str, list[dict] | None]:
    """The prompt (the last user turn) and, for a multi-turn prompt, every turn."""
    if isinstance(prompt, str):
        return prompt, None
    if not isinstance(prompt, dict) or not isinstance(prompt.get("turns"), list):
        raise InputError(f"{where}: 'prompt' is neither a string nor a conversation with 'turns'")
    turns = []
    for turn in prompt["turns"]:
        if not isinstance(turn, dict) or "role" not in turn:
            raise InputError(f"{where}: a prompt turn without a 'role'")
        turns.append({"role": turn["role"], "content": _garak_text(turn.get("content"), where) or ""})
    users = [turn["content"] for turn in turns if turn["role"] == "user"]
    if not users:
        raise InputError(f"{where}: the prompt has no user turn")
    return users[-1], (turns if len(turns) > 1 else None)


def _garak_records(path: Path) -> tuple[dict, dict, dict[str, tuple[int, dict]], list[dict]]:
    """The report's setup, init, latest attempt record per uuid (with its line) and eval records.

    A line that is not a JSON object (a report cut off mid-line) is an InputError naming it.
    """
    setup, init, attempts, evals = None, None, {}, []
    completed = False
    for number, line in enumerate(io.read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {number} is not valid JSON ({exc.msg}); a report cut off "
                             "mid-line? nothing was imported") from None
        if not isinstance(record, dict) or not isinstance(record.get("entry_type"), str):
            raise InputError(f"{path}: line {number} is not a garak record (an object with 'entry_type')")
        kind = record["entry_type"]
        if kind == "start_run setup":
            setup = record
        elif kind == "init":
            init = record
        elif kind == "attempt":
            uuid, status = record.get("uuid"), record.get("status")
            if not isinstance(uuid, str) or not isinstance(status, int):
                raise InputError(f"{path}: line {number}: an attempt without a 'uuid' and a 'status'")
            if uuid not in attempts or status >= attempts[uuid][1]["status"]:
                attempts[uuid] = (number, record)
        elif kind == "eval":
            evals.append(record)
        elif kind == "completion":
            completed = True
    if setup is None or init is None:
        raise InputError(f"{path}: not a garak report (no 'start_run setup' and 'init' records)")
    if not completed:
        raise InputError(f"{path}: no 'completion' record: the garak run did not finish, so its runs would be "
                         "partial; nothing was imported")
    return setup, init, attempts, evals


def parse_garak(path: Path, model: str | None = None) -> list[ImportedRun]:
    """A garak report (report.jsonl): one run per probe family (`dan`, `encoding`, ...).

    Every output of an attempt is one sample of its prompt (the last user turn; multi-turn
    prompts go whole to the config's `conversations`); its category is the probe
    (`dan.Dan_11_0`) and its source_scores the detectors' scores of that output. The latest
    record of each attempt counts (status 2, detected, over 1). A report without its closing
    'completion' record or cut off mid-line is refused whole.
    """
    setup, init, attempts, evals = _garak_records(path)
    generator = setup.get("plugins.target_type") or setup.get("plugins.model_type")
    generator_name = setup.get("plugins.target_name") or setup.get("plugins.model_name")
    model_name = model if model is not None else (generator_name or generator or path.stem)
    families: dict[str, list[dict]] = {}
    conversations: dict[str, list[dict]] = {}
    for number, attempt in attempts.values():
        where = f"{path}: line {number}"
        probe = attempt.get("probe_classname")
        outputs = attempt.get("outputs")
        detectors = attempt.get("detector_results") or {}
        if not isinstance(probe, str) or not isinstance(outputs, list) or not isinstance(detectors, dict):
            raise InputError(f"{where}: an attempt without 'probe_classname' and a list of 'outputs' (garak "
                             f"{init.get('garak_version')}'s layout is not one this reader knows)")
        text, turns = _garak_prompt(attempt.get("prompt"), where)
        family = probe.split(".", 1)[0]
        if turns is not None:
            conversations.setdefault(family, []).append(
                {"attempt": attempt["uuid"], "prompt_id": prompt_id(text), "turns": turns})
        for index, output in enumerate(outputs):
            scores = {name: values[index] for name, values in detectors.items()
                      if isinstance(values, list) and index < len(values)}
            families.setdefault(family, []).append({
                "text": text, "category": probe, "response": _garak_text(output, where),
                "source_scores": _scores_json(scores)})
    if not families:
        raise InputError(f"{path}: no attempts in the report")
    runs = []
    for family, records in families.items():
        probes = sorted({r["category"] for r in records})
        config = {"format": "garak", "source": path.name, "sha256": io.sha256_file(path), "model": model_name,
                  "garak_version": init.get("garak_version"), "garak_run": init.get("run"),
                  "generator": generator, "generator_name": generator_name, "probe_family": family,
                  "probes": probes, "generations": setup.get("run.generations"),
                  "evals": [e for e in evals if str(e.get("probe", "")).split(".", 1)[0] == family],
                  "conversations": conversations.get(family, [])}
        runs.append(ImportedRun(name=f"garak-{family}-{model_name}", model=model_name, config=config,
                                dataset=DEFAULT_DATASETS["garak"], rows=_tool_rows(records, path)))
    return runs


# -- Hugging Face datasets -----------------------------------------------------------------

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def _datasets_api():
    try:
        import datasets
    except ImportError:
        raise BackendError("--input-format hf needs the datasets package: pip install -e '.[hf]' in the "
                           "refusaldata checkout") from None
    return datasets


def _hf_error(source: str, exc: Exception, what: str) -> InputError:
    message = excerpt(str(exc).splitlines()[0] if str(exc) else "", 120)
    return InputError(f"{source}: {what} ({type(exc).__name__}: {message})")


def _empty_saved(folder: Path) -> list[str]:
    """The tables of a save_to_disk folder saved without rows (no data files): datasets cannot load them."""
    empty = []
    for state in sorted(folder.glob("**/state.json")):
        try:
            files = json.loads(state.read_text(encoding="utf-8")).get("_data_files")
        except (OSError, ValueError, AttributeError):
            continue
        if files == []:
            empty.append("the table" if state.parent == folder else f"split {state.parent.name}")
    return empty


def _load_hf(source: str, split: str | None) -> Any:
    """A save_to_disk folder, else a hub id through `datasets.load_dataset`.

    Before the hub is asked, offline mode and the hub's address are checked: offline,
    `load_dataset` retries for half a minute and fails with a multi-line error.
    """
    datasets = _datasets_api()
    path = Path(source)
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{path}: not a folder; --input-format hf reads a datasets save_to_disk folder "
                             "or a hub id")
        try:
            return datasets.load_from_disk(str(path))
        except Exception as exc:  # datasets raises FileNotFoundError, JSON and Arrow errors of its own
            empty = _empty_saved(path)
            if empty:
                raise InputError(f"{source}: empty dataset ({', '.join(empty)} without rows): no rows to "
                                 "import") from None
            raise _hf_error(source, exc, "not a datasets folder written by save_to_disk") from None
    if not HUB_ID.fullmatch(source):
        raise InputError(f"{source}: no such folder, and not a hub id (owner/name)")
    if offline():
        raise InputError(f"{source}: no such folder, and the hub cannot be asked: offline mode is set "
                         "(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE); save_to_disk a copy and import the folder")
    try:
        socket.getaddrinfo("huggingface.co", 443)
    except OSError as exc:
        raise InputError(f"{source}: no such folder, and the hub is unreachable ({exc.strerror or exc}); "
                         "save_to_disk a copy and import the folder") from None
    try:
        return datasets.load_dataset(source, split=split)
    except Exception as exc:  # the hub client raises many unrelated types; all mean "not loaded"
        raise _hf_error(source, exc, "the hub dataset could not be loaded") from None


def _hf_split(source: str, loaded: Any, split: str | None) -> tuple[Any, str | None]:
    """The one table to import: the named split of a DatasetDict, or its only one."""
    datasets = _datasets_api()
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded.keys())
        if split is None and len(splits) == 1:
            split = splits[0]
        if split is None:
            raise InputError(f"{source}: holds several splits ({', '.join(splits)}); choose one with --split")
        if split not in splits:
            raise InputError(f"{source}: no split '{split}' (splits: {', '.join(splits) or 'none'})")
        return loaded[split], split
    if not isinstance(loaded, datasets.Dataset):
        raise InputError(f"{source}: a streamed or unknown kind of dataset ({type(loaded).__name__}); "
                         "save_to_disk it and import the folder")
    stored = str(loaded.split) if loaded.split is not None else None
    if split is not None and stored is not None and split != stored:
        raise InputError(f"{source}: holds the split '{stored}' only, not '{split}'")
    return loaded, split or stored


def _hf_digest(table: Any) -> str:
    """A sha256 of the dataset's Arrow files (a folder's or the hub cache's), else of its rows."""
    digest = hashlib.sha256()
    files = sorted(entry["filename"] for entry in getattr(table, "cache_files", []) or [])
    for name in files:
        digest.update(io.sha256_file(Path(name)).encode())
    if not files:
        digest.update(str(getattr(table, "_fingerprint", "")).encode())
    return digest.hexdigest()


def parse_hf(source: str, model: str | None = None, prompt_column: str = "prompt",
             response_column: str = "response", split: str | None = None,
             columns: TableColumns | None = None) -> list[ImportedRun]:
    """A Hugging Face dataset (save_to_disk folder or hub id): one run from one split's prompt and
    response, or one per model with `columns.model`."""
    columns = columns or TableColumns(prompt_column, response_column)
    loaded = _load_hf(source, split)
    table, chosen = _hf_split(source, loaded, split)
    try:
        frame = pl.from_arrow(table.with_format("arrow")[:])
    except Exception as exc:  # Arrow types polars cannot hold (extension types, ...)
        raise _hf_error(source, exc, "its table cannot be read") from None
    if not isinstance(frame, pl.DataFrame) or frame.height == 0:
        raise InputError(f"{source}: empty dataset{f' (split {chosen})' if chosen else ''}: no rows to import")
    name = Path(source).name if Path(source).exists() else source
    config = {"format": "hf", "source": name, "split": chosen, "sha256": _hf_digest(table)}
    return table_runs(frame, source, columns, config, "hf", DEFAULT_DATASETS["hf"],
                      model if model is not None else name.rsplit("/", 1)[-1])


def parse_source(source: str | Path, fmt: str, model: str | None = None, prompt_column: str = "prompt",
                 response_column: str = "response", split: str | None = None,
                 columns: TableColumns | None = None) -> list[ImportedRun]:
    """Every run in `source` (a file, a JBB artifact folder, a datasets folder or hub id, or 'uncensorbench')."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}' (one of {', '.join(FORMATS)})")
    columns = columns or TableColumns(prompt_column, response_column)
    if fmt not in TABLE_FORMATS and (columns.model or columns.harmful or columns.category):
        raise InputError(f"--model-column, --harmful-column and --category-column apply only to "
                         f"{', '.join(TABLE_FORMATS)} files, not --format {fmt}")
    if columns.model and model is not None:
        raise InputError("--model names the one model of a file; with --model-column each record names its own")
    if split is not None and fmt != "hf":
        raise InputError("--split applies only to --input-format hf")
    if fmt == "uncensorbench":
        return parse_uncensorbench(None if str(source) == "uncensorbench" else Path(source))
    if fmt == "hf":
        return parse_hf(str(source), model, split=split, columns=columns)
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if fmt == "jbb":
        return [parse_jbb(p, model) for p in (jbb_files(path) if path.is_dir() else [path])]
    if fmt == "inspect":
        return [parse_inspect(p, model) for p in inspect_files(path)]
    if path.is_dir():
        raise InputError(f"{path}: is a folder; only --format jbb or inspect imports a folder")
    if fmt == "garak":
        return parse_garak(path, model)
    if fmt == "harmbench":
        return [parse_harmbench(path, model)]
    return parse_table(path, fmt, model, columns=columns)


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
    if "sample_index" not in kept.columns:
        kept = kept.with_columns(sample_index=pl.int_range(pl.len()).over("prompt_id").cast(pl.Int32))
    return kept, int(empty.sum())


def _missing_prompts(store: Store, keyed: pl.DataFrame, run: ImportedRun, test_fraction: float) -> pa.Table:
    """Prompt rows for the run's prompts that no data set holds yet."""
    candidates = keyed.select("text", "category", "source_ref", "attack", context=pl.lit(None, dtype=pl.String),
                              harmful=pl.col("harmful").fill_null(run.harmful))
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
    missing = _missing_prompts(store, keyed, run, test_fraction)
    new_prompts = store.append("prompts", missing, where=run.name)
    new_benign = missing.num_rows - sum(missing.column("harmful").to_pylist()) if new_prompts else 0
    created_at = now()
    responses = keyed.select(
        run_id=pl.lit(identifier), prompt_id="prompt_id", sample_index="sample_index", response="response",
        n_prompt_tokens="n_prompt_tokens", n_output_tokens="n_output_tokens",
        finish_reason=pl.lit(FINISH_REASON), created_at=pl.lit(created_at), source_scores="source_scores",
    ).to_arrow()
    new_responses = store.append("responses", responses, where=run.name)
    samples = int(keyed["sample_index"].max()) + 1 if keyed.height else 0
    record_run(store, identifier, BACKEND, run.config, name=run.name, model=run.model, n=samples,
               prompts=run.dataset, **run.run_columns)
    return RunImportSummary(run_id=identifier, name=run.name, model=run.model, responses=keyed.height,
                            new_responses=new_responses, skipped_empty=skipped, new_prompts=new_prompts,
                            skipped_failed=run.skipped_failed, new_benign=new_benign)


def import_responses(store: Store, source: str | Path, fmt: str, model: str | None = None,
                     dataset: str | None = None, prompt_column: str = "prompt", response_column: str = "response",
                     test_fraction: float = prompt_sets.DEFAULT_TEST_FRACTION,
                     split: str | None = None, *, model_column: str | None = None,
                     harmful_column: str | None = None, category_column: str | None = None,
                     name: str | None = None) -> list[RunImportSummary]:
    """Parse every run in `source`, then store them; returns one summary per run.

    csv, jsonl and hf tables may say per record which model answered (`model_column`: one
    run per model), whether the prompt is harmful or benign (`harmful_column`, see
    HARMFUL_VALUES; for prompts not stored yet) and its category. `name` names the run of a
    source that holds one.
    """
    prompt_sets.check_test_fraction(test_fraction)
    if model is not None and not model.strip():
        raise InputError("--model is empty; give the run's model name, or leave it out for the source's")
    if model is not None and fmt == "uncensorbench":
        raise InputError("--model does not apply to --format uncensorbench: its runs hold the package's reference "
                         "answers, model 'uncensorbench-reference'")
    if name is not None:
        _check_run_name(name, fmt, model_column)
    columns = TableColumns(prompt_column, response_column, model_column, harmful_column, category_column)
    runs = parse_source(source, fmt, model, split=split, columns=columns)
    if name is not None:
        if len(runs) != 1:
            raise InputError(f"--name names one run, and {source} holds {len(runs)} "
                             f"({', '.join(run.name for run in runs[:3])}{', ...' if len(runs) > 3 else ''})")
        runs[0].name, runs[0].config = name, {**runs[0].config, "name": name}
    if dataset is not None:
        prompt_sets.check_dataset_name(dataset)
        for run in runs:
            run.dataset = dataset
    prepared = [(run, *_keyed(run)) for run in runs]
    for run in runs:
        _check_same_source(store, run)
    check_names(store, [(run.run_id, run.name) for run in runs])
    return [_store_run(store, run, keyed, skipped, test_fraction) for run, keyed, skipped in prepared]


def _check_run_name(name: str, fmt: str, model_column: str | None) -> None:
    if not name.strip() or name != name.strip():
        raise InputError(f"--name '{name}': give a run name without leading or trailing blanks")
    if GLOB_CHARACTERS & set(name):
        raise InputError(f"--name '{name}': a run name may not hold *, ? or [ (they select runs by glob)")
    if model_column is not None:
        raise InputError("--name names the run of a one-model file; with --model-column each run is named for "
                         "its model")
    if fmt == "uncensorbench":
        raise InputError("--name does not apply to --format uncensorbench: its run ids are its names")
