"""The Typer app: registers every command and turns library errors into one-line messages.

Commands are registered by name in COMMANDS and their modules imported only when one of
them runs (or a full listing such as the CLI reference is built), so `refusaldata --help`
and `refusaldata sql` never pay for torch, matplotlib or the training code.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
from pathlib import Path

import typer
import typer.core
import typer.main

from refusaldata.errors import RefusalDataError, excerpt, redact, sql_error_text

HELP = "Study and align how language models refuse harmful requests, over a Parquet store."

# Every top-level command: name -> (module under refusaldata.cli whose `register(app)` adds
# it, the one-line help `refusaldata --help` shows without importing that module). To add a
# command, write cli/NAME.py with `register(app)` and add its row here; tests/test_cli_start.py
# checks each line against the command's own help. The order is the order --help lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("generate", "Generate responses to stored prompts; a rerun of the same config resumes where it "
                             "stopped."),
    "label": ("label", "Label responses compliance, refusal or partial (one partition per labeler and run, "
                       "replaced atomically)."),
    "build-sft": ("build_sft", "Build an SFT set: refusal targets for the harmful prompts a student complied with, "
                               "plus retention and boundary rows."),
    "build-pairs": ("build_pairs", "Build preference pairs: chosen = a refusal target, rejected = the student's "
                                   "compliant answer."),
    "sets": ("sets", "List the sft and pairs sets with row counts by mode, kind, student and source run, and split."),
    "train": ("train", "Train a LoRA adapter on a set's train split; print where it is and how the loss moved."),
    "compare": ("compare", "Refusal rate, over-refusal, uniformity, top-1 share, templates (unsafe rate, "
                           "capability) per run."),
    "gate": ("gate", "Exit 1 when NEW refuses worse than --baseline beyond a margin, decided by paired 95% intervals."),
    "report": ("report", "Write the comparison table, the refusal-vs-uniformity, before/after and trade-off charts, "
                         "top openings."),
    "quickstart": ("quickstart", "Import, generate, label, mine, distill, train, regenerate, compare and report, on "
                                 "SmolLM2-135M-Instruct."),
    "sql": ("sql", "Run SQL over the store (read-only unless --write) and print the last statement's result."),
    "tables": ("tables", "List every table with its row count, file count, size, duplicate keys, ignored files and "
                         "location."),
    "doctor": ("tables", "Check the store: files it ignores, keys stored twice, lost training metrics, orphaned "
                         "human labels."),
    "prompts": ("prompts", "Prompt sets: import built-in benchmarks or your own files, attack them, list what is "
                           "stored."),
    "responses": ("responses", "Responses: import existing outputs of other tools as runs."),
    "fixture": ("fixture", "Fixtures: small stores sampled from runs, for tests and CI (the folder is a store)."),
    "runs": ("runs", "Every run: name, id, model, adapter, source (generated or imported, from what), responses, "
                     "labelers, created."),
    "review": ("review", "Human review: export the least certain labels or a random sample as CSV, fill "
                         "human_verdict, import it; measure the labelers against it."),
    "mine": ("mine", "Mine the labels: refusal rates, openings, uniformity, templates."),
    "judge": ("judge", "Learned unsafe-content or refusal labelers (MiniLM embeddings + a small classifier)."),
    "evaluate": ("evaluate", "Evaluate runs beyond refusal: the capability cost of alignment, and how separable a "
                             "model's prompts are."),
}

# Usage errors: typer's own exception class where typer carries its own click (typer >= 0.2x),
# else click's, which older typer builds on.
try:
    from typer import TyperException as _UsageError
except ImportError:  # typer on click
    from click import ClickException as _UsageError


@functools.cache
def _module_commands(module_name: str) -> dict[str, object]:
    """The click commands one CLI module registers, guarded and checked, built once."""
    module = importlib.import_module(f"refusaldata.cli.{module_name}")
    holder = typer.Typer(add_completion=False)
    module.register(holder)
    _guard_all(holder)
    group = typer.main.get_group(holder)
    for command in group.commands.values():
        _refuse_blank_values(command)
    return dict(group.commands)


class LazyGroup(typer.core.TyperGroup):
    """The root group: a command's module is imported when the command is looked up to run.

    While the root's own help is written, commands not yet loaded are shown by their
    COMMANDS line, so `refusaldata --help` imports none of them.
    """

    _listing = False

    def list_commands(self, ctx) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx, cmd_name: str):
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return self.commands.get(cmd_name)
        module_name, help_text = COMMANDS[cmd_name]
        if self._listing:
            return typer.core.TyperCommand(name=cmd_name, callback=None, help=help_text)
        command = _module_commands(module_name)[cmd_name]
        self.add_command(command, cmd_name)
        return command

    def format_help(self, ctx, formatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(name="refusaldata", help=HELP, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, cls=LazyGroup)


@app.callback()
def _root() -> None:
    """The root: it only dispatches to the command named (a callback makes typer build a group)."""


class _NoticeLines(logging.Handler):
    """The library's notices (a store upgraded, files it ignores) as one stderr line each."""

    def emit(self, record: logging.LogRecord) -> None:
        from refusaldata.cli.common import echo

        prefix = "Note" if record.levelno < logging.WARNING else "Warning"
        echo(f"{prefix}: {' '.join(redact(record.getMessage()).split())}", err=True)


_library_log = logging.getLogger("refusaldata")
if not any(isinstance(h, _NoticeLines) for h in _library_log.handlers):
    _library_log.addHandler(_NoticeLines())
    _library_log.setLevel(logging.INFO)
    _library_log.propagate = False


# Parameters that name a file (True) or a folder (False) a command writes; none may lie
# inside the store. Every path parameter of every command is either here or an input
# (tests/test_reliability_hostile.py checks each against this table, so a new one is classified).
OUTPUT_PARAMETERS = {"output": ("--output", True), "export": ("--export", True), "out": ("--out", False),
                     "figures": ("--figures", False)}
INTERRUPTED = "interrupted; what was stored before stays stored, rerun to resume"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `Error: message` on one line to stderr, credentials redacted, and return the Exit to raise."""
    from refusaldata.cli.common import echo  # here: common imports Arrow and the store, which --help never needs

    echo(f"Error: {' '.join(redact(str(message)).split())}", err=True)
    return typer.Exit(code)


def _check_outputs(kwargs: dict) -> None:
    from refusaldata.cli.common import check_output

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
        import duckdb  # here, not at the top: `--help` never needs it

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
            raise fail(f"SQL: {sql_error_text(str(exc)) or type(exc).__name__}") from None
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
    from refusaldata.cli.common import with_output_options

    for info in typer_app.registered_commands:
        info.callback = _guarded(with_output_options(info.callback))
    for group in typer_app.registered_groups:
        _guard_all(group.typer_instance)


@functools.cache
def _click_command():
    """The root click group, built once; each command is built when first looked up."""
    return typer.main.get_group(app)


def _blank(value: object) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, (list, tuple)) and any(_blank(item) for item in value)


def _refuse_blank_values(command) -> None:
    """An empty or all-blank text or path the user gives is a usage error naming the option.

    Left to the commands, `--run ""` matched every run by prefix, `--model ""` fell back to
    the default name and `--out ""` became the current folder: a value the user gave was
    silently replaced. No option of the CLI gives meaning to an empty value, so all refuse it;
    the value is checked as given (text), before its type converts it.
    """
    for child in getattr(command, "commands", {}).values():
        _refuse_blank_values(child)
    for parameter in command.params:

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

    root = _click_command()
    context = root.make_context("refusaldata", [], resilient_parsing=True)
    for name in root.list_commands(context):
        walk(root.get_command(context, name), [name])
    return found


def preload(args: list[str]) -> None:
    """Import the module of the command `args` name (its DuckDB, Arrow, ...) now, so the entry
    point can hold a Ctrl-C until it is loaded: one landing inside a compiled module's
    initialisation aborts the process."""
    name = next((arg for arg in args if not arg.startswith("-")), None)
    if name in COMMANDS:
        _module_commands(COMMANDS[name][0])


def run(args: list[str] | None = None) -> int:
    """Run one command line (sys.argv when None) as the console script does; its exit code.

    Usage errors (a bad option value, a missing argument) become one `Error:` line naming
    the option, like every other failure, with click's exit code 2.
    """
    try:
        code = _click_command().main(args=args, prog_name="refusaldata", standalone_mode=False)
    except _UsageError as exc:
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
