"""Static checks the test command runs too: ruff with pyproject's rules, and nothing newer than Python 3.10."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("refusaldata", "cli", "sql", "tests", "bench") for p in (ROOT / folder).rglob("*.py"))
# Standard-library names that Python 3.10 (the declared minimum) does not have.
NEWER_THAN_310 = {"tomllib", "StrEnum", "Self", "LiteralString", "Never", "NotRequired", "Required", "assert_never",
                  "reveal_type", "ExceptionGroup", "TaskGroup", "file_digest", "batched", "UTC", "chdir"}


def test_ruff_finds_nothing():
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--quiet", str(ROOT)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


def test_sources_need_nothing_newer_than_python_3_10():
    """requires-python says >=3.10: no 3.11+ syntax (ruff's target checks that) and no 3.11+ standard names."""
    offences = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 10))
        guarded = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers)
            for statement in node.body for inner in ast.walk(statement)}  # try: import x / except ImportError
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in sys.stdlib_module_names:
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id in ("typing", "datetime", "enum", "asyncio", "hashlib", "itertools", "contextlib"):
                names = [node.attr]
            offences += [f"{path.relative_to(ROOT)}:{node.lineno}: {name}" for name in names if name in NEWER_THAN_310]
    assert offences == []
