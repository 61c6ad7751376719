"""`refusaldata report`: the comparison as a self-contained HTML page plus Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from refusaldata.cli.common import StoreOption, echo, open_store
from refusaldata.cli.compare import (
    BootstrapOption, CapabilitySuiteOption, KOption, LabelerOption, ReferenceOption, SeedOption, SplitOption,
    UnsafeLabelerOption,
)
from refusaldata.report import write_report
from refusaldata.labelers.registry import BEST
from refusaldata.store import DEFAULT_STORE


def report(
    runs: Annotated[list[str] | None, typer.Option(
        "--run", "--runs", help="Runs to report: names, ids, unique prefixes or globs in quotes ('jbb-*'); "
                                "repeatable or comma-separated; in a study the first is the reference (default: "
                                "every labelled run, base, baseline-sft, self-distill, cross-distill, dpo, nca "
                                "first).")] = None,
    output: Annotated[Path, typer.Option(
        "--output", "-o", "--out", help="The HTML file; FILE.md and FILE-*.svg go next to it.")] = Path("report.html"),
    figures: Annotated[Path | None, typer.Option(
        "--figures", help="Also write every figure to this folder as FILE-<figure>.png and .pdf, at print size.",
        show_default=False)] = None,
    labeler: LabelerOption = BEST,
    k: KOption = 5,
    bootstrap: BootstrapOption = 1000,
    seed: SeedOption = 0,
    split: SplitOption = None,
    reference: ReferenceOption = None,
    unsafe_labeler: UnsafeLabelerOption = None,
    capability_suite: CapabilitySuiteOption = "embedded",
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Write the comparison table, the refusal-vs-uniformity, before/after and trade-off charts, top openings.

    Imported runs, or runs without an adapter, are reported as a corpus: every prompt counts,
    per run, per model and per attack, with differences only to a --reference run.
    """
    names = None if runs is None else [name.strip() for value in runs for name in value.split(",") if name.strip()]
    html_path, md_path = write_report(open_store(store), names, output, labeler=labeler, k=k, bootstrap=bootstrap,
                                      seed=seed, split=split.value if split is not None else None,
                                      unsafe_labeler=unsafe_labeler, capability_suite=capability_suite.value,
                                      figures_dir=figures, reference=reference)
    echo(f"wrote {html_path} and {md_path}" + (f", figures in {figures}" if figures is not None else ""))


def register(app: typer.Typer) -> None:
    app.command("report")(report)
