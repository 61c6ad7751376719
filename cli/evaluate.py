"""`refusaldata evaluate capability`: what alignment costs a run's model in general ability;
`evaluate separability`: how far alignment could go on a model, before any training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer

from refusaldata.cli.common import (FormatOption, OutputFormat, OutputOption, StoreOption, choice, echo, emit,
                                    open_store, output_format)
from refusaldata.generate import BACKENDS
from refusaldata.store import DEFAULT_STORE

# The run's own engine, named: auto and ray choose one themselves.
Backend = choice("Backend", tuple(name for name in BACKENDS if name not in ("auto", "ray")))

evaluate_app = typer.Typer(help="Evaluate runs beyond refusal: the capability cost of alignment, and how "
                                "separable a model's prompts are.",
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


@evaluate_app.command("separability")
def separability(
    model: Annotated[str, typer.Option(
        "--model", help="The model: 'smollm2-135m-instruct', a local folder or a hub id.")],
    adapter: Annotated[str | None, typer.Option("--adapter", help="A LoRA adapter folder to probe under.")] = None,
    datasets: Annotated[list[str] | None, typer.Option(
        "--dataset", help="Fit on this data set's train split (repeat; default: every data set in the store).")] = None,
    eval_datasets: Annotated[list[str] | None, typer.Option(
        "--eval-dataset", help="Score on this data set's test split (repeat; default: the --dataset ones).")] = None,
    layers: Annotated[str | None, typer.Option(
        "--layers", "--layer", help="Layers to probe: '8,16' or '10-20' (0: the embeddings; default: every one).")
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """How far alignment could go on this model: a linear probe on its last prompt token, per layer.

    Fitted on the train split's harmful and benign prompts, scored on held-out ones: per layer
    the share of harmful prompts the probe flags and of benign ones, with Wilson intervals, and
    their difference (separation). The best layer is chosen on a held-out quarter of the train
    prompts, never on the scored ones. Rows go to the separability table; the report draws the
    best layer as a dashed line on the trade-off chart.
    """
    from refusaldata import separability as probe  # torch loads only here

    table = probe.evaluate(open_store(store), model, adapter=adapter, datasets=datasets,
                           eval_datasets=eval_datasets, layers=layers, progress=lambda line: echo(line, err=True))
    title = f"separability of {model}" + (f" under {adapter}" if adapter else "")
    if output_format(fmt, output) is OutputFormat.table:
        emit(_layer_cells(table), fmt, output, title=f"{title}: held-out prompts flagged, 95% intervals")
    else:
        emit(table.select(["layer", "best", "harmful_rate", "harmful_rate_low", "harmful_rate_high", "benign_rate",
                           "benign_rate_low", "benign_rate_high", "separation", "separation_low", "separation_high",
                           "selection_separation"]), fmt, output, title=title)
    best = next(row for row in table.to_pylist() if row["best"])
    echo(f"best layer (chosen on held-out train prompts): {best['layer']}, flags {best['harmful_rate']:.3f} of "
         f"{best['harmful_prompts']} harmful and {best['benign_rate']:.3f} of {best['benign_prompts']} benign "
         f"held-out prompts: separation {best['separation']:.3f} [{best['separation_low']:.2f}, "
         f"{best['separation_high']:.2f}]", err=fmt is not OutputFormat.table or output is not None)


def _layer_cells(table: pa.Table) -> pa.Table:
    """One line per layer for a terminal: each rate with its interval in one cell."""
    def cell(row: dict, name: str, places: int = 3) -> str:
        return f"{row[name]:.{places}f} [{row[name + '_low']:.2f}, {row[name + '_high']:.2f}]"

    rows = table.to_pylist()
    return pa.Table.from_pylist([{
        "layer": row["layer"], "best": "best" if row["best"] else "",
        f"harmful flagged (of {row['harmful_prompts']})": cell(row, "harmful_rate"),
        f"benign flagged (of {row['benign_prompts']})": cell(row, "benign_rate"),
        "separation": cell(row, "separation"), "on held-out train": round(row["selection_separation"], 3),
    } for row in rows])


def register(app: typer.Typer) -> None:
    app.add_typer(evaluate_app, name="evaluate")
