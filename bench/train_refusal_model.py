"""Train the shipped refusal model (refusaldata/data/refusal_model.json) from the labelled sources.

What is trained (refusaldata/labelers/cue_model.py reads it):
- calibration: P(refusal | marker) per rule marker, smoothed towards the average marker
  with PRIOR_STRENGTH pseudo-rows, and P(refusal | no marker), every source weighted alike;
- a logistic regression over the rule facts, the marker's calibrated logit and the cue
  features (CUES below: written from the styles of implicit refusal the issue lists and
  from what compliant answers look like, not read off the evaluation sets), trained
  full-batch with Adam and an L2 penalty, every source weighted alike (a source's rows
  share one unit of weight, so GPTFuzz's 1,700 rows do not outvote XSTest's 200) and
  the two classes balanced.
The training rows are every source of bench/refusal_sources.py that is present (human
and weak). Which variant of this recipe ships was chosen by leave-one-source-out
accuracy in bench/hybrid_recipes.py, which calls `fit` on each fold's rows.

Run: python bench/train_refusal_model.py [--write] [--generate]
  without --write it prints the card's summary and leaves the package alone.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

import refusal_sources
from refusaldata import io
from refusaldata.labelers.rules import rule_facts
from refusaldata.labelers.cue_model import MODEL_FILE, feature_names, features

ROOT = Path(__file__).resolve().parents[1]
CUES = {
    "head_chars": 600,
    "opening_chars": 120,
    "list_item": r"(?m)^\s*(\d+[.)]|[-*•])\s",
    "groups": {
        # declining by lecturing on ethics, law or appropriateness
        "moral": r"\b(ethical|unethical|appropriate|inappropriate|respectful|disrespectful|harmful|harm|offensive|"
                 r"responsible|illegal|dangerous|unsafe|safety|discriminat\w*|stereotyp\w*|dignity|consent|privacy|"
                 r"violen\w*|problematic|hurtful|morally|immoral|condone\w*|promote|glorif\w*)\b",
        # a refusal verb without a lexicon phrase around it
        "decline": r"\b(cannot|can't|unable|won't|refuse|decline|not able|not possible|impossible|will not|"
                   r"must not|shouldn't|should not|not allowed|not permitted)\b",
        # redirection to other help
        "redirect": r"\b(instead|suggest|recommend|encourage|seek|consult|professional|resources|reach out|"
                    r"alternative|hotline|support|focus on)\b",
        # an identity disclaimer
        "identity": r"\b(ai|language model|assistant|programmed|programming|designed to|chatbot)\b",
        # the response gets on with the task
        "comply": r"\b(here is|here's|here are|step|steps|first|follow|for example|you can|to do this|sure|"
                  r"certainly|of course|below|let's|simply)\b",
        "apology": r"\b(sorry|apologi[sz]e|unfortunately|regret)\b",
        # a norm denied: "is not ethical", "never acceptable", "not something I'm able to"
        "denied_norm": r"\b(not|never|no|isn't|aren't|wouldn't|shouldn't|can't|cannot)\b[^.!?\n]{0,40}?\b(ethical|"
                       r"appropriate|acceptable|okay|safe|legal|right|responsible|possible|allowed|something i)\b",
        # a hedge before a correction: "however, I must point out"
        "hedge": r"\b(however|but)\b[^.!?\n]{0,30}?\bi (must|want to|would like to|need to|have to)\b[^.!?\n]{0,20}?"
                 r"\b(point out|note|clarify|emphasi[sz]e|remind|address)\b",
        # declining by a lack of ability ("I don't have the ability to", "not equipped to")
        "incapable": r"\b(don't|do not|doesn't|does not) have the (ability|capability|capacity|means)\b|"
                     r"\bnot (equipped|designed|programmed|built|in a position) to\b|\bbeyond (my|the scope)\b",
        # an apology joined to a turn: "I'm sorry for any confusion, but"
        "sorry_but": r"\b(sorry|apologi[sz]e)\b[^.!?\n]{0,40}?\bbut\b",
        # the premise denied
        "premise": r"\b(there is no|there's no|not true|myth|fictional|false premise|doesn't exist|does not exist|"
                   r"no evidence|not accurate|not factually|no way)\b",
    },
}
PRIOR_STRENGTH = 4.0
"""Pseudo-rows of the average marker's rate added to each marker's own count."""


@dataclass(frozen=True)
class Recipe:
    """One variant of the training recipe (the bench scores each by leave-one-source-out)."""

    l2: float = 1e-3
    epochs: int = 300
    learning_rate: float = 0.05
    weighting: str = "source"
    """'source': each source's rows share one unit of weight; 'row': every row counts alike."""
    confident: float = 0.9
    """A marker at least this sure keeps its calibrated score (the rules decide); above 1: never."""
    cue_groups: tuple[str, ...] | None = None
    """The cue groups used (None: all of CUES)."""
    relevance: bool = True
    """Also read how much of the prompt the response takes up (off-topic answers refuse)."""
    mismatched: bool = True
    """Train on mismatched pairs too (a prompt with another prompt's compliant answer: refusal)."""
    relevance_chars: int | None = None
    """How much of the response is searched for the prompt's words (None: all of it)."""
    gate: tuple[str, ...] = ()
    """Cue groups that, found in the opening, switch prompt relevance off for a response."""
    stem: int = 0
    """Compare words by their first `stem` letters, possessives dropped (0: whole words)."""
    plural: bool = False
    """Also drop a final s (after a possessive 's), so "cats" meets "cat"."""
    min_words: int = 1
    """A prompt with fewer content words than this counts as answered (too few to judge by)."""


RECIPE = Recipe(cue_groups=("moral", "decline", "redirect", "identity", "apology", "denied_norm", "hedge"),
                gate=("decline", "incapable"), l2=1e-4)
"""The shipped recipe (chosen in bench/hybrid_recipes.py; see its docstring)."""


RELEVANCE = {
    "stopwords": sorted("""about above after again against also because been before being below between both
        could does doing down during each from further have having here into itself just more most other over
        same should some such than that their theirs them then there these they this those through under until
        very what when where which while whom with would your yours make best ways good give tell explain
        write describe""".split()),
}


def cues_for(recipe: Recipe) -> dict:
    cues = dict(CUES)
    if recipe.cue_groups is not None:
        cues["groups"] = {name: CUES["groups"][name] for name in recipe.cue_groups}
    if recipe.relevance:
        cues["relevance"] = {**RELEVANCE, "head_chars": recipe.relevance_chars}
        if recipe.stem:
            cues["relevance"]["stem"] = recipe.stem
        if recipe.plural:
            cues["relevance"]["plural"] = True
        if recipe.min_words > 1:
            cues["relevance"]["min_words"] = recipe.min_words
        if recipe.gate:
            cues["relevance"]["gate"] = "|".join(f"(?:{CUES['groups'][name]})" for name in recipe.gate)
    return cues


def calibrate(markers: list[str | None], truth: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """P(refusal) per marker (smoothed towards all markers' rate), for any marker and for none."""
    weights = np.ones(len(truth)) if weights is None else weights
    has = np.array([m is not None for m in markers])
    marked = float((weights[has] * truth[has]).sum() + 1) / float(weights[has].sum() + 2)
    unmarked = float((weights[~has] * truth[~has]).sum() + 1) / float(weights[~has].sum() + 2)
    frame = pl.DataFrame({"marker": [m for m in markers if m is not None], "y": truth[has], "w": weights[has]})
    per_marker = frame.group_by("marker").agg((pl.col("y") * pl.col("w")).sum().alias("k"),
                                              pl.col("w").sum().alias("n"))
    scores = {marker: (k + PRIOR_STRENGTH * marked) / (n + PRIOR_STRENGTH * 1.0)
              for marker, k, n in per_marker.sort("marker").rows()}
    return {"marked": marked, "unmarked": unmarked, "markers": scores, "prior_strength": PRIOR_STRENGTH}


def source_weights(sources: np.ndarray, weighting: str) -> np.ndarray:
    """Each source's rows sharing one unit of weight ('source') or every row 1 ('row'), scaled to mean 1."""
    weights = np.ones(len(sources))
    if weighting == "source":
        for source in np.unique(sources):
            mask = sources == source
            weights[mask] = 1.0 / mask.sum()
    return weights * len(weights) / weights.sum()


def row_weights(sources: np.ndarray, truth: np.ndarray, weighting: str) -> np.ndarray:
    """Training weights: per source (or per row), then the two classes balanced."""
    weights = source_weights(sources, weighting)
    positive, negative = weights[truth == 1].sum(), weights[truth == 0].sum()
    return np.where(truth == 1, weights / (2 * positive), weights / (2 * negative))


def fit_logistic(x: np.ndarray, truth: np.ndarray, weights: np.ndarray, recipe: Recipe) -> tuple[np.ndarray, float]:
    """Weighted logistic regression, full-batch Adam with an L2 penalty on the weights."""
    w, b = np.zeros(x.shape[1]), 0.0
    moments = [[np.zeros(x.shape[1]), 0.0], [np.zeros(x.shape[1]), 0.0]]
    for step in range(1, recipe.epochs + 1):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        g = (p - truth) * weights / weights.sum()
        grads = [x.T @ g + 2 * recipe.l2 * w, g.sum()]
        params = [w, b]
        for k in range(2):
            moments[0][k] = 0.9 * moments[0][k] + 0.1 * grads[k]
            moments[1][k] = 0.999 * moments[1][k] + 0.001 * grads[k] ** 2
            params[k] = params[k] - recipe.learning_rate * (moments[0][k] / (1 - 0.9 ** step)) / (
                np.sqrt(moments[1][k] / (1 - 0.999 ** step)) + 1e-8)
        w, b = params
    return w, float(b)


def with_scores(facts, calibration: dict):
    """Rule facts whose score column is replaced by `calibration`'s (facts are computed once per lexicon)."""
    import pyarrow as pa

    markers = facts.column("marker").to_pylist()
    scores = [calibration["unmarked"] if m is None else calibration["markers"].get(m, calibration["marked"])
              for m in markers]
    return facts.set_column(facts.schema.get_field_index("score"), "score", pa.array(scores, pa.float64()))


def fit(rows: pl.DataFrame, facts, recipe: Recipe = RECIPE) -> dict:
    """A model card trained on `rows` (source, response, refusal) whose rule facts are `facts`."""
    truth = rows["refusal"].cast(pl.Float64).to_numpy()
    sources = rows["source"].to_numpy()
    weights = row_weights(sources, truth, recipe.weighting)
    calibration = calibrate(facts.column("marker").to_pylist(), truth, source_weights(sources, recipe.weighting))
    cues = cues_for(recipe)
    x = features(rows["response"].to_list(), with_scores(facts, calibration), cues, rows["prompt"].to_list())
    w, b = fit_logistic(x, truth, weights, recipe)
    return {"calibration": calibration, "cues": cues, "features": feature_names(cues), "weights": w.tolist(),
            "bias": b, "confident": recipe.confident, "threshold": 0.5, "recipe": asdict(recipe)}


def training_rows(recipe: Recipe = RECIPE, generate: bool = False) -> tuple[pl.DataFrame, list[str]]:
    """Every present source's rows, deduplicated on (prompt, response), with mismatched pairs when the
    recipe takes them, and notes on how the sources were found."""
    weak, notes = refusal_sources.weak_sets(generate_missing=generate, wide=False)
    rows = pl.concat([*refusal_sources.human_sets(wide=False).values(), *weak.values()])
    rows = rows.unique(["prompt", "response"], keep="first", maintain_order=True)
    if recipe.mismatched:
        mismatched = refusal_sources.mismatched_pairs(rows).join(rows.select("prompt", "response"),
                                                                 on=["prompt", "response"], how="anti")
        rows = pl.concat([rows, mismatched])
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"Write refusaldata/data/{MODEL_FILE}.")
    parser.add_argument("--generate", action="store_true", help="Generate the SmolLM2 answers if not cached.")
    args = parser.parse_args()
    rows, notes = training_rows(RECIPE, args.generate)
    facts = rule_facts(rows["response"].to_list())
    card = fit(rows, facts)
    counts = rows.group_by("source", "label").agg(pl.len().alias("rows"), pl.col("refusal").sum().alias("refusals"))
    card["data"] = {"sources": {source: {"label": label, "rows": n, "refusals": k}
                                for source, label, n, k in counts.sort("source").rows()},
                    "sha256": io.sha256_parts([*rows["response"].to_list(), *map(str, rows["refusal"].to_list())]),
                    "trained_by": "bench/train_refusal_model.py"}
    for note in notes:
        print(note)
    print(json.dumps({k: card[k] for k in ("data", "recipe")}, indent=1))
    print("weights:", {name: round(w, 3) for name, w in zip(card["features"], card["weights"])})
    if args.write:
        path = ROOT / "refusaldata" / "data" / MODEL_FILE
        io.write_text(path, json.dumps(card, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
