"""Options and output shared by the commands."""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer

from refusaldata.errors import InputError
from refusaldata.store import DEFAULT_STORE, STORE_ENV, Store

StoreOption = Annotated[
    str,
    typer.Option("--store", envvar=STORE_ENV, help="Store folder or s3://bucket/prefix (default ./parquet_cache).",
                 show_default=False),
]


def open_store(location: str | Path) -> Store:
    return Store(location)


class OutputFormat(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="How to print the result.")]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the result to this file instead of stdout.")]


def emit(result: pa.Table, fmt: OutputFormat = OutputFormat.table, output: Path | None = None,
         title: str | None = None) -> None:
    """Print or write an Arrow table as a rich table, CSV, JSON lines or Parquet."""
    if fmt is OutputFormat.parquet:
        if output is None:
            raise InputError("--format parquet needs --output FILE")
        pq.write_table(result, output)
        return
    if fmt is OutputFormat.csv:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(_flat(result), sink)
        text = sink.getvalue().to_pybytes().decode("utf-8")
    elif fmt is OutputFormat.json:
        text = "".join(json.dumps(row, default=str, ensure_ascii=False) + "\n" for row in result.to_pylist())
    else:
        text = _render_table(result, title)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {output}: {exc.strerror}") from None


def _flat(result: pa.Table) -> pa.Table:
    """Nested columns (lists, structs) as JSON text, which CSV can hold."""
    for index, field in enumerate(result.schema):
        if pa.types.is_nested(field.type):
            text = pa.array([None if v is None else json.dumps(v, default=str, ensure_ascii=False)
                             for v in result.column(index).to_pylist()], pa.string())
            result = result.set_column(index, field.name, text)
    return result


def _format_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _render_table(result: pa.Table, title: str | None) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for field in result.schema:
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
        table.add_column(field.name, justify="right" if numeric else "left", overflow="fold")
    columns = [column.to_pylist() for column in result.columns]  # by position: names may repeat
    for row in zip(*columns):
        table.add_row(*(_format_cell(v) for v in row))
    console = Console(width=200, record=True, file=open("/dev/null", "w"), force_terminal=False)
    console.print(table)
    return console.export_text()
