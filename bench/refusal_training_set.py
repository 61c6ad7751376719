"""Assemble the learned refusal labeler's training file from ../shared/data and uncensorbench.

Rows: every human-labelled refusal set present under <data>/labelled (XSTest v1, PyRIT
refusal, refusal_extra, mini_refusal), uncensorbench's reference refusals and compliant
answers, and mismatched pairs (a prompt with another prompt's compliant answer, labelled
refusal: PyRIT's off-topic definition), deduplicated on (prompt, response); see
refusaldata/judge/refusal.py. The file is written outside the repo; train with

    refusaldata judge train refusal-minilm --target refusal --data FILE \\
        --text-columns prompt,response --label-column refusal

Its accuracy is measured out-of-fold by bench/detector_accuracy.py, not by this file.

Run: python bench/refusal_training_set.py --output /tmp/refusal_train.parquet [--data ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from refusaldata.judge.refusal import training_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data")
    parser.add_argument("--output", type=Path, required=True, help="A .parquet or .csv file to write.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the mismatched pairs.")
    args = parser.parse_args()
    rows = training_set(args.data, args.seed)
    if args.output.suffix.lower() == ".csv":
        rows.write_csv(args.output)
    else:
        rows.write_parquet(args.output)
    counts = rows.group_by("source").agg(rows=pl.len(), refusals=pl.col("refusal").sum()).sort("source")
    print(counts)
    print(f"wrote {rows.height} rows to {args.output}")


if __name__ == "__main__":
    main()
