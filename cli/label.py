"""`refusaldata label`: write the labels table for some or all runs."""

from __future__ import annotations

from typing import Annotated

import typer

from refusaldata.cli.common import (
    FormatOption, OutputFormat, OutputOption, StoreOption, choice, echo, emit, open_store, output_format, refuse,
)
from refusaldata.label import label as label_runs
from refusaldata.label import summary_lines
from refusaldata.labelers.formats import FORMATS
from refusaldata.labelers.registry import DEFAULT_LABELER, describe_labeler, get_labeler, labeler_help, labelers
from refusaldata.store import DEFAULT_STORE

JudgeFormat = choice("JudgeFormat", FORMATS)


def label(
    ctx: typer.Context,
    run: Annotated[list[str] | None, typer.Option(
        "--run", help="Run id, name or id prefix (repeatable; default every run).")] = None,
    labeler: Annotated[str, typer.Option("--labeler", help=labeler_help())] = DEFAULT_LABELER,
    judge_model: Annotated[str | None, typer.Option(
        "--judge-model", help="With --labeler judge: the safety classifier (folder or hub id).")] = None,
    judge_format: Annotated[JudgeFormat | None, typer.Option(
        "--judge-format", help="With --labeler judge: its prompt format (wildguard also judges refusal).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Relabel every response, not only those the labeler has not labelled at its "
                        "current version.")] = False,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Label responses compliance, refusal or partial (one partition per labeler and run, replaced atomically).

    Labels only what the labeler has not labelled at its current version; the rest is skipped.
    """
    output_format(fmt, output)  # an output it cannot write is refused before any label is written
    for option in ("judge_model", "judge_format"):
        if option not in get_labeler(labeler).options:
            takers = [f"{entry.name} or {entry.name}:NAME" if entry.family else entry.name
                      for entry in labelers() if option in entry.options]
            refuse(ctx, (option,), f"applies only to --labeler {' or '.join(takers)}")
    options = {name: value for name, value in
               (("judge_model", judge_model), ("judge_format", judge_format and judge_format.value))
               if value is not None}
    summary = label_runs(open_store(store), run, labeler, force=force, **options)
    emit(summary, fmt, output, title="labels written")
    echo(f"labeler: {describe_labeler(labeler)}", err=True)
    for line in summary_lines(summary, labeler):
        echo(line, err=True)


def register(app: typer.Typer) -> None:
    app.command("label")(label)
