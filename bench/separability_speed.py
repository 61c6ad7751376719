"""How long `evaluate separability` takes on the embedded model, against the code of an earlier commit.

The quickstart's prompts (UncensorBench with a 0.2 test split, benign-controls with 0.5,
the shipped look-alikes in train: 441 prompts, 35 harmful and 33 benign scored), every layer.
Each round runs, in fresh processes one after the other: the baseline (the commit's
refusaldata/separability.py loaded in place of today's), today's code with an empty
hidden-state cache, and today's code again, reading the states the run before kept. Printed:
wall and CPU seconds of each, today's against the baseline as a ratio, and whether every
layer's verdict counts agree (the probe solves the same problem, so they should).

`--validation` instead builds the recipes bench's kind of held-out set (bench/alignment_recipes.py):
a quarter of UncensorBench's and benign-controls' train prompts by prompt-id hash, and the
first 12 of XSTest-safe and of CoCoNot-contrast in that quarter (the recipes bench takes 12
the student answered), copied into a `validation` data set's test split; the probe is fitted
on UncensorBench, benign-controls and the look-alikes, and scored on `validation`.

    python bench/separability_speed.py --baseline 3040b10 --rounds 2
    python bench/separability_speed.py --validation --rounds 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "prompts"
QUICKSTART = (("uncensorbench", 0.2), ("benign-controls", 0.5), ("boundary", 0.0))


def build_store(folder: Path, validation: bool) -> tuple[list[str], list[str]]:
    """The store's prompts; the data sets to fit on and to score on."""
    from refusaldata import prompts
    from refusaldata.runs import now
    from refusaldata.store import Store

    store = Store(folder)
    for name, fraction in QUICKSTART:
        prompts.import_builtin(store, name, test_fraction=fraction)
    fitted = sorted(name for name, _ in QUICKSTART)
    if not validation:
        return fitted, fitted
    safe = folder.parent / "xstest_safe.csv"
    pl.read_csv(SHARED / "xstest" / "xstest_prompts.csv").filter(pl.col("label") == "safe").write_csv(safe)
    prompts.import_file(store, safe, "xstest-safe", "prompt", "type", harmful=False)
    prompts.import_builtin(store, "coconot-contrast", SHARED / "coconot" / "coconot_contrast_eval.jsonl")
    con = store.connect(["prompts"])
    try:
        rows = pl.from_arrow(con.sql(
            "SELECT prompt_id, dataset, text, harmful FROM prompts WHERE split = 'train' AND dataset IN "
            "('uncensorbench', 'benign-controls', 'xstest-safe', 'coconot-contrast')").to_arrow_table())
    finally:
        con.close()
    quarter = rows.filter(pl.col("prompt_id").str.slice(0, 8).str.to_integer(base=16) % 4 == 0)
    extra = pl.col("dataset").is_in(["xstest-safe", "coconot-contrast"])
    chosen = pl.concat([quarter.filter(~extra),
                        quarter.filter(extra).sort("prompt_id").group_by("dataset", maintain_order=True).head(12)
                        .select(quarter.columns)])
    store.append("prompts", chosen.select(
        "prompt_id", "text", "harmful", category=pl.col("dataset"), source_ref=pl.col("dataset"),
        dataset=pl.lit("validation"), split=pl.lit("test"), imported_at=pl.lit(now())).unique("prompt_id").to_arrow())
    return fitted, ["validation"]


def probe(module: str, store: str, datasets: list[str], eval_datasets: list[str]) -> None:
    """One probe, in this process, with the separability module at `module` (a file, or '' for today's)."""
    if module:
        spec = importlib.util.spec_from_file_location("refusaldata.separability", module)
        separability = importlib.util.module_from_spec(spec)
        sys.modules["refusaldata.separability"] = separability
        spec.loader.exec_module(separability)
    else:
        from refusaldata import separability
    from refusaldata.models import EMBEDDED_MODEL
    from refusaldata.store import Store

    rows = separability.evaluate(Store(store), EMBEDDED_MODEL, datasets=datasets, eval_datasets=eval_datasets)
    print(json.dumps([{key: row[key] for key in ("layer", "best", "harmful_flagged", "benign_flagged",
                                                 "harmful_prompts", "benign_prompts", "separation",
                                                 "separation_low", "separation_high")}
                      for row in rows.to_pylist()]))


def timed(module: str, store: Path, datasets: list[str], eval_datasets: list[str], env: dict) -> tuple[dict, list]:
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    result = subprocess.run(["nice", "-n", "5", sys.executable, __file__, "--probe", module, "--store", str(store),
                             "--datasets", ",".join(datasets), "--eval-datasets", ",".join(eval_datasets)],
                            env=env, capture_output=True, text=True, check=True)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load": round(os.getloadavg()[0], 1)}, \
        json.loads(result.stdout.splitlines()[-1])


def best(rows: list[dict]) -> str:
    row = next(row for row in rows if row["best"])
    return (f"layer {row['layer']}: {row['harmful_flagged']}/{row['harmful_prompts']} harmful, "
            f"{row['benign_flagged']}/{row['benign_prompts']} benign flagged, separation {row['separation']:.3f} "
            f"[{row['separation_low']:.2f}, {row['separation_high']:.2f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a commit whose refusaldata/separability.py is the baseline")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--validation", action="store_true", help="score on a held-out validation set")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--datasets", help=argparse.SUPPRESS)
    parser.add_argument("--eval-datasets", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe is not None:
        probe(args.probe, args.store, args.datasets.split(","), args.eval_datasets.split(","))
        return
    from refusaldata.models import CACHE_ENV, cache_dir, embedded_model_dir

    embedded_model_dir()  # converted once, outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        datasets, eval_datasets = build_store(tmp / "store", args.validation)
        variants = [("today", ""), ("today, states kept", "")]
        if args.baseline:
            baseline = tmp / "baseline_separability.py"
            baseline.write_bytes(subprocess.run(["git", "show", f"{args.baseline}:refusaldata/separability.py"],
                                                cwd=ROOT, capture_output=True, check=True).stdout)
            variants.insert(0, (f"baseline {args.baseline}", str(baseline)))
        for round_ in range(args.rounds):
            # A cache of its own per round (the converted model linked in), so "today" starts cold.
            cache = tmp / f"cache-{round_}"
            cache.mkdir()
            (cache / "models").symlink_to(cache_dir() / "models")
            env = {**os.environ, CACHE_ENV: str(cache)}
            results = {}
            for name, module in variants:
                figures, rows = timed(module, tmp / "store", datasets, eval_datasets, env)
                results[name] = (figures, rows)
                print(f"round {round_ + 1} {name}: {figures}; best {best(rows)}", flush=True)
            if args.baseline:
                base_figures, base_rows = results[variants[0][0]]
                today_figures, today_rows = results["today"]
                same = [(r["harmful_flagged"], r["benign_flagged"]) for r in base_rows] == \
                       [(r["harmful_flagged"], r["benign_flagged"]) for r in today_rows]
                wall = today_figures["wall_s"] / base_figures["wall_s"]
                cpu = today_figures["cpu_s"] / base_figures["cpu_s"]
                print(f"round {round_ + 1}: today / baseline wall {wall:.2f}, CPU {cpu:.2f}; "
                      f"every layer's counts agree: {same}", flush=True)


if __name__ == "__main__":
    main()
