"""README and the CLI agree: every command README runs exists with the options it uses, and README names every command.

Both sides are read, never listed here: the commands from the app's own command tree, the
command lines from README's code (and its backticked options from the prose), so a
command or option added later is checked without editing this file.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from refusaldata.cli.main import command_tree

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def option_names(command) -> set[str]:
    names = {"--help"}
    for parameter in command.params:
        names.update(parameter.opts)
        names.update(getattr(parameter, "secondary_opts", []) or [])
    return names


def choices(parameter) -> list[str]:
    """The fixed values of an enum-typed parameter (Optional and list unwrapped)."""
    import enum
    import types
    import typing

    annotation = parameter.type_descriptor.annotation
    while typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    return []


def readme_command_lines() -> list[str]:
    """Every `refusaldata ...` invocation in README's code: indented blocks, fenced blocks and inline code."""
    lines, joined = [], ""
    in_fence = False
    for raw in README.splitlines():
        if raw.startswith("```"):
            in_fence = not in_fence
            continue
        code = in_fence or raw.startswith("    ")
        if not code:
            continue
        joined += raw.rstrip().removesuffix("\\") + " "
        if not raw.rstrip().endswith("\\"):
            lines.append(joined.strip())
            joined = ""
    inline = re.findall(r"`([^`\n]*refusaldata [^`\n]*)`", README)
    return [line for line in lines + inline if re.search(r"(^|[\s/])refusaldata ", line)]


def invocations() -> list[tuple[str, list[str], str]]:
    """(command path, options, the README line) for each invocation, split at && and |."""
    tree = command_tree()
    found = []
    for line in readme_command_lines():
        for part in re.split(r"&&|\|", line):
            try:
                tokens = shlex.split(part.split(" #")[0])
            except ValueError:
                tokens = part.split()
            starts = [i for i, token in enumerate(tokens) if token in ("refusaldata", ".venv/bin/refusaldata")]
            if not starts:
                continue
            words = tokens[starts[0] + 1:]
            path = next((" ".join(words[:n]) for n in (2, 1) if " ".join(words[:n]) in tree), None)
            options = [token.split("=")[0] for token in words if re.fullmatch(r"--?[a-z][a-z0-9-]*(=.*)?", token)]
            found.append((path, options, part.strip()))
    return found


def test_readme_runs_only_commands_and_options_that_exist():
    tree = command_tree()
    problems = []
    seen = invocations()
    assert len(seen) >= 20, "README's command lines were not found"
    for path, options, line in seen:
        if path is None:
            problems.append(f"no such command: {line}")
            continue
        unknown = [option for option in options if option not in option_names(tree[path])]
        if unknown:
            problems.append(f"`refusaldata {path}` has no {', '.join(unknown)}: {line}")
    assert problems == []


def test_options_named_in_readme_prose_exist():
    tree = command_tree()
    known = set().union(*(option_names(command) for command in tree.values()))
    prose = set(re.findall(r"`(--[a-z][a-z0-9-]*)", README))
    assert prose - known == set()


def test_readme_names_every_command():
    named = {path for path, _, _ in invocations() if path}
    named |= {path for path in command_tree() if f"`{path}`" in README or f"`{path} " in README}
    assert set(command_tree()) - named == set()


@pytest.mark.parametrize("path", sorted(command_tree()))
def test_help_lists_every_option(path):
    """What `--help` shows is what the command takes: every option, fixed choices listed."""
    from typer.testing import CliRunner

    from refusaldata.cli.main import app

    command = command_tree()[path]
    result = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    for parameter in command.params:
        if parameter.param_type_name == "option" and not parameter.hidden:
            assert parameter.opts[0] in text, f"{path} --help lacks {parameter.opts[0]}"
        for choice in choices(parameter):
            assert choice in text, f"{path} --help does not list {parameter.name} choice {choice}"
