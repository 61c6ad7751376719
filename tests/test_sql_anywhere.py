"""`refusaldata sql` from anywhere: a file, stdin, a query opening with a comment, DuckDB's
hints kept; the same views and macros in the plain DuckDB CLI through --print-setup."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from refusaldata.analyst import ANALYST_MACROS, analyst_connection, macro_names
from refusaldata.schemas import TABLES

ROOT = Path(__file__).resolve().parents[1]
COMPARE_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "compare"
RATES = ("-- refusal rate per run\n"
         "SELECT run_id, avg(refusal::INT) AS rate FROM labels_of('best') GROUP BY ALL ORDER BY 1")


@pytest.fixture
def runs(store):
    """Three labelled runs (tests/fixtures/compare); the training tables stay empty."""
    for path in sorted(COMPARE_FIXTURE.glob("*.parquet")):
        (store.replace if TABLES[path.stem].replace else store.append)(path.stem, pq.read_table(path))
    return store


def rows(result) -> list[dict]:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_a_query_may_open_with_a_comment(cli, runs):
    expected = rows(cli("sql", RATES.split("\n", 1)[1], "-f", "json"))
    assert len(expected) == 3
    assert rows(cli("sql", RATES, "-f", "json")) == expected
    assert rows(cli("sql", "-f", "json", "--", RATES)) == expected


def test_sql_from_a_file_and_from_stdin(cli, runs, tmp_path):
    query = tmp_path / "rates.sql"
    query.write_text(f"SELECT 1 AS first;\n{RATES};\n")
    from_file = rows(cli("sql", "--file", query, "-f", "json"))
    assert len(from_file) == 3 and set(from_file[0]) == {"run_id", "rate"}  # the last statement's result
    assert rows(cli("sql", "-", "-f", "json", input=query.read_text())) == from_file


@pytest.mark.parametrize("args, stdin, message", [
    (["--file", "missing.sql"], None, "Error: --file missing.sql: no such file"),
    (["-"], "", "Error: stdin holds no SQL"),
    (["-"], "  \n", "Error: stdin holds no SQL"),
    ([], None, "Error: give the SQL to run: QUERY, - (stdin) or --file FILE"),
    (["SELECT 1", "--file", "q.sql"], None, "Error: give the SQL as QUERY or --file, not both"),
])
def test_no_query_is_one_line_error(cli, store, args, stdin, message):
    result = cli("sql", *args, input=stdin)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(message)


def test_an_empty_query_file_is_one_line_error(cli, store, tmp_path):
    empty = tmp_path / "empty.sql"
    empty.write_text("\n")
    result = cli("sql", "--file", empty)
    assert result.exit_code == 1 and result.stderr == f"Error: --file {empty} holds no SQL\n"


@pytest.mark.parametrize("query, hint", [
    ("SELECT * FROM labelz", 'Did you mean "labels"?'),
    ("SELECT labelr FROM labels", 'Candidate bindings: "labeler"'),
])
def test_duckdb_hints_stay_in_the_one_line_error(cli, store, query, hint):
    result = cli("sql", query)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: SQL: ") and hint in result.stderr


def _defined_macros() -> set[str]:
    """Every macro the files `refusaldata sql` loads define (what the SQL reference lists)."""
    text = "".join((ROOT / "sql" / f"{name}.sql").read_text()
                   for name in ("best_labels", "best_templates", *ANALYST_MACROS))
    return set(re.findall(r"CREATE OR REPLACE MACRO (\w+)", text))


def test_every_macro_of_the_reference_exists_in_sql(cli, runs):
    con = analyst_connection(runs)
    try:
        assert set(macro_names(con)) == _defined_macros()
    finally:
        con.close()
    reference = (ROOT / "docs" / "reference" / "sql.md").read_text()
    listed = set(re.findall(r"^\| `(\w+)\(", reference, re.MULTILINE))
    assert listed == _defined_macros()
    assert rows(cli("sql", "SELECT round(wilson_low(3, 10), 4) AS low, rd_normalize('**Hi** there') AS text, "
                           "(SELECT count(*) FROM prompt_attacks('all')) AS prompts", "-f", "json")) == [
        {"low": 0.1078, "text": "hi** there", "prompts": 11}]


def _duckdb_cli() -> str:
    found = shutil.which("duckdb") or str(Path(sys.executable).with_name("duckdb"))
    if not Path(found).exists():
        pytest.skip("the duckdb command (pip install duckdb-cli) is not installed")
    return found


def test_the_duckdb_cli_route_matches_refusaldata_sql(cli, runs, tmp_path):
    """The real duckdb CLI over --print-setup: same rows, same macros, empty training tables included."""
    duckdb_cli = _duckdb_cli()
    setup = tmp_path / "setup.sql"
    assert cli("sql", "--print-setup", "-o", setup).exit_code == 0
    macros = ("SELECT list(function_name ORDER BY function_name) AS macros FROM (SELECT DISTINCT function_name FROM "
              "duckdb_functions() WHERE function_type IN ('macro', 'table_macro') AND NOT internal)")
    results = []
    for query in (RATES, "SELECT count(*) AS n FROM adapters", macros):
        done = subprocess.run([duckdb_cli, "-json", "-c", f".read {setup}", "-c", query], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 0 and not done.stderr, done.stderr
        results.append(json.loads(done.stdout))
    rates, adapters, macros = results
    expected = rows(cli("sql", RATES, "-f", "json"))
    assert [(r["run_id"], round(r["rate"], 9)) for r in rates] == [(r["run_id"], round(r["rate"], 9)) for r in expected]
    assert adapters == [{"n": 0}]
    assert set(macros[0]["macros"]) == _defined_macros()


def test_print_setup_works_on_an_empty_store(cli, tmp_path):
    duckdb_cli = _duckdb_cli()
    setup = tmp_path / "setup.sql"
    assert cli("sql", "--print-setup", "-o", setup).exit_code == 0
    done = subprocess.run([duckdb_cli, "-csv", "-c", f".read {setup}", "-c", "SELECT count(*) AS n FROM best_labels"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.split() == ["n", "0"] and not done.stderr, done.stderr


def test_print_setup_refuses_a_query(cli, store):
    result = cli("sql", "SELECT 1", "--print-setup")
    assert result.exit_code == 1 and "does not apply to --print-setup" in result.stderr
