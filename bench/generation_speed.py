"""Output tokens/s of the vllm and transformers backends on the same prompts, fp32 and bf16.

    python bench/generation_speed.py [--prompts 64] [--max-tokens 64] [--chunk-size 32] [--adapter DIR]

Every configuration answers the same first N UncensorBench prompts greedily with the
embedded model through `refusaldata.generate.generate` (the real chunk loop and store), in
a fresh temporary store. Printed per configuration: output tokens/s over generation time
(engine start excluded, shown apart), the ratio against transformers fp32 (the baseline,
run in the same process), and the store's write time as a share of generation time.
Also whether each run's responses equal transformers fp32's (fp32 should, bf16 need not).
With --adapter, every configuration answers through that LoRA adapter (as the quickstart's
method runs do), so vLLM's LoRA path is timed against transformers'.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--backends", default="transformers,vllm")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--adapter", help="A LoRA adapter folder every configuration answers through.")
    args = parser.parse_args()

    from refusaldata.generate import GenerateOptions, generate
    from refusaldata.generate.transformers_backend import torch_threads
    from refusaldata.models import embedded_model_dir
    from refusaldata.prompts import import_builtin
    from refusaldata.store import Store

    embedded_model_dir()
    store = Store(tempfile.mkdtemp(prefix="generation-speed-"))
    import_builtin(store, "uncensorbench")
    print(f"generation speed: {args.prompts} UncensorBench prompts, greedy, max_tokens {args.max_tokens}, "
          f"chunk {args.chunk_size}, embedded SmolLM2-135M-Instruct; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at start (the machine is shared), "
          f"transformers on {torch_threads()} torch thread(s)"
          + (f"; through the adapter {args.adapter}" if args.adapter else ""))
    header = (f"{'backend':<13}{'dtype':<10}{'out tokens':>11}{'gen s':>8}{'tokens/s':>10}{'x baseline':>11}"
              f"{'write s':>9}{'write share':>12}{'start s':>9}{'same as tf-fp32':>17}")
    print(header)
    baseline_rate = None
    baseline_rows = None
    for dtype in args.dtypes.split(","):
        for backend in args.backends.split(","):
            options = GenerateOptions(model="smollm2-135m-instruct", datasets=("uncensorbench",), backend=backend,
                                      dtype=dtype, max_tokens=args.max_tokens, limit=args.prompts,
                                      chunk_size=args.chunk_size, adapter=args.adapter)
            started = time.perf_counter()
            summary = generate(store, options)
            wall = time.perf_counter() - started
            con = store.connect(["responses"])
            rows = con.sql("SELECT prompt_id, response FROM responses WHERE run_id = $run ORDER BY prompt_id",
                           params={"run": summary.run_id}).fetchall()
            con.close()
            rate = summary.output_tokens_per_s
            if baseline_rate is None:
                baseline_rate, baseline_rows = rate, rows
            same = sum(a == b for a, b in zip(rows, baseline_rows))
            print(f"{backend:<13}{dtype:<10}{summary.output_tokens:>11}{summary.generate_seconds:>8.1f}"
                  f"{rate:>10.1f}{rate / baseline_rate:>11.2f}{summary.write_seconds:>9.3f}"
                  f"{summary.write_seconds / summary.generate_seconds:>12.2%}"
                  f"{wall - summary.generate_seconds - summary.write_seconds:>9.1f}"
                  f"{f'{same}/{len(rows)}':>17}", flush=True)


if __name__ == "__main__":
    main()
