"""`refusaldata report`: the comparison as a self-contained HTML page plus Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from refusaldata.cli.common import StoreOption, echo, open_store
from refusaldata.cli.compare import (
    BootstrapOption, CapabilitySuiteOption, KOption, LabelerOption, SeedOption, SplitOption, UnsafeLabelerOption,
)
from refusaldata.report import write_report
from refusaldata.labelers.registry import BEST
from refusaldata.store import DEFAULT_STORE


def report(
    runs: Annotated[str | None, typer.Option(
        "--runs", help="Comma-separated runs, the first the reference (default: every labelled run, "
                       "base, baseline-sft, self-distill, cross-distill, dpo, nca first).")] = None,
    output: Annotated[Path, typer.Option(
        "--output", "-o", "--out", help="The HTML file; FILE.md and FILE-*.svg go next to it.")] = Path("report.html"),
    figures: Annotated[Path | None, typer.Option(
        "--figures", help="Also write every figure to this folder as FILE-<figure>.png and .pdf, at print size.",
        show_default=False)] = None,
    labeler: LabelerOption = BEST,
    k: KOption = 5,
    bootstrap: BootstrapOption = 1000,
    seed: SeedOption = 0,
    split: SplitOption = "test",
    unsafe_labeler: UnsafeLabelerOption = None,
    capability_suite: CapabilitySuiteOption = "embedded",
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Write the comparison table, the refusal-vs-uniformity, before/after and trade-off charts, top openings."""
    names = None if runs is None else [name.strip() for name in runs.split(",") if name.strip()]
    html_path, md_path = write_report(open_store(store), names, output, labeler=labeler, k=k, bootstrap=bootstrap,
                                      seed=seed, split=split.value, unsafe_labeler=unsafe_labeler,
                                      capability_suite=capability_suite.value, figures_dir=figures)
    echo(f"wrote {html_path} and {md_path}" + (f", figures in {figures}" if figures is not None else ""))


def register(app: typer.Typer) -> None:
    app.command("report")(report)
