"""`refusaldata runs`: every run of the store, with what names it and where it came from."""

from __future__ import annotations

from typing import Annotated

import typer

from refusaldata.cli.common import FormatOption, OutputFormat, OutputOption, StoreOption, emit, open_store
from refusaldata.store import DEFAULT_STORE


def runs(
    refs: Annotated[list[str] | None, typer.Argument(
        help="Only these runs: names, ids, unique prefixes or globs in quotes (default: every run).",
        show_default=False)] = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Every run: name, id, model, adapter, source (generated or imported, from what), responses, labelers, created.

    Wherever a command takes runs (--run, compare RUNS, report --run), a name, a unique prefix
    of an id or name, or a glob in quotes ('import-*', 'jbb-*vicuna*') selects them; given here,
    they show what they select.
    """
    from refusaldata.runs import list_runs

    store_ = open_store(store)
    emit(list_runs(store_, refs), fmt, output, title=f"runs in {store_.root}")


def register(app) -> None:
    app.command("runs")(runs)
