"""Generation: answer stored prompts with a model and append the responses chunk by chunk.

One interface, several engines (vllm, transformers, an OpenAI-compatible endpoint). The
loop here is shared: it picks the prompts, derives the run id from the full config,
records the runs row, anti-joins the wanted (prompt, sample) keys against what the run
already stored (so a rerun resumes), and writes each finished chunk atomically. A crash
loses at most the chunk in flight.

Past one machine: `shard=(I, N)` keeps the pending prompts whose prompt_id hashes to I
modulo N, so N processes anywhere fill one run of one store between them, each with its
own lock; the shard is not part of the config, so the run id is the same. `--backend ray`
hands the pending prompts to Ray Data workers running the vllm or transformers engine
(refusaldata.generate.ray_backend).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from refusaldata import keys
from refusaldata.errors import InputError, NotFoundError
from refusaldata.io import sha256_text
from refusaldata.queries import sql_text
from refusaldata.runs import check_names, now, record_run, stored_run_name
from refusaldata.store import Store

BACKENDS = ("auto", "vllm", "transformers", "openai", "ray")
RAY_ENGINES = ("auto", "vllm", "transformers")
SPLITS = ("train", "test", "all")
DTYPES = ("auto", "float32", "bfloat16")
SKIPPED = "skipped"
# sample_index is stored as int32.
MAX_SAMPLES = 2**31 - 1
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


@dataclass(frozen=True)
class GenerateOptions:
    """Everything `refusaldata generate` takes; the run id covers the fields that shape output."""

    model: str
    datasets: tuple[str, ...]
    split: str = "all"
    backend: str = "auto"
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int = 0
    system_prompt: str | None = None
    few_shot: tuple[tuple[str, str], ...] = ()  # (user, assistant) example turns before each prompt
    adapter: str | None = None
    dtype: str = "auto"
    limit: int | None = None
    chunk_size: int = 32
    base_url: str = DEFAULT_BASE_URL
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    name: str | None = None  # a readable run name (e.g. the method: base, self-distill); not hashed
    shard: tuple[int, int] | None = None  # (index, count): answer only this shard's prompts; not hashed
    ray_engine: str = "auto"  # the engine each Ray worker runs (backend ray)
    ray_workers: int = 1
    ray_gpus_per_worker: float = 0.0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    text: str


@dataclass(frozen=True)
class Completion:
    """One (prompt, sample) answer as the engines return it; response None when skipped."""

    prompt_id: str
    sample_index: int
    response: str | None
    n_prompt_tokens: int | None
    n_output_tokens: int | None
    finish_reason: str | None


class Engine(Protocol):
    """A loaded backend: answers a chunk of prompts, n samples each. The local engines also
    take `adapters`, one per prompt (None: the base model), to answer them in one batch."""

    def generate(self, prompts: list[Prompt]) -> list[Completion]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    """A backend before its engine loads: what the run id needs, then the engine itself.

    `identity` is cheap (a tokenizer at most) so a finished run reruns without loading a
    model. `too_long` returns the prompt-token counts of prompts that leave fewer than
    max_tokens of context (they are recorded as skipped); backends that cannot count
    return an empty dict and report such prompts from the engine instead.
    """

    name: str

    def identity(self) -> dict: ...

    def too_long(self, prompts: list[Prompt]) -> dict[str, int]: ...

    def open(self) -> Engine: ...


@dataclass
class GenerationSummary:
    """What one `generate` call did; `output_tokens_per_s` counts generation time only."""

    run_id: str
    backend: str
    selected: int = 0
    pending: int = 0
    prompts_done: int = 0
    rows_written: int = 0
    skipped: int = 0
    output_tokens: int = 0
    generate_seconds: float = 0.0
    write_seconds: float = 0.0
    new_run: bool = False
    shard: tuple[int, int] | None = None

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens / self.generate_seconds if self.generate_seconds else 0.0

    def add(self, chunk: ChunkResult) -> None:
        """Count one stored chunk."""
        self.prompts_done += chunk.prompts
        self.rows_written += chunk.rows_written
        self.skipped += chunk.skipped
        self.output_tokens += chunk.output_tokens
        self.generate_seconds += chunk.generate_seconds
        self.write_seconds += chunk.write_seconds

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        run = f"run {self.run_id}" + (f" shard {self.shard[0]}/{self.shard[1]}" if self.shard else "")
        if not self.pending:
            return (f"{run}: all {self.selected} prompts already answered "
                    f"({self.backend}); nothing to do")
        return (f"{run}: {self.prompts_done} prompts answered ({self.rows_written} rows, "
                f"{self.skipped} skipped as too long), {self.output_tokens} output tokens in "
                f"{self.generate_seconds:.1f} s ({self.output_tokens_per_s:.1f} tokens/s, {self.backend}); "
                f"{self.selected - self.pending} were already stored")


Progress = Callable[[GenerationSummary], None]


class SharedEngine(Protocol):
    """An engine that outlives one run (see vllm_backend.SharedVllm)."""

    def attach(self, backend: Backend) -> Engine: ...

    def close(self) -> None: ...


FEW_SHOT_ROLES = ("user", "assistant")


def read_few_shot(path: str | Path) -> tuple[tuple[str, str], ...]:
    """The (user, assistant) example turns of a few-shot file, checked.

    The file is JSON (a list of {"role", "content"} messages, or {"messages": [...]}) or
    JSONL (one message per line); the turns must alternate user, assistant, ..., and end
    with an assistant turn. A system turn belongs in --system-prompt instead.
    """
    from refusaldata import io

    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        turns = io.read_records(path, "jsonl").to_dicts()
    else:
        value = io.read_json(path)
        turns = value.get("messages") if isinstance(value, dict) else value
        if not isinstance(turns, list):
            raise InputError(f"{path}: expected a list of {{\"role\", \"content\"}} messages")
    for index, turn in enumerate(turns, start=1):
        expected = FEW_SHOT_ROLES[(index - 1) % 2]
        role = turn.get("role") if isinstance(turn, dict) else None
        content = turn.get("content") if isinstance(turn, dict) else None
        if role != expected:
            raise InputError(f"{path}: turn {index} is {repr(role) if role else 'not a message'} where a "
                             f"'{expected}' turn belongs (few-shot turns alternate user, assistant)")
        if not isinstance(content, str) or not content.strip():
            raise InputError(f"{path}: turn {index} ({role}) has no text in 'content'")
    if not turns or len(turns) % 2:
        raise InputError(f"{path}: {len(turns)} turn(s); few-shot turns come in user/assistant pairs, "
                         "ending with the assistant")
    return tuple((turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns), 2))


def conversation(system_prompt: str | None, few_shot: tuple[tuple[str, str], ...], text: str) -> list[dict[str, str]]:
    """The messages for one prompt: the system turn (if any), the few-shot turns, the user turn."""
    turns = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for user, assistant in few_shot:
        turns += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return turns + [{"role": "user", "content": text}]


def validate(options: GenerateOptions) -> None:
    """Reject option values no backend can honour, before anything loads."""
    checks = [
        (options.backend in BACKENDS, f"--backend must be one of {', '.join(BACKENDS)}, not '{options.backend}'"),
        (options.split in SPLITS, f"--split must be one of {', '.join(SPLITS)}, not '{options.split}'"),
        (options.dtype in DTYPES, f"--dtype must be one of {', '.join(DTYPES)}, not '{options.dtype}'"),
        (bool(options.datasets), "--prompts needs at least one dataset name"),
        (1 <= options.n <= MAX_SAMPLES, f"--n must be between 1 and {MAX_SAMPLES}"),
        (0 <= options.temperature < math.inf, "--temperature must be 0 (greedy) or a positive number"),
        (0 < options.top_p <= 1, "--top-p must be in (0, 1]"),
        (options.max_tokens >= 1, "--max-tokens must be at least 1"),
        (options.chunk_size >= 1, "--chunk-size must be at least 1"),
        (options.limit is None or 1 <= options.limit < 2**63, "--limit must be at least 1"),
        (0 <= options.seed < 2**63, "--seed must be between 0 and 2^63 - 1"),
        (options.concurrency >= 1, "--concurrency must be at least 1"),
        (options.n == 1 or not options.greedy,
         "--n above 1 needs --temperature above 0 (greedy samples would all be the same)"),
        (options.ray_engine in RAY_ENGINES,
         f"--ray-engine must be one of {', '.join(RAY_ENGINES)}, not '{options.ray_engine}'"),
        (options.ray_workers >= 1, "--ray-workers must be at least 1"),
        (options.ray_gpus_per_worker >= 0, "--ray-gpus-per-worker must be 0 or more"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message)


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (0 <= I < N) as (I, N); anything else is a one-line InputError."""
    index, slash, count = text.strip().partition("/")
    if slash and index.strip().isdigit() and count.strip().isdigit():
        parsed = int(index), int(count)
        if parsed[1] >= 1 and parsed[0] < parsed[1]:
            return parsed
    raise InputError(f"--shard must be I/N with 0 <= I < N (0/4 is the first of four shards), not '{text}'")


def shard_of(prompt_id: str, count: int) -> int:
    """The shard (0..count-1) that answers `prompt_id`: its SHA-256 modulo `count`, so every
    process on every machine splits a run the same way without talking to the others."""
    return int(sha256_text(prompt_id)[:16], 16) % count


def resolve_backend(name: str) -> str:
    """`auto` is vllm where it is installed, else transformers."""
    if name != "auto":
        return name
    import importlib.util

    return "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"


def make_backend(options: GenerateOptions, backend: str) -> Backend:
    """The backend that shapes the output: for `ray`, the engine its workers run."""
    if backend == "ray":
        backend = resolve_backend(options.ray_engine)
    if backend == "openai":
        from refusaldata.generate.openai_backend import OpenAIBackend

        return OpenAIBackend(options)
    from refusaldata.generate.chat import LocalModel

    local = LocalModel.load(options.model, options.adapter, options.system_prompt, options.few_shot)
    if options.max_tokens >= local.context_length:
        raise InputError(f"--max-tokens {options.max_tokens} leaves no room for a prompt in the "
                         f"{local.context_length}-token context of {options.model}")
    if backend == "vllm":
        from refusaldata.generate.vllm_backend import VllmBackend

        return VllmBackend(local, options)
    from refusaldata.generate.transformers_backend import TransformersBackend

    return TransformersBackend(local, options)


def run_config(options: GenerateOptions, backend: Backend) -> dict:
    """The config the run id hashes: model identity, backend and everything that shapes output."""
    identity = {key: value for key, value in backend.identity().items() if key != "label"}
    return {
        **identity,
        "backend": backend.name,
        "system_prompt": options.system_prompt,
        "n": options.n,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "max_tokens": options.max_tokens,
        "seed": options.seed,
        # Only present when given, so the ids of runs without few-shot turns stay as they were.
        **({"few_shot": [list(pair) for pair in options.few_shot]} if options.few_shot else {}),
    }


def check_datasets(store: Store, datasets: tuple[str, ...]) -> None:
    """A NotFoundError naming every requested dataset the prompts table lacks."""
    con = store.connect(["prompts"])
    try:
        rows = con.sql(sql_text("generate_datasets"), params={"datasets": list(datasets)}).fetchall()
    finally:
        con.close()
    missing = [dataset for dataset, prompts, _ in rows if prompts == 0]
    if missing:
        known = rows[0][2]
        hint = (f"known: {known}" if known
                else "the store has no prompts yet; import some with `refusaldata prompts import`")
        raise NotFoundError(f"unknown prompt dataset(s) {', '.join(missing)} in {store.root} ({hint})")


def pending_prompts(store: Store, options: GenerateOptions, run_id: str) -> tuple[int, int, list[Prompt]]:
    """(size of the selection, how many of it are this shard's, the shard's prompts whose
    samples are not all stored for this run); without a shard, the shard is the selection."""
    con = store.connect(["prompts", "responses"])
    try:
        selection = con.sql(sql_text("generate_pending"), params={
            "datasets": list(options.datasets), "split": options.split, "limit": options.limit,
            "run_id": run_id, "n": options.n,
        }).to_arrow_table()
    finally:
        con.close()
    ids, texts, pending = (selection.column(name).to_pylist() for name in ("prompt_id", "text", "pending"))
    mine = [True] * len(ids) if options.shard is None else \
        [shard_of(prompt_id, options.shard[1]) == options.shard[0] for prompt_id in ids]
    prompts = [Prompt(prompt_id, text) for prompt_id, text, wanted, todo in zip(ids, texts, mine, pending)
               if wanted and todo]
    return selection.num_rows, sum(mine), prompts


def chunks(items: list[Prompt], size: int) -> Iterator[list[Prompt]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def skipped_rows(prompt_counts: dict[str, int], n: int) -> list[Completion]:
    """Rows that record prompts too long to answer: no response, finish_reason 'skipped'."""
    return [Completion(prompt_id, index, None, count, 0, SKIPPED)
            for prompt_id, count in prompt_counts.items() for index in range(n)]


def to_table(run_id: str, completions: list[Completion]) -> pa.Table:
    created = now()
    return pa.table({
        "run_id": [run_id] * len(completions),
        "prompt_id": [c.prompt_id for c in completions],
        "sample_index": pa.array([c.sample_index for c in completions], pa.int32()),
        "response": [c.response for c in completions],
        "n_prompt_tokens": pa.array([c.n_prompt_tokens for c in completions], pa.int32()),
        "n_output_tokens": pa.array([c.n_output_tokens for c in completions], pa.int32()),
        "finish_reason": [c.finish_reason for c in completions],
        "created_at": pa.array([created] * len(completions), pa.timestamp("us", tz="UTC")),
    })


def check_run_name(store: Store, run_id: str, name: str | None) -> None:
    """A run's name is fixed when it is created: another name for an existing run is an error, not ignored.

    Renaming would mean rewriting the append-only runs table, and compare, report and
    every --run reference resolve runs by that name.
    """
    if name is None:
        return
    stored = stored_run_name(store, run_id)
    if stored is not None and stored != (name,):
        current = f"named '{stored[0]}'" if stored[0] else "without a name"
        raise InputError(f"run {run_id} exists already, {current}; a run's name is fixed when it is created, "
                         f"so it cannot be renamed to '{name}' (leave --name out to resume it)")


def generate(store: Store, options: GenerateOptions, progress: Progress | None = None,
             on_start: Callable[[GenerationSummary], None] | None = None,
             shared: SharedEngine | None = None) -> GenerationSummary:
    """Answer the selected prompts with the run's config; returns what was done.

    `on_start` sees the summary once the run id and the pending count are known (before
    the engine loads); `progress` sees it after every stored chunk. `shared` (vllm only)
    is an engine kept open across runs of one base model; its owner closes it.
    """
    validate(options)
    check_datasets(store, options.datasets)
    backend = make_backend(options, resolve_backend(options.backend))
    run_id = backend_run_id(options, backend)
    via_ray = resolve_backend(options.backend) == "ray"
    summary = GenerationSummary(run_id=run_id, backend=f"ray/{backend.name}" if via_ray else backend.name,
                                shard=options.shard)
    # The lock guards against doing the same prompts twice at once (each key is stored once
    # whatever happens: the store's append holds that). So it covers one shard of the run:
    # one process per (run, shard) at a time, a second one waits here, then finds nothing
    # pending; the other shards run alongside.
    with store.lock(_lock_name(run_id, options)):
        pending = _start_run(store, options, backend, run_id, summary)
        if on_start is not None:
            on_start(summary)
        if not pending:
            return summary
        if via_ray:
            from refusaldata.generate.ray_backend import generate_with_ray

            generate_with_ray(store, options, backend.name, run_id, pending, summary, progress)
            return summary
        if shared is not None and backend.name != "vllm":
            raise InputError(f"a shared engine is for the vllm backend, not {backend.name}")
        engine = backend.open() if shared is None else shared.attach(backend)
        try:
            for chunk in chunks(pending, options.chunk_size):
                summary.add(answer_chunk(store, backend, engine, run_id, chunk, options.n))
                if progress is not None:
                    progress(summary)
        finally:
            engine.close()
    return summary


def backend_run_id(options: GenerateOptions, backend: Backend) -> str:
    """The run id: the model's label and a hash of the config that shapes output."""
    return keys.run_id(backend.identity()["label"], run_config(options, backend))


def _lock_name(run_id: str, options: GenerateOptions) -> str:
    shard = "" if options.shard is None else f"-shard-{options.shard[0]}-of-{options.shard[1]}"
    return f"generate-{run_id}{shard}"


def _start_run(store: Store, options: GenerateOptions, backend: Backend, run_id: str,
               summary: GenerationSummary) -> list[Prompt]:
    """Under the run's lock: record its runs row and return its pending prompts (this shard's)."""
    selection, summary.selected, pending = pending_prompts(store, options, run_id)
    if not selection:
        raise NotFoundError(f"no prompts in dataset(s) {', '.join(options.datasets)} with split "
                            f"'{options.split}'")
    summary.pending = len(pending)
    check_run_name(store, run_id, options.name)
    identity = backend.identity()
    config = run_config(options, backend)
    summary.new_run = record_run(
        store, run_id, backend.name, {**config, "prompts": list(options.datasets), "split": options.split},
        name=options.name, model=identity["model"], adapter=identity.get("adapter"),
        system_prompt=options.system_prompt,
        chat_template_sha=identity.get("chat_template_sha"), dtype=identity.get("dtype"),
        temperature=options.temperature, top_p=options.top_p, max_tokens=options.max_tokens,
        n=options.n, seed=options.seed, prompts=",".join(options.datasets), split=options.split)
    return pending


MIXABLE_BACKENDS = ("transformers", "vllm")


def mixable(runs: Sequence[GenerateOptions]) -> str:
    """The local engine that can answer `runs` in one pass, or an InputError saying why not:
    they must differ only in adapter and name, and answer one sample per prompt."""
    plain = {dataclasses.replace(options, adapter=None, name=None) for options in runs}
    if len(plain) > 1:
        raise InputError("runs answered in one pass may differ only in their adapter and name")
    first = runs[0]
    engine = resolve_backend(first.backend)
    if engine not in MIXABLE_BACKENDS:
        raise InputError(f"several adapters in one pass need a local engine ({', '.join(MIXABLE_BACKENDS)}), "
                         f"not {first.backend}")
    if first.n != 1:
        raise InputError("several adapters in one pass answer one sample per prompt (--n 1)")
    return engine


def open_mixed(backends: Sequence[Backend], shared: SharedEngine | None) -> Engine:
    """One engine for backends that differ only in their adapter: each `generate` call names
    the adapter of every row."""
    if shared is not None:
        return shared.attach(backends[0])
    return backends[0].open(adapters=[backend.local.adapter for backend in backends])


def generate_many(store: Store, runs: Sequence[GenerateOptions], progress: Progress | None = None,
                  shared: SharedEngine | None = None) -> list[GenerationSummary]:
    """Answer one prompt selection under several adapters in one pass (one summary per run).

    The runs differ only in adapter and name (several methods of one study, say). Each
    chunk of prompts goes to the engine once, every pending (prompt, adapter) row of it in
    one batch: PEFT's mixed-adapter batches on transformers, a LoRA request per prompt on
    vLLM. Each run keeps the id, runs row and rows that `generate` gives it alone, and the
    same greedy answers (tests/test_generate_many.py); one run's resume does not redo another's.
    `chunk_size` bounds the rows of a batch, as for one run: a chunk holds that many prompts
    divided by the number of runs (on a CPU, batches past about a hundred rows run slower
    per row; bench/generate_many.py).
    """
    if not runs:
        return []
    for options in runs:
        validate(options)
    engine_name = mixable(runs)
    first = runs[0]
    check_datasets(store, first.datasets)
    backends = [make_backend(options, engine_name) for options in runs]
    run_ids = [backend_run_id(options, backend) for options, backend in zip(runs, backends)]
    if len(set(run_ids)) < len(run_ids):
        raise InputError("two of the runs answered in one pass are the same run (the same adapter twice)")
    check_names(store, [(run_id, options.name) for run_id, options in zip(run_ids, runs)])
    summaries = [GenerationSummary(run_id=run_id, backend=backend.name, shard=first.shard)
                 for run_id, backend in zip(run_ids, backends)]
    with contextlib.ExitStack() as locks:
        for run_id in sorted(run_ids):  # one order everywhere: two such passes never deadlock
            locks.enter_context(store.lock(_lock_name(run_id, first)))
        pending = [_start_run(store, options, backend, run_id, summary)
                   for options, backend, run_id, summary in zip(runs, backends, run_ids, summaries)]
        wanted = [{prompt.prompt_id for prompt in run_pending} for run_pending in pending]
        union = sorted({prompt.prompt_id: prompt for run_pending in pending for prompt in run_pending}.values(),
                       key=lambda prompt: prompt.prompt_id)
        if not union:
            return summaries
        engine = open_mixed(backends, shared)
        try:
            for chunk in chunks(union, max(1, first.chunk_size // len(runs))):
                results = answer_mixed_chunk(store, backends, engine, run_ids, chunk, wanted)
                for summary, result in zip(summaries, results):
                    if result is not None:
                        summary.add(result)
                        if progress is not None:
                            progress(summary)
        finally:
            engine.close()
    return summaries


def answer_mixed(backends: Sequence[Backend], engine: Engine, chunk: list[Prompt],
                 wanted: Sequence[set[str]]) -> tuple[list[list[Completion]], dict[str, int]]:
    """One engine call for a chunk under several adapters: each run's completions (of the prompts
    in its `wanted` set), and the prompts too long for the model (prompt id -> tokens)."""
    too_long = backends[0].too_long(chunk)  # one model, one context: the same for every run
    rows = [(prompt, index) for prompt in chunk if prompt.prompt_id not in too_long
            for index in range(len(backends)) if prompt.prompt_id in wanted[index]]
    completions = engine.generate([prompt for prompt, _ in rows],
                                  [backends[index].local.adapter for _, index in rows]) if rows else []
    by_run: list[list[Completion]] = [[] for _ in backends]
    for (_, index), completion in zip(rows, completions, strict=True):
        by_run[index].append(completion)
    return by_run, too_long


def answer_mixed_chunk(store: Store, backends: Sequence[Backend], engine: Engine, run_ids: Sequence[str],
                       chunk: list[Prompt], wanted: Sequence[set[str]]) -> list[ChunkResult | None]:
    """Answer one chunk for every run that still wants its prompts, in one engine call, and
    append each run's rows (None for a run that wanted none of them). The batch's time is
    shared among the runs by their prompts."""
    started = time.perf_counter()
    by_run, too_long = answer_mixed(backends, engine, chunk, wanted)
    generate_seconds = time.perf_counter() - started
    mine = [[prompt.prompt_id for prompt in chunk if prompt.prompt_id in run_wanted] for run_wanted in wanted]
    total = sum(map(len, mine))
    results: list[ChunkResult | None] = []
    for run_id, completions, run_mine in zip(run_ids, by_run, mine):
        if not run_mine:
            results.append(None)
            continue
        run_rows = completions + skipped_rows({pid: too_long[pid] for pid in run_mine if pid in too_long}, 1)
        written_at = time.perf_counter()
        written = store.append("responses", to_table(run_id, run_rows), where=f"responses of run {run_id}")
        results.append(ChunkResult(
            prompts=len(run_mine), rows_written=written, skipped=sum(pid in too_long for pid in run_mine),
            output_tokens=sum(c.n_output_tokens or 0 for c in run_rows),
            generate_seconds=generate_seconds * len(run_mine) / total,
            write_seconds=time.perf_counter() - written_at))
    return results


@dataclass
class ChunkResult:
    """What answering and storing one chunk did (a Ray worker sends it back to the driver)."""

    prompts: int
    rows_written: int
    skipped: int
    output_tokens: int
    generate_seconds: float
    write_seconds: float


def answer_chunk(store: Store, backend: Backend, engine: Engine, run_id: str, chunk: list[Prompt],
                 n: int) -> ChunkResult:
    """Answer one chunk (prompts too long for the context are stored as skipped) and append it."""
    started = time.perf_counter()
    too_long = backend.too_long(chunk)
    answerable = [p for p in chunk if p.prompt_id not in too_long]
    completions = engine.generate(answerable) if answerable else []
    completions += skipped_rows(too_long, n)
    generated = time.perf_counter()
    written = store.append("responses", to_table(run_id, completions), where=f"responses of run {run_id}")
    return ChunkResult(
        prompts=len(chunk), rows_written=written,
        skipped=len({c.prompt_id for c in completions if c.finish_reason == SKIPPED}),
        output_tokens=sum(c.n_output_tokens or 0 for c in completions),
        generate_seconds=generated - started, write_seconds=time.perf_counter() - generated)


def run_status(store: Store, ref: str) -> dict:
    """How far a run has got: its prompts (by the datasets and split of its config), how many
    have all n samples stored, rows stored and skipped, first and last write."""
    run_id = store.resolve_run(ref)
    con = store.connect(["runs", "prompts", "responses"])
    try:
        run = con.execute("SELECT name, config, n FROM runs WHERE run_id = $run", {"run": run_id}).fetchall()[0]
        config = json.loads(run[1] or "{}")
        datasets = config.get("prompts")
        row = con.sql(sql_text("generate_status"), params={
            "run_id": run_id, "datasets": datasets if isinstance(datasets, list) else None,
            "split": config.get("split") or "all", "n": run[2] or 1}).to_arrow_table().to_pylist()[0]
    finally:
        con.close()
    return {"run_id": run_id, "name": run[0], "datasets": datasets, "split": config.get("split"),
            "n": run[2] or 1, **row}


def status_line(status: dict) -> str:
    """`run_status` as the one line `generate --status` prints."""
    name = f" ({status['name']})" if status["name"] and status["name"] != status["run_id"] else ""
    written = (f"; last written {status['last_written']:%Y-%m-%d %H:%M:%S} UTC"
               if status["last_written"] is not None else "")
    rows = f"{status['rows']} responses, {status['skipped']} skipped as too long"
    if status["datasets"] is None:
        return f"run {status['run_id']}{name}: {rows} (an imported run: no prompt selection to compare){written}"
    done, total = status["answered"], status["prompts"]
    share = f" ({100 * done / total:.1f}%)" if total else ""
    return (f"run {status['run_id']}{name}: {done} of {total} prompts answered{share} with all {status['n']} "
            f"sample(s), {rows}; prompts {','.join(status['datasets'])}, split {status['split']}{written}")


def json_file(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not readable JSON: {exc}") from None


