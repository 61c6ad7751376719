"""`refusaldata compare`: exact estimates, valid intervals, paired differences, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from refusaldata import evaluate
from refusaldata.errors import InputError, NotFoundError
from refusaldata.evaluate import compare_runs, format_comparison, top_openings
from refusaldata.schemas import TABLES

COMPARE_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "compare"
RUNS = ("base", "self-distill", "teacher")
TEACHER_UNIFORMITY = 1 - (-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))) / math.log(4)


def load_fixture(store) -> None:
    """Write the frozen three-run fixture (see fixtures/compare/make_fixture.py) through the store."""
    for name in ("prompts", "runs", "responses", "labels", "templates"):
        table = pq.read_table(COMPARE_FIXTURE / f"{name}.parquet")
        (store.replace if TABLES[name].replace else store.append)(name, table)


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".locks" not in p.parts}


def _rows(table: pa.Table) -> dict[str, dict]:
    return {row["method"]: row for row in table.to_pylist()}


def _assert_intervals(row: dict) -> None:
    for statistic in evaluate.STATISTICS:
        value, low, high = row[statistic], row[f"{statistic}_low"], row[f"{statistic}_high"]
        if value is None:
            assert low is None and high is None
            continue
        assert 0.0 <= low <= value <= high <= 1.0, (statistic, low, value, high)
        diff, diff_low, diff_high = (row[f"{statistic}_diff{s}"] for s in ("", "_low", "_high"))
        if diff is not None:
            assert -1.0 <= diff_low <= diff <= diff_high <= 1.0, (statistic, diff_low, diff, diff_high)


def test_estimates_and_differences_are_exact(store):
    load_fixture(store)
    rows = _rows(compare_runs(store, RUNS, bootstrap=500))
    base, distilled, teacher = rows["base"], rows["self-distill"], rows["teacher"]
    # The skipped h5 and the train prompts do not count.
    assert (base["harmful_prompts"], base["harmful_responses"], base["refusals"]) == (4, 4, 2)
    assert [r["refusal_rate"] for r in (base, distilled, teacher)] == [0.5, 0.75, 1.0]
    assert [r["over_refusal_rate"] for r in (base, distilled, teacher)] == [0.25, 0.5, None]
    assert [r["top1_share"] for r in (base, distilled, teacher)] == [0.5, 1.0, 0.75]
    assert base["uniformity"] == 0.0 and distilled["uniformity"] == 1.0
    assert teacher["uniformity"] == pytest.approx(TEACHER_UNIFORMITY)
    assert [r["templates"] for r in (base, distilled, teacher)] == [2, 1, None]
    assert base["refusal_rate_diff"] is None and base["paired_harmful"] is None
    assert distilled["refusal_rate_diff"] == 0.25 and distilled["over_refusal_rate_diff"] == 0.25
    assert distilled["uniformity_diff"] == 1.0 and distilled["top1_share_diff"] == 0.5
    assert teacher["refusal_rate_diff"] == 0.5 and teacher["over_refusal_rate_diff"] is None
    assert (distilled["paired_harmful"], distilled["paired_benign"]) == (True, True)
    assert (teacher["paired_harmful"], teacher["paired_benign"]) == (True, False)
    assert all(r["unsafe_rate"] is None for r in rows.values())
    for row in rows.values():
        _assert_intervals(row)
    # A run that refuses every prompt has no spread; the base run's 2 of 4 has plenty.
    assert (teacher["refusal_rate_low"], teacher["refusal_rate_high"]) == (1.0, 1.0)
    assert base["refusal_rate_low"] < 0.5 < base["refusal_rate_high"]


def test_split_all_counts_train_prompts(store):
    load_fixture(store)
    rows = _rows(compare_runs(store, ["base", "self-distill"], split="all", bootstrap=50))
    assert rows["base"]["refusal_rate"] == pytest.approx(3 / 6)
    assert rows["self-distill"]["refusal_rate"] == pytest.approx(5 / 6)


def test_same_seed_same_table_and_intervals_do_not_depend_on_company(store):
    load_fixture(store)
    first = compare_runs(store, RUNS, bootstrap=300, seed=7)
    assert first.equals(compare_runs(store, RUNS, bootstrap=300, seed=7))
    alone = _rows(compare_runs(store, ["teacher"], bootstrap=300, seed=7))["teacher"]
    assert alone["uniformity_low"] == _rows(first)["teacher"]["uniformity_low"]


def _copy_run(store, source: str, name: str) -> None:
    """A second run with the same prompts and labels as `source`."""
    source_id = store.resolve_run(source)
    copy_id = f"{name}-0000000000"
    runs = store.read("runs").filter(pc.equal(pc.field("run_id"), source_id))
    runs = runs.set_column(runs.schema.get_field_index("run_id"), "run_id", pa.array([copy_id]))
    store.append("runs", runs.set_column(runs.schema.get_field_index("name"), "name", pa.array([name])))
    for table in ("responses", "labels"):
        rows = store.read(table).filter(pc.equal(pc.field("run_id"), source_id))
        rows = rows.set_column(rows.schema.get_field_index("run_id"), "run_id", pa.array([copy_id] * rows.num_rows))
        (store.replace if TABLES[table].replace else store.append)(table, rows)


def test_paired_difference_of_identical_runs_is_exactly_zero(store):
    load_fixture(store)
    _copy_run(store, "base", "again")
    again = _rows(compare_runs(store, ["base", "again"], bootstrap=400, reference="base"))["again"]
    assert again["paired_harmful"] and again["paired_benign"]
    for statistic in ("refusal_rate", "over_refusal_rate", "uniformity", "top1_share"):
        diffs = (again[f"{statistic}_diff"], again[f"{statistic}_diff_low"], again[f"{statistic}_diff_high"])
        assert diffs == (0, 0, 0)
    # Its own interval is still as wide as the reference's uncertainty.
    assert again["refusal_rate_low"] < 0.5 < again["refusal_rate_high"]


def _judge(store, name: str, unsafe: dict[str, list[bool]]) -> None:
    labels = store.read("labels")
    rows = []
    for method, verdicts in unsafe.items():
        run_id = store.resolve_run(method)
        mine = labels.filter(pc.and_(pc.equal(labels["run_id"], run_id), pc.equal(labels["labeler"], "rules")))
        mine = mine.sort_by("prompt_id").slice(0, len(verdicts))
        rows.append(pa.table({"run_id": mine["run_id"], "prompt_id": mine["prompt_id"],
                              "sample_index": mine["sample_index"], "labeler": [name] * mine.num_rows,
                              "unsafe": verdicts}))
    store.replace("labels", pa.concat_tables(rows))


def test_unsafe_rate_when_a_judge_labelled(store):
    load_fixture(store)
    # Judge every base and self-distill response, harmful or not; only harmful ones count.
    _judge(store, "judge", {"base": [True] * 11, "self-distill": [False] * 10})
    rows = _rows(compare_runs(store, ["base", "self-distill"], bootstrap=200))
    assert rows["base"]["unsafe_rate"] == 1.0 and rows["base"]["unsafe_judged"] == 4
    assert rows["self-distill"]["unsafe_rate"] == 0.0 and rows["self-distill"]["unsafe_rate_diff"] == -1.0
    assert "unsafe rate" in format_comparison(compare_runs(store, ["base"], bootstrap=10)).column_names
    _judge(store, "other-judge", {"base": [False] * 11})
    with pytest.raises(InputError, match="several labelers"):
        compare_runs(store, ["base"], bootstrap=10)
    chosen = _rows(compare_runs(store, ["base"], bootstrap=10, unsafe_labeler="other-judge"))
    assert chosen["base"]["unsafe_rate"] == 0.0


def test_vectorized_uniformity_matches_a_direct_count(monkeypatch):
    """The reduceat over (resamples x refusals) equals counting the resampled openings one by one."""
    rng = np.random.default_rng(3)
    size = 30
    prompt_ids = np.array([f"p{i:02d}" for i in range(size)], dtype=object)
    # Up to three samples per prompt, each refusal with one of four openings.
    samples = rng.integers(1, 4, size)
    refusal_openings = [list(rng.choice(["a", "b", "c", "d"], rng.integers(0, s + 1))) for s in samples]
    table = pa.table({
        "run_id": ["r"] * size, "prompt_id": list(prompt_ids), "harmful": [True] * size,
        "responses": samples.tolist(), "refusals": [len(o) for o in refusal_openings],
        "judged": [0] * size, "unsafe": [0] * size})
    pairs = sorted({(p, o) for p, openings in zip(prompt_ids, refusal_openings) for o in openings})
    openings = pa.table({
        "run_id": ["r"] * len(pairs), "prompt_id": [p for p, _ in pairs], "opening": [o for _, o in pairs],
        "refusals": [refusal_openings[int(p[1:])].count(o) for p, o in pairs]})
    prompts = evaluate._group_prompts(table, openings, "r", True)
    monkeypatch.setattr(evaluate, "_BLOCK_ELEMENTS", 50)  # force several blocks
    weights = evaluate.resample_weights(size, 40, np.random.default_rng(0))
    assert weights.sum(axis=1).tolist() == [size] * 40
    found = evaluate.opening_statistics(weights, prompts)
    rates = evaluate.rate_statistics(weights, prompts)
    for b in range(40):
        drawn = np.repeat(np.arange(size), weights[b].astype(int))
        resampled = [o for i in drawn for o in refusal_openings[i]]
        counts = np.array(sorted(((resampled.count(o)) for o in set(resampled)), reverse=True), dtype=float)
        assert rates["refusal"][b] == pytest.approx(len(resampled) / samples[drawn].sum())
        if not resampled:
            assert np.isnan(found["uniformity"][b]) and np.isnan(found["top1_share"][b])
            continue
        share = counts / counts.sum()
        expected = 1 + np.sum(share * np.log(share)) / math.log(len(resampled)) if len(resampled) > 1 else 1.0
        assert found["uniformity"][b] == pytest.approx(expected)
        assert found["top1_share"][b] == pytest.approx(counts[0] / counts.sum())


def test_a_single_refusal_is_uniform_and_none_is_undefined():
    """The same convention as `mine uniformity`: 1 for one refusal, NULL for none."""
    table = pa.table({"run_id": ["r", "r"], "prompt_id": ["p1", "p2"], "harmful": [True, True],
                      "responses": [1, 1], "refusals": [1, 0], "judged": [0, 0], "unsafe": [0, 0]})
    one = pa.table({"run_id": ["r"], "prompt_id": ["p1"], "opening": ["i can't"], "refusals": [1]})
    prompts = evaluate._group_prompts(table, one, "r", True)
    weights = np.array([[1.0, 1.0], [0.0, 2.0]])
    found = evaluate.opening_statistics(weights, prompts)
    assert found["uniformity"][0] == 1.0 and found["top1_share"][0] == 1.0
    assert np.isnan(found["uniformity"][1]) and np.isnan(found["top1_share"][1])


def test_opening_intervals_hold_their_estimate_when_every_refusal_opens_differently():
    """Resampling repeats prompts, hence openings: every resample of 30 distinct openings looks
    more uniform than the data (uniformity 0), so plain percentiles miss the estimate."""
    size = 30
    table = pa.table({"run_id": ["r"] * size, "prompt_id": [f"p{i:02d}" for i in range(size)],
                      "harmful": [True] * size, "responses": [1] * size, "refusals": [1] * size,
                      "judged": [0] * size, "unsafe": [0] * size})
    openings = pa.table({"run_id": ["r"] * size, "prompt_id": [f"p{i:02d}" for i in range(size)],
                         "opening": [f"opening {i}" for i in range(size)], "refusals": [1] * size})
    prompts = evaluate._group_prompts(table, openings, "r", True)
    estimate = evaluate.opening_statistics(np.ones((1, size)), prompts)
    draws = evaluate.opening_statistics(evaluate.resample_weights(size, 1000, np.random.default_rng(0)), prompts)
    assert estimate["uniformity"][0] == pytest.approx(0.0) and estimate["top1_share"][0] == pytest.approx(1 / size)
    for statistic in evaluate.OPENING_STATISTICS:
        value = float(estimate[statistic][0])
        plain_low, _ = evaluate._interval(draws[statistic])
        assert plain_low > value  # the artefact the shift corrects
        low, high = evaluate._interval(draws[statistic], value, (0.0, 1.0))
        assert 0.0 <= low <= value <= high <= 1.0


def test_errors_name_the_problem(store):
    load_fixture(store)
    with pytest.raises(NotFoundError, match="no run 'nope'"):
        compare_runs(store, ["base", "nope"])
    with pytest.raises(InputError, match="given twice"):
        compare_runs(store, ["base", "base"])
    with pytest.raises(NotFoundError, match="no responses labelled by 'judge'"):
        compare_runs(store, ["base"], labeler="judge")
    with pytest.raises(InputError, match="--bootstrap"):
        compare_runs(store, ["base"], bootstrap=0)
    with pytest.raises(InputError, match="--seed must not be negative"):
        compare_runs(store, ["base"], seed=-1)
    with pytest.raises(InputError, match="--k must be at least 1"):
        compare_runs(store, ["base"], k=0)


def test_top_openings(store):
    load_fixture(store)
    top = top_openings(store, ["teacher", "base"], top=1, split="test").to_pylist()
    assert [(r["rank"], r["opening"], r["refusals"], r["share"]) for r in top] == [
        (1, "i cannot help with that", 1, 0.5), (1, "i'm sorry, but i can't", 3, 0.75)]


def test_cli_json_numbers(cli, store):
    load_fixture(store)
    result = cli("compare", *RUNS, "--bootstrap", "200", "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    rows = {row["method"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert list(rows) == list(RUNS)
    distilled = rows["self-distill"]
    assert distilled["refusal_rate"] == 0.75 and distilled["refusal_rate_diff"] == 0.25
    assert 0 <= distilled["refusal_rate_low"] <= 0.75 <= distilled["refusal_rate_high"] <= 1
    assert rows["teacher"]["uniformity"] == pytest.approx(TEACHER_UNIFORMITY)


def test_cli_table_and_parquet(cli, store, tmp_path):
    load_fixture(store)
    result = cli("compare", "base", "self-distill", "--bootstrap", "100")
    assert result.exit_code == 0, result.stderr
    assert "0.750" in result.stdout and "+0.250" in result.stdout and "ref" in result.stdout
    out = tmp_path / "comparison.parquet"
    assert cli("compare", "base", "self-distill", "--format", "parquet", "--output", out).exit_code == 0
    assert pq.read_table(out).column("refusal_rate").to_pylist() == [0.5, 0.75]


def test_cli_bad_input_is_one_line_and_leaves_the_store_alone(cli, store):
    load_fixture(store)
    before = _snapshot(store.root)
    for args, message in ((("base", "nope"), "no run 'nope'"),
                          (("base", "--bootstrap", "0"), "--bootstrap must be at least 1"),
                          (("base", "--labeler", "judge"), "no responses labelled by 'judge'")):
        result = cli("compare", *args)
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: ") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert _snapshot(store.root) == before
