"""`refusaldata label`: write the labels table for some or all runs."""

from __future__ import annotations

from typing import Annotated

import typer

from refusaldata.cli.common import (
    FormatOption, OutputFormat, OutputOption, StoreOption, choice, echo, emit, open_store, refuse,
)
from refusaldata.labelers.formats import FORMATS
from refusaldata.label import label as label_runs
from refusaldata.labelers.registry import DEFAULT_LABELER, describe_labeler
from refusaldata.store import DEFAULT_STORE

JudgeFormat = choice("JudgeFormat", FORMATS)


def label(
    ctx: typer.Context,
    run: Annotated[list[str] | None, typer.Option(
        "--run", help="Run id, name or id prefix (repeatable; default every run).")] = None,
    labeler: Annotated[str, typer.Option(
        "--labeler", help="ngram (the default: a shipped model of prompt and response, ~670 responses/s here), "
                          "hybrid (the rules where sure, a cue model elsewhere; ~6,600 responses/s, for huge corpora), "
                          "rules (the SQL lexicon alone), unsafe (a shipped unsafe-content judge: does the answer give "
                          "what a harmful request asked for; read by compare's unsafe rate), judge (a safety "
                          "classifier, --judge-model/--judge-format) or learned:NAME.")
    ] = DEFAULT_LABELER,
    judge_model: Annotated[str | None, typer.Option(
        "--judge-model", help="With --labeler judge: the safety classifier (folder or hub id).")] = None,
    judge_format: Annotated[JudgeFormat | None, typer.Option(
        "--judge-format", help="With --labeler judge: its prompt format (wildguard also judges refusal).")] = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Label responses compliance, refusal or partial (one partition per labeler and run, replaced atomically)."""
    if labeler.split(":", 1)[0] != "judge":
        refuse(ctx, ("judge_model", "judge_format"), "applies only to --labeler judge or judge:NAME")
    judge_options = {name: value for name, value in
                     (("judge_model", judge_model), ("judge_format", judge_format and judge_format.value))
                     if value is not None}
    summary = label_runs(open_store(store), run, labeler, **judge_options)
    emit(summary, fmt, output, title="labels written")
    echo(f"labeler: {describe_labeler(labeler)}", err=True)


def register(app: typer.Typer) -> None:
    app.command("label")(label)
