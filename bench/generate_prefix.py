"""The transformers backend with and without its shared-prefix cache, on the quickstart's prompts.

    python bench/generate_prefix.py [--max-tokens 24]

Every prompt of a chunk starts with the same tokens (the chat template's system turn, and
a run's system prompt and few-shot turns). The backend runs them once and copies their
cache to every row (TransformersEngine._batch). The baseline, run in the same process,
is the plain left-padded batch (the prefix path switched off by raising
PREFIX_MIN_TOKENS). Two workloads, as `refusaldata quickstart --fast` runs them: the
test split of uncensorbench and benign-controls with no context, and the harmful
prompts under the safety context (system prompt and two few-shot refusal turns). Printed:
seconds, the ratio to the baseline and whether the greedy answers are the same.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=24)
    args = parser.parse_args()

    from refusaldata import quickstart
    from refusaldata.generate import GenerateOptions, generate, read_few_shot
    from refusaldata.generate import transformers_backend
    from refusaldata.generate.transformers_backend import torch_threads
    from refusaldata.models import EMBEDDED_MODEL, embedded_model_dir
    from refusaldata.prompts import import_builtin
    from refusaldata.store import Store

    embedded_model_dir()
    workloads = {
        "test split, no context": dict(datasets=(quickstart.HARMFUL, quickstart.BENIGN), split="test"),
        "harmful train, safety context": dict(
            datasets=(quickstart.HARMFUL,), split="train", limit=quickstart.FAST.context_limit,
            system_prompt=quickstart.SAFETY_SYSTEM_PROMPT, few_shot=read_few_shot(quickstart.SAFETY_FEW_SHOT)),
    }
    print(f"transformers backend, fp32 greedy, max_tokens {args.max_tokens}, embedded {EMBEDDED_MODEL}; "
          f"{os.cpu_count()} cores, {torch_threads()} torch thread(s), load average {os.getloadavg()[0]:.1f}")
    print(f"{'workload':<32}{'prompts':>8}{'plain s':>9}{'prefix s':>10}{'x plain':>9}{'same answers':>14}")
    default_minimum = transformers_backend.PREFIX_MIN_TOKENS
    for name, settings in workloads.items():
        seconds, answers = {}, {}
        for mode, minimum in (("plain", 10**9), ("prefix", default_minimum)):
            transformers_backend.PREFIX_MIN_TOKENS = minimum
            store = Store(tempfile.mkdtemp(prefix="generate-prefix-"))
            import_builtin(store, quickstart.HARMFUL, test_fraction=quickstart.FAST.harmful_test_fraction)
            import_builtin(store, quickstart.BENIGN, test_fraction=quickstart.FAST.benign_test_fraction)
            options = GenerateOptions(model=EMBEDDED_MODEL, backend="transformers", dtype="float32",
                                      max_tokens=args.max_tokens, chunk_size=quickstart.CHUNK_SIZE, **settings)
            started = time.perf_counter()
            summary = generate(store, options)
            seconds[mode] = time.perf_counter() - started
            con = store.connect(["responses"])
            answers[mode] = con.sql("SELECT prompt_id, response FROM responses ORDER BY prompt_id").fetchall()
            con.close()
        transformers_backend.PREFIX_MIN_TOKENS = default_minimum
        same = sum(a == b for a, b in zip(answers["plain"], answers["prefix"]))
        print(f"{name:<32}{summary.prompts_done:>8}{seconds['plain']:>9.1f}{seconds['prefix']:>10.1f}"
              f"{seconds['plain'] / seconds['prefix']:>9.2f}{same:>7}/{len(answers['plain'])}",
              flush=True)


if __name__ == "__main__":
    main()
