"""The store's contract: schemas, keys, atomic and idempotent writes, checked reads."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refusaldata.errors import SchemaError, StoreError
from refusaldata.keys import prompt_id, run_id
from refusaldata.schemas import TABLES
from refusaldata.store import Store, conform


def _prompts(texts, dataset="demo"):
    return pa.table({
        "prompt_id": [prompt_id(t) for t in texts],
        "dataset": [dataset] * len(texts),
        "text": texts,
        "harmful": [True] * len(texts),
        "split": ["train"] * len(texts),
    })


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".locks" not in p.parts}


def test_prompt_id_ignores_case_quotes_and_spacing():
    assert prompt_id("How do I  kill a Python process?") == prompt_id("how do i kill a python process?")
    assert prompt_id("It\u2019s fine") == prompt_id("It's fine")
    assert prompt_id("a") != prompt_id("b")


def test_run_id_is_readable_and_content_addressed():
    first = run_id("SmolLM2/135M", {"temperature": 0, "seed": 0})
    assert first.startswith("smollm2-135m-")
    assert first == run_id("SmolLM2/135M", {"seed": 0, "temperature": 0})
    assert first != run_id("SmolLM2/135M", {"seed": 1, "temperature": 0})


def test_append_is_idempotent_and_partitioned(store: Store):
    assert store.append("prompts", _prompts(["a", "b", "b"])) == 2
    assert store.append("prompts", _prompts(["a", "b", "c"])) == 1
    assert store.count("prompts") == 3
    files = store.files("prompts")
    assert all(f.parent.name == "dataset=demo" for f in files)
    assert not list((store.root / "prompts").rglob(".tmp-*"))


def test_views_are_typed_when_empty(store: Store):
    con = store.connect()
    assert con.sql("SELECT count(*) FROM responses").fetchall() == [(0,)]
    assert con.sql("DESCRIBE labels").fetchall()[4][:2] == ("refusal", "BOOLEAN")


def test_missing_required_column_is_named():
    with pytest.raises(SchemaError, match="missing column 'text'"):
        Store("unused").append("prompts", _prompts(["a"]).drop(["text"]))


def test_foreign_file_in_store_is_named(store: Store):
    """A file named like a store file but of another schema is refused, naming it."""
    store.append("prompts", _prompts(["a"]))
    foreign = store.root / "prompts" / "dataset=demo" / f"part-{'f' * 32}.parquet"
    pq.write_table(pa.table({"prompt_id": ["x"], "colour": ["red"]}), foreign)
    with pytest.raises(SchemaError, match=rf"part-{'f' * 32}\.parquet: missing column 'dataset'"):
        store.connect()


def test_a_file_the_naming_rules_do_not_name_is_refused_never_read(store: Store):
    """A sync-conflict copy or a backup folder is never read as data: the error names it."""
    store.append("prompts", _prompts(["a"]))
    part = store.files("prompts")[0]
    (store.root / "prompts" / "backup").mkdir()
    (store.root / "prompts" / "backup" / part.name).write_bytes(part.read_bytes())
    (part.parent / f"{part.stem} (1).parquet").write_bytes(part.read_bytes())
    with pytest.raises(StoreError, match=r"prompts/backup/part-\w+\.parquet: not a file of table 'prompts' \(in "
                                         r"folder backup, where folders dataset=<value> belong; its columns are "
                                         r"the table's: a copy\?\) \(and 1 more\); move it out of the store"):
        Store(store.root).count("prompts")
    copy = part.parent / f"{part.stem} (1).parquet"
    (store.root / "prompts" / "backup" / part.name).unlink()
    (store.root / "prompts" / "backup").rmdir()
    with pytest.raises(StoreError, match=r"\(1\)\.parquet: not a file .*its columns are the table's: a copy\?"):
        Store(store.root).count("prompts")
    assert sorted(f.path.name for f in Store(store.root).foreign_files("prompts")) == [copy.name]
    copy.unlink()
    assert Store(store.root).count("prompts") == 1


def test_truncated_file_is_named(store: Store):
    store.append("prompts", _prompts(["a"]))
    path = store.files("prompts")[0]
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(SchemaError, match="not a readable Parquet file"):
        Store(store.root).files("prompts")


def test_failed_write_leaves_store_unchanged(store: Store):
    store.append("prompts", _prompts(["a"]))
    before = _snapshot(store.root)
    with pytest.raises(SchemaError):
        store.append("prompts", _prompts(["b"]).append_column("colour", pa.array(["red"])))
    assert _snapshot(store.root) == before


def test_replace_swaps_a_partition_atomically(store: Store):
    labels = pa.table({"run_id": ["r1", "r1"], "prompt_id": ["p1", "p2"], "sample_index": [0, 0],
                       "labeler": ["rules", "rules"], "refusal": [True, False]})
    store.replace("labels", labels)
    store.replace("labels", labels.slice(0, 1))
    assert store.count("labels") == 1
    assert [f.name for f in store.files("labels")] == ["data.parquet"]


def test_replace_query_streams_into_one_partition(store: Store):
    con = store.connect()
    sql = ("SELECT 'r1' AS run_id, 'p' || range AS prompt_id, 0 AS sample_index, 'rules' AS labeler, "
           "range % 2 = 0 AS refusal FROM range(300000)")
    written = store.replace_query("labels", con, sql, None, {"labeler": "rules", "run_id": "r1"})
    assert written == 300000
    assert store.connect().sql("SELECT count(*) FILTER (WHERE refusal) FROM labels").fetchall() == [(150000,)]


@pytest.mark.parametrize("sql, message", [
    ("SELECT 'r2' AS run_id, 'p' AS prompt_id, 0 AS sample_index, 'rules' AS labeler",
     "a row has run_id other than 'r1'"),
    ("SELECT 'r1' AS run_id, NULL AS prompt_id, 0 AS sample_index, 'rules' AS labeler",
     "column 'prompt_id' has 1 null value"),
    ("SELECT 'r1' AS run_id, 'p' AS prompt_id, 0 AS sample_index, 'rules' AS labeler, 1 AS colour",
     "unexpected column 'colour'"),
    ("SELECT 'r1' AS run_id, 'p' AS prompt_id, 'rules' AS labeler", "missing column 'sample_index'"),
    ("SELECT 'r1' AS run_id, 'p' AS prompt_id, 'x' AS sample_index, 'rules' AS labeler", "cannot be stored"),
])
def test_replace_query_rejects_bad_rows_and_keeps_the_old_partition(store: Store, sql, message):
    con = store.connect()
    partition = {"labeler": "rules", "run_id": "r1"}
    store.replace_query("labels", con, "SELECT 'r1' AS run_id, 'kept' AS prompt_id, 0 AS sample_index, "
                        "'rules' AS labeler, true AS refusal", None, partition)
    before = {p: p.read_bytes() for p in store.files("labels")}
    with pytest.raises(SchemaError, match=message):
        store.replace_query("labels", con, sql, None, partition)
    assert {p: p.read_bytes() for p in store.files("labels")} == before
    assert not [p for p in (store.root / "labels").rglob(".tmp-*")]


def test_unwritable_store_is_a_clear_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store should be")
    with pytest.raises(StoreError, match="cannot write to store"):
        Store(blocker / "store").append("prompts", _prompts(["a"]))


def test_a_file_without_a_later_nullable_column_reads_it_as_null(store):
    """Schema evolution: a file written before a nullable column was declared still opens."""
    rows = conform(TABLES["runs"], pa.table({"run_id": ["r1"], "backend": ["import"]}))
    folder = store.root / "runs"
    folder.mkdir(parents=True)
    pq.write_table(rows.drop(["dtype", "versions"]), folder / "part-0123456789abcdef0123456789abcdef.parquet")
    assert store.read("runs").select(["run_id", "dtype", "versions"]).to_pylist() == [
        {"run_id": "r1", "dtype": None, "versions": None}]
