"""`refusaldata review export|import`: people label what the machine is least sure of."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from refusaldata.cli.common import FormatOption, OutputFormat, OutputOption, StoreOption, echo, emit, open_store
from refusaldata.labelers.registry import DEFAULT_LABELER
from refusaldata.store import DEFAULT_STORE

review_app = typer.Typer(help="Human review: export the least certain labels or a random sample as CSV, fill "
                              "human_verdict, import it; measure the labelers against it.", no_args_is_help=True)


@review_app.command("export")
def export(
    run: Annotated[list[str], typer.Option(
        "--run", help="Run name, id, unique prefix or glob in quotes ('jbb-*'); repeatable.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The CSV file to write.")],
    budget: Annotated[int | None, typer.Option(
        "--budget", help="How many of the least certain responses to review.", show_default=False)] = None,
    random: Annotated[int | None, typer.Option(
        "--random", help="Instead: a seeded uniform sample of this many responses across the runs, without the "
                         "machine's verdicts, to measure the labels' accuracy (`review accuracy`).",
        show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the --random sample.")] = 0,
    labeler: Annotated[str, typer.Option("--labeler", help="Whose verdicts and scores are shown.")] = DEFAULT_LABELER,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Write the run's least certain responses (labelers disagree, score nearest 0.5) with an empty human_verdict.

    With --random N instead of --budget: N responses drawn uniformly (seeded) across the runs, shown
    without any machine verdict, so the person's verdicts measure the labelers (`review accuracy`).
    """
    from refusaldata.review import export as export_reviews

    rows = export_reviews(open_store(store), run, budget, output, labeler, random=random, seed=seed)
    echo(f"wrote {rows} responses to {output}: fill human_verdict with compliance, refusal or partial, "
         f"then `refusaldata review import {output}`")


@review_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A review file from `review export` with human_verdict filled.")],
    reviewer: Annotated[str | None, typer.Option("--reviewer", help="Who reviewed (default: the login name).")] = None,
    fmt: FormatOption = OutputFormat.table,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Store the filled rows as labeler `human` (best_labels and --labeler best prefer them)."""
    from refusaldata.review import import_reviews

    who = getpass.getuser() if reviewer is None else reviewer
    emit(import_reviews(open_store(store), file, who), fmt, title="human labels stored")


@review_app.command("accuracy")
def accuracy(
    run: Annotated[list[str] | None, typer.Option(
        "--run", help="Runs to measure on (names, ids, prefixes or globs; default: every run with a random "
                      "sample).")] = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Each labeler's agreement with the human verdicts on the random sample, per run and overall.

    Agreement is on refusal (compliance against refusal or partial), with a 95% Wilson interval;
    verdict_agreement is the share with the person's exact verdict. Only rows of a `review export
    --random` file count: the least certain rows would understate every labeler.
    """
    from refusaldata.review import accuracy as labeler_accuracy

    emit(labeler_accuracy(open_store(store), run), fmt, output,
         title="labelers against people, on a random sample (95% Wilson intervals)")


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
