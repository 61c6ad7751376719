"""Shared fixtures: every test gets its own empty store; real data comes from ../shared."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refusaldata.store import STORE_ENV, Store

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


# The longest tests (minutes each: the whole quickstart, vLLM engine starts), run first so that
# under `-n 2 --dist worksteal` they overlap the many short tests instead of trailing them.
LONGEST_FIRST = ("test_quickstart.py", "test_generate_vllm.py", "test_generate_openai.py")


def pytest_configure(config):
    """Under pytest-xdist, pin each worker (and every process it starts: CLI subprocesses, vLLM
    engines) to one core of its own when there are enough. vLLM's CPU kernels bind OpenMP threads
    to every core and spin; two such engines, or one beside a training test, slowed each other
    about fourfold on the 2-core CI machine. One core each, nothing is oversubscribed."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not worker.startswith("gw") or workers < 2 or len(cores) < workers:
        return
    core = cores[int(worker[2:]) % len(cores)]
    os.sched_setaffinity(0, {core})
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = str(core)
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("REFUSALDATA_THREADS", "1")


def pytest_collection_modifyitems(items):
    """A test that takes the embedded model loads a model: it is `slow` (`-m "not slow"` leaves it out).
    The longest files go first, the longest of them first (a stable sort: the order within them is kept)."""
    for item in items:
        if "embedded_model" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch) -> Store:
    """Point every test (library and CLI) at a fresh temporary store. COLUMNS goes too: pytest-xdist
    sets it to 80 in its workers, so tables would fit 80 columns there and the full 200 of a pipe
    in a plain run; a test of the width sets it itself."""
    root = tmp_path / "store"
    monkeypatch.setenv(STORE_ENV, str(root))
    monkeypatch.delenv("COLUMNS", raising=False)
    return Store(root)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or a clean skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def cli():
    """Run the refusaldata CLI in-process as the console script does (usage errors are one
    line too): cli("sql", "SELECT 1") -> CliResult(exit_code, stdout, stderr)."""
    from refusaldata.cli.main import run

    try:
        runner = CliRunner(mix_stderr=False)  # click before 8.2 (typer before 0.16) mixes them unless told
    except TypeError:
        runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> CliResult:
        with runner.isolation(input=input) as streams:  # (stdout, stderr), or with a mixed output after them
            stdout, stderr = streams[0], streams[1]
            code = run([str(a) for a in args])
            return CliResult(code, stdout.getvalue().decode("utf-8", "replace"),
                             stderr.getvalue().decode("utf-8", "replace"))

    return invoke


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture(scope="session")
def embedded_model() -> str:
    """The converted embedded model folder (converted once per cache, ~30 s)."""
    from refusaldata.models import embedded_model_dir

    return str(embedded_model_dir())


def query_rows(store: Store, sql: str, **params) -> list[tuple]:
    """The rows of `sql` over the store's views, parameters bound by name."""
    con = store.connect()
    try:
        return con.sql(sql, params=params or None).fetchall()
    finally:
        con.close()


def store_snapshot(root: Path) -> dict[Path, bytes]:
    """Every file under `root` (lock files aside) with its bytes: equal before and after means nothing changed."""
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".locks" not in p.parts}
