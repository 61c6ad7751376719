"""The Python API: refusaldata.open with the CLI's defaults, and the docs page's examples run as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import refusaldata
from refusaldata.schemas import TABLES

ROOT = Path(__file__).resolve().parents[1]
COMPARE_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "compare"


def _load(store) -> None:
    for path in sorted(COMPARE_FIXTURE.glob("*.parquet")):
        (store.replace if TABLES[path.stem].replace else store.append)(path.stem, pq.read_table(path))


@pytest.fixture
def runs(store):
    _load(store)
    return store


def test_the_docs_examples_run(tmp_path, monkeypatch):
    """Every python block of docs/tasks/python-api.md, in order, in one namespace, on a store at ./parquet_cache."""
    from refusaldata.store import Store

    _load(Store(tmp_path / "parquet_cache"))
    monkeypatch.chdir(tmp_path)
    page = (ROOT / "docs" / "tasks" / "python-api.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", page, re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/tasks/python-api.md", "exec"), namespace)
    assert isinstance(namespace["rates"], pl.DataFrame) and namespace["rates"].height == 3
    assert namespace["per_run"].height == 3 and round(namespace["low"], 4) == 0.1078
    assert set(namespace["by_category"].columns) >= {"run_name", "category", "refusal_rate"}
    namespace["rd"].close()


def test_the_defaults_are_the_clis(cli, runs):
    rd = refusaldata.open(runs.root)
    assert rd.rates().to_arrow_table().to_pylist() == json.loads(cli("mine", "rates", "-f", "json").stdout)
    openings = json.loads(cli("mine", "openings", "--k", "3", "-f", "json").stdout)
    assert rd.openings(k=3).to_arrow_table().to_pylist() == openings
    rd.close()


def test_open_reads_the_store_variable(runs, monkeypatch):
    monkeypatch.setenv("REFUSALDATA_STORE", str(runs.root))
    with refusaldata.open() as rd:
        assert rd.store.root == runs.root
        assert rd.sql("SELECT count(*) FROM runs").fetchall() == [(3,)]


def test_label_makes_later_queries_see_the_new_labels(runs):
    rd = refusaldata.open(runs.root)
    rd.label("rules")
    before = rd.sql("SELECT count(*) FROM labels WHERE labeler = 'rules'").fetchall()[0][0]
    runs.append("responses", pa.table({"run_id": ["base-160a66ec05"], "prompt_id": ["new-prompt"],
                                       "sample_index": pa.array([0], pa.int32()),
                                       "response": ["I'm sorry, but I can't help with that."]}))
    summary = rd.label("rules").to_arrow_table().to_pylist()
    assert sum(row["new"] for row in summary) == 1
    assert rd.sql("SELECT count(*) FROM labels WHERE labeler = 'rules'").fetchall()[0][0] == before + 1
    rd.close()


def test_a_bad_query_is_duckdbs_error(runs):
    import duckdb

    with refusaldata.open(runs.root) as rd, pytest.raises(duckdb.CatalogException, match='Did you mean "labels"'):
        rd.sql("SELECT * FROM labelz")


def test_import_refusaldata_stays_light(runs):
    probe = ("import sys, refusaldata\n"
             "light = not any(m in sys.modules for m in ('duckdb', 'pyarrow', 'torch', 'polars'))\n"
             f"rd = refusaldata.open({str(runs.root)!r})\n"
             "rd.rates().fetchall()\n"
             "print(light, [m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "True []"
