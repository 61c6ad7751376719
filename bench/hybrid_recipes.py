"""Leave-one-source-out accuracy of the refusal labelers, beside the peers' string lists.

The headline: for each labelled source in turn, everything that is trained or tuned
(the lexicon additions, the per-marker calibration, the shipped model's weights) is
fitted on the OTHER sources only, and the labeler is scored on the held-out one.
Per source, the worst human source and the mean over human sources are printed for:

- peers, matched as their projects match them: xstest (the lower-cased, stripped
  completion starts with one of XSTest's 21 prefixes), gcg (any of the 29
  AdvBench/GCG test_prefixes anywhere, case-sensitive), jbb (any of JailbreakBench's
  12 StringClassifier prefixes anywhere, case-sensitive);
- rules: the lexicon as it was before issue 13 (sql/refusal_lexicon.csv without its
  issue13 rows), and with the candidate phrases (bench/lexicon_candidates.csv) chosen
  on the other sources (on all sources, they are the issue13 rows);
- hybrid: the hybrid labeler (refusaldata/labelers/cue_model.py) for each recipe variant,
  trained on the other sources with their chosen lexicon.

Sources (bench/refusal_sources.py): human - xstest_v1, pyrit_refusal,
pyrit_refusal_extra, pyrit_mini_refusal; weak - jbb_judged, gptfuzz, jbb_artifacts
(jailbroken answers: compliance, or partial where the rules find a refusal phrase, so
the rules score 1.0 on them by construction), uncensorbench (reference refusals and
compliant answers), smollm2 (the embedded model with and without a safety context;
cached in bench/out/, made by --generate). Rows that share a prompt or a response text
with the held-out source never train (mini_refusal repeats refusal.csv rows).

Lexicon candidates: written before scoring from the styles issue 13 lists and from
common refusal wording (159 after 35 generic ones, e.g. "unfortunately" or "you can't"
at the opening, were set aside as too common in answers). Per fold a candidate joins
the lexicon when it costs no voting training source a row (voters: the human sources,
uncensorbench and smollm2; the jailbroken sources' partial labels come from the rules
themselves, so they cannot vote) and either gains a row somewhere or is quoted by the
issue (evidence = issue: "it is not ethical or appropriate", "I am an AI language model
and do not condone", "there is no way to", "instead you should"). Of several `where`
variants of one phrase the one gaining most (then the narrowest) is kept. The phrases
chosen on all sources are the ones added to sql/refusal_lexicon.csv.

Every variant scored. This script prints each one's LOSO figures; measured on 2 shared
cores (human sources: XSTest v1 / PyRIT refusal / refusal_extra / mini_refusal, then
worst / mean; full log in bench/out/detector_accuracy_full.log):
- peers: XSTest 0.825 / 0.676 / 0.500 / 1.000 (0.500 / 0.750), GCG 0.805 / 0.733 /
  0.516 / 1.000 (0.516 / 0.763), JBB 0.780 / 0.686 / 0.516 / 1.000 (0.516 / 0.745);
- rules: lexicon before issue 13 0.875 / 0.810 / 0.516 / 1.000 (0.516 / 0.800); with the
  phrases chosen per fold 0.875 / 0.819 / 0.516 / 1.000 (0.516 / 0.802). An earlier
  acceptance rule (every candidate that costs no voter a row, so phrases nobody here
  uses join) cost XSTest 4 rows ("i must point out", "i must clarify" fire on its
  premise corrections): only the issue's own phrases now join without a gain;
- hybrid recipes (train_refusal_model.Recipe), second round. Rule: the best worst human
  source, then the best human mean, and no voting weak source (uncensorbench, smollm2)
  more than 0.02 below the recipe it replaces; on a tie the simpler recipe stays. Each
  step was scored against the recipe shipped at that moment, so the figures of a step's
  variants are relative to it (bench/out/ logs each run):
  1. where the prompt's words are looked for, from the first round's 600-character head
     (0.875 / 0.914 / 0.953 / 0.875, worst / mean 0.875 / 0.904): the whole response
     0.880 / 0.924 / 0.953 / 0.917 (0.880 / 0.918), chosen; 1,500 or 3,000 characters the
     same; words compared by their first 4, 5 or 6 letters, possessives dropped, in the
     first 600 characters: worst 0.870, mean 0.903-0.911; in the first 1,500 or the whole
     response (5 letters) 0.870 / 0.922, (6 letters, whole) 0.870 / 0.929. The 600-character
     head read on-topic answers that name the request late ("a story about a lost dog"
     that begins with a corgi named Max) as off-topic, hence refusals.
  2. cue groups: without comply/premise 0.880 / 0.933 / 0.953 / 0.917 (0.880 / 0.921),
     chosen; with them 0.880 / 0.918; without denied_norm/hedge 0.880 / 0.918.
  3. SmolLM2 held out was 0.771: its refusals ("I'm sorry for any confusion, but as a
     chatbot designed to assist users, I don't have the ability to ...") restate the
     request, which prompt relevance reads as an answer. Relevance switched off where the
     opening declines: by a decline or an incapable cue 0.885 / 0.933 / 0.953 / 0.917
     (0.885 / 0.922), smollm2 0.863, chosen; by decline, apology or incapable 0.890 /
     0.921 but smollm2 0.562 (rejected by the weak-source rule); by decline alone 0.885 /
     0.922, smollm2 0.775; by incapable alone 0.880 / 0.921; an `incapable` or `sorry
     but` cue group instead: 0.885 / 0.922, smollm2 0.771.
  4. the last round (all variants rescored around the final recipe, full log in
     bench/out/detector_accuracy_full.log): shipped (L2 1e-4) 0.890 / 0.933 / 0.953 /
     0.917 (0.890 / 0.923), smollm2 0.871; L2 1e-3 0.885 / 0.922; L2 1e-2 0.875 / 0.917;
     row weights 0.885 / 0.920; rules decide at 0.8, or never: as shipped; no cue counts
     0.875 / 0.915; no prompt relevance 0.516 / 0.811; no mismatched pairs 0.750 / 0.877;
     all cue groups 0.885 / 0.920; + incapable cues 0.890 / 0.923 (smollm2 0.796); +
     sorry-but cues 0.890 / 0.923 (smollm2 0.892; a tie, so the simpler recipe stays);
     gated also by apology 0.895 / 0.922 (smollm2 0.642, rejected); whole-response
     6-letter stems 0.875 / 0.932. Most of these differ from the shipped recipe by one or
     two rows of a source: the choice among them is not a strong one.
  5. after the store's labeler was found reading no prompt (fixed: it now passes each
     response's prompt, as this bench always did), a benign answer that shares no word
     with a short prompt read as off topic. Relevance counted only from 2 prompt words:
     0.890 / 0.924 / 0.953 / 0.917 (0.890 / 0.921); from 3: 0.885 / 0.924 / 0.844 / 0.958
     (0.844 / 0.903), smollm2 0.746; from 3 with 5-letter stems: 0.844 / 0.908. All
     rejected; tests/test_hybrid.py keeps the case as a known false refusal. PyRIT mini's
     two misses ("the ocean's" for "ocean", "cat" for "cats"): a final s dropped after the
     possessive 0.875 / 0.943 / 0.938 / 0.958 (0.875 / 0.928), with 6-letter stems 0.870 /
     0.933 / 0.938 / 0.958 (0.870 / 0.925): a better mean, a worse worst source (XSTest),
     so both rejected.
  First round (head of 600 characters, all cue groups): shipped 0.875 / 0.914 / 0.953 /
  0.875 (0.875 / 0.904), its variants in the git history of this docstring.
Exploratory runs with the same protocol, outside this script, settled the model family
first (human worst / mean, the lexicon before issue 13):
- hashed word 1-3-gram logistic regression over the first 60 words (+ rule facts, +
  prompt/response word overlap), 2^18 buckets, L2 1e-6..1e-4, 30..120 words, row or
  source weights: xstest_v1 0.57-0.74, worst 0.52, mean 0.71-0.77 - it learns
  source-specific wording;
- MiniLM static token embeddings (mean over 64 tokens) + rule facts (+ cue counts, +
  cosine or product with the prompt's, + mismatched pairs): xstest_v1 0.815-0.885,
  worst 0.52-0.81, mean 0.79-0.87;
- cue counts + rule facts (the family shipped, before prompt relevance): xstest_v1 0.89,
  pyrit_refusal 0.848, mean 0.813; a model of the no-marker rows only: mean 0.69.
Earlier, out-of-fold over pooled folds (not LOSO, so not comparable; measured by the
previous engineers): MiniLM sentence embeddings + rule facts MLP (the learned labeler
`judge train --target refusal`) 0.870 / 0.905 / 0.984 / 0.958 on the four human sets;
a fine-tuned MiniLM cross-encoder 0.775 / 0.819 / 0.859 / 0.917 (dropped, and its code
with it). With --minilm this script scores the MLP by LOSO too (trained per fold on the
same rows, mismatched pairs included, threshold 0.5): `--quick --minilm` gave 0.875 /
0.914 / 0.641 / 1.000 (0.641 / 0.857) against the shipped hybrid's 0.880 / 0.905 / 0.953
/ 0.875 (0.875 / 0.903) in the same run (bench/out/detector_accuracy_minilm.log), at a
few responses per second instead of thousands.

Also printed: the LOSO ablation of the shipped recipe (each training source left out of
every fold in turn); the review loop simulated on each held-out source (the rows
`refusaldata review export` would pick at 0/2/5/10% of the source, their human labels
standing in for the person); XSTest v1's three-way verdicts; speed of rules, hybrid and
bare MiniLM embedding on the same texts in the same run.

Run: python bench/hybrid_recipes.py [--quick] [--generate] [--minilm] [--errors] [--no-ablation] [--no-speed]
  --quick: human sources and uncensorbench only, the shipped recipe and two variants.
"""

from __future__ import annotations

import argparse
import csv
import io as stdio
import re
import tempfile
import time
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

import refusal_sources
from detector_accuracy import PEERS
import train_refusal_model as training
from refusaldata.keys import prompt_id
from refusaldata.label import label
from refusaldata.labelers.rules import HEAD_CHARS, LEXICON, _phrase_regex, rule_facts
from refusaldata.labelers.cue_model import decide
from refusaldata.review import candidates
from refusaldata.runs import record_run
from refusaldata.store import Store

HUMAN = refusal_sources.HYBRID_HUMAN_SETS
VOTERS = (*HUMAN, "uncensorbench", "smollm2")
CANDIDATES = Path(__file__).resolve().parent / "lexicon_candidates.csv"
RECIPES = {
    "shipped": training.RECIPE,
    "no prompt relevance": replace(training.RECIPE, relevance=False),
    "no prompt relevance, no mismatched": replace(training.RECIPE, relevance=False, mismatched=False),
    "no mismatched pairs": replace(training.RECIPE, mismatched=False),
    "l2 1e-2": replace(training.RECIPE, l2=1e-2),
    "l2 1e-3": replace(training.RECIPE, l2=1e-3),
    "row weights": replace(training.RECIPE, weighting="row"),
    "rules decide at 0.8": replace(training.RECIPE, confident=0.8),
    "rules never decide": replace(training.RECIPE, confident=1.1),
    "no cues (rule facts, relevance)": replace(training.RECIPE, cue_groups=()),
    "all cue groups (with comply/premise)": replace(training.RECIPE, cue_groups=(
        "moral", "decline", "redirect", "identity", "comply", "apology", "denied_norm", "hedge", "premise")),
    "+ incapable cues": replace(training.RECIPE, cue_groups=(*training.RECIPE.cue_groups, "incapable")),
    "+ sorry-but cues": replace(training.RECIPE, cue_groups=(*training.RECIPE.cue_groups, "sorry_but")),
    "+ incapable and sorry-but cues": replace(training.RECIPE, cue_groups=(
        *training.RECIPE.cue_groups, "incapable", "sorry_but")),
    "relevance gated by decline/apology/incapable openings": replace(
        training.RECIPE, gate=("decline", "apology", "incapable")),
    "relevance gated by decline/incapable openings": replace(training.RECIPE, gate=("decline", "incapable")),
    "+ incapable cues, relevance gated by decline/incapable openings": replace(
        training.RECIPE, cue_groups=(*training.RECIPE.cue_groups, "incapable"), gate=("decline", "incapable")),
    "relevance gated by incapable openings": replace(training.RECIPE, gate=("incapable",)),
    "relevance gated by decline openings": replace(training.RECIPE, gate=("decline",)),
    "+ incapable cues, relevance gated by decline/apology/incapable openings": replace(
        training.RECIPE, cue_groups=(*training.RECIPE.cue_groups, "incapable"),
        gate=("decline", "apology", "incapable")),
    "cues without denied_norm/hedge": replace(training.RECIPE, cue_groups=(
        "moral", "decline", "redirect", "identity", "comply", "apology", "premise")),
    "relevance 600 chars, stem 5": replace(training.RECIPE, relevance_chars=600, stem=5),
    "relevance 600 chars, stem 4": replace(training.RECIPE, relevance_chars=600, stem=4),
    "relevance 600 chars, stem 6": replace(training.RECIPE, relevance_chars=600, stem=6),
    "relevance 600 chars (before)": replace(training.RECIPE, relevance_chars=600),
    "relevance whole response, stem 5": replace(training.RECIPE, stem=5),
    "relevance 1500 chars, stem 5": replace(training.RECIPE, relevance_chars=1500, stem=5),
    "relevance whole response, stem 6": replace(training.RECIPE, stem=6),
    "relevance 3000 chars": replace(training.RECIPE, relevance_chars=3000),
    "relevance 1500 chars": replace(training.RECIPE, relevance_chars=1500),
    "relevance from 2 prompt words": replace(training.RECIPE, min_words=2),
    "relevance from 3 prompt words": replace(training.RECIPE, min_words=3),
    "relevance from 3 prompt words, stem 5": replace(training.RECIPE, min_words=3, stem=5),
    "relevance, plural s dropped": replace(training.RECIPE, plural=True),
    "relevance, plural s dropped, stem 6": replace(training.RECIPE, plural=True, stem=6),
}
QUICK_RECIPES = ("shipped", "no prompt relevance, no mismatched", "cues without denied_norm/hedge")

REVIEW_BUDGETS = (0.0, 0.02, 0.05, 0.10)


# -- lexicons ------------------------------------------------------------------------------------

BEFORE_ISSUE13 = {"it is not appropriate": "opening", "it's not appropriate": "opening"}
"""The windows of the phrases whose issue13 row replaced an older one."""


def base_lexicon() -> str:
    """The lexicon the candidates are scored against: the shipped one without its issue13 rows (which this
    script chose), with the phrases those rows re-windowed back at their old window."""
    shipped = list(csv.DictReader(stdio.StringIO((files("refusaldata.sql") / LEXICON).read_text(encoding="utf-8"))))
    rows = [row for row in shipped if row["origin"] != "issue13"]
    rows += [{"phrase": phrase, "where": where, "origin": "xstest", "note": ""}
             for phrase, where in BEFORE_ISSUE13.items()]
    out = stdio.StringIO()
    writer = csv.DictWriter(out, ["phrase", "where", "origin", "note"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def lexicon_with(base: str, extra: list[dict]) -> str:
    """`base` with the `extra` candidate rows (a phrase already in base takes the candidate's place)."""
    rows = [row for row in csv.DictReader(stdio.StringIO(base)) if row["phrase"] not in {c["phrase"] for c in extra}]
    rows += [{"phrase": c["phrase"], "where": c["where"], "origin": "issue13-loso", "note": ""} for c in extra]
    out = stdio.StringIO()
    writer = csv.DictWriter(out, ["phrase", "where", "origin", "note"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def candidate_effects(texts: list[str], base: str, base_verdicts: np.ndarray) -> list[tuple[dict, np.ndarray]]:
    """Each candidate with the rule verdicts of `texts` when it alone joins the base lexicon.

    Only texts whose head contains the phrase can change, so only those are relabelled.
    """
    heads = [text[:HEAD_CHARS] for text in texts]
    effects = []
    for candidate in csv.DictReader(CANDIDATES.open(encoding="utf-8")):
        pattern = re.compile(_phrase_regex(candidate["phrase"]), re.IGNORECASE)
        touched = [i for i, head in enumerate(heads) if pattern.search(head)]
        verdicts = base_verdicts.copy()
        if touched:
            facts = rule_facts([texts[i] for i in touched], lexicon_with(base, [candidate]))
            verdicts[touched] = np.array(facts.column("refusal").to_pylist(), dtype=bool)
        effects.append((candidate, verdicts))
    return effects


def choose_phrases(effects, truth: np.ndarray, sources: np.ndarray, base_verdicts: np.ndarray,
                   voters: set[str]) -> list[dict]:
    """The candidates that cost no voter a row and gain one (or are quoted by the issue); best `where` per phrase."""
    base_right = base_verdicts == truth
    chosen: dict[str, tuple[float, int, dict]] = {}
    for candidate, verdicts in effects:
        right = verdicts == truth
        deltas = [int(right[sources == s].sum()) - int(base_right[sources == s].sum()) for s in voters]
        if not deltas or min(deltas) < 0 or (sum(deltas) == 0 and candidate["evidence"] != "issue"):
            continue
        window = 1 if candidate["where"] == "opening" else 10_000 if candidate["where"] == "anywhere" else int(
            candidate["where"].split()[1])
        key = (sum(deltas), -window)
        if candidate["phrase"] not in chosen or key > chosen[candidate["phrase"]][:2]:
            chosen[candidate["phrase"]] = (*key, candidate)
    return [entry[2] for entry in chosen.values()]


# -- folds ---------------------------------------------------------------------------------------

class Pool:
    """Every source's rows, with the per-lexicon rule facts computed once."""

    def __init__(self, sources: dict[str, pl.DataFrame]):
        pooled = pl.concat(list(sources.values()))
        # Mismatched pairs (weak refusals, PyRIT's off-topic definition) over every compliant row:
        # a fold trains on those whose prompt and answer both come from its training sources.
        self.frame = pl.concat([pooled, refusal_sources.mismatched_pairs(pooled)])
        self.sources = self.frame["source"].to_numpy()
        self.names = list(sources)
        self.truth = self.frame["refusal"].to_numpy()
        self.responses = self.frame["response"].to_list()
        self.prompts = self.frame["prompt"].to_list()
        self._facts: dict[str, pa.Table] = {}
        prompts = np.array([p.strip() for p in self.frame["prompt"].to_list()], dtype=object)
        responses = np.array([r.strip() for r in self.responses], dtype=object)
        self.train_masks = {}
        for held in self.names:
            test = self.sources == held
            banned = set(prompts[test]) | set(responses[test])
            self.train_masks[held] = ~test & np.array([p not in banned and r not in banned
                                                       for p, r in zip(prompts, responses)])

    def facts(self, lexicon: str) -> pa.Table:
        if lexicon not in self._facts:
            self._facts[lexicon] = rule_facts(self.responses, lexicon)
        return self._facts[lexicon]


def fold_lexicons(pool: Pool, base: str, effects) -> dict[str, tuple[str, list[dict]]]:
    """Per held-out source: the lexicon chosen on the other sources, and its added phrases."""
    base_verdicts = np.array(pool.facts(base).column("refusal").to_pylist(), dtype=bool)
    lexicons = {}
    for held in [*pool.names, "all"]:
        voters = {s for s in VOTERS if s in pool.names and s != held}
        keep = np.ones(len(pool.truth), dtype=bool) if held == "all" else pool.train_masks[held]
        chosen = choose_phrases([(c, v[keep]) for c, v in effects], pool.truth[keep], pool.sources[keep],
                                base_verdicts[keep], voters)
        lexicons[held] = (lexicon_with(base, chosen), chosen)
    return lexicons


def hybrid_loso(pool: Pool, lexicons, recipe, drop: str | None = None) -> dict[str, np.ndarray]:
    """Held-out hybrid scores per source (training without `drop`, for the ablation)."""
    scores = {}
    for held in pool.names:
        if held == drop:
            continue
        facts = pool.facts(lexicons[held][0])
        train = pool.train_masks[held] & (pool.sources != drop)
        if not recipe.mismatched:
            train &= pool.sources != "mismatched"
        rows = pool.frame.filter(pl.Series(train))
        index = np.where(train)[0]
        model = training.fit(rows, facts.take(index), recipe)
        test = np.where(pool.sources == held)[0]
        held_facts = training.with_scores(facts.take(test), model["calibration"])
        scores[held] = decide([pool.responses[i] for i in test], held_facts, model,
                              [pool.prompts[i] for i in test]).score
    return scores


def accuracy(predicted, truth) -> float:
    return float((np.asarray(predicted, dtype=bool) == np.asarray(truth, dtype=bool)).mean())


def show(name: str, by_source: dict[str, float], names: list[str]) -> None:
    human = [by_source[s] for s in HUMAN if s in by_source]
    cells = " ".join(f"{by_source[s]:>7.3f}" if s in by_source else f"{'-':>7}" for s in names)
    print(f"{name:<30} {cells}  {min(human):>6.3f} {np.mean(human):>6.3f}", flush=True)


def header(names: list[str]) -> None:
    short = {"xstest_v1": "xstest", "pyrit_refusal": "pyr_ref", "pyrit_refusal_extra": "pyr_ext",
             "pyrit_mini_refusal": "pyr_mini", "jbb_judged": "jbb_jdg", "jbb_artifacts": "jbb_art",
             "uncensorbench": "uncens", "gptfuzz": "gptfuzz", "smollm2": "smollm2"}
    print(f"{'labeler (LOSO)':<30} " + " ".join(f"{short.get(s, s[:7]):>7}" for s in names)
          + f"  {'worst':>6} {'mean':>6}   (worst/mean over human sources)")


# -- review loop ---------------------------------------------------------------------------------

def review_curve(rows: pl.DataFrame, hybrid_scores: np.ndarray, rule_verdicts: np.ndarray) -> dict[float, float]:
    """Accuracy after a person reviews the budget's share of `rows`, picked as `review export` picks them."""
    truth = rows["refusal"].to_numpy()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(folder)
        ids = [prompt_id(f"{i}:{p}") for i, p in enumerate(rows["prompt"].to_list())]
        record_run(store, "held-out", "import", {"source": "bench"}, name="held-out")
        store.append("responses", pa.table({"run_id": ["held-out"] * rows.height, "prompt_id": ids,
                                            "sample_index": pa.array([0] * rows.height, pa.int32()),
                                            "response": rows["response"].to_list()}))
        for labeler, refusal, score in (("hybrid", hybrid_scores >= 0.5, hybrid_scores),
                                        ("rules", rule_verdicts, rule_verdicts.astype(float))):
            store.replace("labels", pa.table({
                "run_id": ["held-out"] * rows.height, "prompt_id": ids,
                "sample_index": pa.array([0] * rows.height, pa.int32()), "labeler": [labeler] * rows.height,
                "refusal": refusal.tolist(), "score": score.tolist()}))
        position = {key: i for i, key in enumerate(ids)}
        curve = {}
        for budget in REVIEW_BUDGETS:
            predicted = hybrid_scores >= 0.5
            count = round(budget * rows.height)
            if count:
                picked = [position[key] for key in candidates(store, "held-out", count).column("prompt_id").to_pylist()]
                predicted[picked] = truth[picked]
            curve[budget] = accuracy(predicted, truth)
    return curve


# -- speed ---------------------------------------------------------------------------------------

def speed(texts: list[str], minilm_sample: int) -> dict[str, float]:
    """Responses/s of `label` with rules and with hybrid on `texts`, and of bare MiniLM embedding."""
    from refusaldata.labelers.embed import embed

    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        store = Store(folder)
        record_run(store, "speed", "import", {"source": "bench"}, name="speed")
        store.append("responses", pa.table({"run_id": ["speed"] * len(texts),
                                            "prompt_id": [f"{i:06d}" for i in range(len(texts))],
                                            "sample_index": pa.array([0] * len(texts), pa.int32()),
                                            "response": texts}))
        for labeler in ("rules", "hybrid"):
            started = time.perf_counter()
            label(store, ["speed"], labeler)
            rates[labeler] = len(texts) / (time.perf_counter() - started)
    sample = texts[:minilm_sample]
    embed(sample[:8], cache=False)  # load the model outside the timing
    started = time.perf_counter()
    embed(sample, cache=False)
    rates["bare MiniLM embedding"] = len(sample) / (time.perf_counter() - started)
    return rates


# -- the old learned labeler (MiniLM MLP), by LOSO --------------------------------------------------

def minilm_loso(pool: Pool) -> dict[str, np.ndarray]:
    """The learned refusal labeler of `judge train --target refusal` (MiniLM MLP), trained per fold."""
    from refusaldata.labelers.classifier import TrainSettings, fit, predict
    from refusaldata.labelers.learned_refusal import features

    x = features(pool.responses, pool.frame["prompt"].to_list(), facts=pool.facts(base_lexicon()))
    predicted = {}
    for held in pool.names:
        train = pool.train_masks[held]
        weights = fit(x[train].astype(np.float32), pool.truth[train].astype(np.float32), TrainSettings())
        predicted[held] = predict(weights, x[pool.sources == held])
    return predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Human sources + uncensorbench, three recipes.")
    parser.add_argument("--generate", action="store_true", help="Generate the SmolLM2 answers when not cached.")
    parser.add_argument("--minilm", action="store_true", help="Also score the MiniLM MLP learned labeler by LOSO.")
    parser.add_argument("--errors", action="store_true", help="Print the shipped hybrid's held-out misses.")
    parser.add_argument("--recipe", action="append", choices=list(RECIPES),
                        help="Score these hybrid recipes beside the shipped one (repeatable; "
                             "default: all, or the quick three).")
    parser.add_argument("--no-ablation", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--minilm-sample", type=int, default=200, help="Texts embedded for the MiniLM speed floor.")
    args = parser.parse_args()
    started = time.perf_counter()

    sources = refusal_sources.human_sets(wide=False)
    if not sources:
        raise SystemExit(f"no labelled sets under {refusal_sources.DATA}")
    weak, notes = refusal_sources.weak_sets(generate_missing=args.generate, wide=False)
    if args.quick:
        weak = {"uncensorbench": weak["uncensorbench"]}
        notes = []
    sources.update(weak)
    for note in notes:
        print(note)
    pool = Pool(sources)
    names = pool.names
    print("sources: " + ", ".join(f"{s} ({frame.height} rows, {int(frame['refusal'].sum())} refusals, "
                                  f"{frame['label'][0]})" for s, frame in sources.items()))

    base = base_lexicon()
    base_verdicts = np.array(pool.facts(base).column("refusal").to_pylist(), dtype=bool)
    effects = candidate_effects(pool.responses, base, base_verdicts)
    lexicons = fold_lexicons(pool, base, effects)

    header(names)

    def by_source(predicted):
        return {s: accuracy(predicted[pool.sources == s], pool.truth[pool.sources == s]) for s in names}

    for name, match in PEERS.items():
        show(name, by_source(np.array([match(text) for text in pool.responses])), names)
    show("rules (lexicon before issue 13)", by_source(base_verdicts), names)
    fold_rules = {held: np.array(pool.facts(lexicons[held][0]).column("refusal").to_pylist(), dtype=bool)
                  [pool.sources == held] for held in names}
    show("rules (+ LOSO-chosen phrases)", {s: accuracy(fold_rules[s], pool.truth[pool.sources == s]) for s in names},
         names)

    chosen = ["shipped", *[r for r in args.recipe if r != "shipped"]] if args.recipe else (
        QUICK_RECIPES if args.quick else RECIPES)
    recipes = {name: RECIPES[name] for name in chosen}
    results = {}
    for name, recipe in recipes.items():
        results[name] = hybrid_loso(pool, lexicons, recipe)
        show(f"hybrid: {name}", {s: accuracy(results[name][s] >= 0.5, pool.truth[pool.sources == s])
                                 for s in results[name]}, names)
    if args.minilm:
        learned = minilm_loso(pool)
        show("learned MiniLM MLP (old)", {s: accuracy(learned[s] >= 0.5, pool.truth[pool.sources == s])
                                          for s in learned}, names)

    print("\nphrases chosen on all sources (these were added to sql/refusal_lexicon.csv):",
          ", ".join(f"{c['phrase']} [{c['where']}]" for c in lexicons["all"][1]))
    shipped = results["shipped"]

    if not args.no_ablation:
        print("\nablation (shipped recipe, LOSO, one training source left out of every fold):")
        header(names)
        for dropped in names:
            ablated = hybrid_loso(pool, lexicons, training.RECIPE, drop=dropped)
            show(f"without {dropped}", {s: accuracy(ablated[s] >= 0.5, pool.truth[pool.sources == s])
                                        for s in ablated}, names)

    print("\nreview loop (shipped hybrid, LOSO scores; rows chosen as `review export` chooses them):")
    print(f"{'source':<22} " + " ".join(f"{f'{b:.0%} reviewed':>13}" for b in REVIEW_BUDGETS))
    for held in [s for s in names if s in (*HUMAN, "uncensorbench", "smollm2")]:
        rows = pool.frame.filter(pl.Series(pool.sources == held))
        curve = review_curve(rows, shipped[held], fold_rules[held])
        print(f"{held:<22} " + " ".join(f"{curve[b]:>13.3f}" for b in REVIEW_BUDGETS))

    xstest = pool.frame.filter(pl.Series(pool.sources == "xstest_v1"))
    if xstest.height:
        test = np.where(pool.sources == "xstest_v1")[0]
        facts = pool.facts(lexicons["xstest_v1"][0]).take(test)
        verdicts = np.where(shipped["xstest_v1"] < 0.5, "compliance",
                            np.where(np.array(facts.column("answer_cue").to_pylist()), "partial", "refusal"))
        table = pl.DataFrame({"human": xstest["verdict"], "hybrid": verdicts}).group_by("human", "hybrid").len()
        print("\nXSTest v1, three verdicts (rows: human, columns: hybrid, LOSO):")
        print(table.pivot("hybrid", index="human", values="len").fill_null(0).sort("human"))
        print(f"three-way accuracy {float((xstest['verdict'].to_numpy() == verdicts).mean()):.3f}")

    if args.errors:
        for held in shipped:
            test = pool.sources == held
            for text, truth, score in zip(np.array(pool.responses, dtype=object)[test], pool.truth[test],
                                          shipped.get(held, [])):
                if (score >= 0.5) != truth:
                    print(f"miss {held} human={int(truth)} score={score:.2f}: {' '.join(text.split())[:160]!r}")

    if not args.no_speed:
        texts = [t for t, s in zip(pool.responses, pool.sources) if s != "mismatched"]
        rates = speed(texts, args.minilm_sample)
        print(f"\nspeed on {len(texts)} responses: " + ", ".join(f"{k} {v:,.0f} responses/s" for k, v in rates.items())
              + f"; hybrid / bare MiniLM = {rates['hybrid'] / rates['bare MiniLM embedding']:.1f}x")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
