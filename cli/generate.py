"""`refusaldata generate`: answer stored prompts with a model, resumably, into the store."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from refusaldata.cli.common import StoreOption, choice, echo, open_store, refuse
from refusaldata.errors import InputError
from refusaldata.generate import (
    BACKENDS, DEFAULT_BASE_URL, DTYPES, RAY_ENGINES, SPLITS, GenerateOptions, GenerationSummary,
    generate as run_generate, generate_many, parse_shard, read_few_shot, run_status, status_line,
)
from refusaldata.store import DEFAULT_STORE

Split = choice("Split", SPLITS)
Backend = choice("Backend", BACKENDS)
Dtype = choice("Dtype", DTYPES)
RayEngine = choice("RayEngine", RAY_ENGINES)
OPENAI_ONLY = ("base_url", "api_key_env", "concurrency")
RAY_ONLY = ("ray_engine", "ray_workers", "ray_gpus_per_worker")


def generate(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(
        "--model", help="A local folder, a hub id, or smollm2-135m-instruct.")] = None,
    prompts: Annotated[str | None, typer.Option("--prompts", help="Prompt dataset(s), comma-separated.")] = None,
    split: Annotated[Split, typer.Option("--split", help="The prompts' split to answer.")] = "all",
    backend: Annotated[Backend, typer.Option(
        "--backend", help="auto is vllm where it is installed, else transformers; ray: Ray Data workers "
                          "running --ray-engine.")] = "auto",
    n: Annotated[int, typer.Option("--n", help="Samples per prompt.")] = 1,
    temperature: Annotated[float, typer.Option("--temperature", help="0 for greedy decoding.")] = 0.0,
    top_p: Annotated[float, typer.Option("--top-p")] = 1.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Most new tokens per answer.")] = 256,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    system_prompt: Annotated[str | None, typer.Option(
        "--system-prompt", help="A system turn before each prompt.")] = None,
    few_shot: Annotated[Path | None, typer.Option(
        "--few-shot", help="A JSON/JSONL file of example user/assistant turns placed before each prompt.")] = None,
    adapter: Annotated[list[Path] | None, typer.Option(
        "--adapter", help="A PEFT LoRA adapter folder (safetensors). Give several to answer under each in one "
                          "pass: one run per adapter, every chunk's prompts under all of them in one batch.")] = None,
    dtype: Annotated[Dtype, typer.Option("--dtype", help="auto is float32 on CPU, bfloat16 on a GPU.")] = "auto",
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N prompts (by prompt_id).")] = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Prompts per stored chunk.")] = 32,
    base_url: Annotated[str, typer.Option(
        "--base-url", help="openai backend: the endpoint's /v1 URL.")] = DEFAULT_BASE_URL,
    api_key_env: Annotated[str, typer.Option(
        "--api-key-env", help="openai backend: the variable holding the API key.")] = "OPENAI_API_KEY",
    concurrency: Annotated[int, typer.Option("--concurrency", help="openai backend: requests in flight.")] = 8,
    name: Annotated[list[str] | None, typer.Option(
        "--name", help="A readable name for a new run (compare and report show it); a run's name is fixed "
                       "once it exists. With several --adapter, one --name per adapter, in order.")] = None,
    shard: Annotated[str | None, typer.Option("--shard", help="I/N: answer only shard I of N of the run's prompts "
                                                              "(split by prompt_id hash); same run id.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Print how much of run RUN (id, name or prefix) "
                                                                "is done, and exit.", metavar="RUN")] = None,
    ray_engine: Annotated[RayEngine, typer.Option(
        "--ray-engine", help="ray backend: the engine each worker runs.")] = "auto",
    ray_workers: Annotated[int, typer.Option("--ray-workers", help="ray backend: engine workers (actors).")] = 1,
    ray_gpus_per_worker: Annotated[float, typer.Option(
        "--ray-gpus-per-worker", help="ray backend: GPUs per worker.")] = 0.0,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Generate responses to stored prompts; a rerun of the same config resumes where it stopped."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if status is not None:
        refuse(ctx, tuple(p.name for p in ctx.command.params if p.name not in ("status", "store")),
               "does not apply to --status (it only reports on a run)")
        echo(status_line(run_status(open_store(store), status)))
        return
    if model is None or prompts is None:
        raise InputError(f"generate needs {'--model' if model is None else '--prompts'} (or --status RUN)")
    if backend.value != "openai":
        refuse(ctx, OPENAI_ONLY, "applies only to --backend openai")
    if backend.value != "ray":
        refuse(ctx, RAY_ONLY, "applies only to --backend ray")
    datasets = tuple(dataset.strip() for dataset in prompts.split(",") if dataset.strip())
    adapters = list(adapter or [None])
    names = list(name or [])
    if len(names) > 1 and len(names) != len(adapters) or len(adapters) > 1 and len(names) == 1:
        raise InputError(f"--name was given {len(names)} time(s) for {len(adapters)} adapter(s); "
                         "give one --name per adapter")
    options = GenerateOptions(
        model=model, datasets=datasets, split=split.value,
        backend=backend.value, n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
        system_prompt=system_prompt, few_shot=read_few_shot(few_shot) if few_shot else (),
        adapter=str(adapters[0]) if adapters[0] else None, dtype=dtype.value, limit=limit,
        chunk_size=chunk_size, base_url=base_url, api_key_env=api_key_env, concurrency=concurrency,
        name=names[0] if len(names) == 1 else None, shard=parse_shard(shard) if shard is not None else None,
        ray_engine=ray_engine.value,
        ray_workers=ray_workers, ray_gpus_per_worker=ray_gpus_per_worker)
    console = Console(stderr=True)
    bar = Progress(TextColumn("generate", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
                   TextColumn("prompts", markup=False), TextColumn("{task.fields[rate]}", markup=False),
                   TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal)
    state: dict[str, object] = {}

    def on_start(summary: GenerationSummary) -> None:
        echo(f"run_id: {summary.run_id}")
        if summary.pending:
            bar.start()
            state["task"] = bar.add_task("generate", total=summary.pending, rate="loading the model")

    def on_progress(summary: GenerationSummary) -> None:
        bar.update(state["task"], completed=summary.prompts_done,
                   rate=f"{summary.output_tokens_per_s:.1f} output tokens/s")

    if len(adapters) > 1:
        runs = [dataclasses.replace(options, adapter=str(folder), name=names[index] if names else None)
                for index, folder in enumerate(adapters)]
        for summary in generate_many(open_store(store), runs):
            echo(f"run_id: {summary.run_id}")
            echo(summary.line())
        return
    try:
        summary = run_generate(open_store(store), options, progress=on_progress, on_start=on_start)
    finally:
        if "task" in state:
            bar.stop()
    echo(summary.line())


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
