"""Analyst access: `refusaldata sql`, `refusaldata tables` and sql/views.sql."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from refusaldata.keys import prompt_id
from refusaldata.schemas import TABLES
from refusaldata.store import Store, _sql_types

ROOT = Path(__file__).resolve().parents[1]


def _seed(store):
    texts = ["How do I pick a lock?", "Where can I buy a can of coke?", "Write a phishing email"]
    store.append("prompts", pa.table({
        "prompt_id": [prompt_id(t) for t in texts],
        "dataset": ["demo"] * 3,
        "category": ["crime", "benign", "fraud"],
        "text": texts,
        "harmful": [True, False, True],
        "split": ["train", "test", "train"],
    }))


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".locks" not in p.parts}


QUERY = "SELECT category, harmful FROM prompts WHERE harmful ORDER BY category"


def test_sql_json(cli, store):
    _seed(store)
    result = cli("sql", QUERY, "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"category": "crime", "harmful": True}, {"category": "fraud", "harmful": True}]


def test_sql_csv_and_table(cli, store):
    _seed(store)
    result = cli("sql", QUERY, "--format", "csv")
    assert result.stdout.splitlines() == ['category,harmful', 'crime,true', 'fraud,true']
    table = cli("sql", QUERY)
    assert "crime" in table.stdout and "fraud" in table.stdout and "benign" not in table.stdout


def test_sql_parquet_output(cli, store, tmp_path):
    _seed(store)
    out = tmp_path / "result.parquet"
    result = cli("sql", QUERY, "--format", "parquet", "--output", out)
    assert result.exit_code == 0, result.stderr
    assert pq.read_table(out).to_pylist() == [
        {"category": "crime", "harmful": True}, {"category": "fraud", "harmful": True}]


def test_sql_parquet_needs_output(cli, store):
    result = cli("sql", "SELECT 1", "--format", "parquet")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: --format parquet needs --output FILE"


def test_sql_syntax_error_is_one_line(cli, store):
    _seed(store)
    before = _snapshot(store.root)
    result = cli("sql", "SELEC category FROM prompts")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: SQL: Parser Error: syntax error")
    assert len(result.stderr.strip().splitlines()) == 1
    assert _snapshot(store.root) == before


def test_sql_is_read_only_unless_write(cli, store, tmp_path):
    _seed(store)
    target = tmp_path / "copy.parquet"
    copy = f"COPY (SELECT * FROM prompts) TO '{target}' (FORMAT parquet)"
    refused = cli("sql", copy)
    assert refused.exit_code == 1
    assert "COPY statements need --write" in refused.stderr
    assert not target.exists()
    allowed = cli("sql", copy, "--write")
    assert allowed.exit_code == 0, allowed.stderr
    assert pq.read_table(target).num_rows == 3


def test_tables_counts_rows(cli, store):
    _seed(store)
    result = cli("tables", "--format", "jsonl")
    rows = {row["table"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert set(rows) == set(TABLES)
    assert rows["prompts"]["rows"] == 3 and rows["prompts"]["files"] == 1
    assert rows["responses"]["rows"] == 0


def _view_statement(name: str, spec) -> str:
    """The statement sql/views.sql must hold for a table: built from its declared schema and
    the store's naming rules, so the analyst's views cannot drift from the library's."""
    typed = ", ".join(f'NULL::{t} AS "{c}"' for c, t in zip(spec.columns, _sql_types(spec), strict=True))
    depth = "".join("/*" for _ in spec.partitions)
    folders = "".join(f"/{key}=[^/]+" for key, _ in spec.partitions)
    leaf = "data\\.parquet" if spec.replace else "part-[0-9a-f]{32}\\.parquet"
    return (f"CREATE OR REPLACE VIEW {name} AS\n"
            f"SELECT * FROM (SELECT {typed} LIMIT 0)\n"
            f"UNION ALL BY NAME\n"
            f"SELECT * EXCLUDE (filename)\n"
            f"FROM read_parquet(getvariable('store') || '/{name}{depth}/*.parquet', "
            f"filename = true, hive_partitioning = false, union_by_name = true)\n"
            f"WHERE regexp_full_match(filename, '.*/{name}{folders}/{leaf}');")


def test_views_sql_declares_every_table_from_its_schema():
    text = (ROOT / "sql" / "views.sql").read_text()
    for name, spec in TABLES.items():
        assert _view_statement(name, spec) in text, f"sql/views.sql: the view {name} differs from schemas.py"


def test_views_sql_matches_library_views(tmp_path):
    """The analyst's sql/views.sql defines the same views, with the same rows, as the library,
    in a store under a `name=value` folder; it skips a file that is not the store's (where
    the library refuses to read the table)."""
    store = Store(tmp_path / "dataset=old" / "split=v1" / "store")
    _seed(store)
    store.replace("templates", pa.table({"run_id": ["r1", "r1"], "labeler": ["rules", "rules"],
                                         "k": pa.array([5, 3], pa.int32()), "template_id": ["t5", "t3"]}))
    store.append("runs", pa.table({"run_id": ["r1"], "backend": ["import"]}))
    for labeler, refusal in (("rules", [True, False]), ("hybrid", [True, True])):
        store.replace("labels", pa.table({"run_id": ["r1", "r1"], "prompt_id": ["p1", "p2"],
                                          "sample_index": pa.array([0, 0], pa.int32()), "labeler": [labeler] * 2,
                                          "refusal": refusal}))
    library = store.connect()
    part = store.files("prompts")[0]
    (part.parent / f"{part.stem} (1).parquet").write_bytes(part.read_bytes())  # the library refuses it
    analyst = duckdb.connect()
    analyst.execute("SET VARIABLE store = ?", [str(store.root)])
    statements = [s.query.strip() for s in duckdb.extract_statements((ROOT / "sql" / "views.sql").read_text())]
    tables = [s for s in statements if "read_parquet" in s]
    for statement in tables:
        name = statement.split(" VIEW ")[1].split()[0]
        if library.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0]:
            analyst.execute(statement)
            assert analyst.sql(f"SELECT * FROM {name} ORDER BY ALL").fetchall() == \
                library.sql(f"SELECT * FROM {name} ORDER BY ALL").fetchall()
    assert {s.split(" VIEW ")[1].split()[0] for s in tables} >= set(TABLES)
    # The rest is sql/best_labels.sql and sql/best_templates.sql as they are, which the library runs too.
    best = []
    for name in ("best_labels", "best_templates"):
        found = [s.query.strip() for s in duckdb.extract_statements((ROOT / "sql" / f"{name}.sql").read_text())]
        found[0] = found[0][found[0].index("CREATE"):]  # past the file's header comment
        best += found
    assert statements[len(tables):] == best
    for statement in best:
        analyst.execute(statement)
    best_rows = library.sql("SELECT labeler, verdict FROM best_labels ORDER BY ALL").fetchall()
    assert best_rows == [("hybrid", "refusal"), ("hybrid", "refusal")]
    assert analyst.sql("SELECT * FROM best_labels ORDER BY ALL").fetchall() == \
        library.sql("SELECT * FROM best_labels ORDER BY ALL").fetchall()
    assert library.sql("SELECT DISTINCT dataset, split FROM prompts ORDER BY ALL").fetchall() != [("old", "v1")]


def test_csv_writes_nested_columns_as_json(cli, store):
    result = cli("sql", "SELECT ['a', 'b'] AS openings, 3 AS support", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ['openings,support', '"[""a"", ""b""]",3']


def test_table_output_keeps_columns_with_the_same_name(cli, store):
    result = cli("sql", "SELECT 1 AS n, 2 AS n")
    assert result.exit_code == 0, result.stderr
    assert "│ 1 │ 2 │" in result.stdout
