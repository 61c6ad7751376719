"""Train the shipped default refusal labeler, `ngram`, on every labelled source and write it.

The recipe is detector_accuracy.RECIPE, the one its leave-one-source-out selection chose:
Do-Not-Answer read by the `clear` scheme (categories 0, 2, 5), mismatched pairs as weak
off-topic refusals, source-balanced row weights, the hybrid labeler's facts beside the
n-grams. Same data and seed give the same model file. The card records the sources and
their row counts, the settings, the LOSO figures (bench/out/ngram_loso.json, written by
`detector_accuracy.py --write-figures`) and the date.

Run: python bench/train_ngram_labeler.py [--write] [--date YYYY-MM-DD]
  without --write: train and print what would be written.
"""

from __future__ import annotations

import argparse
import datetime
import json
from dataclasses import asdict, replace
from importlib.resources import files
from pathlib import Path

import numpy as np

import refusal_sources
from detector_accuracy import OUT, RECIPE, Pool, row_weights
from refusaldata.labelers import ngram_model
from refusaldata.labelers.ngram import REFUSAL_CLASSES, REFUSAL_MODEL

SOURCE_NOTES = {
    "human": "XSTest v1 (Llama-2-70b-chat), PyRIT's three refusal sets, Do-Not-Answer's six models "
             "(GPT-4, ChatGPT, Claude, Llama-2-7b-chat, Vicuna-7b, ChatGLM2; categories 0, 2, 5)",
    "weak": "GPT-5.1 and Claude Sonnet 4.5 (GPT-4o judge), JailbreakBench and GPTFuzz jailbroken answers, "
            "UncensorBench's reference answers, mismatched pairs (off-topic answers)",
}


def train(pool: Pool) -> ngram_model.Model:
    index = np.arange(len(pool.responses)) if RECIPE["mismatched"] else np.where(pool.sources != "mismatched")[0]
    settings = replace(ngram_model.Settings(), **RECIPE["settings"])
    return ngram_model.fit([pool.documents[i] for i in index], pool.dense_for(settings)[index], pool.targets[index],
                     row_weights(pool.sources[index], RECIPE["weighting"]), list(REFUSAL_CLASSES), settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"Write refusaldata/data/{REFUSAL_MODEL} and its card.")
    parser.add_argument("--date", default=datetime.date.today().isoformat())
    args = parser.parse_args()
    pool = Pool(RECIPE["scheme"])
    model = train(pool)
    rows = {source: int((pool.sources == source).sum()) for source in sorted(set(pool.sources))}
    figures_file = OUT / "ngram_loso.json"
    card = {
        "name": "ngram", "date": args.date, "classes": list(REFUSAL_CLASSES), "threshold": 0.5,
        "recipe": RECIPE, "settings": asdict(model.settings), "terms": len(model.terms),
        "training_rows": rows, "sources": SOURCE_NOTES,
        "loso": json.loads(figures_file.read_text()) if figures_file.is_file() else None,
        "regenerate": "python bench/detector_accuracy.py --write-figures && "
                      "python bench/train_ngram_labeler.py --write",
    }
    print(f"{len(model.terms)} terms, {sum(rows.values())} rows from {len(rows)} sources")
    if args.write:
        path = Path(str(files("refusaldata") / "data" / REFUSAL_MODEL))
        ngram_model.save(model, path, card)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {path.with_suffix('.json').name}")


if __name__ == "__main__":
    refusal_sources.OUT.mkdir(parents=True, exist_ok=True)
    main()
