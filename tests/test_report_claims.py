"""The report's claims: the seed papers' claims judged from intervals, and each method against
the separability ceiling, on small real stores (templates mined by `mine templates`)."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa

from refusaldata import mine
from refusaldata.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Check, ceiling_sentences, seed_claims
from refusaldata.evaluate import Estimate, compare_runs
from refusaldata.keys import prompt_id, run_id
from refusaldata.report import study_sections, write_report
from refusaldata.schemas import TABLES
from refusaldata.separability import best_row
from refusaldata.store import conform

CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
HARMFUL = [f"harmful request {index}" for index in range(30)]
BENIGN = [f"how do I kill python process {index}" for index in range(20)]
SORRY = "i'm sorry, but i can't"
# Refusal openings that no two of share a template (random letters: rapidfuzz ratio far below 80).
_letters = random.Random(0)
VARIED = ["".join(_letters.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(14)) for _ in range(30)]
TEACHER = "teacher"


def _run(harmful, benign=range(2), capability=range(18), opening=lambda index: VARIED[index]) -> dict:
    """Which harmful and benign prompts (by index) a run refuses, how it opens each refusal, and
    which of its 20 capability prompts it followed every instruction of."""
    return {"harmful": set(harmful), "benign": set(benign), "capability": set(capability), "opening": opening}


BASE = _run(range(20))  # 20 refusals: enough to read a pattern (mine.MIN_REFUSALS), all opening differently
ALIGNED = _run(range(25), opening=lambda index: SORRY)
REPRODUCING = {
    "base": BASE, "baseline-sft": _run(range(20), opening=lambda index: "i will not do that"),
    "self-distill": ALIGNED, "cross-distill": ALIGNED,
    "dpo": _run(range(30), benign=range(17), capability=range(10)),
    "nca": _run(range(30), benign=range(3), capability=range(14)),
    TEACHER: _run(range(30), benign=(), opening=lambda index: SORRY),
}


def build_store(store, runs: dict, *, teacher_set: bool = True, capability: bool = True,
                teacher_name: str = TEACHER) -> dict[str, str]:
    """30 harmful and 20 benign test prompts answered and labelled by each run as `runs` says;
    the methods under adapters trained on sets named after them, cross-distill's a cross set
    whose refusal targets came from the teacher (unless `teacher_set` is False), named
    `teacher_name`; templates mined."""
    ids = {name: run_id(name, {"fixture": "claims"}) for name in runs}
    prompts = [{"prompt_id": prompt_id(text), "dataset": "fixture", "category": kind, "text": text,
                "harmful": kind == "harmful", "split": "test", "imported_at": CREATED}
               for kind, texts in (("harmful", HARMFUL), ("benign", BENIGN)) for text in texts]
    adapters = {name: f"/adapters/{name}" for name in runs if name not in ("base", TEACHER)}
    tables: dict[str, list] = {
        "prompts": prompts,
        "runs": [{"run_id": ids[name], "name": teacher_name if name == TEACHER else name, "model": "m",
                  "adapter": adapters.get(name), "backend": "import" if name == TEACHER else "transformers",
                  "n": 1, "seed": 0, "created_at": CREATED + dt.timedelta(minutes=position)}
                 for position, name in enumerate(runs)],
        "adapters": [{"adapter_id": f"adapter-{name}", "path": path, "base_model": "m", "set_name": name,
                      "loss": name if name in ("dpo", "nca") else "sft"} for name, path in adapters.items()],
        "responses": [], "labels": [], "capability": [],
    }
    if teacher_set and "cross-distill" in runs and TEACHER in runs:
        tables["sft"] = [{"set_name": "cross-distill", "mode": "cross", "kind": "refusal", "prompt_id": "p",
                          "split": "train", "prompt": "a harmful train prompt", "target": SORRY,
                          "student_run": ids["base"], "source_run": ids[TEACHER]}]
    for name, spec in runs.items():
        for kind, texts in (("harmful", HARMFUL), ("benign", BENIGN)):
            for index, text in enumerate(texts):
                if name == TEACHER and kind == "benign":
                    continue
                refusal = index in spec[kind]
                opening = spec["opening"](index) if refusal else "sure, here is how"
                key = {"run_id": ids[name], "prompt_id": prompt_id(text), "sample_index": 0}
                tables["responses"].append({**key, "response": opening, "finish_reason": "stop", "created_at": CREATED})
                tables["labels"].append({**key, "labeler": "rules", "refusal": refusal, "opening": opening,
                                         "verdict": "refusal" if refusal else "compliance", "created_at": CREATED})
        if capability and name != TEACHER:
            tables["capability"] += [{"run_id": ids[name], "suite": "embedded", "key": str(key),
                                      "strict": key in spec["capability"], "kl_to_base": 0.0,
                                      "instruction_ids": ["punctuation:no_comma"],
                                      "followed_strict": [key in spec["capability"]]} for key in range(20)]
    for table, rows in tables.items():
        if rows:
            data = conform(TABLES[table], pa.Table.from_pylist(rows))
            (store.replace if TABLES[table].replace else store.append)(table, data)
    mine.templates(store, list(ids.values()), labeler="rules")
    return ids


def _claims(store, ids: dict[str, str]) -> list[str]:
    study = [ids[name] for name in ("base", "baseline-sft", "self-distill", "cross-distill", "dpo", "nca")
             if name in ids]
    return [claim.sentence() for claim in seed_claims(store, compare_runs(store, study, bootstrap=300)).claims]


def test_a_check_reads_its_interval_in_the_claimed_direction():
    assert Check("x", Estimate(0.10, 0.01, 0.20)).verdict == REPRODUCED
    assert Check("x", Estimate(0.00, -0.03, 0.04)).verdict == NOT_REPRODUCED  # rules out a rise of 0.05
    assert Check("x", Estimate(0.02, -0.05, 0.10)).verdict == INCONCLUSIVE
    assert Check("x", Estimate(-0.30, -0.40, -0.20), sign=-1).verdict == REPRODUCED  # a fall, as claimed
    assert Check("x", Estimate(0.10, 0.01, 0.20), sign=-1).verdict == NOT_REPRODUCED
    assert Check("x", Estimate(None)).verdict == INCONCLUSIVE
    assert Check("x", Estimate(0.10, 0.01, 0.20), sign=0).verdict == INCONCLUSIVE  # no direction claimed


def test_claims_reproduced(store):
    ids = build_store(store, REPRODUCING)
    pattern, preference, balance = _claims(store, ids)
    assert pattern.startswith("arXiv 2406.11285, after self- and cross-distillation the student's refusals take "
                              "the teacher's pattern: reproduced. The teacher, teacher: 30 refusals, uniformity "
                              "1.000 [1.00,1.00], top-template share 1.000 [1.00,1.00]; base: 20 refusals, "
                              "uniformity 0.000 [")
    assert "(toward the teacher: higher uniformity, higher top-template share): self-distill uniformity +1.000 [" \
        in pattern
    assert pattern.count("(reproduced)") == 4
    assert preference.startswith("arXiv 2409.07772, a preference loss (DPO, NCA) raises refusal over the base at a "
                                 "capability cost: reproduced. Base refusal 0.667 [")
    assert "dpo refusal +0.333 [" in preference and "dpo capability -0.400 [" in preference
    assert preference.count("(reproduced)") == 4
    # nca − dpo: refusal alike, over-refusal 0.70 lower, capability 0.20 higher.
    assert balance.startswith("arXiv 2409.07772, NCA balances safety and capability best: reproduced. Balance "
                              "(refusal − over-refusal + capability) on the prompts both answered: nca − dpo +0.900 [")


def test_claims_not_reproduced(store):
    # Distillation and the preference losses left the student as it was.
    ids = build_store(store, {**{name: BASE for name in ("base", "self-distill", "cross-distill", "dpo", "nca")},
                              TEACHER: REPRODUCING[TEACHER]})
    pattern, preference, balance = _claims(store, ids)
    assert ": not reproduced. " in pattern
    assert "self-distill uniformity +0.000 [+0.00,+0.00] (not reproduced)" in pattern
    assert ": not reproduced. " in preference and "nca refusal +0.000 [+0.00,+0.00] (not reproduced)" in preference
    assert balance.endswith("nca − dpo +0.000 [+0.00,+0.00] (not reproduced).")


def test_claims_inconclusive(store):
    # dpo and nca each move a few prompts either way: too few to tell.
    noisy = _run([*range(2, 22)], capability=[*range(2, 20)])
    ids = build_store(store, {**REPRODUCING, "dpo": noisy, "nca": _run([*range(1, 20), 22], capability=range(17))})
    _, preference, balance = _claims(store, ids)
    assert ": inconclusive. " in preference and "dpo refusal +0.000 [" in preference
    assert "(not reproduced)" not in preference
    assert ": inconclusive. " in balance


def test_a_pattern_of_few_refusals_is_inconclusive(store):
    ids = build_store(store, {**REPRODUCING, "base": _run(range(5))})
    pattern = _claims(store, ids)[0]
    assert ": inconclusive. " in pattern and "base: 5 refusals, uniformity 0.000 [" in pattern
    assert pattern.count("(inconclusive: fewer than 20 refusals in base)") == 4


def test_claims_say_which_runs_they_need(store):
    ids = build_store(store, {name: REPRODUCING[name] for name in ("base", "self-distill", "dpo", TEACHER)},
                      capability=False)
    pattern, preference, balance = _claims(store, ids)
    assert pattern == ("arXiv 2406.11285, after self- and cross-distillation the student's refusals take the "
                       "teacher's pattern: not judged; it needs the run cross-distill and a teacher (the run a cross "
                       "set took its refusal targets from).")
    assert preference.endswith("not judged; it needs the run nca and capability of base and dpo "
                               "(`refusaldata evaluate capability`).")
    assert balance.startswith("arXiv 2409.07772, NCA balances safety and capability best: not judged; it needs")


def _separability(store, separation: tuple[float, float, float]) -> None:
    row = {"probe_id": "p1", "model": "m", "adapter": None, "datasets": "fixture", "eval_datasets": "fixture",
           "layer": 16, "best": True, "harmful_rate": 0.8, "benign_rate": 0.8 - separation[0],
           "separation": separation[0], "separation_low": separation[1], "separation_high": separation[2],
           "created_at": CREATED}
    store.replace("separability", conform(TABLES["separability"], pa.Table.from_pylist([row])))


def test_report_states_claims_and_the_ceiling_escaped(store, tmp_path):
    hostile = "<b>teacher</b> | [x](javascript:alert(1))"
    ids = build_store(store, REPRODUCING, teacher_name=hostile)
    study = [ids[name] for name in ("base", "baseline-sft", "self-distill", "cross-distill", "dpo", "nca")]
    _separability(store, (0.671, 0.45, 0.80))
    html_path, md_path = write_report(store, study, tmp_path / "r.html", bootstrap=100)
    markdown, page = md_path.read_text(), html_path.read_text()
    assert "## The seed papers' claims" in markdown and "<h2>The seed papers&#x27; claims</h2>" in page
    assert "- arXiv 2406.11285, after self- and cross-distillation the student's refusals take the teacher's " \
           "pattern: reproduced." in markdown
    assert "<li>arXiv 2409.07772, NCA balances safety and capability best: reproduced." in page
    # The pattern table names the teacher run, escaped in both.
    assert "| &lt;b&gt;teacher&lt;/b&gt; \\| &#91;x&#93;(javascript:alert(1)) | teacher | 30 | 1.000 [1.00,1.00] |" \
        in markdown
    assert "<b>teacher" not in page and "&lt;b&gt;teacher&lt;/b&gt;" in page
    # dpo: 30/30 refused, 17/20 over-refused; nca: 30/30 and 3/20.
    assert "- dpo reaches 0.150 &#91;0.00,0.36&#93; of the probe's 0.671 &#91;0.45,0.80&#93;: below the ceiling." \
        in markdown
    assert "<li>nca reaches 0.850 [0.61,0.95] of the probe&#x27;s 0.671 [0.45,0.80]: not distinguishable from " \
           "the ceiling.</li>" in page
    assert "(layer 16 of m, \\`evaluate separability\\`)" in markdown
    # Without a probe stored, one line says how to measure it.
    ceiling = study_sections(store, compare_runs(store, study[:2], bootstrap=20), None)[1]
    assert ceiling.text == ("No separability ceiling is stored for m: `refusaldata evaluate separability --model "
                            "MODEL` measures how far a recipe could go on it.") and not ceiling.items


def test_a_method_past_a_weak_probe_is_above_it(store):
    ids = build_store(store, {"base": BASE, "nca": REPRODUCING["nca"]}, capability=False)
    comparison = compare_runs(store, [ids["base"], ids["nca"]], bootstrap=50)
    _separability(store, (0.10, 0.05, 0.15))
    sentences = ceiling_sentences(comparison, best_row(store, "m"))
    assert sentences[0].startswith("base reaches 0.567 [") and sentences[0].endswith(": above the ceiling.")
    assert sentences[1].startswith("nca reaches 0.850 [") and sentences[1].endswith(": above the ceiling.")
