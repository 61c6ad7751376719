"""The command line starts fast: a command imports only what it uses.

`refusaldata --help` imports no command module, and the analyst's commands never import
torch, transformers, matplotlib or the training and distillation code (bench/cli_start.py
measures the start-up time itself).
"""

from __future__ import annotations

import json
import subprocess
import sys

from refusaldata.cli.main import COMMANDS

HEAVY = ["torch", "transformers", "matplotlib", "refusaldata.train", "refusaldata.distill"]

# Each command line runs in one fresh interpreter, in turn; after each, the heavy modules
# loaded so far are reported, so the first command that pulls one in is named.
PROBE = """
import json, sys
from refusaldata.cli.main import run
heavy = json.loads(sys.argv[1])
for line in json.loads(sys.argv[2]):
    try:
        run(line)
    except SystemExit:
        pass
    print(json.dumps([line, [m for m in heavy if m in sys.modules],
                      sorted(m for m in sys.modules if m.startswith("refusaldata.cli."))]), file=sys.stderr)
"""


def _loaded(lines: list[list[str]], store) -> list[tuple[list[str], list[str], list[str]]]:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY), json.dumps(lines)], capture_output=True,
                          text=True, timeout=300, env={**_env(), "REFUSALDATA_STORE": str(store.root)})
    found = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("[")]
    assert len(found) == len(lines), done.stderr
    return found


def _env() -> dict:
    import os

    return {key: value for key, value in os.environ.items() if key != "REFUSALDATA_DEBUG"}


def test_help_imports_no_command_module(store):
    [(_, heavy, modules)] = _loaded([["--help"]], store)
    assert heavy == []
    assert [m for m in modules if m not in ("refusaldata.cli.main",)] == [], modules


def test_the_analysts_commands_import_no_model_or_training_code(store):
    lines = [["sql", "SELECT 1"], ["sql", "SELECT count(*) FROM labels"], ["tables"], ["mine", "rates"],
             ["mine", "openings"], ["compare", "a", "b"], ["responses", "import", "--help"]]
    if "runs" in COMMANDS:
        lines.append(["runs"])
    for line, heavy, _ in _loaded(lines, store):
        assert heavy == [], f"`refusaldata {' '.join(line)}` imported {heavy}"


def test_sql_imports_only_its_own_command(store):
    [(_, _, modules)] = _loaded([["sql", "SELECT 1"]], store)
    assert set(modules) <= {"refusaldata.cli.main", "refusaldata.cli.sql", "refusaldata.cli.common"}, modules


def test_every_listed_help_line_is_the_commands_own():
    """`--help` shows COMMANDS' lines without importing the commands: each is the command's own first paragraph."""
    from refusaldata.cli.main import _click_command

    root = _click_command()
    context = root.make_context("refusaldata", [], resilient_parsing=True)
    for name, (_, line) in COMMANDS.items():
        help_text = root.get_command(context, name).help or ""
        assert " ".join(help_text.split("\n\n")[0].split()) == line, name


def test_every_module_command_is_listed():
    """A command a module registers but COMMANDS does not name would never be reachable."""
    from refusaldata.cli.main import _module_commands

    for module in {module for module, _ in COMMANDS.values()}:
        for name in _module_commands(module):
            assert name in COMMANDS and COMMANDS[name][0] == module, (module, name)
