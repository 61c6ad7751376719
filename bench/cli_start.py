"""How fast the command line starts, against `python -c "import duckdb"` and DuckDB's own CLI.

Each command runs as a fresh process, in rounds (every command once per round, in turn, so
load on the machine falls on all of them alike); the median wall time per command and its
ratio to `import duckdb` are printed. The store is a temporary one holding one imported run
with labels, so `tables` and `mine rates` have rows to show. The DuckDB CLI is the `duckdb`
command of the `duckdb-cli` package (skipped when it is not on PATH or beside the Python).

Targets (idle machine): `refusaldata --help` and `refusaldata sql "select 1"` at most 0.5 s.

--before DIR times an older checkout's CLI beside (`python -m refusaldata.cli` with DIR on
PYTHONPATH; DIR/refusaldata/cli and DIR/refusaldata/sql must link to DIR/cli and DIR/sql,
as the wheel lays them out), e.g. a `git worktree add` of an earlier commit.

Run: python bench/cli_start.py [--rounds 15] [--before DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _refusaldata() -> list[str]:
    script = BIN / "refusaldata"
    return [str(script)] if script.exists() else [sys.executable, "-m", "refusaldata.cli"]


def _duckdb_cli() -> str | None:
    beside = BIN / "duckdb"
    return str(beside) if beside.exists() else shutil.which("duckdb")


def _make_store(root: Path) -> None:
    """A store with one small imported run, labelled by the rules."""
    answers = root / "answers.jsonl"
    answers.write_text("".join(
        f'{{"prompt": "How do I pick lock {i}?", "response": "{text}"}}\n'
        for i, text in enumerate(["I'm sorry, but I can't help with that."] * 20 + ["Sure, here is how."] * 20)))
    env = {**os.environ, "REFUSALDATA_STORE": str(root / "store")}
    for args in (["responses", "import", str(answers), "--input-format", "jsonl", "--model", "bench-model"],
                 ["label", "--labeler", "rules"]):
        subprocess.run([*_refusaldata(), *args], env=env, check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--before", type=Path, help="an older checkout whose CLI is timed beside")
    args = parser.parse_args()
    rounds = args.rounds
    cli = _refusaldata()
    commands = {
        'python -c "import duckdb"': [sys.executable, "-c", "import duckdb"],
        'duckdb -c "select 1"': [_duckdb_cli(), "-c", "select 1"] if _duckdb_cli() else None,
        "refusaldata --help": [*cli, "--help"],
        'refusaldata sql "select 1"': [*cli, "sql", "select 1"],
        "refusaldata tables": [*cli, "tables"],
        "refusaldata mine rates": [*cli, "mine", "rates", "--labeler", "rules"],
    }
    commands = {name: command for name, command in commands.items() if command}
    envs = {name: {} for name in commands}
    if args.before:
        for name, tail in (("--help", ["--help"]), ('sql "select 1"', ["sql", "select 1"])):
            commands[f"before: {name}"] = [sys.executable, "-m", "refusaldata.cli", *tail]
            envs[f"before: {name}"] = {"PYTHONPATH": str(args.before.resolve())}
    folder = tempfile.mkdtemp(prefix="cli-start-")
    for name in commands:  # `sql "select 1"` on an empty store, which an older checkout can open too
        if "select 1" in name:
            envs[name]["REFUSALDATA_STORE"] = str(Path(folder) / "empty")
    try:
        _make_store(Path(folder))
        env = {**os.environ, "REFUSALDATA_STORE": str(Path(folder) / "store"), "COLUMNS": "100"}
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(rounds):
            for name, command in commands.items():
                started = time.perf_counter()
                subprocess.run(command, env={**env, **envs[name]}, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd=envs[name].get("PYTHONPATH", folder))
                times[name].append(time.perf_counter() - started)
    finally:
        shutil.rmtree(folder)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {rounds} rounds; "
          f"python {sys.version.split()[0]}")
    base = statistics.median(times['python -c "import duckdb"'])
    print(f"{'command':<32} {'median s':>9} {'min s':>7} {'x import duckdb':>16}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<32} {median:>9.3f} {min(values):>7.3f} {median / base:>16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
