"""`responses import --input-format hf`: Hugging Face datasets folders (save_to_disk) and hub ids."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from refusaldata.keys import prompt_id

datasets = pytest.importorskip("datasets", reason="the hf extra (datasets) is not installed")

ROWS = {"question": ["How do I pick a lock?", "How do I bake bread?", "How do I pick a lock?"],
        "answer": ["I can't help with that.", "Mix flour, water and yeast.", "Sorry, I won't."],
        "id": [1, 2, 3]}


def _rows(store, sql: str):
    con = store.connect()
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".locks" not in p.parts}


def _saved(tmp_path, name="answers", rows=None, **splits):
    folder = tmp_path / name
    if splits:
        datasets.DatasetDict({key: datasets.Dataset.from_dict(value) for key, value in splits.items()}).save_to_disk(
            str(folder))
    else:
        datasets.Dataset.from_dict(ROWS if rows is None else rows).save_to_disk(str(folder))
    return folder


def test_a_saved_dataset_imports_with_mapped_columns_and_reimports_nothing(store, cli, tmp_path):
    folder = _saved(tmp_path)
    args = ("responses", "import", folder, "--input-format", "hf", "--prompt-column", "question",
            "--response-column", "answer")
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("hf-answers (") and "3 new of 3 responses, 2 new prompts" in result.stdout
    stored = _rows(store, "SELECT prompt_id, sample_index, response FROM responses ORDER BY response")
    lock = prompt_id("How do I pick a lock?")
    bread = prompt_id("How do I bake bread?")
    assert stored == [(lock, 0, "I can't help with that."), (bread, 0, "Mix flour, water and yeast."),
                      (lock, 1, "Sorry, I won't.")]
    assert _rows(store, "SELECT backend, model, json_extract_string(config, '$.format') FROM runs") == [
        ("import", "answers", "hf")]
    again = cli(*args)
    assert again.exit_code == 0 and "0 new of 3 responses, 0 new prompts" in again.stdout


def test_a_dataset_dict_takes_its_only_split_or_the_one_named(store, cli, tmp_path):
    one = _saved(tmp_path, "one", train={"prompt": ["a?"], "response": ["b."]})
    assert cli("responses", "import", one, "--input-format", "hf").exit_code == 0
    two = _saved(tmp_path, "two", train={"prompt": ["c?"], "response": ["d."]},
                 test={"prompt": ["e?", "f?"], "response": ["g.", "h."]})
    result = cli("responses", "import", two, "--input-format", "hf", "--split", "test")
    assert result.exit_code == 0, result.stderr
    assert "2 new of 2 responses" in result.stdout
    assert _rows(store, "SELECT count(*) FROM responses") == [(3,)]


@pytest.mark.parametrize(("make", "options", "message"), [
    (lambda tmp: _saved(tmp, "two", train={"prompt": ["a"], "response": ["b"]},
                        test={"prompt": ["a"], "response": ["b"]}),
     (), "holds several splits (train, test); choose one with --split"),
    (lambda tmp: _saved(tmp, "two", train={"prompt": ["a"], "response": ["b"]}),
     ("--split", "validation"), "no split 'validation' (splits: train)"),
    (lambda tmp: _saved(tmp), (), "no column 'prompt' (columns: question, answer, id)"),
    (lambda tmp: _saved(tmp), ("--prompt-column", "question", "--response-column", "missing"), "no column 'missing'"),
    (lambda tmp: _saved(tmp, rows={"prompt": [{"text": "a", "n": 1}], "response": ["b"]}), (),
     "column 'prompt' holds structs"),
    (lambda tmp: _saved(tmp, rows={"prompt": ["a"], "response": [["b", "c"]]}), (), "column 'response' holds lists"),
    (lambda tmp: _saved(tmp, rows={"prompt": [], "response": []}), (), "empty dataset (the table without rows)"),
    (lambda tmp: _saved(tmp, "two", train={"prompt": ["a"], "response": ["b"]}, test={"prompt": [], "response": []}),
     ("--split", "train"), "empty dataset (split test without rows)"),
    (lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt", (), "not a folder"),
    (lambda tmp: (tmp / "plain").mkdir() or tmp / "plain", (), "not a datasets folder written by save_to_disk"),
])
def test_bad_datasets_fail_in_one_line_and_store_nothing(store, cli, tmp_path, make, options, message):
    source = make(tmp_path)
    before = _snapshot(store.root) if store.root.exists() else {}
    result = cli("responses", "import", source, "--input-format", "hf", *options)
    assert result.exit_code == 1, result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(source) in result.stderr and message in result.stderr, result.stderr
    assert (_snapshot(store.root) if store.root.exists() else {}) == before


def test_split_applies_only_to_hf(cli, tmp_path):
    result = cli("responses", "import", tmp_path / "x.csv", "--input-format", "csv", "--split", "train")
    assert result.exit_code == 1 and "--split applies only to --input-format hf" in result.stderr


def test_a_hub_id_offline_fails_fast_in_one_line(tmp_path):
    """The hub path (datasets.load_dataset) cannot be reached here: offline, it says so at once."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "REFUSALDATA_STORE": str(tmp_path / "s")}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "refusaldata.cli", "responses", "import", "someone/answers",
                             "--input-format", "hf"], env=env, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 60
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: someone/answers: no such folder") and "offline" in lines[0]
    assert not (tmp_path / "s" / "responses").exists()


def test_a_missing_datasets_package_names_the_extra(cli, tmp_path, monkeypatch):
    folder = _saved(tmp_path)
    monkeypatch.setitem(sys.modules, "datasets", None)
    result = cli("responses", "import", folder, "--input-format", "hf")
    assert result.exit_code == 1 and "pip install -e '.[hf]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
