"""`refusaldata quickstart`: the whole study on the embedded default, end to end."""

from __future__ import annotations

from typing import Annotated

import typer

from refusaldata.cli.common import StoreOption, choice, echo, open_store, write_output
from refusaldata.cli.compare import comparison_text
from refusaldata.generate import BACKENDS
from refusaldata.store import DEFAULT_STORE

# The local backends: the study trains adapters and serves them itself (QUICKSTART_BACKENDS).
Backend = choice("Backend", tuple(name for name in BACKENDS if name != "openai"))


def quickstart(
    fast: Annotated[bool, typer.Option(
        "--fast", help="Shorter answers and fewer training steps (a few minutes).")] = False,
    backend: Annotated[Backend, typer.Option(
        "--backend", help="auto: vllm on a CUDA GPU (where installed), else transformers.")] = "auto",
    boundary: Annotated[bool, typer.Option(
        "--boundary/--no-boundary",
        help="Give every set boundary rows: the shipped look-alikes (safe requests with risky words) with the "
             "student's compliant answers.")] = True,
    boundary_ablation: Annotated[bool, typer.Option(
        "--boundary-ablation",
        help="Also train every method without boundary rows (runs named METHOD-no-boundary), so the report "
             "shows what the look-alikes change, as paired differences with intervals.")] = False,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Import, generate, label, mine, distill, train, regenerate, compare and report, on SmolLM2-135M-Instruct."""
    from refusaldata.quickstart import run  # torch loads only when the study runs

    result = run(open_store(store), fast=fast, backend=backend.value, log=lambda line: echo(line, err=True),
                 boundary=boundary, boundary_ablation=boundary_ablation)
    write_output(comparison_text(result.comparison, "refusal before and after, per method (95% bootstrap CIs)"),
                 None)
    for method, reason in result.skipped.items():
        echo(f"{method}: skipped: {reason}")
    echo(f"report: {result.report_html} and {result.report_md}")
    echo(f"quickstart finished in {result.seconds / 60:.1f} minutes")


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
