"""`refusaldata build-pairs`: chosen refusal vs. the student's compliant answer, for DPO-family losses."""

from __future__ import annotations

from typing import Annotated

import typer

from refusaldata.cli.build_sft import (
    BoundaryOption, BoundaryRatioOption, ContextRunOption, ExportOption, LabelerOption, MaxExamplesOption,
    ReplaceOption, SeedOption, SplitOption, check_boundary, describe,
)
from refusaldata.cli.common import StoreOption, echo, open_store
from refusaldata.distill import build_pairs, check_export_path, export_set
from refusaldata.labelers.registry import BEST
from refusaldata.store import DEFAULT_STORE


def build_pairs_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the set (a rebuild of the same set replaces it).")],
    student: Annotated[str, typer.Option("--student", help="The run to align: id, name or id prefix.")],
    teacher: Annotated[str | None, typer.Option(
        "--teacher", help="Take chosen refusals from this run (cross).")] = None,
    refusal_text: Annotated[str | None, typer.Option(
        "--refusal-text", help="Use this fixed refusal as chosen (baseline).")] = None,
    context_run: ContextRunOption = None,
    boundary: BoundaryOption = True,
    boundary_ratio: BoundaryRatioOption = 1.0,
    split: SplitOption = "train",
    max_examples: MaxExamplesOption = None,
    seed: SeedOption = 0,
    output: ExportOption = None,
    labeler: LabelerOption = BEST,
    replace: ReplaceOption = False,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Build preference pairs: chosen = a refusal target, rejected = the student's compliant answer.

    With --teacher the chosen refusal comes from the teacher (cross), with --refusal-text it
    is that sentence (baseline), and with neither from the student's own refusals (self), or
    from those of --context-run, the same model under a safety context. Boundary pairs: on a
    benign look-alike, chosen = a compliant answer, rejected = the refusal this set gives the
    most similar harmful prompt, so the loss learns both directions.
    """
    check_boundary(ctx, boundary)
    if output is not None:
        check_export_path(output)
    store_ = open_store(store)
    summary = build_pairs(store_, name, student, teacher=teacher, refusal_text=refusal_text, split=split,
                          max_examples=max_examples, seed=seed, labeler=labeler, context_run=context_run,
                          boundary=boundary, boundary_ratio=boundary_ratio, replace=replace)
    echo(describe(summary))
    if output is not None:
        echo(f"exported {export_set(store_, name, output, 'pairs')} rows to {output}")


def register(app: typer.Typer) -> None:
    app.command("build-pairs")(build_pairs_command)
