"""Training memory: measured on the embedded model per precision setting, predicted for 7B-70B.

Measured: `refusaldata train` (the real loop) runs --steps optimizer steps on the embedded
model (or --model) in a child process per setting: fp32, bf16, bf16 + gradient
checkpointing, and 4-bit NF4 + checkpointing where bitsandbytes has an NVIDIA GPU. What is
measured:

- on a GPU: torch.cuda.max_memory_allocated (tensor memory, weights included), reset
  once the model is loaded; "start" is memory_allocated at that moment;
- on CPU: the process's resident memory (VmRSS) once the model is loaded and every weight
  page touched ("start"), and its peak during training (VmHWM, reset through
  /proc/self/clear_refs right after the load, so loading's transient copies are not
  counted). RSS includes Python, the libraries and the allocator's slack; "training" is
  peak minus start. With --steps 1 (the default) the peak is the first step's: AdamW's
  state (16 bytes per LoRA weight, 7 MiB here) is allocated after its backward pass.
- weights: the base model's parameter and buffer bytes (transformers' get_memory_footprint).

Predicted, for Llama-2-shaped 7B, 13B and 70B bases (and the embedded model's own shape,
to compare with the measurement), in bytes, with h hidden size, h_kv the key/value width,
i the MLP width, L layers, V vocabulary, T = batch × sequence tokens, R = reply tokens
(T × --reply-fraction), e the base's bytes per value (4 fp32, 2 bf16 and 4-bit's compute):

    weights      P × e, or for 4-bit: P_layers × 0.516 (NF4 4 bits + double-quantized
                 scales, 0.127 bit) + P_rest × 2 (embeddings, head and norms stay bf16)
    LoRA state   N_lora × 16: fp32 weight, gradient and AdamW's two moments;
                 N_lora = L × r × Σ(d_in + d_out) over the target modules
    activations  a = 8h (the two RMSNorms keep an fp32 copy of their input)
                     + 4h per LoRA'd input (its fp32 cast; fp32 bases: 4h once)
                     + e × (2h + 2h_kv) (attention keeps q, k, v and its output)
                     + 3e × i (the MLP keeps gate, up and silu(gate))
                 no checkpointing:   T × a × (L + 1)     (+1: one layer's backward transients)
                 checkpointing:      T × (L × e × h + 2a) (layer inputs, one layer recomputed)
    logits       R × V × (2e + 12): forward, the head's output (e), its fp32 copy and the
                 saved log-softmax (4 + 4); backward, their gradients (4 + e)

The frozen base weights get no gradient and no optimizer state. Not counted: the CUDA
context and kernels' workspaces (about 0.5-1 GB per GPU), fragmentation.

    python bench/train_memory.py                      # 1 step of batch 2 × 96 tokens, 1 thread
    python bench/train_memory.py --predict-only --batch-size 8 --seq 512
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa

SET_NAME = "bench-memory"
GIB = 2**30
# Llama-2's published shapes (7B and 13B: multi-head attention; 70B: 8 key/value heads)
SHAPES = {
    "7B": {"hidden": 4096, "kv": 4096, "intermediate": 11008, "layers": 32, "vocab": 32000},
    "13B": {"hidden": 5120, "kv": 5120, "intermediate": 13824, "layers": 40, "vocab": 32000},
    "70B": {"hidden": 8192, "kv": 1024, "intermediate": 28672, "layers": 80, "vocab": 32000},
}
SETTINGS = {  # name: (train options, bytes per base value, 4-bit)
    "fp32": ({"dtype": "float32"}, 4, False),
    "bf16": ({"dtype": "bfloat16"}, 2, False),
    "bf16 + checkpointing": ({"dtype": "bfloat16", "gradient_checkpointing": True}, 2, False),
    "4-bit + checkpointing": ({"dtype": "bfloat16", "gradient_checkpointing": True, "load_in_4bit": True}, 2, True),
}


# -- prediction ----------------------------------------------------------------------------------

def layer_params(shape: dict) -> int:
    h, kv, i = shape["hidden"], shape["kv"], shape["intermediate"]
    return h * (h + 2 * kv) + h * h + 3 * h * i + 2 * h


def predict(shape: dict, setting: str, tokens: int, reply_fraction: float, lora_r: int, tied: bool = False) -> dict:
    """Predicted bytes of each part (module docstring) for a Llama-shaped base."""
    _, e, four_bit = SETTINGS[setting]
    checkpointing = "checkpointing" in setting
    h, kv, i, layers, vocab = (shape[key] for key in ("hidden", "kv", "intermediate", "layers", "vocab"))
    in_layers = layers * layer_params(shape)
    rest = vocab * h * (1 if tied else 2) + h
    weights = in_layers * 0.516 + rest * 2 if four_bit else (in_layers + rest) * e
    lora = layers * lora_r * ((h + h) + (h + kv)) * 16  # q_proj: h→h, v_proj: h→h_kv
    lora_inputs = 8 * h if e == 2 else 4 * h
    per_token = 8 * h + lora_inputs + e * (2 * h + 2 * kv) + 3 * e * i
    activations = tokens * (layers * e * h + 2 * per_token) if checkpointing else tokens * per_token * (layers + 1)
    logits = tokens * reply_fraction * vocab * (2 * e + 12)
    return {"weights": weights, "lora": lora, "activations": activations, "logits": logits,
            "total": weights + lora + activations + logits}


def print_predictions(args: argparse.Namespace, embedded_shape: dict | None) -> None:
    tokens = args.batch_size * args.seq
    print(f"\npredicted (GiB), batch {args.batch_size} × {args.seq} tokens, {args.reply_fraction:.0%} of them reply, "
          f"LoRA r={args.lora_r} on q_proj,v_proj")
    print(f"{'base':<10}{'setting':<24}{'weights':>9}{'LoRA':>7}{'activ.':>9}{'logits':>8}{'total':>8}")
    shapes = dict(SHAPES)
    if embedded_shape is not None:
        shapes = {"embedded": embedded_shape, **shapes}
    for base, shape in shapes.items():
        for setting in SETTINGS:
            part = predict(shape, setting, tokens, args.reply_fraction, args.lora_r, tied=shape.get("tied", False))
            print(f"{base:<10}{setting:<24}" + "".join(
                f"{part[key] / GIB:>{width}.2f}" for key, width in
                (("weights", 9), ("lora", 7), ("activations", 9), ("logits", 8), ("total", 8))))


# -- measurement -----------------------------------------------------------------------------------

def bench_rows(examples: int) -> list[dict]:
    from uncensorbench import UncensorBench

    from refusaldata.keys import prompt_id

    prompts = list(UncensorBench().prompts())[:examples]
    return [{"set_name": SET_NAME, "mode": "cross", "kind": "refusal", "prompt_id": prompt_id(p.prompt),
             "split": "train", "prompt": p.prompt, "target": p.censored_response} for p in prompts]


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(args: argparse.Namespace, setting: str) -> dict:
    """Train in this process with `setting`, noting memory when the model is loaded and at peak."""
    import torch

    from refusaldata.store import Store
    from refusaldata.train import loop

    cuda = torch.cuda.is_available()
    noted: dict = {}
    wrap_lora = loop._wrap_lora

    def wrap_and_note(base, *rest):  # called right after the model is loaded
        noted["weights"] = base.get_memory_footprint()
        gc.collect()
        if cuda:
            torch.cuda.synchronize()
            noted["start"] = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        else:
            with torch.no_grad():  # fault in weights still mapped from the file, so "start" holds them all
                for tensor in [*base.parameters(), *base.buffers()]:
                    tensor.sum()
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            noted["start"] = _status("VmRSS")
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return wrap_lora(base, *rest)

    loop._wrap_lora = wrap_and_note
    options, _, _ = SETTINGS[setting]
    result = loop.train_adapter(Store(args.store), SET_NAME, args.model, Path(args.store) / setting.replace(" ", ""),
                                max_steps=args.steps, batch_size=args.batch_size, max_length=args.seq,
                                lora_r=args.lora_r, lora_alpha=2 * args.lora_r, threads=args.threads,
                                checkpoint_every=10**9, **options)
    peak = torch.cuda.max_memory_allocated() if cuda else _status("VmHWM")
    return {"setting": setting, "weights": noted["weights"], "start": noted["start"], "peak": peak,
            "tokens": result.tokens, "seconds": result.elapsed_s, "last_loss": result.last_loss,
            "measured": "cuda allocated" if cuda else "RSS"}


def available(setting: str) -> bool:
    if not SETTINGS[setting][2]:
        return True
    import importlib.util

    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None


def child(args: argparse.Namespace, setting: str) -> dict:
    command = [sys.executable, __file__, "--setting", setting, "--store", args.store, "--model", args.model,
               "--examples", str(args.examples), "--batch-size", str(args.batch_size), "--seq", str(args.seq),
               "--steps", str(args.steps), "--threads", str(args.threads), "--lora-r", str(args.lora_r)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{setting} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def embedded_shape(model: str) -> dict:
    from refusaldata.models import resolve_model

    config = json.loads((Path(resolve_model(model)) / "config.json").read_text())
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    return {"hidden": config["hidden_size"], "kv": config["hidden_size"] * kv_heads // heads,
            "intermediate": config["intermediate_size"], "layers": config["num_hidden_layers"],
            "vocab": config["vocab_size"], "tied": config.get("tie_word_embeddings", False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--examples", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seq", type=int, default=96, help="--max-length of the measured runs; tokens per row "
                        "in the prediction")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--reply-fraction", type=float, default=0.5, help="share of tokens that carry loss")
    parser.add_argument("--predict-only", action="store_true", help="print the predictions only")
    parser.add_argument("--setting", choices=list(SETTINGS), help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setting:
        print(json.dumps(measure(args, args.setting)))
        return
    if args.predict_only:
        print_predictions(args, None)
        return

    from refusaldata.store import Store

    shape = embedded_shape(args.model)
    with tempfile.TemporaryDirectory(prefix="train-memory-") as root:
        args.store = root
        Store(root).replace("sft", pa.Table.from_pylist(bench_rows(args.examples)))
        print(f"measured: LoRA r={args.lora_r} q_proj,v_proj on {args.model}; {args.examples} examples, batch "
              f"{args.batch_size}, max length {args.seq}, {args.steps} steps, {args.threads} thread(s)")
        results = [child(args, setting) for setting in SETTINGS if available(setting)]
    skipped = [setting for setting in SETTINGS if not available(setting)]
    tokens_per_step = results[0]["tokens"] / args.steps
    print(f"{'setting':<24}{'weights MiB':>12}{'start MiB':>11}{'peak MiB':>10}{'training MiB':>14}"
          f"{'predicted MiB':>15}{'s/step':>8}{'last loss':>11}   ({results[0]['measured']})")
    for row in results:
        part = predict(shape, row["setting"], tokens_per_step, args.reply_fraction, args.lora_r, tied=shape["tied"])
        training = part["lora"] + part["activations"] + part["logits"]
        print(f"{row['setting']:<24}{row['weights'] / 2**20:>12.0f}{row['start'] / 2**20:>11.0f}"
              f"{row['peak'] / 2**20:>10.0f}{(row['peak'] - row['start']) / 2**20:>14.0f}{training / 2**20:>15.0f}"
              f"{row['seconds'] / args.steps:>8.1f}{row['last_loss']:>11.3f}")
    for setting in skipped:
        print(f"{setting:<24}not measured: needs an NVIDIA GPU and bitsandbytes (pip install -e \".[qlora]\")")
    baseline = results[0]
    for row in results[1:]:
        print(f"{row['setting']} / fp32: peak ×{row['peak'] / baseline['peak']:.2f}, training memory "
              f"×{(row['peak'] - row['start']) / max(baseline['peak'] - baseline['start'], 1):.2f}, "
              f"time ×{row['seconds'] / baseline['seconds']:.2f}")
    print(f"(the measured runs averaged {tokens_per_step:.0f} real tokens per step; 'predicted' is the "
          f"formula's LoRA + activations + logits for them)")
    print_predictions(args, shape)


if __name__ == "__main__":
    main()
