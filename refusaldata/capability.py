"""What alignment costs: instruction following a program checks, and divergence from the base.

IFEval's idea (Zhou et al. 2023): each prompt carries instructions a program can verify
("all lowercase", "exactly 3 bullet points", "mention X at least twice"). A run's model
(its base, adapter, system prompt, few-shot turns and sampling, as the runs table records
them) answers every prompt of a suite; IFEval's own checkers, shipped by the `if-verifiable`
package, judge each answer. The score is prompt-level strict accuracy: the share of prompts
whose every instruction was followed.

Suites: `embedded` (refusaldata/data/capability_prompts.jsonl, 120 everyday tasks across
24 instruction kinds that a short answer can satisfy) and `ifeval` (IFEval's 541 prompts,
from `--path FILE` or the hub). Results go to the `capability` table, one partition per
(suite, run), with the per-token KL divergence of the run's adapter from its base on the
same (benign) prompts: see divergence.py.

Offline: `if-verifiable` imports nltk, whose sentence tokenizer (punkt) is a separate
download. The two checkers that load it (number_sentences, capital_word_frequency) are
subclassed here to split sentences with IFEval's own regular-expression splitter
(`instructions_util.split_into_sentences`) and to tokenize words with nltk's Treebank
tokenizer, which needs no data. No file is fetched at run time.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from refusaldata.io import read_records
from refusaldata.errors import InputError, NotFoundError
from refusaldata.fetch import fetch_builtin, package_data
from refusaldata.generate import (GenerateOptions, Prompt, SharedEngine, answer_mixed, make_backend, mixable,
                                  open_mixed, resolve_backend)
from refusaldata.queries import sql_text
from refusaldata.registry import Builtin, ColumnMap, HubDataset, PackageFile
from refusaldata.runs import now
from refusaldata.schemas import CAPABILITY
from refusaldata.store import Store

SUITES = ("embedded", "ifeval")
EMBEDDED_FILE = PackageFile("refusaldata", "data/capability_prompts.jsonl")
# IFEval is an instruction suite, not a prompt set: described like a built-in so that
# fetch_builtin loads it (a local copy, else the hub) with the same offline errors.
IFEVAL = Builtin("ifeval", "IFEval: 541 prompts with verifiable instructions (Zhou et al. 2023)", "jsonl",
                 ColumnMap(text=("prompt",), harmful=False), HubDataset("google/IFEval", split="train"),
                 license="Apache-2.0")
LOCAL_BACKENDS = ("vllm", "transformers")


@dataclass(frozen=True)
class InstructionPrompt:
    """One prompt of a suite: IFEval's key, the text and its instructions with their arguments."""

    key: str
    prompt: str
    instruction_ids: tuple[str, ...]
    kwargs: tuple[dict, ...]


# -- the checkers ------------------------------------------------------------------------------


@functools.cache
def registry() -> dict[str, type]:
    """IFEval's instruction checkers by id, with the two that need nltk data made offline."""
    import langdetect
    import nltk
    from if_verifiable.ifeval import instructions, instructions_registry, instructions_util

    langdetect.DetectorFactory.seed = 0  # langdetect samples; seeded it gives one answer

    class NumberOfSentences(instructions.NumberOfSentences):
        """Sentences counted with IFEval's regex splitter instead of nltk's punkt model."""

        def check_following(self, value):
            count = len(instructions_util.split_into_sentences(value))
            if self._comparison_relation == instructions._COMPARISON_RELATION[0]:
                return count < self._num_sentences_threshold
            return count >= self._num_sentences_threshold

    class CapitalWordFrequencyChecker(instructions.CapitalWordFrequencyChecker):
        """Words from nltk's Treebank tokenizer (no data) instead of punkt + Treebank."""

        def check_following(self, value):
            words = nltk.tokenize.TreebankWordTokenizer().tokenize(value)
            capital = sum(word.isupper() for word in words)
            if self._comparison_relation == instructions._COMPARISON_RELATION[0]:
                return capital < self._frequency
            return capital >= self._frequency

    checkers = dict(instructions_registry.INSTRUCTION_DICT)
    checkers["length_constraints:number_sentences"] = NumberOfSentences
    checkers["change_case:capital_word_frequency"] = CapitalWordFrequencyChecker
    return checkers


def check(item: InstructionPrompt, response: str | None) -> tuple[list[bool], list[bool]]:
    """(strict, loose) verdict per instruction of `item` on `response`; nothing follows an empty answer.

    Loose is IFEval's: an instruction also passes when it holds after dropping the first
    or last line, or markdown asterisks.
    """
    from if_verifiable.common import evaluate_instructions

    if response is None or not response.strip():
        return [False] * len(item.instruction_ids), [False] * len(item.instruction_ids)
    results, _ = evaluate_instructions(response=response, instruction_id_list=list(item.instruction_ids),
                                       kwargs_list=[dict(k) for k in item.kwargs], prompt=item.prompt,
                                       instruction_registry=registry())
    return [r.strict_pass for r in results], [r.loose_pass for r in results]


# -- suites ------------------------------------------------------------------------------------


def _kwargs(value, source: str, row: int) -> list[dict]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InputError(f"{source}: row {row}: 'kwargs' is not JSON") from None
    if not isinstance(value, list) or not all(isinstance(k, dict) for k in value):
        raise InputError(f"{source}: row {row}: 'kwargs' must be a list of objects, one per instruction")
    return [{name: arg for name, arg in k.items() if arg is not None} for k in value]


def parse_suite(records: list[dict], source: str) -> list[InstructionPrompt]:
    """Rows in IFEval's format as checked InstructionPrompts: every id known, every argument accepted."""
    checkers = registry()
    items, seen = [], set()
    for row, record in enumerate(records, start=1):
        for column in ("key", "prompt", "instruction_id_list", "kwargs"):
            if record.get(column) is None:
                raise InputError(f"{source}: row {row}: missing '{column}' (IFEval's format: key, prompt, "
                                 "instruction_id_list, kwargs)")
        key, text, ids = str(record["key"]), record["prompt"], record["instruction_id_list"]
        if key in seen:
            raise InputError(f"{source}: row {row}: key {key} appears twice")
        seen.add(key)
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{source}: row {row} (key {key}): empty 'prompt'")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise InputError(f"{source}: row {row} (key {key}): 'instruction_id_list' must be a list of ids")
        kwargs = _kwargs(record["kwargs"], source, row)
        if len(kwargs) != len(ids):
            raise InputError(f"{source}: row {row} (key {key}): {len(ids)} instruction(s) but {len(kwargs)} kwargs")
        for instruction, arguments in zip(ids, kwargs):
            if instruction not in checkers:
                raise InputError(f"{source}: row {row} (key {key}): unknown instruction id '{instruction}' "
                                 f"(IFEval's ids, e.g. punctuation:no_comma, change_case:english_lowercase)")
            try:
                checkers[instruction](instruction).build_description(**arguments)
            except (TypeError, ValueError) as exc:
                raise InputError(f"{source}: row {row} (key {key}): {instruction} does not take "
                                 f"{sorted(arguments)}: {exc}") from None
        items.append(InstructionPrompt(key, text, tuple(ids), tuple(kwargs)))
    if not items:
        raise InputError(f"{source}: no prompts")
    return items


def load_suite(suite: str = "embedded", path: str | Path | None = None) -> list[InstructionPrompt]:
    """The prompts of `suite`: the embedded set, or IFEval from `path` (IFEval's jsonl) or the hub."""
    if suite not in SUITES:
        raise InputError(f"--suite must be one of {', '.join(SUITES)}, not '{suite}'")
    if suite == "embedded":
        if path is not None:
            raise InputError("--path loads IFEval's file (--suite ifeval); the embedded set ships with refusaldata")
        found = package_data(EMBEDDED_FILE)
        return parse_suite(read_records(found, "jsonl").to_dicts(), str(found))
    frame, source = fetch_builtin(IFEVAL, Path(path) if path is not None else None)
    return parse_suite(frame.to_dicts(), source)


# -- asking a run's model ----------------------------------------------------------------------


@dataclass(frozen=True)
class RunModel:
    """What a run was generated with, enough to ask the same model again."""

    run_id: str
    options: GenerateOptions
    backend: str
    adapter: str | None


def run_model(store: Store, run: str, model: str | None = None, backend: str | None = None,
              max_tokens: int | None = None) -> RunModel:
    """The run's model, adapter, context and sampling (n = 1) from its runs row and config.

    `model` overrides the runs row's model name (a local folder is recorded by its name
    only); `backend` and `max_tokens` override the run's own.
    """
    run_id = store.resolve_run(run)
    con = store.connect(["runs", "responses"])
    try:
        row = con.sql(sql_text("capability_run"), params={"run": run_id}).fetchall()[0]
    finally:
        con.close()
    _, name, recorded_model, adapter, recorded_backend, system_prompt, temperature, top_p, tokens, seed, dtype, \
        config, responses = row
    if not responses:
        raise NotFoundError(f"run {run_id} has no responses: capability asks the model of a run that answered "
                            "prompts (run `refusaldata generate` first)")
    try:
        config = json.loads(config or "{}")
    except ValueError:
        config = {}
    if recorded_backend not in (*LOCAL_BACKENDS, "openai") or not recorded_model:
        raise InputError(f"run {run_id} was imported ({recorded_backend}), not generated: there is no model to ask")
    options = GenerateOptions(
        model=recorded_model if model is None else model, datasets=("capability",),
        backend=recorded_backend if backend is None else backend, temperature=temperature or 0.0, top_p=top_p or 1.0,
        max_tokens=(tokens or 256) if max_tokens is None else max_tokens, seed=seed or 0,
        system_prompt=system_prompt, few_shot=tuple(tuple(pair) for pair in config.get("few_shot", ())),
        adapter=adapter, dtype=dtype if dtype in ("float32", "bfloat16") else "auto", name=name,
        base_url=config.get("base_url", GenerateOptions.base_url))
    if options.max_tokens < 1:
        raise InputError(f"--max-tokens must be at least 1 (got {options.max_tokens})")
    return RunModel(run_id, options, resolve_backend(options.backend), adapter)


def answer(models: list[RunModel], items: list[InstructionPrompt], shared: SharedEngine | None = None,
           chunk_size: int = 128) -> list[list[tuple[str | None, int]]]:
    """(answer, reply tokens) per prompt from each run's model; a prompt too long for it gets None.

    Runs whose models differ only in their adapter answer in one pass (each chunk's prompts
    under every adapter in one batch; see generate.generate_many); others one by one.
    """
    backends = [make_backend(model.options, model.backend) for model in models]
    asked = [Prompt(item.key, item.prompt) for item in items]
    everything = [{prompt.prompt_id for prompt in asked}] * len(models)
    answers: list[dict[str, tuple[str | None, int]]] = [{} for _ in models]
    # one run: its own engine (any backend, remote ones too); several: one engine for every adapter
    engine = open_mixed(backends, shared) if len(models) > 1 else \
        backends[0].open() if shared is None else shared.attach(backends[0])
    try:
        for start in range(0, len(asked), chunk_size):
            chunk = asked[start:start + chunk_size]
            if len(models) == 1:
                too_long = backends[0].too_long(chunk)
                by_run = [engine.generate([p for p in chunk if p.prompt_id not in too_long])]
            else:
                by_run, _ = answer_mixed(backends, engine, chunk, everything)
            for run_answers, completions in zip(answers, by_run):
                run_answers.update((c.prompt_id, (c.response, c.n_output_tokens or 0))
                                   for c in completions if c.sample_index == 0)
    finally:
        engine.close()
    return [[run_answers.get(item.key, (None, 0)) for item in items] for run_answers in answers]


def answer_groups(models: list[RunModel]) -> list[list[int]]:
    """Indexes of `models`, grouped so each group can answer in one pass (see `answer`)."""
    groups: dict[object, list[int]] = {}
    for index, model in enumerate(models):
        try:
            mixable([model.options])
            key: object = dataclasses.replace(model.options, adapter=None, name=None)
        except InputError:
            key = index  # a remote or sampled run answers on its own
        groups.setdefault(key, []).append(index)
    return list(groups.values())


@dataclass(frozen=True)
class CapabilitySummary:
    run_id: str
    suite: str
    prompts: int
    strict: float
    loose: float
    instructions_strict: float
    kl_to_base: float | None

    def line(self) -> str:
        kl = "—" if self.kl_to_base is None else f"{self.kl_to_base:.4f}"
        return (f"run {self.run_id}: {self.suite} suite, {self.prompts} prompts: prompt-level strict "
                f"{self.strict:.3f}, loose {self.loose:.3f}; instruction-level strict "
                f"{self.instructions_strict:.3f}; KL to base {kl}")


def evaluate(store: Store, runs: list[str], suite: str = "embedded", path: str | Path | None = None,
             limit: int | None = None, model: str | None = None, backend: str | None = None,
             max_tokens: int | None = None, kl: bool = True, shared: SharedEngine | None = None,
             progress: Callable[[str], None] = lambda line: None) -> list[CapabilitySummary]:
    """Score each run's model on `suite` and store the rows in the `capability` table.

    Every run is checked before the first model loads, so a bad one changes nothing.
    `limit`: the first N prompts of the suite (its file order). `kl`: also the mean
    per-token KL of each adapter run from its base on those prompts (0 for a run without
    an adapter). A rerun replaces the run's partition of that suite.
    """
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1 (got {limit})")
    items = load_suite(suite, path)[:limit]
    models = [run_model(store, run, model, backend, max_tokens) for run in runs]
    answered: dict[int, list[tuple[str | None, int]]] = {}
    for group in answer_groups(models):
        names = ", ".join(models[index].run_id for index in group)
        progress(f"{names}: answering {len(items)} {suite} prompts" + (" in one pass" if len(group) > 1 else ""))
        answered.update(zip(group, answer([models[index] for index in group], items, shared)))
    summaries = []
    for position, run in enumerate(models):
        answers = answered[position]
        divergences = [0.0] * len(items) if run.adapter is None else [None] * len(items)
        if kl and run.adapter is not None and run.backend in LOCAL_BACKENDS:
            from refusaldata import divergence

            progress(f"{run.run_id}: KL from the base model")
            divergences = divergence.kl_to_base(run.options, [i.prompt for i in items], [a for a, _ in answers])
        rows = []
        for item, (response, tokens), divergence_value in zip(items, answers, divergences):
            strict, loose = check(item, response)
            rows.append({"run_id": run.run_id, "suite": suite, "key": item.key, "prompt": item.prompt,
                         "response": response, "instruction_ids": list(item.instruction_ids),
                         "followed_strict": strict, "followed_loose": loose, "strict": all(strict),
                         "loose": all(loose), "kl_to_base": divergence_value, "reply_tokens": tokens,
                         "max_tokens": run.options.max_tokens, "created_at": now()})
        table = pa.Table.from_pylist(rows, schema=CAPABILITY.schema)
        store.replace("capability", table, partition={"suite": suite, "run_id": run.run_id},
                      where=f"capability of run {run.run_id}")
        summaries.append(_summary(run.run_id, suite, rows))
    return summaries


def scored(store: Store, run_ids: list[str], suite: str) -> dict[str, int]:
    """run id -> prompts of `suite` its capability partition holds (absent: never evaluated)."""
    con = store.connect(["capability"])
    try:
        return dict(con.sql(sql_text("capability_scored"), params={"runs": run_ids, "suite": suite}).fetchall())
    finally:
        con.close()


def _summary(run_id: str, suite: str, rows: list[dict]) -> CapabilitySummary:
    followed = [verdict for row in rows for verdict in row["followed_strict"]]
    divergences = [row["kl_to_base"] for row in rows if row["kl_to_base"] is not None]
    return CapabilitySummary(
        run_id=run_id, suite=suite, prompts=len(rows), strict=sum(row["strict"] for row in rows) / len(rows),
        loose=sum(row["loose"] for row in rows) / len(rows), instructions_strict=sum(followed) / max(1, len(followed)),
        kl_to_base=math.fsum(divergences) / len(divergences) if divergences else None)

