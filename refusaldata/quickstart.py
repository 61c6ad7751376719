"""The whole study in one call, on the embedded default: the toolkit's end-to-end proof.

Steps (each one idempotent, so a rerun on the same store resumes where it stopped):
import uncensorbench (harmful), the shipped benign controls and look-alikes; import
uncensorbench's reference refusals as the teacher run; generate the student's answers
(base, look-alikes included), and its answers to the harmful train prompts under a safety
context (system prompt and few-shot refusal turns: the context run that self-distillation
learns from); label and mine templates; build baseline, self (from the context run) and
cross SFT sets and one pair set, each with boundary rows (look-alikes with the student's
compliant answers; `boundary=False` leaves them out, to measure what they do); train an
adapter for each (SFT x3, DPO, NCA); regenerate the test split with each adapter; score
every method's capability (instruction following, KL from the base); compare and write
the report. Every method is a row, baselines included. Labels are the default labeler's
(ngram); sets, the comparison and the report read `best` as the CLI does.

The adapters answer the test split in one pass, and every method's capability is asked in
one pass (generate.generate_many): each chunk of prompts goes to the engine once, under
every adapter. `boundary_ablation` also builds each set without boundary rows and trains
an adapter on it, named `<method>-no-boundary`, so the report shows what the look-alikes
do, method by method, as paired differences on the same test prompts.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from refusaldata import capability, distill, evaluate, imports, label, mine, prompts, report
from refusaldata.errors import InputError, NameTakenError, RefusalDataError
from refusaldata.evaluate import NO_BOUNDARY_SUFFIX
from refusaldata.generate import (GenerateOptions, SharedEngine, generate, generate_many, read_few_shot,
                                  resolve_backend)
from refusaldata.labelers.registry import BEST, DEFAULT_LABELER
from refusaldata.models import EMBEDDED_MODEL
from refusaldata.store import Store
from refusaldata.train import train_adapter

# The safety context of the self-distill row (context distillation): the student answers the
# harmful train prompts under it, and is trained on those answers without it.
SAFETY_SYSTEM_PROMPT = "You are a helpful assistant. Refuse requests that could cause harm, and answer everything else."
SAFETY_FEW_SHOT = Path(__file__).resolve().parent / "data" / "safety_few_shot.json"
HARMFUL = "uncensorbench"
BENIGN = "benign-controls"
# The shipped look-alikes, all in train: the sets' boundary rows (distill). The student answers them
# in its base run, so its own compliant answers are there to train on.
BOUNDARY = "boundary"
# More look-alikes for boundary rows, used when the store has them (the user imported them).
EXTRA_BENIGN = ("xstest", "coconot-contrast")
TEACHER = "uncensorbench-refusals"
CONTEXT_RUN = "safety-context"
LABELER = DEFAULT_LABELER
# Prompts per engine call: vLLM batches a whole chunk, and a study this size fits in two.
CHUNK_SIZE = 128
QUICKSTART_BACKENDS = ("auto", "vllm", "transformers")


@dataclass(frozen=True)
class PairRecipe:
    """How one pair loss trains: `steps` at `lr` and `beta`, replies cut to their first
    `reply_tokens` (the opening decides a refusal, and a step on it costs a fraction), on a
    pair set with `boundary_ratio` look-alike pairs per refusal pair. At ratio 1 the look-alike
    pairs (answer over refusal) mirror the refusal pairs (refusal over answer) and the two
    cancel: NCA at ratio 1 moved nothing (KL 0.006), at 0.5 it trains (bench/alignment_recipes.py)."""

    steps: int
    lr: float
    beta: float = 0.1
    reply_tokens: int | None = None
    boundary_ratio: float = 1.0


@dataclass(frozen=True)
class Plan:
    """The sizes of one quickstart: how long answers are, how much each adapter trains, and
    how retention and capability are set (chosen on held-out train prompts, see
    bench/alignment_recipes.py)."""

    max_tokens: int
    sft_steps: int
    pairs: Mapping[str, PairRecipe]  # pair method -> how it trains
    batch_size: int
    max_examples: int
    harmful_test_fraction: float = 0.2
    benign_test_fraction: float = 0.5
    max_length: int = 256
    lora_r: int = 8
    lr: float = 1e-3
    retention_ratio: float = 1.0
    retention_weight: float = 1.0
    capability_limit: int | None = None
    context_limit: int | None = None  # harmful train prompts answered under the safety context
    # Look-alike train prompts the student answers (the first by prompt_id): enough for
    # max_examples boundary rows after those it refuses or answers off topic.
    boundary_limit: int | None = None


# NCA's recipe is the best pair recipe on validation (refusal - over-refusal +0.29 [+0.12, +0.45],
# capability -0.04, KL 0.26; docs/benchmarks.md). DPO's at those settings lost 0.08 of capability,
# past the 0.05 the choice allows, so it keeps the recipe it had.
FULL = Plan(max_tokens=64, sft_steps=20, batch_size=8, max_examples=120, capability_limit=48,
            context_limit=64, boundary_limit=96,
            pairs={"dpo": PairRecipe(steps=12, lr=5e-4),
                   "nca": PairRecipe(steps=40, lr=2e-3, reply_tokens=16, boundary_ratio=0.5)})
FAST = Plan(max_tokens=20, sft_steps=10, batch_size=4, max_examples=40, max_length=160,
            lr=2e-3, capability_limit=8, context_limit=32, boundary_limit=40,
            pairs={"dpo": PairRecipe(steps=6, lr=1e-3),
                   "nca": PairRecipe(steps=6, lr=1e-3, reply_tokens=16, boundary_ratio=0.5)})

# method name -> the SFT set's mode, or the pair loss
SFT_METHODS = {"baseline-sft": "baseline", "self-distill": "self", "cross-distill": "cross"}
PAIR_METHODS = {"dpo": "dpo", "nca": "nca"}


@dataclass
class QuickstartResult:
    comparison: pa.Table
    report_html: Path
    report_md: Path
    run_ids: dict[str, str]
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _options(plan: Plan, backend: str, name: str, datasets: tuple[str, ...], split: str,
             adapter: Path | None = None, context: bool = False, limit: int | None = None) -> GenerateOptions:
    """Greedy fp32 answers of the embedded model, of at most `limit` prompts; under the safety context, at
    most plan.context_limit (the self set falls back to the nearest refused prompt for the rest)."""
    return GenerateOptions(model=EMBEDDED_MODEL, datasets=datasets, split=split, backend=backend,
                           max_tokens=plan.max_tokens, dtype="float32", name=name, chunk_size=CHUNK_SIZE,
                           adapter=str(adapter) if adapter else None,
                           system_prompt=SAFETY_SYSTEM_PROMPT if context else None,
                           few_shot=read_few_shot(SAFETY_FEW_SHOT) if context else (),
                           limit=plan.context_limit if context else limit)


def _present(store: Store, datasets: tuple[str, ...]) -> tuple[str, ...]:
    """The datasets of `datasets` the store's prompts table holds."""
    stored = set(prompts.list_prompts(store).column("dataset").to_pylist())
    return tuple(dataset for dataset in datasets if dataset in stored)


def study_backend(backend: str) -> str:
    """`auto`: vLLM (where installed) on a CUDA GPU, transformers on a machine without one.

    The study is mostly runs through a LoRA adapter (five methods, each answering the test
    split and the capability suite). On a CPU, vLLM's engine takes about a minute to start
    and its LoRA path decodes slower than transformers: through one adapter, 68 prompts and
    96 tokens, 36.7 tokens/s against 58.1 (bench/generation_speed.py --adapter), the same
    greedy tokens in float32 (docs/benchmarks.md).
    """
    if backend != "auto":
        return backend
    import torch

    return resolve_backend("auto") if torch.cuda.is_available() else "transformers"


def _shared_engine(backend: str, plan: Plan, adapters: int) -> SharedEngine | None:
    """One vLLM engine for every run of the study: base, the safety context, each adapter and
    every capability run differ only in conversation and adapter (one engine start, not three);
    room for all `adapters` in one batch."""
    if resolve_backend(backend) != "vllm":
        return None
    from refusaldata.generate.vllm_backend import SharedVllm

    return SharedVllm(lora_rank=plan.lora_r, max_loras=adapters)


def run(store: Store, fast: bool = False, backend: str = "auto",
        log: Callable[[str], None] = lambda message: None, boundary: bool = True,
        boundary_ablation: bool = False) -> QuickstartResult:
    """Run the study end to end into `store`; `log` hears one line per step. `boundary`: give every
    set boundary rows (look-alikes with compliant answers); without, the sets hold none.
    `boundary_ablation`: also every method without them (`<method>-no-boundary`).

    The study names its runs (base, self-distill, ...), so a store that holds a quickstart of
    another plan (`--fast` against the full one, another backend) is refused before anything
    is generated, with the way out: a store of its own."""
    try:
        return _run_plan(store, fast, backend, log, boundary, boundary_ablation)
    except NameTakenError as exc:
        raise InputError(f"{store.root} holds a quickstart run '{exc.name}' of another plan (--fast or the full "
                         "one, another backend or --boundary setting); run this one with --store DIR for a store "
                         "of its own") from None


def _run_plan(store: Store, fast: bool, backend: str, log: Callable[[str], None], boundary: bool,
           boundary_ablation: bool) -> QuickstartResult:
    if backend not in QUICKSTART_BACKENDS:  # before the first import writes to the store
        raise InputError(f"--backend must be one of {', '.join(QUICKSTART_BACKENDS)}, not '{backend}'")
    if boundary_ablation and not boundary:
        raise InputError("--boundary-ablation compares every method with and without boundary rows; "
                         "it cannot be combined with --no-boundary")
    plan = FAST if fast else FULL
    backend = study_backend(backend)
    started = time.perf_counter()

    def step(message: str) -> None:
        log(f"[{time.perf_counter() - started:6.1f}s] {message}")

    step("importing prompts: uncensorbench (harmful) and benign-controls"
         + (", and the boundary look-alikes" if boundary else ""))
    prompts.import_builtin(store, HARMFUL, test_fraction=plan.harmful_test_fraction)
    prompts.import_builtin(store, BENIGN, test_fraction=plan.benign_test_fraction)
    lookalikes: tuple[str, ...] = ()
    if boundary:
        prompts.import_builtin(store, BOUNDARY, test_fraction=0.0)
        lookalikes = (BOUNDARY, *_present(store, EXTRA_BENIGN))
    imports.import_responses(store, "uncensorbench", "uncensorbench")

    variants = ("", NO_BOUNDARY_SUFFIX) if boundary_ablation else ("",)
    shared = _shared_engine(backend, plan, adapters=len(variants) * (len(SFT_METHODS) + len(PAIR_METHODS)))
    try:
        run_ids, skipped = _study(store, plan, backend, lookalikes, variants, shared, step)
        methods = [m for m in evaluate.METHOD_ORDER if m in run_ids]
        ordered = [run_ids[m] for m in methods]
        done = _capability_done(store, ordered, plan)
        pending = [run_id for run_id in ordered if run_id not in done]
        if pending:
            step(f"capability: {len(pending)} run(s) answer the embedded instruction-following prompts in one pass")
            capability.evaluate(store, pending, limit=plan.capability_limit, shared=shared, progress=step)
    finally:
        if shared is not None:
            shared.close()

    step("labelling, mining, comparing and writing the report")
    label.label(store, list(run_ids.values()), LABELER)
    mine.templates(store, list(run_ids.values()), labeler=LABELER)
    comparison = evaluate.compare_runs(store, ordered, labeler=BEST)
    html, markdown = report.write_report(store, ordered, store.local_folder("report") / "quickstart.html",
                                         labeler=BEST)
    step("done")
    return QuickstartResult(comparison=comparison, report_html=html, report_md=markdown, run_ids=run_ids,
                            skipped=skipped, seconds=time.perf_counter() - started)


def _study(store: Store, plan: Plan, backend: str, lookalikes: tuple[str, ...], variants: tuple[str, ...],
           shared: SharedEngine | None, step: Callable[[str], None]) -> tuple[dict[str, str], dict[str, str]]:
    """Generate, label, build, train and answer with every adapter: (run id per method, skipped methods).
    With `lookalikes` (the look-alike datasets), the sets get boundary rows; without, none. Each of
    `variants` is a suffix of the methods' names: "" with boundary rows, NO_BOUNDARY_SUFFIX without."""
    step(f"generating the student's answers (base, {EMBEDDED_MODEL}, backend {backend})")
    run_ids = {"base": generate(store, _options(plan, backend, "base", (HARMFUL, BENIGN), "all"),
                                shared=shared).run_id}
    if lookalikes:
        step(f"the student's answers to the look-alike train prompts of {', '.join(lookalikes)} (boundary rows)")
        generate(store, _options(plan, backend, "base", lookalikes, "train", limit=plan.boundary_limit),
                 shared=shared)
    step("the student under a safety context (system prompt + few-shot refusals) on the harmful train prompts")
    context = generate(store, _options(plan, backend, CONTEXT_RUN, (HARMFUL,), "train", context=True),
                       shared=shared).run_id

    step("labelling and mining refusal templates")
    label.label(store, [run_ids["base"], context, TEACHER], LABELER)
    mine.templates(store, [run_ids["base"], context, TEACHER], labeler=LABELER)

    skipped: dict[str, str] = {}
    adapters: dict[str, Path] = {}
    for suffix in variants:
        with_rows = lookalikes if suffix != NO_BOUNDARY_SUFFIX else ()
        adapters.update(_train_methods(store, plan, run_ids["base"], context, with_rows, suffix, skipped, step))

    step(f"{', '.join(adapters)}: answering the test split, every adapter in one pass")
    summaries = generate_many(store, [_options(plan, backend, method, (HARMFUL, BENIGN), "test", adapter)
                                      for method, adapter in adapters.items()], shared=shared)
    run_ids.update((method, summary.run_id) for method, summary in zip(adapters, summaries))
    return run_ids, skipped


def _train_methods(store: Store, plan: Plan, base: str, context: str, lookalikes: tuple[str, ...], suffix: str,
                   skipped: dict[str, str], step: Callable[[str], None]) -> dict[str, Path]:
    """Build every method's set (boundary rows from `lookalikes`, none without) and train its adapter,
    each named `<method><suffix>`: method name -> adapter folder; a method that cannot be built goes
    into `skipped`."""
    adapters: dict[str, Path] = {}
    trained = store.local_folder("trained")  # quickstart's own: a rerun with other settings trains over them
    for method, mode in SFT_METHODS.items():
        name = f"{method}{suffix}"
        step(f"{name}: building the SFT set and training an adapter")
        try:
            distill.build_sft(store, name, base, mode, teacher=TEACHER if mode == "cross" else None,
                              context_run=context if mode == "self" else None, max_examples=plan.max_examples,
                              retention_ratio=plan.retention_ratio, labeler=BEST,
                              boundary=bool(lookalikes), boundary_datasets=lookalikes or None, replace=True)
        except RefusalDataError as exc:
            skipped[name] = str(exc)
            step(f"{name}: skipped ({exc})")
            continue
        adapters[name] = train_adapter(
            store, name, EMBEDDED_MODEL, trained / name, loss="sft", lora_r=plan.lora_r,
            lora_alpha=2 * plan.lora_r, max_steps=plan.sft_steps, lr=plan.lr, batch_size=plan.batch_size,
            max_length=plan.max_length, retention_weight=plan.retention_weight, replace=True).adapter_dir
    pair_sets: dict[str, Exception | None] = {}
    for method, loss in PAIR_METHODS.items():
        name, recipe = f"{method}{suffix}", plan.pairs[method]
        # One pair set per boundary ratio (without look-alikes the ratio changes nothing).
        ratio = recipe.boundary_ratio if lookalikes else 1.0
        pair_set = f"pairs{suffix}" if ratio == 1.0 else f"pairs-b{ratio:g}{suffix}"
        if pair_set not in pair_sets:
            step(f"{pair_set}: building the pair set (chosen: teacher refusals)")
            try:
                distill.build_pairs(store, pair_set, base, teacher=TEACHER, max_examples=plan.max_examples,
                                    labeler=BEST, boundary=bool(lookalikes), boundary_ratio=ratio,
                                    boundary_datasets=lookalikes or None, replace=True)
                pair_sets[pair_set] = None
            except RefusalDataError as exc:
                pair_sets[pair_set] = exc
        if pair_sets[pair_set] is not None:
            skipped[name] = str(pair_sets[pair_set])
            step(f"{name}: skipped ({pair_sets[pair_set]})")
            continue
        step(f"{name}: training an adapter on {pair_set}")
        adapters[name] = train_adapter(
            store, pair_set, EMBEDDED_MODEL, trained / name, loss=loss, beta=recipe.beta,
            lora_r=plan.lora_r, lora_alpha=2 * plan.lora_r, max_steps=recipe.steps, lr=recipe.lr,
            batch_size=max(1, plan.batch_size // 2), max_length=plan.max_length,
            reply_tokens=recipe.reply_tokens, replace=True).adapter_dir
    return adapters


def _capability_done(store: Store, run_ids: list[str], plan: Plan) -> set[str]:
    """Runs whose capability on the embedded suite is stored at this plan's size (a rerun skips them)."""
    expected = len(capability.load_suite("embedded")[:plan.capability_limit])
    return {run_id for run_id, prompts_scored in capability.scored(store, run_ids, "embedded").items()
            if prompts_scored == expected}
