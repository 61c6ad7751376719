"""`refusaldata sql`: run SQL over the store's views."""

from __future__ import annotations

from typing import Annotated

import typer

from refusaldata.analyst import run_sql
from refusaldata.cli.common import FormatOption, OutputFormat, OutputOption, StoreOption, emit, open_store
from refusaldata.store import DEFAULT_STORE


def sql(
    query: Annotated[str, typer.Argument(help="SQL over the views prompts, runs, responses, labels, ...")],
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    write: Annotated[bool, typer.Option(
        "--write", help="Allow statements that write (COPY, CREATE, ...) and files outside the store.")] = False,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Run SQL over the store (read-only unless --write) and print the last statement's result."""
    emit(run_sql(open_store(store), query, allow_write=write), fmt, output)


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)
