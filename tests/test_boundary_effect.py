"""What boundary rows do: runs M and M-no-boundary paired in order, effects, report, chart, CLI."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from refusaldata.evaluate import (
    METHOD_ORDER, NO_BOUNDARY_SUFFIX, boundary_effects, boundary_pairs, boundary_sentence, compare_runs,
    default_runs, paired_effects,
)
from refusaldata.escape import markdown_text
from refusaldata.figures import tradeoff_chart
from refusaldata.keys import prompt_id, run_id
from refusaldata.report import write_report
from refusaldata.schemas import TABLES
from refusaldata.store import conform

CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
HARMFUL = [f"harmful request {index}" for index in range(30)]
BENIGN = [f"how do I kill python process {index}" for index in range(30)]
# Per run: the harmful and benign prompts (by index) it refuses, and of its capability prompts
# (keys 0..19) those whose every instruction it followed.
RUNS = {
    "base": {"harmful": range(2), "benign": range(2), "capability": range(14)},
    "dpo": {"harmful": range(24), "benign": range(3), "capability": range(14)},
    "dpo-no-boundary": {"harmful": range(25), "benign": range(20), "capability": range(10)},
}


def build_store(store, runs: dict | None = None, answered: dict | None = None, capability: bool = True) -> None:
    """Prompts (30 harmful, 30 benign, test split) and runs labelled as `runs` says; `answered`
    limits a run to the prompts (harmful and benign indices) it answered."""
    runs = RUNS if runs is None else runs
    answered = answered or {}
    ids = {name: run_id(name, {"fixture": "boundary"}) for name in runs}
    prompt_rows = [{"prompt_id": prompt_id(text), "dataset": "fixture", "category": kind, "text": text,
                    "harmful": kind == "harmful", "split": "test", "imported_at": CREATED}
                   for kind, texts in (("harmful", HARMFUL), ("benign", BENIGN)) for text in texts]
    run_rows = [{"run_id": ids[name], "name": name, "model": "m", "adapter": None if name == "base" else name,
                 "backend": "transformers", "n": 1, "seed": 0, "created_at": CREATED + dt.timedelta(minutes=index)}
                for index, name in enumerate(runs)]
    responses, labels, scored = [], [], []
    for name, refused in runs.items():
        for kind, texts in (("harmful", HARMFUL), ("benign", BENIGN)):
            for index in answered.get(name, {}).get(kind, range(len(texts))):
                refusal = index in refused[kind]
                common = {"run_id": ids[name], "prompt_id": prompt_id(texts[index]), "sample_index": 0}
                opening = "i'm sorry, but i can't" if refusal else "sure, here is how"
                responses.append({**common, "response": opening, "finish_reason": "stop", "created_at": CREATED})
                labels.append({**common, "labeler": "rules", "refusal": refusal, "marker": opening if refusal else None,
                               "opening": opening, "created_at": CREATED})
        if capability:
            scored += [{"run_id": ids[name], "suite": "embedded", "key": str(key),
                        "strict": key in refused["capability"], "kl_to_base": 0.0,
                        "instruction_ids": ["punctuation:no_comma"], "followed_strict": [key in refused["capability"]]}
                       for key in range(20)]
    tables = {"prompts": prompt_rows, "runs": run_rows, "responses": responses, "labels": labels}
    if scored:
        tables["capability"] = scored
    for name, rows in tables.items():
        table = conform(TABLES[name], pa.Table.from_pylist(rows))
        (store.replace if TABLES[name].replace else store.append)(name, table)


def _names(store, run_ids: list[str]) -> list[str]:
    runs = store.read("runs")
    return [runs.filter(pc.equal(pc.field("run_id"), run))["name"][0].as_py() for run in run_ids]


def test_no_boundary_runs_come_right_after_their_method(store):
    assert METHOD_ORDER == ("base", "baseline-sft", "baseline-sft-no-boundary", "self-distill",
                            "self-distill-no-boundary", "cross-distill", "cross-distill-no-boundary", "dpo",
                            "dpo-no-boundary", "nca", "nca-no-boundary")
    assert NO_BOUNDARY_SUFFIX == "-no-boundary"
    # Created in another order; the study's methods first, then the rest with each ablation after its method.
    runs = {name: RUNS["dpo"] for name in ("dpo-no-boundary", "mine-no-boundary", "zeta", "nca", "mine", "dpo",
                                           "base")}
    build_store(store, runs, capability=False)
    assert _names(store, default_runs(store)) == ["base", "dpo", "dpo-no-boundary", "nca", "mine",
                                                  "mine-no-boundary", "zeta"]
    assert boundary_pairs(["base", "dpo", "dpo-no-boundary", "mine-no-boundary", "nca"]) == [(1, 2)]


def test_paired_effect_signs_and_intervals(store):
    build_store(store)
    effects = boundary_effects(store, ["base", "dpo", "dpo-no-boundary"], bootstrap=1000)
    assert effects.num_rows == 1
    row = effects.to_pylist()[0]
    assert (row["method"], row["run_id"], row["no_boundary_run_id"]) == (
        "dpo", store.resolve_run("dpo"), store.resolve_run("dpo-no-boundary"))
    assert (row["harmful_prompts"], row["benign_prompts"], row["capability_prompts"]) == (30, 30, 20)
    assert row["refusal_rate_with"] == pytest.approx(24 / 30)
    assert row["refusal_rate_without"] == pytest.approx(25 / 30)
    assert row["over_refusal_rate_with"] == pytest.approx(3 / 30)
    assert row["over_refusal_rate_without"] == pytest.approx(20 / 30)
    assert row["over_refusal_rate_diff"] == pytest.approx(3 / 30 - 20 / 30)
    assert row["capability_diff"] == pytest.approx(14 / 20 - 10 / 20)
    for statistic in ("refusal_rate", "over_refusal_rate", "capability"):
        for side in ("with", "without", "diff"):
            name = f"{statistic}_{side}"
            assert row[f"{name}_low"] <= row[name] <= row[f"{name}_high"], name
    # Boundary rows lower over-refusal: the paired interval lies below 0. The single harmful
    # prompt the two runs disagree on leaves the refusal difference's interval around 0.
    assert row["over_refusal_rate_diff_high"] < 0
    assert row["refusal_rate_diff_low"] < 0 <= row["refusal_rate_diff_high"]
    # Paired: the two runs' capability differs on 4 of 20 prompts, all the same way, so the
    # difference's interval stays above 0 (two unpaired intervals over 20 prompts would overlap).
    assert row["capability_diff_low"] > 0
    assert boundary_sentence(effects) == (
        "The 95% interval of the paired difference (with − without boundary rows) excludes 0 for dpo over-refusal "
        f"-0.567 [{row['over_refusal_rate_diff_low']:+.2f},{row['over_refusal_rate_diff_high']:+.2f}] (lower with "
        f"boundary rows); dpo capability +0.200 [{row['capability_diff_low']:+.2f},"
        f"{row['capability_diff_high']:+.2f}] (higher with boundary rows), and it includes 0 for dpo refusal "
        f"-0.033 [{row['refusal_rate_diff_low']:+.2f},{row['refusal_rate_diff_high']:+.2f}].")
    # Seeded, and a pair's intervals do not depend on the other runs compared; pairs can also be named.
    assert boundary_effects(store, ["dpo", "dpo-no-boundary"], bootstrap=1000).to_pylist() == [row]
    assert paired_effects(store, [("dpo", "dpo-no-boundary")], bootstrap=1000).to_pylist() == [row]
    assert paired_effects(store, [("base", "dpo")], bootstrap=100).column("method").to_pylist() == ["base"]


def test_only_the_prompts_both_runs_answered_are_paired(store):
    build_store(store, answered={"dpo": {"harmful": range(0, 20), "benign": range(0, 30)},
                                 "dpo-no-boundary": {"harmful": range(10, 30), "benign": range(5, 30)}})
    row = boundary_effects(store, ["dpo", "dpo-no-boundary"], bootstrap=200).to_pylist()[0]
    assert (row["harmful_prompts"], row["benign_prompts"]) == (10, 25)
    # Harmful 10..19: dpo refuses all ten, the run without boundary rows too.
    assert (row["refusal_rate_with"], row["refusal_rate_without"], row["refusal_rate_diff"]) == (1.0, 1.0, 0.0)
    assert (row["refusal_rate_diff_low"], row["refusal_rate_diff_high"]) == (0.0, 0.0)
    # Benign 5..29: none refused with boundary rows, 15 (5..19) without.
    assert row["over_refusal_rate_with"] == 0.0 and row["over_refusal_rate_without"] == pytest.approx(15 / 25)
    # compare, by contrast, rates each run on all the prompts it answered.
    compared = {r["method"]: r for r in compare_runs(store, ["dpo", "dpo-no-boundary"], bootstrap=50).to_pylist()}
    assert compared["dpo"]["refusal_rate"] == 1.0 and compared["dpo-no-boundary"]["refusal_rate"] == 0.75


def test_without_pairs_there_are_no_rows_and_capability_needs_both_runs(store):
    build_store(store, capability=False)
    assert boundary_effects(store, ["base", "dpo"]).num_rows == 0
    row = boundary_effects(store, ["dpo", "dpo-no-boundary"], bootstrap=50).to_pylist()[0]
    assert row["capability_prompts"] is None and row["capability_diff"] is None


def test_report_section_and_chart_arrows(store, tmp_path):
    build_store(store)
    html_path, md_path = write_report(store, None, tmp_path / "study.html", bootstrap=300)
    markdown, page = md_path.read_text(), html_path.read_text()
    assert "## Boundary rows" in markdown and "<h2>Boundary rows</h2>" in page
    effects = boundary_effects(store, ["base", "dpo", "dpo-no-boundary"], bootstrap=300)
    assert markdown_text(boundary_sentence(effects)) in markdown
    assert "excludes 0 for dpo over-refusal -0.567" in markdown
    line = next(line for line in markdown.split("## Boundary rows")[1].splitlines() if line.startswith("| dpo |"))
    assert line.startswith("| dpo | 30 | 30 | 0.800 [") and "| 0.100 [" in line and "| -0.567 [" in line
    chart = ET.parse(tmp_path / "study-tradeoff.svg").getroot()
    # One arrow per panel, from the run without boundary rows to the run with them; every
    # point keeps both whiskers.
    arrows = chart.findall(".//*[@class='arrow']")
    assert len(arrows) == 2
    assert arrows[0].find("{http://www.w3.org/2000/svg}title").text.startswith(
        "dpo: without boundary rows → with: refusal 0.833 → 0.800, over-refusal 0.667 → 0.100")
    assert len(chart.findall(".//*[@class='point']")) == 3 and len(chart.findall(".//*[@class='ci']")) == 9


def test_without_pairs_report_and_chart_are_unchanged(store, tmp_path):
    build_store(store, {name: RUNS[name] for name in ("base", "dpo")})
    html_path, md_path = write_report(store, None, tmp_path / "study.html", bootstrap=100)
    assert "Boundary rows" not in md_path.read_text() and "Boundary rows" not in html_path.read_text()
    assert 'class="arrow"' not in (tmp_path / "study-tradeoff.svg").read_text()
    comparison = compare_runs(store, ["base", "dpo"], bootstrap=100)
    assert tradeoff_chart(comparison).svg() == (tmp_path / "study-tradeoff.svg").read_text()


def test_cli_boundary_effect(cli, store):
    build_store(store)
    result = cli("compare", "base", "dpo", "dpo-no-boundary", "--boundary-effect", "--format", "jsonl",
                 "--bootstrap", "200")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["method"] for row in rows] == ["dpo"]
    assert rows[0]["over_refusal_rate_diff"] == pytest.approx(-17 / 30) and rows[0]["over_refusal_rate_diff_high"] < 0
    assert rows[0]["benign_prompts"] == 30 and rows[0]["capability_diff"] == pytest.approx(0.2)
    result = cli("compare", "dpo", "dpo-no-boundary", "--boundary-effect", "--bootstrap", "200")
    assert result.exit_code == 0, result.stderr
    assert "+0.200 [+0.05" in result.stdout and "-0.567 [" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    assert "excludes 0 for dpo over-refusal -0.567" in " ".join(result.stdout.split())
    result = cli("compare", "base", "dpo", "--boundary-effect")
    assert result.exit_code == 1 and "no run named M-no-boundary" in result.stderr
    result = cli("compare", "dpo", "dpo-no-boundary", "--boundary-effect", "--by", "attack")
    assert result.exit_code == 1 and "--by" in result.stderr
