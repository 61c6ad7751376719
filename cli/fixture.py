"""`refusaldata fixture export`: a small store sampled from runs, for a repository's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from refusaldata.cli.common import StoreOption, echo, open_store
from refusaldata.fixture import export_fixture
from refusaldata.labelers.registry import BEST
from refusaldata.store import DEFAULT_STORE

app = typer.Typer(help="Fixtures: small stores sampled from runs, for tests and CI (the folder is a store).",
                  no_args_is_help=True)


def export(
    run: Annotated[list[str], typer.Option(
        "--run", help="A run to export (id, name, unique prefix or glob); repeat for several.", show_default=False)],
    sample: Annotated[int, typer.Option(
        "--sample", help="Prompts to sample from those every run answered (all of them when fewer).",
        show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder for the fixture store: new (parent folders are made) or empty, outside the "
                            "source store.",
        show_default=False)],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample.")] = 0,
    labeler: Annotated[str, typer.Option(
        "--labeler", help="Whose refusal verdicts stratify the sample: best, or a labeler's name (every labeler's "
                          "labels are exported).")] = BEST,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Replace the fixture store already at --out (a folder holding anything else is "
                          "refused).")] = False,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Write a self-contained store of the runs on a stratified sample of the prompts they all answered.

    It holds the runs' rows, their responses to the sampled prompts, those prompts and every
    labeler's verdicts on those responses; every command reads it as it is (`--store DIR`).
    The sample is stratified by harmful or benign and by each run's refusal verdict, so the
    fixture keeps the runs' rates and how often they disagree; the same store, runs and
    --seed give the same fixture.
    """
    summary = export_fixture(open_store(store), run, out, sample=sample, seed=seed, labeler=labeler,
                             replace=replace)
    echo(f"wrote {summary.root}: {len(summary.runs)} run(s) on {summary.prompts} of the {summary.shared_prompts} "
         f"prompts they share ({summary.harmful} harmful), "
         f"{summary.responses} responses, {summary.labels} labels")


app.command("export")(export)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="fixture")
