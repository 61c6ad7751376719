"""Train the shipped unsafe-content judge, `unsafe`, on every labelled source and write it.

The recipe is judge_accuracy.RECIPE, the one its leave-one-source-out selection chose; the
refusal facts come from the shipped refusal model (refusaldata/data/refusal_ngram.safetensors),
the one the judge reads at labelling time, so retrain this judge whenever that model is
rewritten (the card records its hash). Same data, refusal model and seed give the same
file. The card records the sources and their row counts, the settings, the LOSO figures
(bench/out/unsafe_loso.json, written by `judge_accuracy.py --write-figures`) and the date.

Run: python bench/train_unsafe_judge.py [--write] [--date YYYY-MM-DD]
  without --write: train and print what would be written.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
from dataclasses import asdict, replace

import numpy as np

import refusal_sources
from judge_accuracy import OUT, RECIPE, WEAK, row_weights, unsafe_rows
from refusaldata.labelers import ngram_model
from refusaldata.labelers.ngram import REFUSAL_MODEL, model_path, refusal_inputs, refusal_model
from refusaldata.labelers.rules import rule_facts
from refusaldata.labelers.unsafe import THRESHOLD, UNSAFE_CLASSES, UNSAFE_MODEL, reading_of, unsafe_inputs

SOURCE_NOTES = {
    "human": "GPTFuzz's 6,160 answers under jailbreak templates; Do-Not-Answer's six models (GPT-4, ChatGPT, "
             "Claude, Llama-2-7b-chat, Vicuna-7b, ChatGLM2; `harmful`); JailbreakBench's 100 classifier-comparison "
             "rows (majority of three)",
    "weak": "JailbreakBench attack artifacts (GCG, PAIR, JBC, random search, DSN), JBB's Llama-3-70B judge",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"Write refusaldata/data/{UNSAFE_MODEL} and its card.")
    parser.add_argument("--date", default=datetime.date.today().isoformat())
    args = parser.parse_args()
    frame = unsafe_rows()
    if not RECIPE["weak"]:
        frame = frame.filter(~frame["source"].is_in(list(WEAK)))
    prompts, responses = frame["prompt"].fill_null("").to_list(), frame["response"].to_list()
    sources = frame["source"].to_numpy().astype(str)
    settings = replace(ngram_model.Settings(), **RECIPE["settings"])
    # The refusal side read as term lists: training indexes them (the labeler's reading is compiled Terms).
    refusal = refusal_model()
    reading = reading_of(refusal, *refusal_inputs(prompts, responses, rule_facts(responses), refusal.settings))
    documents, dense = unsafe_inputs(prompts, responses, reading, RECIPE, settings)
    model = ngram_model.fit(documents, dense, frame["unsafe"].to_numpy().astype(np.int64),
                      row_weights(sources, RECIPE["weighting"]), list(UNSAFE_CLASSES), settings)
    rows = {source: int((sources == source).sum()) for source in sorted(set(sources))}
    figures_file = OUT / "unsafe_loso.json"
    card = {
        "name": "unsafe", "date": args.date, "classes": list(UNSAFE_CLASSES), "threshold": THRESHOLD,
        "recipe": RECIPE, "settings": asdict(model.settings), "terms": len(model.terms),
        "training_rows": rows, "unsafe_rows": int(frame["unsafe"].sum()), "sources": SOURCE_NOTES,
        "refusal_model": {"file": REFUSAL_MODEL,
                          "sha256": hashlib.sha256(model_path(REFUSAL_MODEL).read_bytes()).hexdigest()},
        "loso": json.loads(figures_file.read_text()) if figures_file.is_file() else None,
        "regenerate": "python bench/judge_accuracy.py --write-figures && python bench/train_unsafe_judge.py --write",
    }
    print(f"{len(model.terms)} terms, {sum(rows.values())} rows from {len(rows)} sources")
    if args.write:
        path = model_path(UNSAFE_MODEL)
        ngram_model.save(model, path, card)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {path.with_suffix('.json').name}")


if __name__ == "__main__":
    refusal_sources.OUT.mkdir(parents=True, exist_ok=True)
    main()
