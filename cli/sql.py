"""`refusaldata sql`: run SQL over the store's views."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from refusaldata.analyst import duckdb_setup, run_sql
from refusaldata.cli.common import (
    FormatOption, OutputFormat, OutputOption, StoreOption, emit, given, open_store, write_output,
)
from refusaldata.errors import InputError
from refusaldata.store import DEFAULT_STORE


def sql(
    ctx: typer.Context,
    query: Annotated[str | None, typer.Argument(
        help="SQL over the views prompts, runs, responses, labels, ... ('-': read it from stdin). A query may "
             "open with a -- comment.", show_default=False)] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", help="Read the SQL from this file instead.", show_default=False)] = None,
    print_setup: Annotated[bool, typer.Option(
        "--print-setup", help="Print SQL that gives the DuckDB CLI the same views and macros, and run nothing "
                              "(duckdb -init FILE, or .read FILE).")] = False,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    write: Annotated[bool, typer.Option(
        "--write", help="Allow statements that write (COPY, CREATE, ...) and files outside the store.")] = False,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Run SQL over the store (read-only unless --write) and print the last statement's result."""
    if print_setup:
        refused = given(ctx, "file", "fmt", "write") + (["QUERY"] if query is not None else [])
        if refused:
            raise InputError(f"{refused[0]} does not apply to --print-setup (it prints the set-up and runs nothing)")
        write_output(duckdb_setup(open_store(store)), output)
        return
    emit(run_sql(open_store(store), _query_text(query, file), allow_write=write), fmt, output)


sql.TEXT_FLAGS = ("print_setup",)  # -o FILE takes the set-up as it is, whatever its extension


def _query_text(query: str | None, file: Path | None) -> str:
    """The SQL from the argument, stdin (`-`) or --file: exactly one of them."""
    if file is not None and query is not None:
        raise InputError("give the SQL as QUERY or --file, not both")
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"--file {file}: no such file") from None
        except UnicodeDecodeError:
            raise InputError(f"--file {file}: not UTF-8 text") from None
        where = f"--file {file}"
    elif query == "-":
        text, where = sys.stdin.read(), "stdin"
    elif query is None:
        raise InputError("give the SQL to run: QUERY, - (stdin) or --file FILE (see `refusaldata sql --help`)")
    else:
        return query
    if not text.strip():
        raise InputError(f"{where} holds no SQL")
    return text


def register(app: typer.Typer) -> None:
    # A query that opens with a comment ("-- rates\nSELECT ...") starts like an option:
    # unknown options are taken as the QUERY argument instead of refused.
    app.command("sql", context_settings={"ignore_unknown_options": True})(sql)
