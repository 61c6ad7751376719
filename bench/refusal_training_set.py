"""Assemble a training file for the MiniLM learned refusal labeler (`judge train --target refusal`).

Rows: the human-labelled refusal sets present under ../shared/data/labelled (XSTest v1,
PyRIT refusal, refusal_extra, mini_refusal), uncensorbench's reference refusals and
compliant answers, and mismatched pairs (a prompt with another prompt's compliant
answer, labelled refusal: PyRIT's off-topic definition), deduplicated on (prompt,
response); see bench/refusal_sources.py. The file is written outside the repo; train with

    refusaldata judge train refusal-minilm --target refusal --data FILE \\
        --text-columns prompt,response --label-column refusal

The `hybrid` labeler does not need this: its cue model ships in the package
(bench/train_refusal_model.py). Accuracy of both is measured leave-one-source-out by
bench/hybrid_recipes.py (--minilm for this one).

Run: python bench/refusal_training_set.py --output /tmp/refusal_train.parquet [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

import refusal_sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="A .parquet or .csv file to write.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the mismatched pairs.")
    args = parser.parse_args()
    pooled = pl.concat([*refusal_sources.human_sets(wide=False).values(), refusal_sources.uncensorbench()])
    pooled = pooled.unique(["prompt", "response"], keep="first", maintain_order=True)
    mismatched = refusal_sources.mismatched_pairs(pooled, args.seed).join(
        pooled.select("prompt", "response"), on=["prompt", "response"], how="anti")
    rows = pl.concat([pooled, mismatched])
    if args.output.suffix.lower() == ".csv":
        rows.write_csv(args.output)
    else:
        rows.write_parquet(args.output)
    print(rows.group_by("source", "label").agg(rows=pl.len(), refusals=pl.col("refusal").sum()).sort("source"))
    print(f"wrote {rows.height} rows to {args.output}")


if __name__ == "__main__":
    main()
