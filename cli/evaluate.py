"""`refusaldata evaluate capability`: what alignment costs a run's model in general ability."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer

from refusaldata.cli.common import FormatOption, OutputFormat, OutputOption, StoreOption, choice, echo, emit, open_store
from refusaldata.generate import BACKENDS
from refusaldata.store import DEFAULT_STORE

# The run's own engine, named: auto and ray choose one themselves.
Backend = choice("Backend", tuple(name for name in BACKENDS if name not in ("auto", "ray")))

evaluate_app = typer.Typer(help="Evaluate runs beyond refusal: the capability cost of alignment.",
                           no_args_is_help=True)


@evaluate_app.command("capability")
def capability(
    runs: Annotated[list[str], typer.Argument(help="Runs (id, name or id prefix) whose model to evaluate.")],
    suite: Annotated[str, typer.Option(
        "--suite", help="embedded (120 prompts shipped with refusaldata) or ifeval (IFEval's 541).")] = "embedded",
    path: Annotated[Path | None, typer.Option(
        "--path", help="--suite ifeval: a local copy of IFEval's input_data.jsonl (else the hub).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the suite's first N prompts.")] = None,
    max_tokens: Annotated[int | None, typer.Option(
        "--max-tokens", help="Most new tokens per answer (default: the run's own).")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="The run's model, where its runs row names a local folder by its name only.")] = None,
    backend: Annotated[Backend | None, typer.Option("--backend", help="Default: the run's own.")] = None,
    kl: Annotated[bool, typer.Option(
        "--kl/--no-kl", help="Also the KL divergence of each adapter from its base.")] = True,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Ask each run's model (base, adapter, context, sampling) the suite's prompts and check its answers.

    Prompt-level strict accuracy (every instruction followed, IFEval's checkers), loose
    accuracy, instruction-level accuracy and the mean per-token KL from the base model on
    the same prompts are printed; every answer and verdict goes to the capability table,
    which `compare` reads.
    """
    from refusaldata.capability import evaluate  # torch and the checkers load only here

    summaries = evaluate(open_store(store), runs, suite=suite, path=path, limit=limit, model=model,
                         backend=backend and backend.value, max_tokens=max_tokens, kl=kl,
                         progress=lambda line: echo(line, err=True))
    emit(pa.Table.from_pylist([vars(summary) for summary in summaries]), fmt, output,
         title=f"capability ({suite})")


def register(app: typer.Typer) -> None:
    app.add_typer(evaluate_app, name="evaluate")
