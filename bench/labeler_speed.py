"""Speed of `refusaldata label` with the default labeler (ngram), the unsafe judge and hybrid on
one store of real responses, each as a user runs it: a fresh process, start-up included.

The store: every response corpus under ../shared/data imported with `refusaldata responses
import` (the JailbreakBench artifacts, Do-Not-Answer's six models, the frontier models' rows,
XSTest v1, the JailbreakBench classifier comparison, PyRIT's three sets, GPTFuzz with its
questions), then `--copies K` edited copies of all of it (copy 1 curly apostrophes, copy 2 a
leading "> ", copy 3 a leading "**", then both marks...), imported as runs of their own
(`--model-column`), so the corpus holds K + 1 times as many distinct responses.

Each labeler runs as `refusaldata label --labeler NAME --force` in its own process with an empty
embedding cache and is timed wall-clock; `unsafe after ngram` runs the judge with the cache the
ngram run left (what a user who labels with both gets: MiniLM embeds nothing twice). Rates are
printed beside their ratio to hybrid's in the same run, the machine's load average first and
last. Also printed: how many rows the ngram labeler's semantic relevance embeds with MiniLM (no
prompt word in the answer): on two cores that embedding is most of ngram's and unsafe's time.

Run: python bench/labeler_speed.py [--copies 3] [--labelers hybrid ngram unsafe rules]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared/data"
LABELERS = ("hybrid", "ngram", "unsafe", "rules")
MARKS = ("", "> ", "**")


def cli(args: list[str], env: dict | None = None) -> float:
    """Run `refusaldata ARGS` in a fresh process; its wall-clock seconds."""
    env = {**os.environ, **(env or {})}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "refusaldata.cli", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"refusaldata {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def imports(folder: Path) -> list[list[str]]:
    """The `responses import` argument lists of every corpus (GPTFuzz's questions joined in a CSV)."""
    gptfuzz = folder / "gptfuzz.csv"
    questions = {}
    with open(DATA / "labelled/gptfuzz/question_list.csv", newline="", encoding="utf-8") as source:
        for row in csv.DictReader(source):
            questions[row["index"]] = row["text"]
    with open(DATA / "labelled/gptfuzz/train.csv", newline="", encoding="utf-8") as source, \
            open(gptfuzz, "w", newline="", encoding="utf-8") as sink:
        writer = csv.writer(sink)
        writer.writerow(["prompt", "response"])
        for row in csv.DictReader(source):
            writer.writerow([questions[row["question"]], row["Response"]])
    labelled = DATA / "labelled"
    commands = [[str(DATA / "corpora/jbb_artifacts/attack-artifacts"), "--format", "jbb"],
                [str(gptfuzz), "--format", "csv", "--model", "gptfuzz"],
                [str(labelled / "frontier_refusal/val.csv"), "--format", "csv", "--model-column", "model"],
                [str(labelled / "xstest_v1/xstest_completions_llama2_v1.csv"), "--format", "csv",
                 "--response-column", "completion", "--model", "xstest-llama2"],
                [str(labelled / "jbb_classifier_comparison/classifier_comparison.csv"), "--format", "csv",
                 "--response-column", "target_response", "--model", "jbb-comparison"]]
    for path in sorted((labelled / "donotanswer").glob("annotated_response_*.csv")):
        commands.append([str(path), "--format", "csv", "--prompt-column", "question", "--model",
                         path.stem.removeprefix("annotated_response_")])
    for path in sorted((labelled / "pyrit_refusal").glob("*.csv")):
        commands.append([str(path), "--format", "csv", "--prompt-column", "objective", "--response-column",
                         "assistant_response", "--model", f"pyrit-{path.stem}"])
    return commands


def copy_rows(store: Path, copy: int) -> list[tuple[str, str, str]]:
    """(model, prompt, response) of every stored response, edited as copy number `copy` says."""
    import duckdb

    con = duckdb.connect()
    rows = con.sql(
        "SELECT coalesce(r.run_id, '') AS run, p.text, r.response "
        "FROM read_parquet($responses, hive_partitioning = true) r "
        "JOIN read_parquet($prompts, hive_partitioning = true) p USING (prompt_id) "
        "WHERE r.response IS NOT NULL AND trim(r.response) <> '' AND r.run_id NOT LIKE '%copy%' ORDER BY ALL",
        params={"responses": str(store / "responses/**/*.parquet"),
                "prompts": str(store / "prompts/**/*.parquet")}).fetchall()
    mark = "".join(MARKS[1 + i % (len(MARKS) - 1)] for i in range(copy // len(MARKS)))
    mark += MARKS[copy % len(MARKS)]
    edited = []
    for run, prompt, response in rows:
        text = response.replace("'", "\u2019") if copy % 2 else response
        edited.append((f"copy{copy}-{run}", prompt, mark + text))
    return edited


def build(folder: Path, copies: int) -> Path:
    store = folder / "store"
    started = time.perf_counter()
    for args in imports(folder):
        cli(["responses", "import", *args, "--store", str(store)])
    for copy in range(1, copies + 1):
        path = folder / f"copy{copy}.csv"
        with open(path, "w", newline="", encoding="utf-8") as sink:
            writer = csv.writer(sink)
            writer.writerow(["model", "prompt", "response"])
            writer.writerows(copy_rows(store, copy))
        cli(["responses", "import", str(path), "--format", "csv", "--model-column", "model", "--store", str(store)])
    print(f"# store built in {time.perf_counter() - started:.0f} s", flush=True)
    return store


def counts(store: Path) -> tuple[int, int, int]:
    """Answered responses, distinct ones, and the rows ngram's semantic relevance embeds."""
    from dataclasses import replace

    import numpy as np

    from refusaldata.labelers.ngram import dense_inputs, refusal_model
    from refusaldata.labelers.rules import rule_facts
    from refusaldata.store import Store

    con = Store(store).connect(["responses", "prompts"])
    rows = con.sql("SELECT p.text, r.response FROM responses r LEFT JOIN prompts p USING (prompt_id) "
                   "WHERE r.response IS NOT NULL AND r.finish_reason IS DISTINCT FROM 'skipped'").fetchall()
    prompts, responses = [r[0] for r in rows], [r[1] for r in rows]
    settings = replace(refusal_model().settings, semantic_relevance=False)
    gated = dense_inputs(prompts, responses, rule_facts(responses), settings)[:, -1] > 0
    return len(responses), len(set(responses)), int(np.sum(gated))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=3, help="Edited copies of the real corpus added (default 3).")
    parser.add_argument("--labelers", nargs="+", choices=LABELERS, default=list(LABELERS))
    parser.add_argument("--store", type=Path, help="Reuse a store this bench built (its folder).")
    args = parser.parse_args()
    print("# load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f} on {} cores".format(*os.getloadavg(), os.cpu_count()))
    with tempfile.TemporaryDirectory(prefix="refusaldata-labeler-speed-") as folder:
        store = args.store or build(Path(folder), args.copies)
        total, distinct, gated = counts(store)
        print(f"# {total:,} answered responses ({distinct:,} distinct); {gated:,} share no word with their prompt "
              "(ngram embeds those)", flush=True)
        runs = [(name, name, f"{folder}/cache-{name}") for name in args.labelers]
        if "ngram" in args.labelers and "unsafe" in args.labelers:
            runs.append(("unsafe after ngram", "unsafe", f"{folder}/cache-ngram"))
        results = {}
        print(f"{'labeler':<22} {'seconds':>8} {'responses/s':>12} {'vs hybrid':>10}", flush=True)
        for title, name, cache in runs:
            seconds = cli(["label", "--labeler", name, "--force", "--store", str(store), "--format", "csv"],
                          env={"REFUSALDATA_CACHE": cache})
            results[title] = total / seconds
            ratio = f"{results[title] / results['hybrid']:.2f}x" if "hybrid" in results else ""
            print(f"{title:<22} {seconds:>8.1f} {results[title]:>12,.0f} {ratio:>10}", flush=True)
        print("# load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        print(json.dumps({"responses": total, "distinct": distinct, "embedded_rows": gated,
                          "rates": {k: round(v) for k, v in results.items()}}))


if __name__ == "__main__":
    main()
