"""Speed and peak memory of `label` (rules) and `mine uniformity` against their floors.

A synthetic corpus of N responses (~300 characters, like the issue's measurement) is made
by resampling real responses from ../shared/data (JBB artifacts, XSTest v1, PyRIT,
GPTFuzz) with random edits (curly apostrophes, leading markdown or quotes, case, a
random cut between 240 and 360 characters), written as Parquet into a temporary store.
Each measurement runs in its own subprocess, so its peak RSS (getrusage) is its own:

- scan:       a bare DuckDB scan of the response column (sum of lengths): the floor;
- regex:      one RE2 pass of the lexicon's window regex over each response's head (the
              first HEAD_CHARS characters the labeler reads), counting matches: what any
              regex labeler pays before it extracts, decides or writes anything;
- startswith: a Python loop, lower() + str.startswith(tuple of the lexicon's phrases);
- label:      refusaldata.labelers.rules.label_runs, what `label --labeler rules` runs
              (match, fold the opening, write the run's labels);
- uniformity: refusaldata.mine.uniformity (k=5), over the labels just written.

DuckDB runs with its default threads (every core) in all three DuckDB measurements.

The machine's load average is printed first. The figures are wall-clock, with each
measurement's CPU seconds beside them (user + system, every thread): on a busy machine
wall-clock ratios swing with the neighbours' load, CPU ones much less. After each size,
a summary of the ratios the issue targets: label time over the regex pass's (target: at
most 2x), over the bare scan's and over the Python loop's, wall-clock and CPU.

Run: python bench/mining_speed.py [--sizes 1000000 10000000] [--methods scan startswith label]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa

DATA = Path(__file__).resolve().parents[1].parent / "shared/data"
RUN_ID = "bench-run"
METHODS = ("scan", "regex", "startswith", "label", "uniformity")


def real_responses(data: Path) -> list[str]:
    """Every real response text under ../shared/data we can read."""
    from refusal_sources import human_sets

    texts = []
    for path in sorted((data / "corpora/jbb_artifacts/attack-artifacts").rglob("*.json")):
        content = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(content, dict) and isinstance(content.get("jailbreaks"), list):
            texts += [row["response"] for row in content["jailbreaks"] if row.get("response")]
    human = {name: rows["response"].drop_nulls().to_list() for name, rows in human_sets(data).items()}
    texts += human.pop("xstest_v1", [])
    gptfuzz = data / "labelled/gptfuzz/train.csv"
    if gptfuzz.is_file():
        con = duckdb.connect()
        texts += [row[0] for row in con.sql('SELECT "Response" FROM read_csv($path, header = true) '
                                            'WHERE "Response" IS NOT NULL', params={"path": str(gptfuzz)}).fetchall()]
    for name in sorted(human):  # the PyRIT sets, in file-name order
        texts += human[name]
    return texts


def build_corpus(store_root: Path, size: int, seed: int = 0) -> None:
    """Write `size` resampled, edited responses as one run of the store (DuckDB COPY)."""
    from refusaldata.store import Store

    pool = real_responses(DATA)
    if not pool:
        raise SystemExit(f"no real responses under {DATA}")
    store = Store(store_root)
    store.append("runs", pa.table({"run_id": [RUN_ID], "name": [RUN_ID], "backend": ["import"]}))
    folder = store_root / "responses" / f"run={RUN_ID}"
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.register("pool_table", pa.table({"text": pool}))
    con.execute("CREATE TABLE pool AS SELECT row_number() OVER () - 1 AS i, text FROM pool_table")
    con.execute(f"""
        COPY (
            WITH draws AS (
                SELECT i AS row_index, hash(i, $seed) AS h FROM range($size) t(i)
            ), picked AS (
                SELECT d.row_index, d.h, p.text FROM draws d JOIN pool p ON p.i = (d.h % $pool_size)::BIGINT
            ), edited AS (
                SELECT row_index,
                    ['', '', '', '**', '> ', '"', '## ', '  '][(1 + (h >> 8) % 8)::BIGINT]
                    || left(CASE WHEN (h >> 16) % 3 = 0 THEN replace(text, '''', '’') ELSE text END,
                            240 + ((h >> 24) % 121)::INTEGER) AS response,
                    (h >> 32) % 4 = 0 AS shout
                FROM picked
            )
            SELECT $run_id AS run_id, printf('p%09d', row_index) AS prompt_id, 0::INTEGER AS sample_index,
                   CASE WHEN shout THEN upper(left(response, 1)) || substr(response, 2) ELSE response END AS response,
                   NULL::INTEGER AS n_prompt_tokens, NULL::INTEGER AS n_output_tokens, 'stop' AS finish_reason,
                   now() AS created_at
            FROM edited
        ) TO '{folder / f"part-{uuid.uuid4().hex}.parquet"}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)
    """, {"seed": seed, "size": size, "pool_size": len(pool), "run_id": RUN_ID})
    # Prompts for the refusal rate in uniformity: every prompt harmful.
    prompts = folder.parent.parent / "prompts" / "dataset=bench"
    prompts.mkdir(parents=True, exist_ok=True)
    con.execute(f"""COPY (SELECT printf('p%09d', i) AS prompt_id, 'bench' AS dataset, NULL::VARCHAR AS category,
                               'synthetic' AS text, true AS harmful, 'test' AS split, NULL::VARCHAR AS source_ref,
                               NULL::VARCHAR AS context, now() AS imported_at FROM range($size) t(i))
                    TO '{prompts / f"part-{uuid.uuid4().hex}.parquet"}' (FORMAT parquet)""", {"size": size})
    con.close()


def measure(kind: str, store_root: Path) -> dict:
    """One measurement in this process: seconds, rows, peak RSS."""
    from refusaldata.labelers.rules import HEAD_CHARS, label_runs, load_lexicon, rule_patterns
    from refusaldata.mine import uniformity
    from refusaldata.store import Store

    store = Store(store_root)
    files = [str(p) for p in store.files("responses")]
    used = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if kind == "scan":
        con = duckdb.connect()
        rows = con.sql("SELECT count(*), sum(length(response)) FROM read_parquet($files)",
                       params={"files": files}).fetchall()[0][0]
    elif kind == "regex":
        con = duckdb.connect()
        params = {"files": files, "head_chars": HEAD_CHARS, "pattern": rule_patterns()[0]["window_pattern"]}
        rows = con.sql("SELECT count(*), count(*) FILTER (WHERE regexp_matches(left(response, $head_chars), $pattern)) "
                       "FROM read_parquet($files)", params=params).fetchall()[0][0]
    elif kind == "startswith":
        import pyarrow.parquet as pq

        phrases = tuple(row.phrase for row in load_lexicon() if row.where != "exception")
        rows = refusals = 0
        for path in files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=1 << 16, columns=["response"]):
                for text in batch.column(0).to_pylist():
                    refusals += text.lower().startswith(phrases)
                rows += batch.num_rows
    elif kind == "label":
        rows = sum(label_runs(store, [RUN_ID])[RUN_ID])
    elif kind == "uniformity":
        rows = uniformity(store, [RUN_ID], k=5).column("harmful_responses")[0].as_py()
    else:
        raise SystemExit(f"unknown measurement {kind}")
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime
    return {"kind": kind, "rows": rows, "seconds": seconds, "cpu_seconds": cpu,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="Which measurements to run (scan always runs first: it is the floor).")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.store)))
        return
    print("# load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f} on {} cores".format(*os.getloadavg(), os.cpu_count()))
    print(f"{'rows':>10} {'method':<11} {'seconds':>8} {'cpu s':>7} {'rows/s':>11} {'vs scan':>8} "
          f"{'peak RSS MiB':>13}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="refusaldata-bench-") as folder:
            started = time.perf_counter()
            build_corpus(Path(folder), size)
            print(f"# corpus of {size:,} responses built in {time.perf_counter() - started:.1f} s", flush=True)
            floor = None
            seconds, cpu = {}, {}
            for kind in [kind for kind in METHODS if kind == "scan" or kind in args.methods]:
                result = json.loads(subprocess.run(
                    [sys.executable, __file__, "--measure", kind, "--store", folder],
                    check=True, capture_output=True, text=True).stdout)
                rate = result["rows"] / result["seconds"]
                floor = floor or rate
                seconds[kind], cpu[kind] = result["seconds"], result["cpu_seconds"]
                print(f"{size:>10,} {kind:<11} {result['seconds']:>8.2f} {cpu[kind]:>7.2f} {rate:>11,.0f} "
                      f"{floor / rate:>7.2f}x "
                      f"{result['peak_rss_mib']:>13.0f}", flush=True)
            if "label" in seconds:
                ratios = [f"{seconds['label'] / seconds[kind]:.2f}x {name} ({cpu['label'] / cpu[kind]:.2f}x CPU)"
                          for kind, name in (("regex", "one regex pass (target <= 2x)"), ("scan", "the bare scan"),
                                             ("startswith", "the Python startswith loop")) if kind in seconds]
                print(f"# label at {size:,} rows: {', '.join(ratios)}", flush=True)


if __name__ == "__main__":
    main()
