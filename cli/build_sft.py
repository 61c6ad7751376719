"""`refusaldata build-sft`: a self, cross or baseline distillation set for SFT."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from refusaldata.cli.common import StoreOption, echo, open_store, refuse
from refusaldata.distill import (
    DEFAULT_REFUSAL, SetSummary, build_sft, check_export_path, export_set,
)
from refusaldata.labelers.registry import BEST
from refusaldata.store import DEFAULT_STORE


class Mode(str, enum.Enum):
    self = "self"
    cross = "cross"
    baseline = "baseline"


ExportOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", "--export",
                 help="Also write the set to FILE.jsonl or FILE.parquet in TRL's conversational format."),
]
SplitOption = Annotated[str, typer.Option("--split", help="Prompt split to draw from (never test).")]
MaxExamplesOption = Annotated[
    int | None, typer.Option("--max-examples", help="At most N refusal examples, sampled with --seed.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the deterministic sampling.")]
LabelerOption = Annotated[str, typer.Option(
    "--labeler", help="Whose refusal labels decide what counts as a refusal: best (a human verdict where one exists, "
                      "else the default ngram's, else hybrid's, else the rules'), or a labeler's name.")]
ContextRunOption = Annotated[str | None, typer.Option(
    "--context-run", help="Self targets from this run of the same model under a safety context "
                          "(generate --system-prompt/--few-shot): context distillation.")]
BoundaryOption = Annotated[bool, typer.Option(
    "--boundary/--no-boundary",
    help="Add boundary rows: benign look-alikes (the boundary set, XSTest's safe prompts, CoCoNot-contrast) "
         "with a compliant answer, the student's own or else the teacher's.")]
ReplaceOption = Annotated[bool, typer.Option(
    "--replace", help="Rebuild a set of this name built from another student, mode or source (else refused).")]
BoundaryRatioOption = Annotated[float, typer.Option(
    "--boundary-ratio", help="Boundary rows per refusal example (all there are, when fewer).")]


def describe(summary: SetSummary) -> str:
    """One line saying what a build stored."""
    source = f", targets from {summary.source_run}" if summary.source_run else ""
    origin = ("fixed sentence" if summary.mode == "baseline"
              else f"{summary.own_targets} own, {summary.nearest_targets} nearest")
    parts = f"{summary.refusal_examples} refusal ({origin}"
    if summary.table == "sft":
        parts += (f", {summary.correct_refusals} correct refusals) + {summary.retention_examples} retention "
                  f"(of {summary.retention_available} available)")
    else:
        parts += ")"
    if summary.boundary:
        teacher = f"{summary.boundary_from_teacher} answered by the teacher, " if summary.boundary_from_teacher else ""
        parts += f" + {summary.boundary_examples} boundary ({teacher}of {summary.boundary_available} available)"
    return (f"{summary.table} set '{summary.name}': {summary.rows} rows = {parts}; "
            f"mode {summary.mode}, student {summary.student_run}{source}")


def check_boundary(ctx: typer.Context, boundary: bool) -> None:
    """--boundary-ratio sizes the boundary rows; with --no-boundary there are none, so it is refused, not ignored."""
    if not boundary:
        refuse(ctx, ("boundary_ratio",), "does not apply with --no-boundary (no boundary rows are added)")


def build_sft_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the set (a rebuild of the same set replaces it).")],
    student: Annotated[str, typer.Option("--student", help="The run to distill into: id, name or id prefix.")],
    mode: Annotated[Mode, typer.Option("--mode", help="Where refusal targets come from.")],
    teacher: Annotated[str | None, typer.Option("--teacher", help="Teacher run for --mode cross.")] = None,
    context_run: ContextRunOption = None,
    retention_ratio: Annotated[float, typer.Option(
        "--retention-ratio", help="Benign retention examples per refusal example.")] = 1.0,
    retention_datasets: Annotated[str | None, typer.Option(
        "--retention-datasets", help="Comma-separated benign datasets to draw retention from (default: all).")] = None,
    include_correct_refusals: Annotated[bool, typer.Option(
        "--include-correct-refusals", help="Also train on prompts the student already refused.")] = False,
    boundary: BoundaryOption = True,
    boundary_ratio: BoundaryRatioOption = 1.0,
    split: SplitOption = "train",
    max_examples: MaxExamplesOption = None,
    seed: SeedOption = 0,
    refusal_text: Annotated[str | None, typer.Option(
        "--refusal-text", help=f"The fixed target of --mode baseline (default: \"{DEFAULT_REFUSAL}\").")] = None,
    output: ExportOption = None,
    labeler: LabelerOption = BEST,
    replace: ReplaceOption = False,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Build an SFT set: refusal targets for the harmful prompts a student complied with, plus retention
    and boundary rows.

    Retention: benign prompts the student answered, with its own answers, spread evenly over
    the benign datasets it answered (benign-controls, ...). Boundary: benign look-alikes (safe
    requests with risky words) with a compliant answer, so the student learns where the line is.
    """
    check_boundary(ctx, boundary)
    if output is not None:
        check_export_path(output)
    store_ = open_store(store)
    summary = build_sft(store_, name, student, mode.value, teacher=teacher, retention_ratio=retention_ratio,
                        include_correct_refusals=include_correct_refusals, split=split,
                        max_examples=max_examples, seed=seed, refusal_text=refusal_text, labeler=labeler,
                        context_run=context_run, boundary=boundary, boundary_ratio=boundary_ratio, replace=replace,
                        benign_datasets=None if retention_datasets is None else
                        [name.strip() for name in retention_datasets.split(",") if name.strip()])
    echo(describe(summary))
    if output is not None:
        echo(f"exported {export_set(store_, name, output, 'sft')} rows to {output}")


def register(app: typer.Typer) -> None:
    app.command("build-sft")(build_sft_command)
