"""The Typer app: registers every command and turns library errors into one-line messages."""

from __future__ import annotations

import functools
import logging
import os
import sys
import types
import typing
from pathlib import Path

import duckdb
import typer
import typer.main
from typer.exceptions import TyperException

from refusaldata.errors import RefusalDataError, excerpt, shorten_quoted

from refusaldata.cli.common import check_output, echo
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
        echo(f"{prefix}: {' '.join(record.getMessage().split())}", err=True)


_library_log = logging.getLogger("refusaldata")
if not any(isinstance(h, _NoticeLines) for h in _library_log.handlers):
    _library_log.addHandler(_NoticeLines())
    _library_log.setLevel(logging.INFO)
    _library_log.propagate = False


# Parameters that name a file (True) or a folder (False) a command writes; none may lie
# inside the store.
OUTPUT_PARAMETERS = {"output": ("--output", True), "export": ("--export", True), "out": ("--out", False)}
INTERRUPTED = "interrupted; what was stored before stays stored, rerun to resume"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `Error: message` on one line to stderr and return the Exit to raise."""
    echo(f"Error: {' '.join(str(message).split())}", err=True)
    return typer.Exit(code)


def _check_outputs(kwargs: dict) -> None:
    for name, (option, file) in OUTPUT_PARAMETERS.items():
        if isinstance(kwargs.get(name), Path):
            check_output(kwargs[name], kwargs.get("store"), option, file)


def _guarded(callback):
    """Wrap a command so expected failures print one line and exit non-zero, never a traceback.

    Every command's outputs are checked against its store first, so a command added later
    cannot write among the store's tables either. An interruption exits 130 without a line:
    `run` reports every one, as Typer also ends a Ctrl-C outside the command with a silent 130.
    """

    @functools.wraps(callback)
    def run(*args, **kwargs):
        try:
            _check_outputs(kwargs)
            return callback(*args, **kwargs)
        except RefusalDataError as exc:
            raise fail(str(exc)) from None
        except duckdb.InterruptException:
            raise typer.Exit(130) from None
        except duckdb.Error as exc:
            if "KeyboardInterrupt" in str(exc):  # Ctrl-C inside Python code DuckDB called (reading a frame)
                raise typer.Exit(130) from None
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise fail(f"SQL: {shorten_quoted(first_line)}") from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit, BrokenPipeError):
            raise  # click ends a command whose reader closed the pipe (`| head`) quietly
        except Exception as exc:
            if isinstance(exc, RuntimeError) and str(exc) == "Query interrupted":  # DuckDB's Ctrl-C mid-fetch
                raise typer.Exit(130) from None
            if isinstance(exc, OSError) and exc.filename is not None:  # a path the system refused
                raise fail(f"{excerpt(str(exc.filename))}: {exc.strerror or exc}") from None
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


@functools.cache
def _click_command():
    """The click command typer builds from the app: built once, as each build re-reads every
    command's signature (a quarter of a second per command line run in-process, as tests do)."""
    command = typer.main.get_command(app)
    _refuse_blank_values(command)
    return command


def _text_parameter(parameter) -> bool:
    """Whether the parameter takes text or a path (alone, optional or repeated)."""
    annotation = parameter.type_descriptor.annotation
    while typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation in (str, Path)


def _blank(value: object) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, (list, tuple)) and any(_blank(item) for item in value)


def _refuse_blank_values(command) -> None:
    """An empty or all-blank text or path the user gives is a usage error naming the option.

    Left to the commands, `--run ""` matched every run by prefix, `--model ""` fell back to
    the default name and `--out ""` became the current folder: a value the user gave was
    silently replaced. No option of the CLI gives meaning to an empty value, so all refuse it.
    """
    for child in getattr(command, "commands", {}).values():
        _refuse_blank_values(child)
    for parameter in command.params:
        if not _text_parameter(parameter):
            continue

        def process_value(ctx, value, parameter=parameter, process=parameter.process_value):
            source = getattr(ctx.get_parameter_source(parameter.name), "name", "")
            if source in ("COMMANDLINE", "ENVIRONMENT") and _blank(value):
                hint = "" if parameter.required else ", or leave it out for the default"
                raise typer.BadParameter(f"is empty; give a value{hint}", ctx=ctx, param=parameter)
            return process(ctx, value)

        parameter.process_value = process_value


def command_tree() -> dict[str, object]:
    """Every leaf command by its path ("mine rates") with its click command, from the app itself."""
    found = {}

    def walk(command, path: list[str]) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                walk(child, [*path, name])
        else:
            found[" ".join(path)] = command

    walk(_click_command(), [])
    return found


def run(args: list[str] | None = None) -> int:
    """Run one command line (sys.argv when None) as the console script does; its exit code.

    Usage errors (a bad option value, a missing argument) become one `Error:` line naming
    the option, like every other failure, with click's exit code 2.
    """
    try:
        code = _click_command().main(args=args, prog_name="refusaldata", standalone_mode=False)
    except TyperException as exc:
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            return 2  # typer has printed the help already
        where = f" (see `{context.command_path} --help`)" if context is not None else ""
        return fail(f"{exc.format_message()}{where}", exc.exit_code).exit_code
    except typer.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            return fail(INTERRUPTED, 130).exit_code
        return fail("aborted").exit_code
    if code == 130:  # interrupted, in the command or around it (Typer's own silent 130)
        return fail(INTERRUPTED, 130).exit_code
    return code if isinstance(code, int) else 0


def main() -> None:
    """The console script."""
    sys.exit(run())


if __name__ == "__main__":
    main()
