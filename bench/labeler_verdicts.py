"""Verdicts of the default labeler (ngram) and the unsafe judge on every answered response of a
store, written to a Parquet file, so two trees (before and after a change to how they score)
can be compared row by row; with --compare, the differences of two such files.

Each tree scores all the rows in one call of its own `decide` (the library, not the CLI, so the
per-run loop is the same for both) and prints its seconds; run a tree with its package first on
PYTHONPATH. The embedding cache is whatever REFUSALDATA_CACHE names (an empty folder: MiniLM
embeds for real; the same folder twice: the second run reads the embeddings, which isolates the
rest of the scoring).

Run: PYTHONPATH=OLD python bench/labeler_verdicts.py --store S --write old.parquet
     python bench/labeler_verdicts.py --store S --write new.parquet
     python bench/labeler_verdicts.py --compare old.parquet new.parquet
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def write(store_root: Path, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from refusaldata.store import Store

    try:  # trees before the labelers moved to refusaldata/labelers/
        from refusaldata.judge import shipped as refusal
        from refusaldata.judge import unsafe_shipped as unsafe
    except ImportError:
        from refusaldata.labelers import ngram as refusal
        from refusaldata.labelers import unsafe
    con = Store(store_root).connect(["responses", "prompts"])
    rows = con.sql("SELECT r.run_id, r.prompt_id, r.sample_index, p.text AS prompt, r.response FROM responses r "
                   "LEFT JOIN (SELECT prompt_id, any_value(text) AS text FROM prompts GROUP BY prompt_id) p "
                   "USING (prompt_id) WHERE r.response IS NOT NULL ORDER BY ALL").to_arrow_table()
    prompts, responses = rows.column("prompt").to_pylist(), rows.column("response").to_pylist()
    started = time.perf_counter()
    verdicts = refusal.decide(prompts, responses)
    middle = time.perf_counter()
    judged = unsafe.decide(prompts, responses)
    print(f"{refusal.__file__}: {len(responses):,} rows, ngram {middle - started:.1f} s, "
          f"unsafe after it {time.perf_counter() - middle:.1f} s")
    pq.write_table(rows.select(["run_id", "prompt_id", "sample_index"]).append_column(
        "verdict", pa.array(verdicts.verdict)).append_column("score", pa.array(verdicts.score)).append_column(
        "marker", pa.array(verdicts.marker, pa.string())).append_column("unsafe_score", pa.array(judged)), out)


def compare(old: Path, new: Path) -> None:
    import polars as pl

    keys = ["run_id", "prompt_id", "sample_index"]
    both = pl.read_parquet(old).join(pl.read_parquet(new), on=keys, suffix="_new", how="full", coalesce=True)
    changed = both.filter((pl.col("verdict") != pl.col("verdict_new"))
                          | (pl.col("marker").fill_null("") != pl.col("marker_new").fill_null(""))
                          | ((pl.col("unsafe_score") >= 0.5) != (pl.col("unsafe_score_new") >= 0.5)))
    print(f"{both.height:,} rows; verdict, marker or unsafe changed on {changed.height}; max |score change| "
          f"ngram {(both['score'] - both['score_new']).abs().max():.2g}, "
          f"unsafe {(both['unsafe_score'] - both['unsafe_score_new']).abs().max():.2g}")
    for row in changed.head(20).iter_rows(named=True):
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--compare", type=Path, nargs=2)
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
    elif args.store and args.write:
        write(args.store, args.write)
    else:
        parser.error("give --store and --write, or --compare OLD NEW")


if __name__ == "__main__":
    main()
