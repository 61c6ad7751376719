"""`refusaldata tables` and `refusaldata doctor`: what the store holds, and what is wrong with it."""

from __future__ import annotations

import typer

from refusaldata.analyst import store_problems, table_summary
from refusaldata.cli.common import FormatOption, OutputFormat, OutputOption, StoreOption, echo, emit, open_store
from refusaldata.store import DEFAULT_STORE, FORMAT_VERSION


def tables(fmt: FormatOption = OutputFormat.table, output: OutputOption = None,
           store: StoreOption = DEFAULT_STORE) -> None:
    """List every table with its row count, file count, size, duplicate keys, ignored files and location."""
    store_ = open_store(store)
    summary = table_summary(store_)
    version = store_.format_version()
    emit(summary, fmt, output, title=f"store {store_.root} (format {version or FORMAT_VERSION})")


def doctor(fmt: FormatOption = OutputFormat.table, output: OutputOption = None,
           store: StoreOption = DEFAULT_STORE) -> None:
    """Check the store: files it ignores, keys stored twice, lost training metrics, orphaned human labels.

    Lost metrics: steps of a finished adapter, or below a run's highest stored step, without a
    train_metrics row. Orphaned: human labels whose response is no longer in responses. Exit 1
    when anything is found.
    """
    store_ = open_store(store)
    problems = store_problems(store_)
    if problems.num_rows == 0:
        echo(f"store {store_.root} (format {store_.format_version() or FORMAT_VERSION}): no problems found")
        return
    emit(problems, fmt, output, title=f"store {store_.root}: {problems.num_rows} problem(s)")
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("tables")(tables)
    app.command("doctor")(doctor)
