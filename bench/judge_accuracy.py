"""Leave-one-source-out accuracy of the shipped unsafe-content judge, beside string-list peers.

The headline of how the shipped judge (`refusaldata label --labeler unsafe`) was chosen.
For each source in turn, every variant is trained on the OTHER sources only (rows sharing
a prompt or a response text with the held-out source never train) and scored on the
held-out one, unsafe = P(unsafe) >= 0.5:

- gptfuzz: GPTFuzz's 6,160 human-labelled answers to 100 questions under jailbreak
  templates (label 1: the answer carries out the harmful question; prompt = the question).
  Its files do not say which model wrote each answer, so it is one source;
- dna_<model>: Do-Not-Answer's six models (GPT-4, ChatGPT, Claude, Llama-2-7b-chat,
  Vicuna-7b, ChatGLM2), human `harmful` flag; the six answered the same 939 prompts, so a
  fold is scored once per half of the prompts (split by a hash of the text, as in
  detector_accuracy.py), each time training on no Do-Not-Answer row of that half;
- jbb_comparison: JailbreakBench's 100 classifier-comparison rows, human majority of three
  (prompt = the behavior's goal);
- jbb_artifacts (weak): JailbreakBench's attack artifacts (GCG, PAIR, JBC, random search,
  DSN on four models), labelled by JBB's Llama-3-70B judge (`jailbroken`); printed, never
  in the human worst / mean.

The judge reads the shipped refusal model's view of the answer (labelers/unsafe.py),
so each fold first retrains that refusal model, by its own recipe
(detector_accuracy.RECIPE), without the held-out source's rows, prompts and responses: the
shipped one trained on jailbroken GPTFuzz, JBB and Do-Not-Answer answers and would leak.
Peers: the refusal prefix lists of detector_accuracy.PEERS, inverted (no refusal phrase =
unsafe), and "always safe"; on jbb_comparison also the six judges its file carries.

Selection rule: the best worst human source, then the best human mean. Every variant
scored, on 2 shared cores, 2026-12-07 (human worst / mean, jbb_artifacts; per-source
figures in docs/benchmarks.md):

- shipped: the response's n-grams; the refusal facts (P(refusal), P(partial) from the
  fold's refusal model); prompt relevance (share of the prompt's content words found,
  none found, P(compliance) x share); every source, the six Do-Not-Answer models weighted
  together as one source and each other source alike (`family`): 0.800 / 0.923, 0.868:
  chosen. gptfuzz 0.800, dna GPT-4 0.956, ChatGPT 0.978, Claude 0.977, Llama-2 0.997,
  Vicuna 0.950, ChatGLM2 0.918, jbb_comparison 0.810;
- before `family` was scored, the base weighted every source alike (`source`); each row
  below is that base with one change: the base itself 0.769 / 0.925, 0.851 (0.770 / 0.925,
  0.852 on a later run); n-grams only, no facts 0.761 / 0.925, 0.840; n-grams + refusal
  facts, no relevance 0.773 / 0.925, 0.852; facts only, no n-grams 0.570 / 0.886, 0.428
  (calls everything safe); + the prompt's n-grams as context 0.760 / 0.926, 0.851; row
  weights 0.775 / 0.925, 0.789; sqrt weights 0.772 / 0.927, 0.826; without the weak source
  0.650 / 0.901, 0.851 (jbb_comparison falls to 0.650: the artifacts are the only other
  attacked answers to JBB behaviors).
`--variant` now varies the shipped (`family`) recipe, so its rows differ from the list above.
Peers (inverted prefix lists): worst / mean 0.631 / 0.708 (xstest-21), 0.639 / 0.762
(gcg-29), 0.604 / 0.739 (jbb-12); "always safe" 0.570 / 0.886 (Do-Not-Answer's models gave
2-9% harmful answers, so accuracy there is mostly their safe rows: the bench prints the
share of unsafe and of safe rows called right per source). The target, 0.85 on every human
source, is not reached: held out, GPTFuzz's jailbroken answers under role-play templates
("AIM:", two personas, Chinese) are mostly called safe (30% of them caught), since no other
source holds answers like them. The speed line times `label` through a store on every
third row: ngram 2,718 and unsafe 1,749 responses/s (the judge runs the refusal model too).

Run: python bench/judge_accuracy.py [--variant NAME ...] [--no-speed | --speed-only] [--write-figures]
     python bench/judge_accuracy.py --judge-train-recipes [--cv] [--seeds N]
       (the MiniLM recipes of `judge train`, scored on JBB's human rows: bench/judge_train_recipes.py)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

import detector_accuracy
import judge_train_recipes
import refusal_sources
from refusaldata.io import read_records
from refusaldata.labelers import ngram_model
from refusaldata.labelers.ngram import REFUSAL_CLASSES, refusal_inputs
from refusaldata.labelers.unsafe import FACTS, UNSAFE_CLASSES, Reading, reading_of, unsafe_inputs
from refusaldata.label import label
from refusaldata.labelers.rules import rule_facts

DATA = refusal_sources.DATA
OUT = refusal_sources.OUT
DONOTANSWER = refusal_sources.DONOTANSWER_MODELS
HUMAN = ("gptfuzz", *(f"dna_{m}" for m in DONOTANSWER), "jbb_comparison")
WEAK = ("jbb_artifacts",)
REFUSAL_SOURCE = {"jbb_comparison": "jbb_judged"}
"""A held-out unsafe source's name in the refusal pool, where they differ."""
JBB_JUDGES = judge_train_recipes.PEERS
VARIANTS = {
    "shipped": {},
    "terms only": {"facts": []},
    "terms + refusal": {"facts": ["refusal", "partial"]},
    "facts only": {"terms": False},
    "+ prompt terms": {"prompt_terms": True},
    "source weights": {"weighting": "source"},
    "row weights": {"weighting": "row"},
    "sqrt weights": {"weighting": "sqrt"},
    "no weak source": {"weak": False},
}
RECIPE = {"terms": True, "prompt_terms": False, "facts": list(FACTS), "weighting": "family", "weak": True,
          "settings": {}}
"""The shipped recipe (the selection rule above chose it); bench/train_unsafe_judge.py trains it."""


def unsafe_rows(data: Path = DATA) -> pl.DataFrame:
    """Every labelled (prompt, response, unsafe) row: source, prompt, response, unsafe, label (human | weak)."""
    frames = []
    fuzz = data / "labelled/gptfuzz"
    if (fuzz / "train.csv").is_file():
        questions = pl.read_csv(fuzz / "question_list.csv").rename({"index": "question", "text": "prompt"})
        frames.append(pl.read_csv(fuzz / "train.csv").join(questions, on="question", how="left", maintain_order="left")
                      .select("prompt", pl.col("Response").alias("response"), (pl.col("label") == 1).alias("unsafe"),
                              source=pl.lit("gptfuzz")))
    for model in DONOTANSWER:
        path = data / f"labelled/donotanswer/annotated_response_{model}.csv"
        if path.is_file():
            frames.append(read_records(path, "csv").select(
                pl.col("question").alias("prompt"), "response", (pl.col("harmful").str.strip_chars() == "1")
                .alias("unsafe"), source=pl.lit(f"dna_{model}")))
    comparison = data / "labelled/jbb_classifier_comparison/classifier_comparison.csv"
    if comparison.is_file():
        frames.append(pl.read_csv(comparison, infer_schema=False).select(
            pl.col("goal").alias("prompt"), pl.col("target_response").alias("response"),
            (pl.col("human_majority") == "1").alias("unsafe"), source=pl.lit("jbb_comparison")))
    artifacts = judge_train_recipes.ARTIFACTS
    if artifacts.is_dir():
        frames.append(judge_train_recipes.artifact_rows().select(
            "prompt", "response", (pl.col("label") == 1).alias("unsafe"), source=pl.lit("jbb_artifacts")))
    frame = pl.concat(frames).filter(pl.col("response").is_not_null() & (pl.col("response").str.strip_chars() != ""))
    return frame.with_columns(pl.when(pl.col("source").is_in(list(WEAK))).then(pl.lit("weak"))
                              .otherwise(pl.lit("human")).alias("label"))


def jbb_judges(data: Path = DATA) -> dict[str, float]:
    """Accuracy of the judges JBB's comparison file carries, on its own rows."""
    path = data / "labelled/jbb_classifier_comparison/classifier_comparison.csv"
    frame = pl.read_csv(path, infer_schema=False).filter(pl.col("target_response").str.strip_chars() != "")
    truth = frame["human_majority"] == "1"
    return {label: float(((frame[column] == "1") == truth).mean()) for column, label in JBB_JUDGES.items()}


class Pool:
    """The unsafe rows with what every fold needs computed once, and the refusal pool beside them."""

    def __init__(self):
        self.frame = unsafe_rows()
        self.sources = self.frame["source"].to_numpy().astype(str)
        self.prompts = self.frame["prompt"].fill_null("").to_list()
        self.responses = self.frame["response"].to_list()
        self.truth = self.frame["unsafe"].to_numpy()
        self.targets = self.truth.astype(np.int64)
        self.dna = np.char.startswith(self.sources, "dna_")
        self.half = np.array([zlib.crc32(p.strip().encode()) % 2 for p in self.prompts])
        self.prompt_key = np.array([p.strip() for p in self.prompts], dtype=object)
        self.response_key = np.array([r.strip() for r in self.responses], dtype=object)
        self.facts = rule_facts(self.responses)
        self.refusal_pool = detector_accuracy.Pool(detector_accuracy.RECIPE["scheme"])
        self.refusal_settings = replace(ngram_model.Settings(), **detector_accuracy.RECIPE["settings"])
        self.refusal_inputs = refusal_inputs(self.prompts, self.responses, self.facts, self.refusal_settings)
        self._readings: dict[str, Reading] = {}

    def _banned(self, prompts: set, responses: set) -> np.ndarray:
        return np.array([p in prompts or r in responses for p, r in zip(self.prompt_key, self.response_key)])

    def folds(self, names: list[str]):
        """(held-out name, half or None, test mask, train mask) per fold; a Do-Not-Answer model has two."""
        for held in names:
            halves = (0, 1) if held.startswith("dna_") else (None,)
            for half in halves:
                test = self.sources == held
                dropped = test.copy()
                if half is not None:
                    test = test & (self.half == half)
                    dropped = dropped | (self.dna & (self.half == half))
                banned = self._banned(set(self.prompt_key[test]), set(self.response_key[dropped]))
                yield held, half, test, ~dropped & ~banned

    def reading(self, held: str, half: int | None, train: np.ndarray) -> Reading:
        """The refusal model's reading of every row, by a refusal model trained without this fold's held-out rows
        (refusal-pool rows sharing a prompt or response with any unsafe row outside `train`, or its source)."""
        key = f"{held}|{half}"
        if key not in self._readings:
            refusals = self.refusal_pool
            outside = ~train
            banned = refusals._banned(set(self.prompt_key[outside]), set(self.response_key[outside]))
            keep = ~banned & (refusals.sources != REFUSAL_SOURCE.get(held, held))
            if not detector_accuracy.RECIPE["mismatched"]:
                keep &= refusals.sources != "mismatched"
            index = np.where(keep)[0]
            model = ngram_model.fit([refusals.documents[i] for i in index],
                              refusals.dense_for(self.refusal_settings)[index], refusals.targets[index],
                              detector_accuracy.row_weights(refusals.sources[index],
                                                            detector_accuracy.RECIPE["weighting"]),
                              list(REFUSAL_CLASSES), self.refusal_settings)
            self._readings[key] = reading_of(model, *self.refusal_inputs)
        return self._readings[key]


def row_weights(sources: np.ndarray, weighting: str) -> np.ndarray:
    """detector_accuracy.row_weights, plus `family`: the six Do-Not-Answer models weighted as one source
    (they answered the same prompts)."""
    if weighting == "family":
        return detector_accuracy.row_weights(np.where(np.char.startswith(sources, "dna_"), "dna", sources), "source")
    return detector_accuracy.row_weights(sources, weighting)


def recipe_of(variant: str) -> dict:
    changes = VARIANTS[variant]
    return {**RECIPE, **changes, "settings": {**RECIPE["settings"], **changes.get("settings", {})}}


def train_and_score(pool: Pool, recipe: dict, reading: Reading, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """P(unsafe) of the test rows from a judge trained on the train rows by `recipe`."""
    if not recipe["weak"]:
        train = train & ~np.isin(pool.sources, WEAK)
    index, held = np.where(train)[0], np.where(test)[0]
    settings = replace(ngram_model.Settings(), **recipe["settings"])
    documents, dense = unsafe_inputs(pool.prompts, pool.responses, reading, recipe, settings)
    weights = row_weights(pool.sources[index], recipe["weighting"])
    model = ngram_model.fit([documents[i] for i in index], dense[index], pool.targets[index], weights,
                      list(UNSAFE_CLASSES), settings)
    return model.probabilities([documents[i] for i in held], dense[held])[:, 1]


def loso(pool: Pool, recipe: dict, names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per held-out name, over all its folds: (P(unsafe), truth)."""
    out: dict[str, list] = {}
    for held, half, test, train in pool.folds(names):
        score = train_and_score(pool, recipe, pool.reading(held, half, train), train, test)
        got = out.setdefault(held, [[], []])
        got[0].append(score)
        got[1].append(pool.truth[test])
    return {held: (np.concatenate(s), np.concatenate(t)) for held, (s, t) in out.items()}


def summary(by_source: dict[str, float]) -> tuple[float, float]:
    human = [by_source[s] for s in HUMAN if s in by_source]
    return min(human), float(np.mean(human))


def show(name: str, by_source: dict[str, float], names: list[str]) -> None:
    worst, mean = summary(by_source)
    cells = " ".join(f"{by_source[s]:>6.3f}" if s in by_source else f"{'-':>6}" for s in names)
    print(f"{name:<26} {cells} | {worst:.3f} {mean:.3f}", flush=True)


def header(names: list[str]) -> None:
    short = {"gptfuzz": "fuzz", "jbb_comparison": "jbbC", "jbb_artifacts": "jbbA*", "dna_ChatGLM2": "D:GLM2",
             "dna_ChatGPT": "D:GPT3", "dna_llama2-7b-chat": "D:lla2", "dna_vicuna-7b": "D:vicu"}
    cells = " ".join(f"{short.get(s, s.replace('dna_', 'D:')[:6]):>6}" for s in names)
    print(f"{'':<26} {cells} | worst  mean   (* weak labels)")


def speed(texts: list[str], prompts: list[str]) -> dict[str, float]:
    """Responses/s of `label` (through a store) with the shipped unsafe judge, beside the refusal labeler."""
    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        store = detector_accuracy.speed_store(folder, texts, prompts)
        for labeler in ("ngram", "unsafe"):
            label(store, ["speed"], labeler)  # the first call loads models and SQL: timed on the second
            started = time.perf_counter()
            label(store, ["speed"], labeler, force=True)  # labels each response once unless forced
            rates[labeler] = len(texts) / (time.perf_counter() - started)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=list(VARIANTS),
                        help="judge recipes to score beside the shipped one (repeatable).")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--speed-only", action="store_true", help="Only the speed measurement.")
    parser.add_argument("--speed-every", type=int, default=3, help="Time the labelers on every Nth row.")
    parser.add_argument("--write-figures", action="store_true",
                        help=f"Write the shipped recipe's figures to {OUT}/unsafe_loso.json (the card reads them).")
    parser.add_argument("--judge-train-recipes", action="store_true",
                        help="Instead: score `judge train`'s MiniLM recipes on JBB's human rows "
                             "(bench/judge_train_recipes.py).")
    judge_train_recipes.add_arguments(parser)
    args = parser.parse_args()
    if args.judge_train_recipes:
        judge_train_recipes.run(args)
        return
    started = time.perf_counter()
    if args.speed_only:
        frame = unsafe_rows()[::args.speed_every]
        report_speed(frame["response"].to_list(), frame["prompt"].fill_null("").to_list(), args.speed_every)
        return
    pool = Pool()
    present = set(pool.sources)
    names = [s for s in (*HUMAN, *WEAK) if s in present]
    print("sources: " + ", ".join(f"{s} ({(pool.sources == s).sum()} rows, {pool.truth[pool.sources == s].sum()} "
                                  f"unsafe)" for s in names))
    header(names)

    def test_rows(held: str) -> np.ndarray:
        return np.concatenate([np.where(test)[0] for _, _, test, _ in pool.folds([held])])

    for name, match in detector_accuracy.PEERS.items():
        show(f"{name} (inverted)",
             {held: float((~np.array([match(pool.responses[i]) for i in rows]) == pool.truth[rows]).mean())
              for held in names for rows in [test_rows(held)]}, names)
    show("always safe", {held: float((~pool.truth[rows]).mean()) for held in names for rows in [test_rows(held)]},
         names)

    figures = {}
    for variant in ["shipped", *[v for v in (args.variant or []) if v != "shipped"]]:
        scored = loso(pool, recipe_of(variant), names)
        by_source = {held: float(((s >= 0.5) == t).mean()) for held, (s, t) in scored.items()}
        show(f"judge: {variant}", by_source, names)
        if variant == "shipped":
            figures = {"accuracy": by_source, "human_worst": summary(by_source)[0],
                       "human_mean": summary(by_source)[1],
                       "unsafe_recall": {h: float((s[t] >= 0.5).mean()) for h, (s, t) in scored.items() if t.any()},
                       "safe_recall": {h: float((s[~t] < 0.5).mean()) for h, (s, t) in scored.items()}}
    print("\nthe shipped recipe, LOSO: share of unsafe rows called unsafe / of safe rows called safe")
    print("  " + ", ".join(f"{h} {figures['unsafe_recall'].get(h, float('nan')):.2f}/{figures['safe_recall'][h]:.2f}"
                           for h in names))
    if "jbb_comparison" in present:
        print("\non jbb_comparison, the judges its file carries: "
              + ", ".join(f"{k} {v:.2f}" for k, v in jbb_judges().items()))
    if args.write_figures:
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "unsafe_loso.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")

    if not args.no_speed:
        report_speed(pool.responses[::args.speed_every], pool.prompts[::args.speed_every], args.speed_every)
    print(f"\n{time.perf_counter() - started:.0f} s")


def report_speed(texts: list[str], prompts: list[str], every: int) -> None:
    rates = speed(texts, prompts)
    print(f"\nspeed on {len(texts)} responses (every {every}th row of every source): "
          + ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items()))


if __name__ == "__main__":
    main()
