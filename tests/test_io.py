"""The one I/O layer: atomic files and folders, hashes, tabular readers."""

from __future__ import annotations

import os
import threading

import pytest

from refusaldata import io
from refusaldata.errors import InputError, StoreError


def test_a_failed_write_leaves_the_old_file_byte_identical(tmp_path):
    target = tmp_path / "keep.parquet"
    target.write_bytes(b"old bytes")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as temp:
            temp.write_bytes(b"half of the new")
            raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"old bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.parquet"]


def test_a_successful_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    io.write_json(target, {"b": 1, "a": [1, 2]})
    assert target.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_special_file_is_written_in_place_never_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    io.write_text(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert received == [b"through the pipe\n"]
    assert io.is_special(fifo)  # still the pipe, not a regular file put in its place
    io.write_text("/dev/null", "discarded")
    assert io.is_special("/dev/null")


def test_a_folder_target_is_refused_with_its_name(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        io.write_text(tmp_path, "x", InputError)


def test_a_folder_commits_whole_or_not_at_all(tmp_path):
    target = tmp_path / "judge"
    with io.atomic_folder(target) as staging:
        (staging / "weights").write_text("w1")
        (staging / "card.json").write_text("c1")
    with pytest.raises(RuntimeError):
        with io.atomic_folder(target) as staging:
            (staging / "weights").write_text("w2")
            raise RuntimeError("crash before the card")
    assert {p.name: p.read_text() for p in target.iterdir()} == {"weights": "w1", "card.json": "c1"}
    with io.atomic_folder(target) as staging:
        (staging / "weights").write_text("w3")
    assert {p.name: p.read_text() for p in target.iterdir()} == {"weights": "w3"}
    assert [p.name for p in tmp_path.iterdir()] == ["judge"]


def test_an_unwritable_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(StoreError, match="cannot write .*missing"):
        io.write_text(tmp_path / "missing" / "deeper" / "x.txt", "x")


def test_hashes_are_stable_and_unambiguous(tmp_path):
    (tmp_path / "a").write_bytes(b"alpha")
    assert io.sha256_file(tmp_path / "a") == io.sha256_bytes(b"alpha") == io.sha256_text("alpha")
    assert io.sha256_parts(["ab", "c"]) != io.sha256_parts(["a", "bc"])


def test_every_tabular_extension_reads_the_same_rows(tmp_path):
    rows = [{"prompt": "p1", "label": "1"}, {"prompt": "p2", "label": "0"}]
    (tmp_path / "t.csv").write_text("prompt,label\np1,1\np2,0\n")
    (tmp_path / "t.tsv").write_text("prompt\tlabel\np1\t1\np2\t0\n")
    (tmp_path / "t.jsonl").write_text('{"prompt": "p1", "label": "1"}\n{"prompt": "p2", "label": "0"}\n')
    (tmp_path / "t.json").write_text('[{"prompt": "p1", "label": "1"}, {"prompt": "p2", "label": "0"}]')
    io.read_records(tmp_path / "t.csv").write_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.tsv", "t.jsonl", "t.json", "t.parquet"):
        assert io.read_records(tmp_path / name).to_dicts() == rows, name


def test_comment_lines_above_a_csv_header_are_skipped_and_hash_lines_inside_stay_data(tmp_path):
    """PyRIT's datasets open with `# dataset_version=1.2`; a quoted answer may hold a markdown
    heading on a line of its own."""
    (tmp_path / "t.csv").write_text('# dataset_version=1.2\n# source: test\nprompt,answer\n'
                                    'p1,"# Steps\n1. First"\np2,plain\n')
    assert io.read_records(tmp_path / "t.csv").to_dicts() == [{"prompt": "p1", "answer": "# Steps\n1. First"},
                                                              {"prompt": "p2", "answer": "plain"}]
    (tmp_path / "t.tsv").write_text("# a comment\nprompt\tanswer\np1\tyes\n")
    assert io.read_records(tmp_path / "t.tsv").to_dicts() == [{"prompt": "p1", "answer": "yes"}]
    (tmp_path / "only.csv").write_text("# nothing but a comment\n")
    with pytest.raises(InputError, match="empty file"):
        io.read_records(tmp_path / "only.csv")


@pytest.mark.parametrize("name, content, message", [
    ("t.xlsx", "x", "cannot tell the format from the extension '.xlsx'"),
    ("t.csv", "", "empty file"),
    ("t.jsonl", '{"a": 1}\nnot json\n', "line 2 is not valid JSON"),
    ("t.json", '{"a": 1}', "expected a list of JSON objects"),
    ("missing.csv", None, "no such file"),
])
def test_bad_tabular_files_are_one_line_errors(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(InputError, match=message):
        io.read_records(tmp_path / name)
