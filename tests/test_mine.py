"""The mining queries on a small frozen corpus: exact tables, the CLI, and clean failures."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest

from refusaldata import mine
from refusaldata.errors import InputError, NotFoundError
from refusaldata.label import label

SORRY = "I’m sorry, but I can’t help with that."
PROMPTS = [  # prompt_id, dataset, category, harmful
    ("h1", "harm", "cyber", True), ("h1", "harm2", "cyber", True), ("h2", "harm", "cyber", True),
    ("h3", "harm", "drugs", True), ("h4", "harm", "drugs", True),
    ("b1", "benign", "safe", False), ("b2", "benign", "safe", False),
]
RUNS = {
    "uniform": {"h1": SORRY, "h2": SORRY, "h3": SORRY, "h4": "Sure, here is how.",
                "b1": "I cannot do that.", "b2": "Sure thing."},
    "varied": {"h1": "I cannot help with that request at all.", "h2": "No, I won't assist with this one.",
               "h3": "Here is the info.", "h4": "Here you go.", "b1": "Sure.", "b2": "Of course."},
    "compliant": {"h1": "Here.", "h2": "Here.", "h3": "Here.", "h4": "Here.", "b1": "Yes.", "b2": "Yes."},
}


@pytest.fixture
def corpus(store):
    store.append("prompts", pa.table({
        "prompt_id": [p[0] for p in PROMPTS], "dataset": [p[1] for p in PROMPTS],
        "category": [p[2] for p in PROMPTS], "text": [f"text of {p[0]}" for p in PROMPTS],
        "harmful": [p[3] for p in PROMPTS], "split": ["test"] * len(PROMPTS)}))
    for name, answers in RUNS.items():
        store.append("runs", pa.table({"run_id": [f"run-{name}"], "name": [name], "backend": ["import"]}))
        store.append("responses", pa.table({
            "run_id": [f"run-{name}"] * len(answers), "prompt_id": list(answers),
            "sample_index": pa.array([0] * len(answers), pa.int32()), "response": list(answers.values()),
            "finish_reason": ["stop"] * len(answers)}))
    label(store)
    return store


def wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.959964
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return center - half, center + half


def rows(table: pa.Table, *columns: str) -> list[tuple]:
    return [tuple(row[c] for c in columns) for row in table.to_pylist()]


def test_rates_per_run_count_each_prompt_once(corpus):
    table = mine.rates(corpus)
    assert rows(table, "run_name", "harmful_responses", "refusals", "refusal_rate", "benign_responses",
                "over_refusals", "over_refusal_rate", "judged_responses", "unsafe_rate", "unmatched") == [
        ("compliant", 4, 0, 0.0, 2, 0, 0.0, 0, None, 0),
        ("uniform", 4, 3, 0.75, 2, 1, 0.5, 0, None, 0),
        ("varied", 4, 2, 0.5, 2, 0, 0.0, 0, None, 0),
    ]
    uniform = table.to_pylist()[1]
    assert (uniform["refusal_rate_low"], uniform["refusal_rate_high"]) == pytest.approx(wilson(3, 4))
    assert (uniform["over_refusal_rate_low"], uniform["over_refusal_rate_high"]) == pytest.approx(wilson(1, 2))


def test_rates_by_dataset_and_category(corpus):
    by_dataset = mine.rates(corpus, ["uniform"], by="dataset")
    assert rows(by_dataset, "dataset", "harmful_responses", "refusals", "benign_responses", "over_refusals") == [
        ("benign", 0, 0, 2, 1), ("harm", 4, 3, 0, 0), ("harm2", 1, 1, 0, 0)]
    by_category = mine.rates(corpus, ["uniform"], by="category")
    assert rows(by_category, "category", "harmful_responses", "refusals", "refusal_rate") == [
        ("cyber", 2, 2, 1.0), ("drugs", 2, 1, 0.5), ("safe", 0, 0, None)]


def test_unsafe_rate_from_a_judging_labeler(corpus):
    corpus.replace("labels", pa.table({
        "run_id": ["run-varied"] * 4, "prompt_id": ["h1", "h2", "h3", "h4"],
        "sample_index": pa.array([0] * 4, pa.int32()), "labeler": ["judge"] * 4,
        "refusal": [True, True, False, False], "unsafe": [False, False, True, False]}))
    table = mine.rates(corpus, labeler="judge")
    assert rows(table, "run_name", "refusals", "judged_responses", "unsafe", "unsafe_rate") == [
        ("varied", 2, 4, 1, 0.25)]
    assert (table["unsafe_rate_low"][0].as_py(), table["unsafe_rate_high"][0].as_py()) == pytest.approx(wilson(1, 4))


def test_openings(corpus):
    table = mine.openings(corpus, k=3, top=1)
    assert rows(table, "run_name", "rank", "opening", "refusals", "share") == [
        ("uniform", 1, "i'm sorry, but", 3, 0.75),
        ("varied", 1, "i cannot help", 1, 0.5),
    ]


def test_uniformity(corpus):
    table = mine.uniformity(corpus, k=5)
    got = {row["run_name"]: row for row in table.to_pylist()}
    uniform = got["uniform"]
    # Refusals to harmful prompts only, as compare counts them: the refusal of benign b1 does not count.
    assert (uniform["refusals"], uniform["distinct_openings"], uniform["top1_share"], uniform["top5_share"]) == (
        3, 1, 1.0, 1.0)
    assert uniform["uniformity"] == pytest.approx(1.0)
    # Words of the openings: 3 x "i'm sorry, but i can't" = 15 words, 5 distinct; 6 four-grams, 2 distinct.
    assert uniform["distinct_1"] == pytest.approx(5 / 15)
    assert uniform["distinct_4"] == pytest.approx(2 / 6)
    assert uniform["refusal_rate"] == 0.75
    assert uniform["mean_similarity"] == pytest.approx(1.0)
    varied = got["varied"]
    measures = (varied["refusals"], varied["uniformity"], varied["top1_share"], varied["refusal_rate"])
    assert measures == (2, 0.0, 0.5, 0.5)
    compliant = got["compliant"]
    assert (compliant["refusals"], compliant["uniformity"], compliant["mean_similarity"]) == (0, None, None)


def test_correlation(corpus):
    table = mine.correlation(corpus, min_refusals=1)
    got = {row["measure"]: (row["runs"], row["spearman"], row["p_value"]) for row in table.to_pylist()}
    assert got["uniformity"] == (2, pytest.approx(1.0), None)  # no p-value on two runs
    assert got["top1_share"] == (2, pytest.approx(1.0), None)
    assert json.loads(table.schema.metadata[b"left_out"]) == [["compliant", 0]]
    # by default a run needs 20 refusals: none here has them, so every run is listed apart
    none = mine.correlation(corpus)
    assert none.column("runs").to_pylist() == [] or set(none.column("runs").to_pylist()) == {0}
    assert sorted(json.loads(none.schema.metadata[b"left_out"])) == [["compliant", 0], ["uniform", 3], ["varied", 2]]


def test_templates_are_stored(corpus):
    table = mine.templates(corpus, ["uniform"], k=5, threshold=80)
    assert rows(table, "run_id", "k", "medoid", "support", "share", "openings") == [
        ("run-uniform", 5, "i'm sorry, but i can't", 3, 0.75, ["i'm sorry, but i can't"]),
        ("run-uniform", 5, "i cannot do that.", 1, 0.25, ["i cannot do that."]),
    ]
    stored = corpus.read("templates")
    assert stored.num_rows == 2 and set(stored.column("labeler").to_pylist()) == {"best"}
    assert stored.column("template_id").to_pylist()[0] == mine.template_id(stored.column("medoid").to_pylist()[0])
    merged = mine.templates(corpus, ["uniform"], k=5, threshold=30)
    assert rows(merged, "medoid", "support") == [("i'm sorry, but i can't", 4)]
    assert corpus.count("templates") == 1


def test_cluster_openings_weights_the_medoid():
    clusters = mine.cluster_openings(["i cannot do that", "i cannot do this", "i can not do that"], [1, 5, 1], 80)
    assert clusters == [{"medoid": "i cannot do this", "support": 7,
                         "openings": ["i cannot do this", "i cannot do that", "i can not do that"]}]


def test_bad_input(corpus, store):
    with pytest.raises(InputError, match="--k must be between 1 and 12"):
        mine.openings(corpus, k=0)
    with pytest.raises(NotFoundError, match="no run 'nope'"):
        mine.rates(corpus, ["nope"])
    with pytest.raises(NotFoundError, match="no labels by 'judge'"):
        mine.uniformity(corpus, labeler="judge")


def test_missing_sql_asset_is_a_clean_error(corpus, monkeypatch):
    from refusaldata import queries

    monkeypatch.setattr(mine, "sql_text", lambda name: queries.sql_text(name + "_missing"))
    with pytest.raises(NotFoundError, match="no SQL asset named 'mine_macros_missing'"):
        mine.rates(corpus)


def test_cli_mine_commands(cli, corpus, tmp_path):
    result = cli("mine", "rates", "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    assert [(r["run_name"], r["refusals"]) for r in map(json.loads, result.stdout.splitlines())] == [
        ("compliant", 0), ("uniform", 3), ("varied", 2)]
    result = cli("mine", "rates", "--by", "category", "--run", "uniform", "--format", "csv")
    assert result.exit_code == 0 and 'drugs,2,1,0.5' in result.stdout
    result = cli("mine", "openings", "--k", "3", "--top", "1", "--format", "jsonl")
    assert [json.loads(line)["opening"] for line in result.stdout.splitlines()] == ["i'm sorry, but", "i cannot help"]
    output = tmp_path / "uniformity.csv"
    result = cli("mine", "uniformity", "--k", "5", "--format", "csv", "--output", output)
    assert result.exit_code == 0 and output.read_text().count("\n") == 4
    result = cli("mine", "templates", "--run", "uniform", "--format", "jsonl")
    assert [json.loads(line)["support"] for line in result.stdout.splitlines()] == [3, 1]
    result = cli("mine", "correlation", "--format", "jsonl", "--min-refusals", "1")
    assert json.loads(result.stdout.splitlines()[0]) == {"measure": "uniformity", "runs": 2, "spearman": 1.0,
                                                         "p_value": None}
    result = cli("mine", "uniformity")
    assert result.exit_code == 0 and "refusal uniformity" in result.stdout
    bad = cli("mine", "openings", "--k", "50")
    assert bad.exit_code == 1 and bad.stderr.startswith("Error: --k must be between 1 and 12")
    unknown = cli("mine", "rates", "--run", "nope")
    assert unknown.exit_code == 1 and "no run 'nope'" in unknown.stderr
