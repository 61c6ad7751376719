"""Several adapters in one pass against one adapter at a time, on the quickstart's test split.

    python bench/generate_many.py [--adapters 5] [--max-tokens 24] [--chunk-size 128]

The quickstart answers its test split (uncensorbench and benign-controls, 68 prompts) once
per trained adapter. `generate_many` sends each chunk of prompts to the engine once, every
adapter's rows in one batch (PEFT's mixed-adapter batches on transformers). The baseline,
run in the same process on the same prompts, is `generate` once per adapter. The adapters
are random rank-8 LoRAs on q/v (what an adapter holds does not change the cost). Printed:
seconds of each, the ratio, and whether every run's greedy answers are the same.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def random_lora(model_dir: str, target: Path, seed: int, rank: int = 8) -> str:
    """A random LoRA adapter (small B so the model still talks), saved as PEFT does."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.mul_(0.05)
    peft_model.save_pretrained(str(target))
    return str(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapters", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--chunk-size", type=int, default=128)
    args = parser.parse_args()

    from refusaldata import quickstart
    from refusaldata.generate import GenerateOptions, generate, generate_many
    from refusaldata.generate.transformers_backend import torch_threads
    from refusaldata.models import EMBEDDED_MODEL, embedded_model_dir
    from refusaldata.prompts import import_builtin
    from refusaldata.store import Store

    model_dir = str(embedded_model_dir())
    folder = Path(tempfile.mkdtemp(prefix="generate-many-"))
    adapters = [random_lora(model_dir, folder / f"lora-{seed}", seed) for seed in range(args.adapters)]
    print(f"transformers backend, fp32 greedy, max_tokens {args.max_tokens}, {args.adapters} adapters, "
          f"chunk {args.chunk_size}; {os.cpu_count()} cores, {torch_threads()} torch thread(s), "
          f"load average {os.getloadavg()[0]:.1f}")
    seconds, answers = {}, {}
    for mode in ("one at a time", "one pass"):
        store = Store(folder / mode.replace(" ", "-"))
        import_builtin(store, quickstart.HARMFUL, test_fraction=quickstart.FULL.harmful_test_fraction)
        import_builtin(store, quickstart.BENIGN, test_fraction=quickstart.FULL.benign_test_fraction)
        runs = [GenerateOptions(model=EMBEDDED_MODEL, datasets=(quickstart.HARMFUL, quickstart.BENIGN), split="test",
                                backend="transformers", dtype="float32", max_tokens=args.max_tokens,
                                chunk_size=args.chunk_size, adapter=adapter) for adapter in adapters]
        started = time.perf_counter()
        summaries = [generate(store, run) for run in runs] if mode == "one at a time" else generate_many(store, runs)
        seconds[mode] = time.perf_counter() - started
        con = store.connect(["responses"])
        answers[mode] = con.sql("SELECT run_id, prompt_id, response FROM responses ORDER BY ALL").fetchall()
        con.close()
        print(f"{mode:<14} {summaries[0].prompts_done} prompts x {len(runs)} adapters: {seconds[mode]:.1f} s")
    print(f"one pass: {seconds['one at a time'] / seconds['one pass']:.2f}x as fast as one at a time; "
          f"same greedy answers: {answers['one at a time'] == answers['one pass']}")


if __name__ == "__main__":
    main()
