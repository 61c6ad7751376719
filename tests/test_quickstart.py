"""`refusaldata quickstart --fast`: the whole study end to end on the embedded model.

Slow (a few minutes): it imports, generates (on a CPU: transformers; vLLM where a GPU is
present), answers under a safety context, labels, mines, builds every set, trains five
adapters, regenerates, scores every method's capability and reports. It runs as a
subprocess, as a user runs it (and because a vLLM engine spawns processes).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _quickstart(store_root, *options):
    return subprocess.run([sys.executable, "-m", "refusaldata.cli.main", "quickstart", "--fast", *options,
                           "--store", str(store_root)], capture_output=True, text=True, timeout=1800)


def test_quickstart_fast_runs_every_method_and_reports(store):
    first = _quickstart(store.root)
    assert first.returncode == 0, first.stderr[-3000:]
    con = store.connect()
    names = dict(con.sql("SELECT name, run_id FROM runs WHERE name IS NOT NULL").fetchall())
    methods = ("base", "baseline-sft", "self-distill", "cross-distill", "dpo", "nca")
    assert {*methods, "uncensorbench-refusals", "safety-context"} <= set(names)
    for method in methods:
        assert f"│ {method}" in first.stdout
    assert "skipped" not in first.stdout
    # self-distill learned from the student's own answers under the safety context.
    sources = con.sql("SELECT DISTINCT kind, source_run FROM sft WHERE set_name = 'self-distill'").fetchall()
    assert set(sources) == {("refusal", names["safety-context"]), ("retention", names["base"]),
                            ("boundary", names["base"])}
    # Every set shows where the line is: look-alikes with the student's compliant answers; in the pair
    # set, chosen over a refusal in the teacher's pattern.
    boundary = con.sql("SELECT DISTINCT p.dataset FROM sft s JOIN prompts p USING (prompt_id) "
                       "WHERE s.kind = 'boundary'").fetchall()
    assert boundary == [("boundary",)]
    pairs = dict(con.sql("SELECT kind, count(*) FROM pairs WHERE set_name = 'pairs' GROUP BY ALL").fetchall())
    assert pairs["boundary"] > 0 and pairs["refusal"] > 0
    # nca trains on a set of its own with half as many look-alike pairs per refusal pair (at one
    # each they mirror each other and cancel); dpo keeps the set at one.
    halved = dict(con.sql("SELECT kind, count(*) FROM pairs WHERE set_name = 'pairs-b0.5' GROUP BY ALL").fetchall())
    assert 0 < halved["boundary"] <= halved["refusal"] // 2 + 1 and halved["boundary"] <= pairs["boundary"]
    # Every adapter run answered the whole test split: harmful and benign prompts.
    answered = dict(con.sql(
        "SELECT ru.name, count(*) FROM responses r JOIN runs ru USING (run_id) "
        "WHERE ru.name IN ('baseline-sft', 'self-distill', 'cross-distill', 'dpo', 'nca') GROUP BY ALL").fetchall())
    test_prompts = con.sql("SELECT count(DISTINCT prompt_id) FROM prompts WHERE split = 'test' "
                           "AND dataset IN ('uncensorbench', 'benign-controls')").fetchall()[0][0]
    assert set(answered.values()) == {test_prompts}
    # The fixed-sentence baseline is easy to learn: it refuses more harmful test prompts than base.
    rates = dict(con.sql(
        "SELECT ru.name, avg(l.refusal::INT) FROM labels l JOIN runs ru USING (run_id) "
        "JOIN prompts p USING (prompt_id) WHERE p.harmful AND p.split = 'test' AND l.labeler = 'ngram' "
        "AND ru.name IN ('base', 'baseline-sft') GROUP BY ALL").fetchall())
    assert rates["baseline-sft"] > rates["base"]
    # Every method's capability: the fast plan scores the first 8 prompts (8 instruction kinds).
    scored = dict(con.sql("SELECT run_id, count(*) FROM capability GROUP BY ALL").fetchall())
    assert {run_id: scored.get(run_id) for run_id in (names[m] for m in methods)} == {
        names[m]: 8 for m in methods}
    assert "capability" in first.stdout and "KL to base" in first.stdout
    html = store.root / "report" / "quickstart.html"
    assert html.is_file() and html.with_suffix(".md").is_file()
    assert 'id="chart-tradeoff"' in html.read_text()
    # Every seed paper's claim is judged: the methods, the teacher (found through the cross set) and
    # capability are all there.
    markdown = html.with_suffix(".md").read_text()
    assert markdown.count("\n- arXiv ") == 3 and "not judged" not in markdown
    files = {path: path.stat().st_mtime_ns for table in ("responses", "capability") for path in store.files(table)}

    # A rerun resumes: nothing is generated, trained or scored again.
    second = _quickstart(store.root)
    assert second.returncode == 0, second.stderr[-3000:]
    assert {path: path.stat().st_mtime_ns for table in ("responses", "capability")
            for path in store.files(table)} == files

    # The ablation adds every method without boundary rows, leaves the first study's rows as they
    # were, and the report pairs each method with its twin.
    third = _quickstart(store.root, "--boundary-ablation")
    assert third.returncode == 0, third.stderr[-3000:]
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in files.items() if path.exists())
    con = store.connect()
    assert con.sql("SELECT count(*) FROM responses r JOIN runs ru USING (run_id) WHERE ru.name = 'dpo'").fetchall() \
        == [(test_prompts,)]
    twins = dict(con.sql("SELECT name, run_id FROM runs WHERE name LIKE '%-no-boundary'").fetchall())
    assert set(twins) == {f"{method}-no-boundary" for method in methods[1:]}
    assert con.sql("SELECT count(*) FROM sft WHERE set_name LIKE '%-no-boundary' AND kind = 'boundary'").fetchall() \
        == [(0,)]
    assert con.sql("SELECT count(*) FROM pairs WHERE set_name = 'pairs-no-boundary' AND kind = 'boundary'"
                   ).fetchall() == [(0,)]
    scored = dict(con.sql("SELECT run_id, count(*) FROM capability GROUP BY ALL").fetchall())
    assert all(scored.get(run_id) == 8 for run_id in twins.values())
    assert "Boundary rows" in html.read_text() and "dpo-no-boundary" in third.stdout


def test_auto_backend_is_transformers_without_a_cuda_gpu_and_a_named_one_is_kept():
    """Measured here: through a LoRA adapter vLLM's CPU path decoded at 0.63x transformers'
    and took a minute to start, and the study is mostly adapter runs."""
    import torch

    from refusaldata.quickstart import study_backend

    assert study_backend("vllm") == "vllm" and study_backend("transformers") == "transformers"
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: auto resolves to vLLM where it is installed")
    assert study_backend("auto") == "transformers"


def test_a_store_holding_another_plans_runs_is_refused_with_the_way_out(store, cli):
    """A run named `base` of another configuration (an earlier quickstart of the other plan):
    the quickstart stops before generating, one line naming the run and --store."""
    import pyarrow as pa

    store.append("runs", pa.table({"run_id": ["base-of-another-plan"], "name": ["base"], "backend": ["import"]}))
    result = cli("quickstart", "--fast", "--backend", "transformers")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0] == result.stderr.strip().splitlines()[-1], result.stderr
    assert "quickstart run 'base' of another plan" in errors[0] and "--store DIR" in errors[0]
    con = store.connect()
    try:  # the imported teacher may be stored; nothing was generated
        assert con.sql("SELECT count(*) FROM runs WHERE backend <> 'import'").fetchall() == [(0,)]
        assert con.sql("SELECT count(*) FROM runs WHERE name = 'base'").fetchall() == [(1,)]
    finally:
        con.close()
