"""`refusaldata quickstart`: the whole study on the embedded default, end to end."""

from __future__ import annotations

from typing import Annotated

import typer

from refusaldata.cli.common import StoreOption, echo, emit, open_store
from refusaldata.evaluate import format_comparison
from refusaldata.store import DEFAULT_STORE


def quickstart(
    fast: Annotated[bool, typer.Option(
        "--fast", help="Shorter answers and fewer training steps (a few minutes).")] = False,
    backend: Annotated[str, typer.Option("--backend", help="auto (vllm if installed), vllm or transformers.")] = "auto",
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Import, generate, label, mine, distill, train, regenerate, compare and report, on SmolLM2-135M-Instruct."""
    from refusaldata.quickstart import run  # torch loads only when the study runs

    result = run(open_store(store), fast=fast, backend=backend, log=lambda line: echo(line, err=True))
    emit(format_comparison(result.comparison), title="refusal before and after, per method (95% bootstrap CIs)")
    for method, reason in result.skipped.items():
        echo(f"{method}: skipped: {reason}")
    echo(f"report: {result.report_html} and {result.report_md}")
    echo(f"quickstart finished in {result.seconds / 60:.1f} minutes")


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
