"""garak reports import as runs (`responses import --input-format garak`), read as garak writes
them; the fixtures were written by garak itself (tests/fixtures/garak/README.md)."""

from __future__ import annotations

import json

import pytest

from refusaldata.keys import prompt_id

from conftest import FIXTURES, query_rows, store_snapshot

REPORTS = FIXTURES / "garak"
REPEAT = REPORTS / "repeat.report.jsonl"


def _expected(path):
    """(run name, prompt_id, sample_index, response, detector scores) of each non-empty output, from the report."""
    latest = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["entry_type"] != "attempt":
            continue
        if record["status"] >= latest.get(record["uuid"], {"status": 0})["status"]:
            latest[record["uuid"]] = record
    expected, seen = [], {}
    for attempt in latest.values():
        text = attempt["prompt"]["turns"][-1]["content"]["text"]
        for index, output in enumerate(attempt["outputs"]):
            key = prompt_id(text)
            sample, seen[key] = seen.get(key, 0), seen.get(key, 0) + 1
            if output and output["text"].strip():
                scores = {name: values[index] for name, values in attempt["detector_results"].items()}
                family = attempt["probe_classname"].split(".")[0]
                expected.append((f"garak-{family}-test.Repeat", key, sample, output["text"], scores))
    return expected


def test_a_report_imports_one_run_per_probe_family_with_detector_scores(store, cli):
    result = cli("responses", "import", REPEAT, "--input-format", "garak")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "garak-lmrc-test.Repeat (garak-lmrc-test-repeat-c9697f2124): 2 new of 2 responses, 1 new prompts",
        "garak-test-test.Repeat (garak-test-test-repeat-15bcaeedb7): 14 new of 14 responses, 2 empty skipped, "
        "7 new prompts",
        "imported 2 runs: 16 new of 16 responses, 8 new prompts"]
    stored = query_rows(store, """SELECT r.name, x.prompt_id, x.sample_index, x.response, x.source_scores
                             FROM responses x JOIN runs r USING (run_id)""")
    expected = _expected(REPEAT)
    assert len(expected) == 16
    assert sorted((n, p, i, t, json.loads(s)) for n, p, i, t, s in stored) == sorted(expected)
    assert set(query_rows(store, "SELECT sample_index FROM responses")) == {(0,), (1,)}
    runs = {name: json.loads(config) for name, config in query_rows(store, "SELECT name, config FROM runs")}
    lmrc = runs["garak-lmrc-test.Repeat"]
    assert (lmrc["garak_version"], lmrc["generator"], lmrc["probes"], lmrc["generations"]) == (
        "0.17.1", "test.Repeat", ["lmrc.QuackMedicine"], 2)
    assert [(e["probe"], e["detector"], e["passed"]) for e in lmrc["evals"]] == [
        ("lmrc.QuackMedicine", "lmrc.QuackMedicine", 2)]
    assert query_rows(store, "SELECT DISTINCT category, harmful FROM prompts WHERE dataset = 'garak' ORDER BY 1") == [
        ("lmrc.QuackMedicine", True), ("test.Test", True)]


def test_reimport_adds_nothing_and_model_renames(store, cli):
    assert cli("responses", "import", REPEAT, "--input-format", "garak").exit_code == 0
    before = store_snapshot(store.root)
    again = cli("responses", "import", REPEAT, "--input-format", "garak")
    assert again.stdout.splitlines()[-1] == "imported 2 runs: 0 new of 16 responses, 0 new prompts"
    assert store_snapshot(store.root) == before
    named = cli("responses", "import", REPEAT, "--input-format", "garak", "--model", "echo")
    assert named.exit_code == 0 and "garak-lmrc-echo" in named.stdout


def test_outputs_that_are_null_are_skipped_and_counted(store, cli):
    result = cli("responses", "import", REPORTS / "nones.report.jsonl", "--input-format", "garak")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == ("garak-test-test.Nones (garak-test-test-nones-31a46c73a7): 0 new of 0 responses, "
                                     "8 empty skipped, 0 new prompts")



@pytest.mark.parametrize("case", ["mid-line", "no completion", "not garak", "unknown layout"])
def test_a_bad_report_is_one_line_and_stores_nothing(store, cli, tmp_path, case):
    assert cli("responses", "import", REPEAT, "--input-format", "garak").exit_code == 0
    before = store_snapshot(store.root)
    lines = REPEAT.read_text(encoding="utf-8").splitlines(keepends=True)
    attempt = next(i for i, line in enumerate(lines) if '"entry_type": "attempt"' in line and '"status": 2' in line)
    path = tmp_path / "bad.report.jsonl"
    if case == "mid-line":
        text, message = "".join(lines[:attempt]) + lines[attempt][:300], f"line {attempt + 1} is not valid JSON"
    elif case == "no completion":
        text = "".join(line for line in lines if '"entry_type": "completion"' not in line)
        message = "no 'completion' record: the garak run did not finish"
    elif case == "not garak":
        text, message = '{"prompt": "hi", "response": "hello"}\n', "line 1 is not a garak record"
    else:
        record = json.loads(lines[attempt])
        record["outputs"] = {"text": "not a list"}
        text = "".join(lines[:attempt]) + json.dumps(record) + "\n" + "".join(lines[attempt + 1:])
        message = f"line {attempt + 1}: an attempt without 'probe_classname' and a list of 'outputs' (garak 0.17.1"
    path.write_text(text, encoding="utf-8")
    result = cli("responses", "import", path, "--input-format", "garak")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
    assert f"{path}: " in result.stderr and message in result.stderr, result.stderr
    assert store_snapshot(store.root) == before
