"""Training speed: our LoRA SFT loop against TRL's SFTTrainer, same model, LoRA, data, steps.

Both train the embedded model (or --model) with LoRA r on q_proj,v_proj for one epoch
over the same SFT rows (uncensorbench prompts with their reference refusals), batch
--batch-size, constant learning rate, AdamW, loss on the assistant's reply only (TRL:
prompt-completion rows, completion_only_loss), dynamic padding, fp32 on CPU. Each
trainer runs in its own child process so its peak memory is its own. A third run of our
loop projects every position through the output head (as a plain loop does) to show
what computing logits only at reply positions is worth. The figures:

- tokens/s: real (non-pad) tokens of the epoch / time inside the training loop
  (model load and tokenization excluded for both);
- peak memory: the child's peak RSS on CPU (model included), or
  torch.cuda.max_memory_allocated on a GPU;
- the mean and last step loss, as a check that both do the same job (the two shuffle
  the rows differently, so single steps see different batches).

    python bench/train_speed.py                  # 32 examples, batch 8, 1 thread
    python bench/train_speed.py --examples 16 --batch-size 4 --max-length 256

TRL is a dev-only dependency (pip install -e .[dev]).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

SET_NAME = "bench-refusals"


def bench_rows(examples: int) -> list[dict]:
    from uncensorbench import UncensorBench

    from refusaldata.keys import prompt_id

    prompts = list(UncensorBench().prompts())[:examples]
    return [{"set_name": SET_NAME, "mode": "cross", "kind": "refusal", "prompt_id": prompt_id(p.prompt),
             "split": "train", "prompt": p.prompt, "target": p.censored_response} for p in prompts]


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(args: argparse.Namespace, full_logits: bool = False) -> dict:
    from refusaldata.store import Store
    from refusaldata.train import train_adapter
    from refusaldata.train.loop import ReplyScorer

    if full_logits:
        # The ablation: project every position through the output head, as a plain loop would.
        ReplyScorer._split_matches = lambda self: False
    store = Store(args.store)
    result = train_adapter(store, SET_NAME, args.model, Path(args.store) / args.arm, lr=args.lr,
                           batch_size=args.batch_size, max_length=args.max_length, lora_r=args.lora_r,
                           lora_alpha=2 * args.lora_r, threads=args.threads, checkpoint_every=10**9)
    losses = store.connect().sql("SELECT loss FROM train_metrics WHERE adapter_id = $id ORDER BY step",
                                 params={"id": result.adapter_id}).fetchall()
    return {"trainer": "refusaldata" + (", all logits" if full_logits else ""), "steps": result.steps,
            "tokens": result.tokens, "seconds": result.elapsed_s,
            "mean_loss": sum(loss for loss, in losses) / len(losses), "last_loss": losses[-1][0],
            "peak_mb": peak_memory_mb()}


def run_trl(args: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from refusaldata.models import resolve_model

    torch.set_num_threads(args.threads)
    path = resolve_model(args.model)
    rows = bench_rows(args.examples)
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": row["prompt"]}],
                                  "completion": [{"role": "assistant", "content": row["target"]}]} for row in rows])
    config = SFTConfig(
        output_dir=str(Path(args.store) / "trl"), per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1, num_train_epochs=1, learning_rate=args.lr, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, max_length=args.max_length,
        completion_only_loss=True, packing=False, padding_free=False, logging_steps=1, save_strategy="no",
        report_to=[], disable_tqdm=True, seed=0, use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(), dataloader_num_workers=0)
    lora = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                      bias="none", task_type="CAUSAL_LM")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset,
                         processing_class=AutoTokenizer.from_pretrained(path), peft_config=lora)
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    began = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - began
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"trainer": "trl SFTTrainer", "steps": output.global_step, "tokens": tokens, "seconds": seconds,
            "mean_loss": sum(losses) / len(losses), "last_loss": losses[-1], "peak_mb": peak_memory_mb()}


def child(arm: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--arm", arm, "--store", args.store, "--model", args.model,
               "--examples", str(args.examples), "--batch-size", str(args.batch_size), "--max-length",
               str(args.max_length), "--threads", str(args.threads), "--lr", str(args.lr), "--lora-r", str(args.lora_r)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{arm} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--arm", choices=["ours", "ours-all-logits", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(run_trl(args) if args.arm == "trl" else run_ours(args, args.arm == "ours-all-logits")))
        return

    from refusaldata.store import Store

    with tempfile.TemporaryDirectory(prefix="train-speed-") as root:
        args.store = root
        Store(root).replace("sft", pa.Table.from_pylist(bench_rows(args.examples)))
        print(f"LoRA r={args.lora_r} q_proj,v_proj on {args.model}; {args.examples} examples, batch "
              f"{args.batch_size}, max length {args.max_length}, {args.threads} thread(s), one epoch")
        results = [child("ours", args), child("ours-all-logits", args), child("trl", args)]
    print(f"{'trainer':<28}{'steps':>6}{'tokens':>8}{'seconds':>9}{'tokens/s':>10}{'peak MB':>9}"
          f"{'mean loss':>11}{'last loss':>11}")
    for row in results:
        print(f"{row['trainer']:<28}{row['steps']:>6}{row['tokens']:>8}{row['seconds']:>9.1f}"
              f"{row['tokens'] / row['seconds']:>10.1f}{row['peak_mb']:>9.0f}{row['mean_loss']:>11.3f}"
              f"{row['last_loss']:>11.3f}")
    ours, all_logits, trl = results
    for name, other in (("TRL", trl), ("all logits", all_logits)):
        speedup = (ours["tokens"] / ours["seconds"]) / (other["tokens"] / other["seconds"])
        print(f"refusaldata / {name}: tokens/s ×{speedup:.2f}, peak memory ×{ours['peak_mb'] / other['peak_mb']:.2f}")


if __name__ == "__main__":
    main()
