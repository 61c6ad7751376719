"""`refusaldata review export|import`: people label what the machine is least sure of."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from refusaldata.cli.common import FormatOption, OutputFormat, StoreOption, echo, emit, open_store
from refusaldata.labelers.registry import DEFAULT_LABELER
from refusaldata.store import DEFAULT_STORE

review_app = typer.Typer(help="Human review: export the least certain labels as CSV, fill human_verdict, import it.",
                         no_args_is_help=True)


@review_app.command("export")
def export(
    run: Annotated[str, typer.Option("--run", help="Run id, name or id prefix.")],
    budget: Annotated[int, typer.Option("--budget", help="How many responses to review.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The CSV file to write.")],
    labeler: Annotated[str, typer.Option("--labeler", help="Whose verdicts and scores are shown.")] = DEFAULT_LABELER,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Write the run's least certain responses (labelers disagree, score nearest 0.5) with an empty human_verdict."""
    from refusaldata.review import export as export_reviews

    rows = export_reviews(open_store(store), run, budget, output, labeler)
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


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
