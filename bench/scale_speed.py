"""Past one machine, measured on this one: 1 process against 2 shards, and the S3 store's cost.

    python bench/scale_speed.py [--prompts 12] [--max-tokens 16] [--chunks 30] [--reads 5]

1. Sharding. The first N UncensorBench prompts answered greedily by the embedded model
   (transformers, one torch thread per process) with `refusaldata generate` as real
   subprocesses into a fresh local store: once by one process (the baseline), once by
   `--shard 0/2` and `--shard 1/2` started together. Printed: wall seconds from start to
   the last process's exit (model loads included), prompts/s and the ratio against one
   process; both tables must be equal.
2. The S3 store against a local folder, both in this process, with moto's S3 server on
   127.0.0.1 as the object store (a Python server on this shared machine: its latency is
   not a cloud bucket's, so read the ratio as the client's overhead plus a slow server).
   Write path: `--chunks` appends of a 32-response chunk to one run (what generate does
   after each chunk), then `label` (a replaced partition written by DuckDB) on the 300
   imported UncensorBench responses. Read: `mine rates` over those labels, `--reads`
   times each, median. Printed: seconds per operation and the ratio S3 / local.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def generate_wall(store: str, shards: list[str | None], args) -> float:
    """Seconds from starting the processes to the last one's exit."""
    command = [sys.executable, "-m", "refusaldata.cli.main", "generate", "--model", "smollm2-135m-instruct",
               "--prompts", "uncensorbench", "--backend", "transformers", "--dtype", "float32",
               "--max-tokens", str(args.max_tokens), "--limit", str(args.prompts), "--chunk-size", "4",
               "--store", store]
    env = {**os.environ, "REFUSALDATA_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    processes = [subprocess.Popen(command + (["--shard", shard] if shard else []), env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for shard in shards]
    for process in processes:
        out, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"generate failed: {err[-2000:]}")
    return time.perf_counter() - started


def answers(store) -> list[tuple]:
    con = store.connect(["responses"])
    try:
        return con.sql("SELECT run_id, prompt_id, response FROM responses ORDER BY ALL").fetchall()
    finally:
        con.close()


def sharding(args) -> None:
    from refusaldata.prompts import import_builtin
    from refusaldata.store import Store

    print(f"\n1. sharding: {args.prompts} prompts, max_tokens {args.max_tokens}, one torch thread per process")
    print(f"{'processes':<22}{'wall s':>8}{'prompts/s':>11}{'x 1 process':>13}")
    tables, baseline = [], None
    for label, shards in (("1 process", [None]), ("2 shards (0/2, 1/2)", ["0/2", "1/2"])):
        store = Store(tempfile.mkdtemp(prefix="scale-speed-"))
        import_builtin(store, "uncensorbench")
        wall = generate_wall(str(store.root), shards, args)
        rate = args.prompts / wall
        baseline = baseline or rate
        print(f"{label:<22}{wall:>8.1f}{rate:>11.3f}{rate / baseline:>13.2f}")
        tables.append(answers(store))
    print(f"same table from both: {tables[0] == tables[1]} ({len(tables[0])} rows)")


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def storage(args) -> None:
    import pyarrow as pa

    from refusaldata import label, mine
    from refusaldata.imports import import_responses
    from refusaldata.prompts import import_builtin
    from refusaldata.store import Store

    print("\n2. S3 store (moto on 127.0.0.1) against a local folder")
    chunk = 32
    results: dict[str, dict[str, float]] = {}
    for where, root in (("local", tempfile.mkdtemp(prefix="scale-speed-")),
                        ("s3", f"s3://bench/{uuid.uuid4().hex[:12]}")):
        store = Store(root)
        seconds = []
        for index in range(args.chunks):
            rows = pa.table({"run_id": ["bench-run"] * chunk,
                             "prompt_id": [f"p{index:04d}-{i:02d}" for i in range(chunk)],
                             "sample_index": pa.array([0] * chunk, pa.int32()),
                             "response": [f"I'm sorry, but I can't help with request {index}-{i}."
                                          for i in range(chunk)],
                             "n_output_tokens": pa.array([16] * chunk, pa.int32()),
                             "finish_reason": ["stop"] * chunk})
            seconds.append(timed(lambda store=store, rows=rows: store.append("responses", rows)))
        import_builtin(store, "uncensorbench")
        import_responses(store, "uncensorbench", "uncensorbench")
        labelled = timed(lambda store=store: label.label(store))
        reads = [timed(lambda store=store: mine.rates(store)) for _ in range(args.reads)]
        results[where] = {"append (32 rows)": statistics.median(seconds), "label (replace)": labelled,
                          "mine rates": statistics.median(reads)}
    print(f"{'operation':<20}{'local s':>10}{'s3 s':>10}{'s3 / local':>12}")
    for operation in results["local"]:
        local, remote = results["local"][operation], results["s3"][operation]
        print(f"{operation:<20}{local:>10.4f}{remote:>10.4f}{remote / local:>12.1f}")
    print(f"(append: median of {args.chunks}; the last S3 append read only the new parts' keys; "
          f"mine rates: median of {args.reads})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--chunks", type=int, default=30)
    parser.add_argument("--reads", type=int, default=5)
    parser.add_argument("--skip-sharding", action="store_true", help="only the S3 part")
    args = parser.parse_args()

    import s3server

    from refusaldata.models import embedded_model_dir

    embedded_model_dir()
    print(f"scale speed: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (the machine "
          "is shared)")
    if not args.skip_sharding:
        sharding(args)
    server, endpoint = s3server.start()
    try:
        s3server.make_bucket(endpoint, "bench")
        os.environ.update(s3server.client_environment(endpoint))
        storage(args)
    finally:
        s3server.stop(server)


if __name__ == "__main__":
    main()
