"""The store's format version, its upgrade of older stores, and what it refuses to read.

tests/fixtures/store_v1 was written by the code before the store had a format version;
every test works on a copy of it, never on the fixture itself.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refusaldata import mine
from refusaldata.store import FORMAT_FILE, FORMAT_VERSION, Store

from conftest import FIXTURES

V1 = FIXTURES / "store_v1"


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def v1_store(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "v1"
    shutil.copytree(V1, root)
    monkeypatch.setenv("REFUSALDATA_STORE", str(root))
    return root


def test_an_old_store_is_upgraded_once_with_a_notice_and_keeps_every_row(cli, v1_store):
    before = pq.read_table(sorted(v1_store.glob("templates/run=*/data.parquet"))).num_rows
    first = cli("tables", "--format", "jsonl")
    assert first.exit_code == 0, first.output
    assert first.stderr.count("Note: upgraded store") == 1 and "from format 1 to 2" in first.stderr
    rows = {row["table"]: row for row in map(json.loads, first.stdout.splitlines())}
    assert rows["templates"]["rows"] == before == 5
    assert rows["prompts"]["rows"] == 83 and rows["labels"]["rows"] == 37 and rows["sft"]["rows"] == 24
    assert json.loads((v1_store / FORMAT_FILE).read_text())["format_version"] == FORMAT_VERSION
    assert not list(v1_store.glob("templates/run=*"))
    assert len(list(v1_store.glob("templates/labeler=rules/run=*/k=5/data.parquet"))) == 3
    again = cli("tables")
    assert again.exit_code == 0 and "upgraded" not in again.stderr
    assert f"(format {FORMAT_VERSION})" in again.stdout


def test_every_common_command_works_on_an_upgraded_old_store(cli, v1_store):
    """The figures are those the code that wrote the store printed on it (commit 1e8dfda)."""
    rates = cli("mine", "rates", "--run", "student", "--format", "jsonl")
    assert rates.exit_code == 0, rates.output
    student = json.loads(rates.stdout.splitlines()[0])
    assert (student["harmful_responses"], student["refusals"]) == (12, 5)
    # Runs without an adapter are a corpus: compare counts every prompt, as mine does; the
    # test split gives the figures the old code printed.
    corpus = cli("compare", "student", "teacher", "--format", "jsonl")
    assert corpus.exit_code == 0, corpus.output
    assert [(row["harmful_responses"], row["refusals"]) for row in map(json.loads, corpus.stdout.splitlines())
            if row["method"] == "student"] == [(12, 5)]
    compared = cli("compare", "student", "teacher", "--split", "test", "--format", "jsonl")
    assert compared.exit_code == 0, compared.output
    by_run = {row["method"]: row for row in map(json.loads, compared.stdout.splitlines())}
    assert (by_run["student"]["harmful_responses"], by_run["student"]["refusals"]) == (3, 1)
    assert by_run["teacher"]["refusal_rate"] == 1.0 and by_run["student"]["templates"] == 2
    sets = cli("sets", "--format", "jsonl")
    assert sets.exit_code == 0, sets.output
    assert {row["set_name"] for row in map(json.loads, sets.stdout.splitlines())} == {
        "self-v1", "cross-v1", "base-v1", "pairs-v1"}
    labelled = cli("label", "--run", "import-csv-model", "--labeler", "rules")
    assert labelled.exit_code == 0, labelled.output
    built = cli("build-sft", "self-v2", "--student", "student", "--mode", "self")
    assert built.exit_code == 0, built.output
    old = pq.read_table(v1_store / "sft" / "set=self-v1" / "data.parquet").sort_by("prompt_id")
    new = Store(v1_store).read("sft").filter(pa.compute.equal(pa.compute.field("set_name"), "self-v2"))
    assert new.sort_by("prompt_id").column("target").to_pylist() == old.column("target").to_pylist()


def test_a_crash_during_the_upgrade_leaves_it_to_be_finished_by_the_next_open(v1_store, monkeypatch):
    calls = {"n": 0}
    real = Store.replace

    def crash_on_second(self, table, data, *args, **kwargs):
        calls["n"] += 1
        if table == "templates" and calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, table, data, *args, **kwargs)

    monkeypatch.setattr(Store, "replace", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        Store(v1_store).files("templates")
    assert not (v1_store / FORMAT_FILE).exists()
    monkeypatch.setattr(Store, "replace", real)
    store = Store(v1_store)
    assert store.count("templates") == 5
    assert store.format_version() == FORMAT_VERSION


def test_templates_of_two_labelers_and_two_k_all_survive(v1_store):
    store = Store(v1_store)
    labels = store.read("labels").filter(pa.compute.equal(pa.compute.field("run_id"), "student-0123456789"))
    store.replace("labels", labels.set_column(labels.schema.get_field_index("labeler"), "labeler",
                                              pa.array(["other"] * labels.num_rows)))
    for labeler in ("rules", "other"):
        for k in (5, 3):
            mine.templates(store, ["student"], k=k, labeler=labeler)
    con = store.connect(["templates"])
    mined = con.sql("SELECT labeler, k, count(*) FROM templates WHERE run_id = 'student-0123456789' "
                    "GROUP BY ALL ORDER BY ALL").fetchall()
    assert [(labeler, k) for labeler, k, _ in mined] == [("other", 3), ("other", 5), ("rules", 3), ("rules", 5)]
    assert all(count > 0 for *_, count in mined)


def test_a_store_of_a_newer_format_is_refused_and_left_untouched(cli, v1_store):
    (v1_store / FORMAT_FILE).write_text(json.dumps({"format_version": FORMAT_VERSION + 1}))
    before = _snapshot(v1_store)
    for args in (["tables"], ["label"], ["prompts", "import", "benign-controls"]):
        result = cli(*args)
        assert result.exit_code == 1
        assert result.stderr.count("\n") == 1 and f"store format {FORMAT_VERSION + 1} was written by a newer" \
            in result.stderr
    assert _snapshot(v1_store) == before


@pytest.mark.parametrize("make, message", [
    (lambda root: root.write_text("not a folder"), "is a file, not a store folder"),
    (lambda root: (root.mkdir(), (root / "notes.txt").write_text("x")), "not a refusaldata store"),
    (lambda root: (root.mkdir(), (root / FORMAT_FILE).write_text("{oops")), "not a readable store format file"),
])
def test_a_path_that_is_not_a_store_is_a_one_line_error(cli, tmp_path, make, message):
    root = tmp_path / "given"
    make(root)
    before = _snapshot(root) if root.is_dir() else root.read_bytes()
    for args in (["tables"], ["prompts", "import", "benign-controls"]):
        result = cli(*args, "--store", root)
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
        assert message in result.stderr
    assert (_snapshot(root) if root.is_dir() else root.read_bytes()) == before


def test_an_empty_folder_or_one_with_a_readme_becomes_a_store_on_the_first_write(cli, tmp_path):
    root = tmp_path / "fresh"
    root.mkdir()
    (root / "README.md").write_text("my store")
    assert cli("tables", "--store", root).exit_code == 0
    assert not (root / FORMAT_FILE).exists()
    assert cli("prompts", "import", "benign-controls", "--store", root).exit_code == 0
    assert json.loads((root / FORMAT_FILE).read_text())["format_version"] == FORMAT_VERSION


def test_a_store_under_name_value_folders_reads_its_own_columns(cli, tmp_path):
    root = tmp_path / "exp" / "dataset=old" / "split=v1" / "store"
    assert cli("prompts", "import", "benign-controls", "--store", root).exit_code == 0
    again = cli("prompts", "import", "benign-controls", "--store", root)
    assert "0 new" in again.stdout or "(64 already stored)" in again.stdout, again.stdout
    listed = cli("sql", "SELECT dataset, split, count(*) AS n FROM prompts GROUP BY ALL ORDER BY ALL",
                 "--format", "jsonl", "--store", root)
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [
        {"dataset": "benign-controls", "split": "test", "n": 12},
        {"dataset": "benign-controls", "split": "train", "n": 52}]


def test_keys_stored_twice_are_reported_and_never_doubled_into_labels(cli, v1_store):
    store = Store(v1_store)
    part = store.files("responses")[0]
    run = part.parent.name.removeprefix("run=")
    rows = pq.read_table(part).num_rows
    shutil.copy(part, part.parent / f"part-{'a' * 32}.parquet")
    listed = cli("tables", "--format", "jsonl")
    responses = next(row for row in map(json.loads, listed.stdout.splitlines()) if row["table"] == "responses")
    assert responses["duplicate_keys"] == rows
    doctor = cli("doctor", "--format", "jsonl")
    assert doctor.exit_code == 1
    assert [json.loads(line)["problem"] for line in doctor.stdout.splitlines()] == ["duplicate keys"]
    assert cli("label", "--run", run, "--labeler", "rules").exit_code == 0
    assert Store(v1_store).duplicate_keys("labels") == 0
    con = Store(v1_store).connect(["labels"])
    assert con.execute("SELECT count(*) FROM labels WHERE run_id = ? AND labeler = 'rules'", [run]).fetchone()[0] \
        == rows


def test_doctor_lists_each_foreign_file_and_the_table_stays_refused_until_it_goes(cli, v1_store):
    part = Store(v1_store).files("prompts")[0]
    copy = part.parent / f"{part.stem} (1).parquet"
    copy.write_bytes(part.read_bytes())
    (v1_store / "runs" / "backup").mkdir()
    (v1_store / "runs" / "backup" / "old.parquet").write_bytes(b"PAR1")
    refused = cli("prompts", "list")
    assert refused.exit_code == 1 and "not a file of table 'prompts'" in refused.stderr
    doctor = cli("doctor", "--format", "jsonl")
    assert doctor.exit_code == 1
    found = [json.loads(line) for line in doctor.stdout.splitlines()]
    assert [(row["table"], row["problem"], Path(row["path"]).name) for row in found] == [
        ("prompts", "foreign file", copy.name), ("runs", "foreign file", "old.parquet")]
    copy.unlink()
    shutil.rmtree(v1_store / "runs" / "backup")
    assert cli("prompts", "list").exit_code == 0
    healthy = cli("doctor")
    assert healthy.exit_code == 0 and "no problems found" in healthy.stdout
