"""The Typer app: registers every command and turns library errors into one-line messages."""

from __future__ import annotations

import functools
import logging
import os
import sys

import duckdb
import typer
from typer.exceptions import TyperException

from refusaldata.errors import RefusalDataError, shorten_quoted

from refusaldata.cli import (
    build_pairs, build_sft, compare, evaluate, generate, judge, label, mine, prompts, quickstart, report,
    responses, review, sets, sql, tables, train,
)

app = typer.Typer(
    name="refusaldata",
    help="Study and align how language models refuse harmful requests, over a Parquet store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (prompts, generate, responses, label, review, mine, build_sft, build_pairs, sets, train,
               judge, compare, evaluate, report, quickstart, sql, tables):
    module.register(app)


class _NoticeLines(logging.Handler):
    """The library's notices (a store upgraded, files it ignores) as one stderr line each."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "Note" if record.levelno < logging.WARNING else "Warning"
        typer.echo(f"{prefix}: {' '.join(record.getMessage().split())}", err=True)


_library_log = logging.getLogger("refusaldata")
if not any(isinstance(h, _NoticeLines) for h in _library_log.handlers):
    _library_log.addHandler(_NoticeLines())
    _library_log.setLevel(logging.INFO)
    _library_log.propagate = False


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `Error: message` on one line to stderr and return the Exit to raise."""
    typer.echo(f"Error: {' '.join(str(message).split())}", err=True)
    return typer.Exit(code)


def _guarded(callback):
    """Wrap a command so expected failures print one line and exit non-zero, never a traceback."""

    @functools.wraps(callback)
    def run(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except RefusalDataError as exc:
            raise fail(str(exc)) from None
        except duckdb.Error as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise fail(f"SQL: {shorten_quoted(first_line)}") from None
        except KeyboardInterrupt:
            raise fail("interrupted; finished chunks are stored, rerun to resume", 130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("REFUSALDATA_DEBUG"):
                raise
            raise fail(f"unexpected {type(exc).__name__}: {exc} (set REFUSALDATA_DEBUG=1 for the traceback)") from None

    return run


def _guard_all(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        info.callback = _guarded(info.callback)
    for group in typer_app.registered_groups:
        _guard_all(group.typer_instance)


_guard_all(app)


def main() -> None:
    """The console script: usage errors (a bad option value, a missing argument) become one
    `Error:` line naming the option, like every other failure, with click's exit code 2."""
    try:
        code = app(prog_name="refusaldata", standalone_mode=False)
    except TyperException as exc:
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(2)  # typer has printed the help already
        where = f" (see `{context.command_path} --help`)" if context is not None else ""
        sys.exit(fail(f"{exc.format_message()}{where}", exc.exit_code).exit_code)
    except typer.Abort:
        sys.exit(fail("aborted").exit_code)
    sys.exit(code if isinstance(code, int) else 0)

if __name__ == "__main__":
    sys.exit(main())
