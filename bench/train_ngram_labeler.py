"""Train the shipped default refusal labeler, `ngram`, on every labelled source and write it.

The recipe is detector_accuracy.RECIPE, the one its leave-one-source-out selection chose:
Do-Not-Answer read by the `clear` scheme (categories 0, 2, 5), mismatched pairs as weak
off-topic refusals, source-balanced row weights, the hybrid labeler's facts beside the
n-grams. Same data and seed give the same model file. The card records the sources and
their row counts, the settings, the LOSO figures (bench/out/ngram_loso.json, written by
`detector_accuracy.py --write-figures`) and the date. Beside them goes TRAINING_HASHES: the
content hashes (registry.content_hashes) of every training response, sorted, 8 bytes each,
from which `refusaldata label` counts the responses it labels in-sample.

Run: python bench/train_ngram_labeler.py [--write] [--date YYYY-MM-DD]
  without --write: train and print what would be written.
     python bench/train_ngram_labeler.py --hashes-only
  write only TRAINING_HASHES, from the same training rows, without training (seconds).
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
from refusaldata.labelers.registry import content_hashes, get_labeler

TRAINING_HASHES = get_labeler("ngram").training_hashes

SOURCE_NOTES = {
    "human": "XSTest v1 (Llama-2-70b-chat), PyRIT's three refusal sets, Do-Not-Answer's six models "
             "(GPT-4, ChatGPT, Claude, Llama-2-7b-chat, Vicuna-7b, ChatGLM2; categories 0, 2, 5)",
    "weak": "GPT-5.1 and Claude Sonnet 4.5 (GPT-4o judge), JailbreakBench and GPTFuzz jailbroken answers, "
            "UncensorBench's reference answers, mismatched pairs (off-topic answers)",
}


def training_rows(sources: np.ndarray) -> np.ndarray:
    """The rows of the pool the shipped model is trained on."""
    return np.arange(len(sources)) if RECIPE["mismatched"] else np.where(sources != "mismatched")[0]


def write_training_hashes(responses: list[str], sources: np.ndarray) -> Path:
    """Write the training responses' content hashes (unique, sorted, big-endian uint64) into the package."""
    hashes = np.unique(content_hashes([responses[i] for i in training_rows(sources)]))
    path = Path(str(files("refusaldata") / TRAINING_HASHES))
    path.write_bytes(hashes.astype(">u8").tobytes())
    print(f"wrote {path} ({len(hashes)} distinct training responses)")
    return path


def train(pool: Pool) -> ngram_model.Model:
    index = training_rows(pool.sources)
    settings = replace(ngram_model.Settings(), **RECIPE["settings"])
    return ngram_model.fit([pool.documents[i] for i in index], pool.dense_for(settings)[index], pool.targets[index],
                     row_weights(pool.sources[index], RECIPE["weighting"]), list(REFUSAL_CLASSES), settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"Write refusaldata/data/{REFUSAL_MODEL} and its card.")
    parser.add_argument("--date", default=datetime.date.today().isoformat())
    parser.add_argument("--hashes-only", action="store_true",
                        help=f"Write only refusaldata/{TRAINING_HASHES} from the training rows, without training.")
    args = parser.parse_args()
    if args.hashes_only:
        frame, _ = refusal_sources.labelled_pool(RECIPE["scheme"])
        write_training_hashes(frame["response"].to_list(), frame["source"].to_numpy().astype(str))
        return
    pool = Pool(RECIPE["scheme"])
    model = train(pool)
    rows = {source: int((pool.sources == source).sum()) for source in sorted(set(pool.sources))}
    figures_file = OUT / "ngram_loso.json"
    trained = content_hashes([pool.responses[i] for i in training_rows(pool.sources)])
    card = {
        "name": "ngram", "date": args.date, "classes": list(REFUSAL_CLASSES), "threshold": 0.5,
        "recipe": RECIPE, "settings": asdict(model.settings), "terms": len(model.terms),
        "training_rows": rows, "sources": SOURCE_NOTES,
        "loso": json.loads(figures_file.read_text()) if figures_file.is_file() else None,
        "training_hashes": {"file": Path(TRAINING_HASHES).name,
                            "responses": len(np.unique(trained)),
                            "what": "sha256 of each training response's whitespace-collapsed UTF-8, first 8 bytes, "
                                    "sorted"},
        "regenerate": "python bench/detector_accuracy.py --write-figures && "
                      "python bench/train_ngram_labeler.py --write",
    }
    print(f"{len(model.terms)} terms, {sum(rows.values())} rows from {len(rows)} sources")
    if args.write:
        path = Path(str(files("refusaldata") / "data" / REFUSAL_MODEL))
        ngram_model.save(model, path, card)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {path.with_suffix('.json').name}")
        write_training_hashes(pool.responses, pool.sources)


if __name__ == "__main__":
    refusal_sources.OUT.mkdir(parents=True, exist_ok=True)
    main()
