"""The recipes of `judge train` (the MiniLM unsafe-content labeler users train on their own labels)
scored against JailbreakBench's human labels, beside six peer judges on the same rows, and its
speed on this CPU. The shipped unsafe judge is chosen elsewhere: bench/judge_accuracy.py.

Evaluation: the 100 JailbreakBench classifier-comparison rows (prompt = the goal,
response = target_response) against the human majority label. The file carries the
verdicts of GPT-4, GPT-4-turbo, Llama Guard 1, the HarmBench/TDC classifier, the GCG
refusal strings and a BERT classifier on those rows, printed beside ours.

Training data (never the evaluation rows):
- GPTFuzz: 6,160 human jailbreak labels (prompt = the question text, response);
- JailbreakBench attack artifacts (MIT): responses of gpt-3.5, gpt-4, llama-2 and vicuna
  to attacked JBB behaviors (prompt = the goal), labelled by JBB's own automatic judge
  (`jailbroken`, Llama-3-70B): silver labels, not human ones. The evaluation prompts are
  JBB behaviors too (9 of the 50 evaluation goals appear verbatim among the artifact goals,
  14 at fuzz.ratio >= 80; the others are different wordings or behaviors), so this is
  in-domain training on OTHER responses to the same or similar behaviors.
  Every artifact response that is the same as or close to an evaluation response is
  removed first: fuzz.ratio >= 70 on lower-cased, whitespace-collapsed text (0 exact
  copies, 19 at >= 80, 299 at >= 70: all GPT-3.5/GPT-4 one-line refusals, none labelled
  jailbroken), leaving
  1,338 of the 1,637 non-empty responses (the 3-row test-artifact folder is left out).

Protocol: recipes were chosen by grouped 5-fold cross-validation on the training data only
(`--cv`: folds by prompt, so no question or behavior is on both sides; the threshold is
picked as `judge train` does, on a grouped 20% of the training folds; held-out accuracy
per source, mean of 3 fold seeds). Then each finished recipe was scored once on the JBB
rows, at training seed 0 (the default):

    recipe                          CV gptfuzz  CV artifacts  CV mean   JBB acc  P     R
    gptfuzz, minilm   (original)    0.905       0.695         0.800     0.85     0.80  0.86
    gptfuzz, minilm-head            0.910       0.483         0.697     0.77     0.81  0.60
    +artifacts, minilm              0.892       0.821         0.856     0.86     0.76  0.98
    +artifacts, minilm-head (ours)  0.901       0.840         0.870     0.86     0.75  1.00

The CV order matched the JBB order. minilm-head trained on GPTFuzz alone transfers
worst, so `judge train` keeps minilm as its default and ours passes `--features
minilm-head`. Ours does not reach GPT-4's 0.88: it calls 57 of the 100 rows jailbroken
where humans call 43 (recall 1.00, precision 0.75); a guess, not tested: its silver
labels' judge is more lenient than these human raters. `--seeds 5`
retrains ours with seeds 0..4 to show the spread (0.86, 0.88, 0.87, 0.87, 0.87: mean
0.870, sd 0.006; precision mean 0.77, recall mean 0.99); this was measured after the
choice and is not used to pick a seed — seed 0 stays the reported figure. The same check
of `+artifacts, minilm` (run once, outside this script): 0.86, 0.88, 0.87, 0.86, 0.85,
mean 0.864, sd 0.010.

Every recipe ever scored on the JBB rows in this round is listed above and printed by each
run (no silent picking). Variants compared by CV only and never scored on the JBB rows,
all within 0.01 of the default MLP (16 hidden, weight decay 0.1, 20 epochs, balanced
classes): 64 or 4 hidden units, 40 epochs, weight decay 1, unbalanced, artifacts counted
twice, only artifacts where JBB's judge and Llama Guard 1 agree, an ensemble of 5 seeds,
threshold from artifact rows only or fixed at 0.5, |e_p - e_r| and cosine features; and
silver label = JBB's judge AND Llama Guard 1 (GPTFuzz human held-out accuracy 0.911 vs
0.910: no signal to prefer it). Earlier sessions compared about 20 variants on the JBB rows
themselves (0.85 was the one kept); those are not repeated here.

Speed: responses/s of the whole learned labeler (tokenize, embed, classify) against bare
MiniLM embedding of the same texts in the same process (the floor it sits on).

    python bench/judge_accuracy.py --judge-train-recipes [--store DIR] [--cv] [--seeds N]
    (or python bench/judge_train_recipes.py [--store DIR] [--cv] [--seeds N])

Embeddings are cached under the refusaldata cache (first run: several minutes of CPU;
reruns: seconds).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
from rapidfuzz import fuzz, process

from refusaldata.imports import jbb_files
from refusaldata.labelers import classifier, features, learned
from refusaldata.labelers.embed import embed
from refusaldata.labelers.features import MINILM, MINILM_HEAD
from refusaldata.store import Store

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TRAIN = SHARED / "labelled" / "gptfuzz" / "train.csv"
QUESTIONS = SHARED / "labelled" / "gptfuzz" / "question_list.csv"
ARTIFACTS = SHARED / "corpora" / "jbb_artifacts" / "attack-artifacts"
EVAL = SHARED / "labelled" / "jbb_classifier_comparison" / "classifier_comparison.csv"
OUT = ROOT / "bench" / "out"
NEAR_DUPLICATE = 70
"""fuzz.ratio (0-100) at or above which an artifact response counts as an evaluation response's near-copy."""
PEERS = {"gpt_4": "GPT-4", "TDC": "TDC (HarmBench cls)", "GCG": "GCG refusal strings",
         "llama_guard": "Llama Guard 1", "gpt_4_turbo": "GPT-4-turbo", "BERT": "BERT"}


@dataclass(frozen=True)
class Recipe:
    name: str
    artifacts: bool
    feature_set: str
    label: str


RECIPES = (
    Recipe("gptfuzz-minilm", False, MINILM, "gptfuzz, minilm (original)"),
    Recipe("gptfuzz-minilm-head", False, MINILM_HEAD, "gptfuzz, minilm-head"),
    Recipe("gptfuzz-jbb-minilm", True, MINILM, "+artifacts, minilm"),
    Recipe("gptfuzz-jbb-minilm-head", True, MINILM_HEAD, "+artifacts, minilm-head (ours)"),
)
OURS = RECIPES[-1]


def gptfuzz_rows() -> pl.DataFrame:
    """GPTFuzz in file order (keeps the embedding cache key stable) with the question text joined in."""
    questions = pl.read_csv(QUESTIONS).select(pl.col("index").alias("question"), pl.col("text").alias("prompt"))
    return (pl.read_csv(TRAIN).join(questions, on="question", how="left", maintain_order="left")
            .select("prompt", pl.col("Response").alias("response"), pl.col("label").cast(pl.Int64),
                    source=pl.lit("gptfuzz")))


def artifact_rows() -> pl.DataFrame:
    """Non-empty artifact responses with JBB's judge verdict as the label, prompt = the behavior's goal."""
    frames = []
    for path in jbb_files(ARTIFACTS):
        if path.parent.parent.name == "test-artifact":
            continue
        records = json.loads(path.read_text(encoding="utf-8"))["jailbreaks"]
        frames.append(pl.DataFrame(records, infer_schema_length=None).select(
            pl.col("goal").alias("prompt"), "response", pl.col("jailbroken").cast(pl.Int64).alias("label")))
    return (pl.concat(frames).filter(pl.col("response").str.len_chars() > 0)
            .with_columns(source=pl.lit("jbb-artifacts")))


def _normalized(texts: list[str]) -> list[str]:
    return [" ".join(t.lower().split()) for t in texts]


def without_near_copies(artifacts: pl.DataFrame, eval_responses: list[str]) -> tuple[pl.DataFrame, dict]:
    """Artifacts minus every response with fuzz.ratio >= NEAR_DUPLICATE to an evaluation response."""
    ratios = process.cdist(_normalized(eval_responses), _normalized(artifacts["response"].to_list()),
                           scorer=fuzz.ratio, workers=-1)
    closest = ratios.max(axis=0)
    removed = {f">={cut}": int((closest >= cut).sum()) for cut in (100, 90, 80, NEAR_DUPLICATE)}
    return artifacts.filter(pl.Series(closest < NEAR_DUPLICATE)), removed


def evaluation_rows() -> dict[str, list]:
    con = duckdb.connect()
    table = con.sql("SELECT * FROM read_csv($path)", params={"path": str(EVAL)}).to_arrow_table()
    con.close()
    return {name: table.column(name).to_pylist() for name in table.column_names}


def row(judge: str, metric: dict) -> str:
    return (f"{judge:<40} {metric['accuracy']:>8.2f} {metric['precision']:>9.2f} {metric['recall']:>7.2f} "
            f"{metric['f1']:>6.2f} {metric['n']:>5}")


def _folds(groups: list[str], k: int, seed: int) -> np.ndarray:
    distinct = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(distinct))
    fold_of = {distinct[i]: n % k for n, i in enumerate(order)}
    return np.array([fold_of[g] for g in groups])


def cross_validate(data: pl.DataFrame, recipe: Recipe, seed: int, k: int = 5) -> dict[str, float]:
    """Held-out accuracy per source, folds grouped by prompt; trains as `judge train` does."""
    settings = replace(classifier.TrainSettings(), feature_set=recipe.feature_set)
    x = features.features(data["response"].to_list(), data["prompt"].to_list(), feature_set=recipe.feature_set)
    y = data["label"].to_numpy().astype(np.float32)
    prompts = data["prompt"].to_list()
    from_artifacts = (data["source"] == "jbb-artifacts").to_numpy()
    fold = _folds(prompts, k, seed)
    predicted = np.zeros(len(y), dtype=bool)
    for part in range(k):
        fit_rows = (fold != part) & (~from_artifacts | recipe.artifacts)
        index = np.flatnonzero(fit_rows)
        held = classifier.group_split([prompts[i] for i in index], settings.validation_fraction, settings.seed)
        split_weights = classifier.fit(x[index[~held]], y[index[~held]], settings)
        threshold = classifier.best_threshold(y[index[held]], classifier.predict(split_weights, x[index[held]]))
        weights = classifier.fit(x[index], y[index], settings)
        predicted[fold == part] = classifier.predict(weights, x[fold == part]) >= threshold
    correct = predicted == y.astype(bool)
    return {"gptfuzz": float(correct[~from_artifacts].mean()), "artifacts": float(correct[from_artifacts].mean())}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, default=OUT / "store", help="where the trained labelers are saved")
    parser.add_argument("--cv", action="store_true", help="also run the grouped cross-validation on training data")
    parser.add_argument("--seeds", type=int, default=1,
                        help="also retrain ours with seeds 1..N-1 (split and init) and print the spread on the "
                             "JBB rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    run(parser.parse_args())


def run(args: argparse.Namespace) -> None:
    store = Store(args.store)
    OUT.mkdir(parents=True, exist_ok=True)

    rows = evaluation_rows()
    truth = np.array(rows["human_majority"], dtype=int)
    gptfuzz = gptfuzz_rows()
    artifacts, removed = without_near_copies(artifact_rows(), rows["target_response"])
    print(f"JBB artifacts: {artifacts.height + removed[f'>={NEAR_DUPLICATE}']} non-empty responses; "
          f"near-copies of evaluation responses removed "
          f"(fuzz.ratio {', '.join(f'{k}: {v}' for k, v in removed.items())}); "
          f"{artifacts.height} kept, {artifacts['label'].sum()} jailbroken by JBB's judge")
    files = {False: OUT / "gptfuzz_train.parquet", True: OUT / "gptfuzz_jbb_train.parquet"}
    gptfuzz.drop("source").write_parquet(files[False])
    combined = pl.concat([gptfuzz, artifacts])
    combined.drop("source").write_parquet(files[True])

    if args.cv:
        print("\ngrouped 5-fold CV on training data (held-out accuracy; seeds 0, 1, 2)")
        for recipe in RECIPES:
            scores = [cross_validate(combined, recipe, seed) for seed in range(3)]
            mean = {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
            print(f"  {recipe.label:<36} gptfuzz {mean['gptfuzz']:.3f}  artifacts {mean['artifacts']:.3f}  "
                  f"mean {(mean['gptfuzz'] + mean['artifacts']) / 2:.3f}")

    print(f"\nJailbreakBench classifier comparison: {len(truth)} rows, {truth.sum()} jailbroken by human majority")
    print(f"{'judge':<40} {'accuracy':>8} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>5}")
    results = {}
    for recipe in RECIPES:
        started = time.perf_counter()
        settings = classifier.TrainSettings(feature_set=recipe.feature_set)
        data = learned.file_data(files[recipe.artifacts], ["prompt", "response"], "label")
        card = learned.train(store, recipe.name, data, settings)
        judge = learned.load(store, recipe.name)
        scores = judge.scores(rows["goal"], rows["target_response"], cache=True)
        results[recipe.name] = {"metrics": classifier.metrics(truth, scores >= card["threshold"]),
                                "threshold": card["threshold"], "validation": card["metrics"]["validation"],
                                "train_s": time.perf_counter() - started}
        print(row(f"learned:{recipe.name}", results[recipe.name]["metrics"]))
    for column, label in PEERS.items():
        print(row(label, classifier.metrics(truth, np.array(rows[column], dtype=int) == 1)))
    print(row("always 'not jailbroken'", classifier.metrics(truth, np.zeros_like(truth))))
    ours = results[OURS.name]
    spread = [ours["metrics"]]
    print(f"ours = learned:{OURS.name} ({OURS.label}); threshold {ours['threshold']:.3f} chosen on "
          f"{ours['validation']['n']} held-out training rows "
          f"(validation accuracy {ours['validation']['accuracy']:.3f})")
    if args.seeds > 1:
        # The spread over training seeds, to read the table's single-seed figures against; never used to choose.
        for seed in range(1, args.seeds):
            name = f"{OURS.name}-seed{seed}"
            card = learned.train(store, name, learned.file_data(files[OURS.artifacts], ["prompt", "response"], "label"),
                                 classifier.TrainSettings(feature_set=OURS.feature_set, seed=seed))
            scores = learned.load(store, name).scores(rows["goal"], rows["target_response"], cache=True)
            spread.append(classifier.metrics(truth, scores >= card["threshold"]))
        accuracy = np.array([m["accuracy"] for m in spread])
        print(f"ours over training seeds 0..{args.seeds - 1}: accuracy {' '.join(f'{a:.2f}' for a in accuracy)}; "
              f"mean {accuracy.mean():.3f} sd {accuracy.std():.3f}; precision mean "
              f"{np.mean([m['precision'] for m in spread]):.3f}, "
              f"recall mean {np.mean([m['recall'] for m in spread]):.3f}")

    # Speed: the labeler end to end versus bare embedding of the same responses, no cache,
    # alternating and best of 3 (the machine is shared; the best run is the least disturbed).
    judge = learned.load(store, OURS.name)
    sample = gptfuzz.gather_every(15)
    prompts, texts = sample["prompt"].to_list(), sample["response"].to_list()
    embed_s, label_s = float("inf"), float("inf")
    for _ in range(3):
        started = time.perf_counter()
        embed(texts, cache=False)
        embed_s = min(embed_s, time.perf_counter() - started)
        started = time.perf_counter()
        judge.scores(prompts, texts, cache=False)
        label_s = min(label_s, time.perf_counter() - started)
    print(f"\nspeed on this CPU ({len(texts)} GPTFuzz responses, best of 3): learned labeler "
          f"{len(texts) / label_s:.1f} responses/s; bare MiniLM embedding {len(texts) / embed_s:.1f} responses/s; "
          f"labeler/embedding ratio {embed_s / label_s:.2f}")
    (OUT / "judge_train_recipes.json").write_text(json.dumps(
        {"recipes": results, "ours": OURS.name, "seed_spread": spread, "near_copies_removed": removed,
         "responses_per_s": len(texts) / label_s, "embedding_per_s": len(texts) / embed_s}, indent=2))


if __name__ == "__main__":
    main()
