"""docs/tasks/gates.md runs as written on Do-Not-Answer's answers (../shared/data): its command lines
(import, label, fixture export, a gate that fails and one that passes) and its pytest file."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "tasks" / "gates.md").read_text(encoding="utf-8")


def fenced(language: str) -> list[str]:
    """The bodies of the page's ```language blocks."""
    return re.findall(rf"```{language}\n(.*?)```", PAGE, flags=re.DOTALL)


def test_the_gates_page_runs_as_written(shared_data, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "donotanswer").symlink_to(shared_data / "labelled" / "donotanswer")
    [commands] = fenced("bash")
    gates = []
    for line in commands.strip().splitlines():
        command, _, comment = line.partition("   # ")
        args = shlex.split(command)
        assert args[0] == "refusaldata", line
        result = cli(*args[1:])
        expected = int(comment.removeprefix("exits ")) if comment else 0
        assert result.exit_code == expected, (line, result.output[-2000:])
        if args[1] == "gate":
            gates.append(result.stdout)
    fixture = tmp_path / "tests" / "fixtures" / "refusals"
    assert (fixture / "store.json").is_file()
    failing, passing = gates
    assert failing.splitlines()[-1].startswith("FAIL: refusal rate dropped by more than 0.050")
    assert [line.split()[-1] for line in failing.splitlines()[3:5]] == ["FAIL", "FAIL"]
    assert passing.splitlines()[-1].startswith("PASS")
    # The page shows the failing gate's table as it prints.
    [shown] = fenced("text")
    assert shown.splitlines() == failing.splitlines()

    [test_file] = fenced("python")
    (tmp_path / "tests" / "test_refusals.py").write_text(test_file, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_refusals.py"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 passed" in done.stdout
