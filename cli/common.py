"""Options and output shared by the commands.

Text is data: every value and message goes to the terminal as plain text, never as rich
markup (a prompt holding `[/INST]` or a store at `/exp [v2]/store` prints as written),
and control characters are shown escaped so no stored text can move the cursor or
retitle the terminal. Every file a command writes goes through `refusaldata.io`.
"""

from __future__ import annotations

import contextvars
import enum
import functools
import inspect
import json
import math
import os
import re
import shutil
import sys
import typing
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer

from refusaldata import io
from refusaldata.errors import InputError
from refusaldata.escape import markdown_text
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
    jsonl = "jsonl"
    parquet = "parquet"
    md = "md"


# What `-o FILE` writes when --format is not given, by FILE's extension.
EXTENSIONS = {".csv": OutputFormat.csv, ".json": OutputFormat.json, ".jsonl": OutputFormat.jsonl,
              ".ndjson": OutputFormat.jsonl, ".parquet": OutputFormat.parquet, ".md": OutputFormat.md,
              ".txt": OutputFormat.table}

FormatOption = Annotated[OutputFormat, typer.Option(
    "--format", "-f", help="How to print the result: table (fits the terminal), csv, json (one array), jsonl "
                           "(a JSON object per line), parquet or md (Markdown). Default: from -o FILE's extension, "
                           "else table.", show_default=False)]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the result to this file instead of stdout.")]
AllColumnsOption = Annotated[bool, typer.Option(
    "--all-columns", help="Table format: also show columns that are empty in every row.")]
IdsOption = Annotated[bool, typer.Option(
    "--ids", help="Table format: show ids (run_id, ...) beside the names that stand for them.")]


@dataclass(frozen=True)
class TableOptions:
    all_columns: bool = False
    ids: bool = False


_TABLE_OPTIONS: contextvars.ContextVar[TableOptions | None] = contextvars.ContextVar("table_options", default=None)


def output_format(fmt: OutputFormat | None, output: Path | None) -> OutputFormat:
    """The format asked for; else the one `output`'s extension names; else the table."""
    if fmt is not None:
        return fmt
    if output is None:
        return OutputFormat.table
    found = EXTENSIONS.get(output.suffix.lower())
    if found is None:
        known = " ".join(EXTENSIONS)
        raise InputError(f"--output {output}: cannot tell the format from "
                         f"{repr(output.suffix) if output.suffix else 'a name without an extension'}; "
                         f"name it with one of {known} or give --format")
    return found


def with_output_options(callback):
    """Give a command that prints a result (its `fmt` parameter) the shared output behaviour.

    Its --format defaults to -o FILE's extension (else table), and it gains --all-columns and
    --ids, which the table format reads: one place, so every table command behaves alike. A
    command whose flag makes it write other text (`sql --print-setup`) names the flag in the
    function attribute TEXT_FLAGS.
    """
    signature = inspect.signature(callback, eval_str=True)
    fmt = signature.parameters.get("fmt")
    if fmt is None or OutputFormat not in typing.get_args(fmt.annotation) or "all_columns" in signature.parameters:
        return callback  # not the shared --format (responses import's fmt is what it reads)

    @functools.wraps(callback)
    def run(*args, all_columns: bool = False, ids: bool = False, **kwargs):
        # Decided before any work, so a bad -o FILE fails before the command stores anything;
        # not where a flag of the command's TEXT_FLAGS makes it write text of its own.
        if not any(kwargs.get(flag) for flag in getattr(callback, "TEXT_FLAGS", ())):
            kwargs["fmt"] = output_format(kwargs.get("fmt"), kwargs.get("output"))
        token = _TABLE_OPTIONS.set(TableOptions(all_columns, ids))
        try:
            return callback(*args, **kwargs)
        finally:
            _TABLE_OPTIONS.reset(token)

    parameters = [parameter.replace(default=None) if name == "fmt" else parameter
                  for name, parameter in signature.parameters.items()]
    parameters += [inspect.Parameter("all_columns", inspect.Parameter.KEYWORD_ONLY, default=False,
                                     annotation=AllColumnsOption),
                   inspect.Parameter("ids", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=IdsOption)]
    run.__signature__ = signature.replace(parameters=parameters)
    run.__annotations__ = {**{name: parameter.annotation for name, parameter in signature.parameters.items()},
                           "all_columns": AllColumnsOption, "ids": IdsOption}
    return run

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


def emit(result: pa.Table, fmt: OutputFormat | None = OutputFormat.table, output: Path | None = None,
         title: str | None = None, width: int | None = None) -> None:
    """Print or write an Arrow table as a table fitting `width` columns (default: the terminal's),
    CSV, one JSON array, JSON Lines, Parquet or Markdown.

    A file at `output` is written atomically: a failed write leaves the old file as it was.
    """
    fmt = output_format(fmt, output)
    if fmt is OutputFormat.parquet:
        if output is None:
            raise InputError("--format parquet needs --output FILE")
        import pyarrow.parquet as pq

        try:
            with io.atomic_path(output, InputError) as path:
                pq.write_table(result, path)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise InputError(f"cannot write {output} as Parquet: {str(exc).splitlines()[0]}") from None
        return
    if fmt is OutputFormat.csv:
        text = _csv_text(result)
    elif fmt is OutputFormat.json:
        rows = [json.dumps(_finite(row), default=_json_default, ensure_ascii=False, allow_nan=False)
                for row in result.to_pylist()]
        text = "[" + ",\n ".join(rows) + "]\n"
    elif fmt is OutputFormat.jsonl:
        text = "".join(json.dumps(_finite(row), default=_json_default, ensure_ascii=False, allow_nan=False) + "\n"
                       for row in result.to_pylist())
    elif fmt is OutputFormat.md:
        text = _markdown_text(result)
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
    import pyarrow.compute as pc  # here: slow to import, and only CSV needs it

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


def terminal_width() -> int:
    """Columns the table format fits: COLUMNS, else the terminal's width, else 200 (a file or pipe)."""
    return max(20, shutil.get_terminal_size((200, 24)).columns)


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _text_width(text: str) -> int:
    return sum(_char_width(char) for char in text) if not text.isascii() else len(text)


def _fold(word: str, width: int) -> list[str]:
    """A word longer than `width` cut into pieces that fit."""
    pieces, piece, used = [], "", 0
    for char in word:
        size = _char_width(char)
        if piece and used + size > width:
            pieces.append(piece)
            piece, used = "", 0
        piece += char
        used += size
    return [*pieces, piece]


def _wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` columns, broken between words where one fits."""
    lines = []
    for paragraph in text.split("\n"):
        line, used = "", 0
        for word in paragraph.split(" "):
            size = _text_width(word)
            if line and used + 1 + size <= width:
                line, used = f"{line} {word}", used + 1 + size
                continue
            if line or used:
                lines.append(line)
            if size > width:
                *full, word = _fold(word, width)
                lines.extend(full)
                size = _text_width(word)
            line, used = word, size
        lines.append(line)
    return lines


def _header_parts(name: str) -> list[list[str]]:
    """A header's words, each cut after its underscores (where snake_case may break)."""
    return [re.split(r"(?<=_)(?=.)", word) for word in name.split()] or [[""]]


def _wrap_header(name: str, width: int) -> list[str]:
    """A header in lines of at most `width`, broken only between words or after an underscore."""
    lines, line = [], ""
    for word in _header_parts(name):
        for index, part in enumerate(word):
            glue = "" if index or not line else " "
            if line and _text_width(line + glue + part) > width:
                lines.append(line)
                line, glue = "", ""
            line += glue + part
    return [*lines, line]


def _pad(text: str, width: int, right: bool) -> str:
    space = " " * (width - _text_width(text))
    return space + text if right else text + space


# Box characters of the table (heavy header, light body).
_TOP, _HEAD_RULE, _BOTTOM = ("┏", "━", "┳", "┓"), ("┡", "━", "╇", "┩"), ("└", "─", "┴", "┘")
# A text column narrower than this would wrap most values into many short lines.
_MIN_TEXT_WIDTH = 12


def _numeric(arrow_type: pa.DataType) -> bool:
    """Right-aligned: integers, floats and decimals."""
    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type)


def _id_columns(names: list[str]) -> set[str]:
    """Id columns a table also carries as a name (`run_id` beside `run_name`): hidden unless --ids."""
    return {name for name in names if name.endswith("_id") and f"{name[:-3]}_name" in names}


def render_table(result: pa.Table, title: str | None = None, width: int | None = None) -> str:
    """The table as plain text fitting `width` columns (at most the terminal's, its default).

    Text cells wrap between words; a header never breaks inside a word. Columns empty in
    every row are hidden (--all-columns shows them), as are ids shown by name as well (--ids
    shows them); when even the narrowest layout is too wide, the columns on the right are
    left out and a line below names them.
    """
    options = _TABLE_OPTIONS.get() or TableOptions()
    width = terminal_width() if width is None else min(width, terminal_width())
    names = [printable(name) for name in result.column_names]
    cells = [[_format_cell(value) for value in column.to_pylist()] for column in result.columns]
    numeric = [_numeric(field.type) for field in result.schema]
    keep = list(range(len(names)))
    notes = []
    if not options.ids:
        hidden = _id_columns(names)
        keep = [index for index in keep if names[index] not in hidden]
    if not options.all_columns and result.num_rows:
        empty = [index for index in keep if not any(cells[index])]
        if empty and len(empty) < len(keep):
            keep = [index for index in keep if index not in empty]
            notes.append(f"{len(empty)} column{'s' if len(empty) > 1 else ''} empty in every row not shown "
                         f"({', '.join(names[i] for i in empty)}; --all-columns shows them)")
    natural = {i: max([_text_width(names[i])] + [max(map(_text_width, c.split("\n"))) for c in cells[i]])
               for i in keep}
    header = {i: max(_text_width(part) for word in _header_parts(names[i]) for part in word) for i in keep}
    value = {i: max([1] + [max(map(_text_width, c.split("\n"))) for c in cells[i]]) for i in keep}
    least = {i: max(header[i], value[i] if numeric[i] else min(value[i], _MIN_TEXT_WIDTH)) for i in keep}
    if keep and not numeric[keep[0]]:  # the first column names the row: room for it before more columns
        least[keep[0]] = max(least[keep[0]], min(value[keep[0]], width // 3))
    # Each cell is padded by a space on both sides; when the columns do not fit at their
    # natural widths that way, the left space goes (but the first column's), before any wraps.
    collapsed = sum(natural[i] + 3 for i in keep) + 1 > width

    def overhead(count: int) -> int:
        return 2 * count + 2 if collapsed else 3 * count + 1

    left_out = []
    while len(keep) > 1 and sum(least[i] for i in keep) + overhead(len(keep)) > width:
        left_out.insert(0, keep.pop())
    if left_out:
        notes.append(f"{len(left_out)} more column{'s' if len(left_out) > 1 else ''} not shown to fit "
                     f"{width} characters ({', '.join(names[i] for i in left_out)}); a wider terminal (COLUMNS), "
                     "--format csv or json shows every column")
    widths = _fit({i: natural[i] for i in keep}, least, width - overhead(len(keep)))
    lines = []
    total = sum(widths.values()) + overhead(len(keep))
    if title:
        lines += [_pad(" " * max(0, (total - _text_width(line)) // 2) + line, total, False).rstrip()
                  for line in _wrap(printable(title), total)]
    left = {i: " " if not collapsed or i == keep[0] else "" for i in keep}

    def rule(chars: tuple[str, str, str, str]) -> str:
        return chars[0] + chars[2].join(chars[1] * (widths[i] + 1 + len(left[i])) for i in keep) + chars[3]

    def row(texts: list[str], edge: str, wrap=_wrap) -> list[str]:
        wrapped = {i: wrap(text, widths[i]) for i, text in zip(keep, texts)}
        height = max(len(w) for w in wrapped.values())
        def cell(i: int, n: int) -> str:
            return f"{left[i]}{_pad(wrapped[i][n] if n < len(wrapped[i]) else '', widths[i], numeric[i])} "

        return [edge + edge.join(cell(i, n) for i in keep) + edge for n in range(height)]

    lines.append(rule(_TOP))
    lines += row([names[i] for i in keep], "┃", _wrap_header)
    lines.append(rule(_HEAD_RULE))
    for index in range(result.num_rows):
        lines += row([cells[i][index] for i in keep], "│")
    lines.append(rule(_BOTTOM))
    for note in notes:
        lines += _wrap(note, width)
    return "\n".join(lines) + "\n"


def _fit(natural: dict[int, int], least: dict[int, int], room: int) -> dict[int, int]:
    """Column widths within `room`: every column its natural width if all fit, else the widest
    ones capped at one common width (never below a column's least)."""
    if sum(natural.values()) <= room:
        return dict(natural)
    low, high = 0, max(natural.values())
    while low < high:  # the largest cap at which the columns fit
        cap = (low + high + 1) // 2
        if sum(max(least[i], min(natural[i], cap)) for i in natural) <= room:
            low = cap
        else:
            high = cap - 1
    widths = {i: max(least[i], min(natural[i], low)) for i in natural}
    spare = room - sum(widths.values())
    for i in sorted(natural, key=lambda i: natural[i] - widths[i], reverse=True):  # hand out what is left
        extra = min(spare, natural[i] - widths[i])
        widths[i] += extra
        spare -= extra
    return widths


def _markdown_cell(value: object) -> str:
    """A cell as Markdown text (refusaldata.escape.markdown_text, the report's escape too), lines as <br>."""
    text = _format_cell(value) if not isinstance(value, str) else printable(value)
    return "<br>".join(markdown_text(line) for line in text.replace("\r\n", "\n").split("\n"))


def _markdown_text(result: pa.Table) -> str:
    """The table as a Markdown (GFM) table, numbers right-aligned, every value escaped."""
    flat = _flat(result)
    numeric = [_numeric(field.type) for field in flat.schema]
    lines = ["| " + " | ".join(_markdown_cell(name) for name in flat.column_names) + " |",
             "|" + "|".join("---:" if right else "---" for right in numeric) + "|"]
    columns = [column.to_pylist() for column in flat.columns]
    lines += ["| " + " | ".join("" if value is None else _markdown_cell(value) for value in row) + " |"
              for row in zip(*columns)]
    return "\n".join(lines) + "\n"
