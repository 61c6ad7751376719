"""The docs and the CLI agree: every command README.md and docs/ run exists with the options it uses, and
together they name every command.

Both sides are read, never listed here: the commands from the app's own command tree, the
command lines from the pages' code (and their backticked options from the prose), so a
command, option or page added later is checked without editing this file. The pages
generated from the app and the SQL files (docs/reference/cli.md, docs/reference/sql.md)
are left out: tests/test_docs.py checks that they are what their generators write now,
and the CLI page would name every command by construction.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from refusaldata.cli.main import command_tree

ROOT = Path(__file__).resolve().parents[1]
GENERATED = {Path("docs/reference/cli.md"), Path("docs/reference/sql.md")}
PAGES = [Path("README.md"), *sorted(path.relative_to(ROOT) for path in (ROOT / "docs").rglob("*.md")
                                    if path.relative_to(ROOT) not in GENERATED)]
TEXTS = {str(page): (ROOT / page).read_text(encoding="utf-8") for page in PAGES}


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


def command_lines(text: str) -> list[str]:
    """Every `refusaldata ...` invocation in a page's code: indented blocks, fenced blocks and inline code."""
    lines, joined = [], ""
    in_fence = False
    for raw in text.splitlines():
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
    inline = re.findall(r"`([^`\n]*refusaldata [^`\n]*)`", text)
    return [line for line in lines + inline if re.search(r"(^|[\s/])refusaldata ", line)]


def invocations(text: str) -> list[tuple[str, list[str], str]]:
    """(command path, options, the line) for each invocation in a page, split at && and |."""
    tree = command_tree()
    found = []
    for line in command_lines(text):
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


def test_the_pages_are_found():
    assert "docs/index.md" in TEXTS and "docs/tasks/label.md" in TEXTS, sorted(TEXTS)
    assert len(invocations(TEXTS["README.md"])) >= 8, "README's command lines were not found"
    assert sum(len(invocations(text)) for text in TEXTS.values()) >= 60, "the docs' command lines were not found"


@pytest.mark.parametrize("page", sorted(TEXTS))
def test_pages_run_only_commands_and_options_that_exist(page):
    tree = command_tree()
    problems = []
    for path, options, line in invocations(TEXTS[page]):
        if path is None:
            problems.append(f"no such command: {line}")
            continue
        unknown = [option for option in options if option not in option_names(tree[path])]
        if unknown:
            problems.append(f"`refusaldata {path}` has no {', '.join(unknown)}: {line}")
    assert problems == []


@pytest.mark.parametrize("page", sorted(TEXTS))
def test_options_named_in_prose_exist(page):
    tree = command_tree()
    known = set().union(*(option_names(command) for command in tree.values()))
    prose = set(re.findall(r"`(--[a-z][a-z0-9-]*)", TEXTS[page]))
    assert prose - known == set()


def test_the_docs_name_every_command():
    """README and the written pages together name every command (the generated CLI page does not count)."""
    named = set()
    for text in TEXTS.values():
        named |= {path for path, _, _ in invocations(text) if path}
        named |= {path for path in command_tree() if f"`{path}`" in text or f"`{path} " in text}
    assert set(command_tree()) - named == set()


def test_the_checker_reads_every_kind_of_code():
    """Indented and fenced blocks, continued lines and inline code are all read, comments and prose are not."""
    page = "\n".join([
        "Run `refusaldata mine rates --by attack` to see it; refusaldata sql in prose is not code.",
        "",
        "    refusaldata train --set s --model m \\",
        "        --out adapters/s   # a comment --not-an-option",
        "",
        "```bash",
        "refusaldata label --labeler rules && refusaldata mine openings --k 3",
        "```",
    ])
    found = {(path, tuple(options)) for path, options, _ in invocations(page)}
    assert found == {("mine rates", ("--by",)), ("train", ("--set", "--model", "--out")),
                     ("label", ("--labeler",)), ("mine openings", ("--k",))}


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
