"""Options and output shared by the commands.

Text is data: every value and message goes to the terminal as plain text, never as rich
markup (a prompt holding `[/INST]` or a store at `/exp [v2]/store` prints as written),
and control characters are shown escaped so no stored text can move the cursor or
retitle the terminal. Every file a command writes goes through `refusaldata.io`.
"""

from __future__ import annotations

import enum
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import typer

from refusaldata import io
from refusaldata.errors import InputError
from refusaldata.store import STORE_ENV, Store

StoreOption = Annotated[
    str,
    typer.Option("--store", envvar=STORE_ENV, help="Store folder or s3://bucket/prefix (default ./parquet_cache).",
                 show_default=False),
]


def open_store(location: str | Path) -> Store:
    return Store(location)


def choice(name: str, values) -> type[enum.Enum]:
    """An enum of the library's own tuple of fixed values, so --help lists them and a typo
    is a usage error naming the option, with one source of truth for the values."""
    return enum.Enum(name, [(value, value) for value in values], type=str)


def given(ctx: typer.Context, *names: str) -> list[str]:
    """The flags of the parameters `names` that the user set (command line or environment),
    as typed: `--benign` for the off side of `--harmful/--benign`."""
    flags = {}
    for parameter in ctx.command.params:
        off = getattr(parameter, "secondary_opts", None)
        flags[parameter.name] = off[0] if off and ctx.params.get(parameter.name) is False else parameter.opts[0]
    return [flags[name] for name in names
            if getattr(ctx.get_parameter_source(name), "name", "") in ("COMMANDLINE", "ENVIRONMENT")]


def refuse(ctx: typer.Context, names: tuple[str, ...], why: str) -> None:
    """An option given where it does not apply is an error, never silently ignored: `--x <why>`."""
    flags = given(ctx, *names)
    if flags:
        raise InputError(f"{flags[0]} {why}")


class OutputFormat(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="How to print the result.")]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the result to this file instead of stdout.")]

# C0 and C1 control characters (tab and newline kept) and the bidirectional overrides,
# which can rewrite what a terminal shows.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
CELL_CHARS = 2000


def printable(text: str) -> str:
    """`text` with control characters written as escapes (\\x1b, \\u202e)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def echo(message: str, err: bool = False) -> None:
    """Print one message line (control characters escaped): the only way commands print text."""
    typer.echo(printable(str(message)), err=err)


def check_output(path: Path, store: Path | None, option: str, file: bool = True) -> None:
    """Refuse, before any work, an output that cannot be written or lies inside the store.

    Only store writes go into the store: a file written among the tables (an export under
    prompts/dataset=x/) would be read as data by every later command. A file output
    (`file`) must not name a folder, and its folder must exist.
    """
    if io.is_special(path):
        return
    if store is not None:
        root = Path(os.path.realpath(store))
        target = Path(os.path.realpath(path))
        if target == root or root in target.parents:
            raise InputError(f"{option} {path} is inside the store {store}; write it outside the store")
    if file and path.is_dir():
        raise InputError(f"{option} {path} is a folder; give a file name")
    if file and not path.parent.is_dir():
        raise InputError(f"{option} {path}: folder {path.parent} does not exist")


def emit(result: pa.Table, fmt: OutputFormat = OutputFormat.table, output: Path | None = None,
         title: str | None = None, width: int = 200) -> None:
    """Print or write an Arrow table as a plain-text table (`width` columns), CSV, JSON lines or Parquet.

    A file at `output` is written atomically: a failed write leaves the old file as it was.
    """
    if fmt is OutputFormat.parquet:
        if output is None:
            raise InputError("--format parquet needs --output FILE")
        try:
            with io.atomic_path(output, InputError) as path:
                pq.write_table(result, path)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise InputError(f"cannot write {output} as Parquet: {str(exc).splitlines()[0]}") from None
        return
    if fmt is OutputFormat.csv:
        text = _csv_text(result)
    elif fmt is OutputFormat.json:
        text = "".join(json.dumps(_finite(row), default=_json_default, ensure_ascii=False, allow_nan=False) + "\n"
                       for row in result.to_pylist())
    else:
        text = render_table(result, title, width)
    write_output(text, output)


def write_output(text: str, output: Path | None) -> None:
    """`text` to stdout, or to `output` atomically."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        io.write_text(output, text, InputError)


def _csv_field(value: str | None) -> str:
    """RFC 4180 quoting where needed only: a delimiter, quote or line break, or the empty
    string (so it stays distinct from null, which is written as nothing)."""
    if value is None:
        return ""
    if value == "" or any(char in value for char in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv_text(result: pa.Table) -> str:
    """CSV with Arrow's text for every value, quoted only where needed (shell pipelines read it)."""
    flat = _flat(result)
    lines = [",".join(_csv_field(name) for name in flat.column_names)]
    for batch in flat.to_batches(max_chunksize=1 << 16):
        try:
            columns = [pc.cast(column, pa.string()).to_pylist() for column in batch.columns]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(f"cannot write the result as CSV: {str(exc).splitlines()[0]}") from None
        lines.extend(",".join(_csv_field(value) for value in row) for row in zip(*columns))
    return "\n".join(lines) + "\n"


def _finite(value: object) -> object:
    """NaN and infinities as null: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _json_default(value: object) -> str:
    return _blob_text(value) if isinstance(value, bytes) else str(value)


def _blob_text(value: bytes) -> str:
    """Bytes as DuckDB prints a BLOB: printable ASCII kept, every other byte as \\xNN."""
    return "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02X}" for b in value)


def _flat(result: pa.Table) -> pa.Table:
    """Nested columns (lists, structs) as JSON text and binary ones as escaped text, which CSV can hold."""
    for index, field in enumerate(result.schema):
        values = result.column(index).to_pylist()
        if pa.types.is_nested(field.type):
            text = [None if v is None else json.dumps(_finite(v), default=_json_default, ensure_ascii=False)
                    for v in values]
        elif pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type) or \
                pa.types.is_fixed_size_binary(field.type):
            text = [None if v is None else _blob_text(v) for v in values]
        else:
            continue
        result = result.set_column(index, field.name, pa.array(text, pa.string()))
    return result


def _format_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, bytes):
        return _blob_text(value)
    text = printable(str(value))
    if len(text) > CELL_CHARS:
        return f"{text[:CELL_CHARS]}… [+{len(text) - CELL_CHARS} characters; --format csv or json shows all]"
    return text


def render_table(result: pa.Table, title: str | None = None, width: int = 200) -> str:
    """The table as plain text; every cell, header and the title are rich Text, never markup."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=None if title is None else Text(printable(title)), show_lines=False,
                  collapse_padding=width < 200)
    for field in result.schema:
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
        table.add_column(Text(printable(field.name)), justify="right" if numeric else "left", overflow="fold")
    columns = [column.to_pylist() for column in result.columns]  # by position: names may repeat
    for row in zip(*columns):
        table.add_row(*(Text(_format_cell(v)) for v in row))
    with open(os.devnull, "w") as devnull:
        console = Console(width=width, record=True, file=devnull, force_terminal=False, markup=False, emoji=False,
                          highlight=False)
        console.print(table)
    return console.export_text()
