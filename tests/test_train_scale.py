"""`refusaldata train` at scale, on its CPU path: bf16 base weights with gradient checkpointing
against fp32, gradient accumulation, the 4-bit option's error where it cannot run, and the
data-parallel code (accelerate) in its single-process form."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import torch
from safetensors.torch import load_file
from uncensorbench import UncensorBench

from refusaldata.keys import prompt_id
from refusaldata.models import EMBEDDED_MODEL
from refusaldata.train import train_adapter

REFUSAL = "I'm sorry, but I can't help with that."


def _shortest_prompts(count: int) -> list[str]:
    """The shortest UncensorBench prompts: bf16 matmuls on a CPU without bf16 units are slow."""
    return sorted((p.prompt for p in UncensorBench().prompts()), key=len)[:count]


def _store_set(store, name: str, prompts: list[str]) -> None:
    store.replace("sft", pa.Table.from_pylist([
        {"set_name": name, "mode": "baseline", "kind": "refusal", "prompt_id": prompt_id(text), "split": "train",
         "prompt": text, "target": REFUSAL} for text in prompts]))


def _losses(store, adapter_id: str) -> list[float]:
    return [loss for loss, in store.connect().sql("SELECT loss FROM train_metrics WHERE adapter_id = $id ORDER BY step",
                                                  params={"id": adapter_id}).fetchall()]


def _last_row(result) -> dict:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_bf16_weights_with_checkpointing_follow_the_fp32_loss_curve(cli, store, tmp_path, embedded_model):
    """Tolerance: step 1's loss within 1% of fp32's, step 2's within 6% (relative).

    Measured here: 0.4% and 4.2% (2.433 vs 2.443, 1.731 vs 1.658). Step 1 (policy = base,
    LoRA's B is 0) differs by bf16's rounding of the forward pass alone (~3 significant
    digits); step 2 also by the first update, where AdamW moves each LoRA weight by about
    ±lr whatever its gradient's size, so gradients near zero whose sign rounding flips move
    the other way. Two steps on one short example (a 9-token reply) because bf16 matmuls on
    a CPU without bf16 units run ~19x slower than fp32.
    """
    _store_set(store, "tiny", _shortest_prompts(1))
    options = ["--set", "tiny", "--model", EMBEDDED_MODEL, "--max-steps", "2", "--batch-size", "1", "--lr", "2e-3",
               "--max-length", "46", "--threads", "1", "--format", "jsonl"]
    fp32 = _last_row(cli("train", *options, "--out", tmp_path / "fp32", "--dtype", "float32"))

    attention_calls = []  # decoder attention run with autograd on: once per layer, twice when checkpointed

    def count(module, args, output):
        if type(module).__name__.endswith("Attention") and torch.is_grad_enabled():
            attention_calls.append(1)

    hook = torch.nn.modules.module.register_module_forward_hook(count)
    try:
        bf16 = _last_row(cli("train", *options, "--out", tmp_path / "bf16", "--dtype", "bfloat16",
                             "--gradient-checkpointing"))
    finally:
        hook.remove()
    assert len(attention_calls) == 2 * 30 * 2  # 2 steps × 30 layers × (forward + recompute)

    reference, low = _losses(store, fp32["adapter_id"]), _losses(store, bf16["adapter_id"])
    assert len(reference) == len(low) == 2 and reference[1] < reference[0]
    assert low[0] == pytest.approx(reference[0], rel=0.01)
    assert low[1] == pytest.approx(reference[1], rel=0.06)
    assert bf16["adapter_id"] != fp32["adapter_id"]

    # the adapter is the same standard PEFT folder, its LoRA weights fp32 whatever the base's dtype
    weights = load_file(tmp_path / "bf16" / "adapter_model.safetensors")
    assert len(weights) == 30 * 2 * 2 and {tensor.dtype for tensor in weights.values()} == {torch.float32}
    record = json.loads((tmp_path / "bf16" / "train_config.json").read_text())
    assert (record["dtype"], record["gradient_checkpointing"], record["load_in_4bit"], record["processes"]) == (
        "bfloat16", True, False, 1)
    assert json.loads((tmp_path / "fp32" / "train_config.json").read_text())["dtype"] == "float32"


def test_grad_accum_gives_the_update_of_one_bigger_batch(cli, store, tmp_path, embedded_model):
    # The SFT loss is the mean over every reply token of the optimizer step, so 2 micro-batches
    # of 1 take the same step as 1 batch of 2 (fp32: equal up to padding's rounding).
    _store_set(store, "pair", _shortest_prompts(2))
    options = ["--set", "pair", "--model", EMBEDDED_MODEL, "--max-steps", "2", "--lr", "2e-3", "--max-length", "64",
               "--threads", "1", "--format", "jsonl"]
    whole = _last_row(cli("train", *options, "--out", tmp_path / "whole", "--batch-size", "2"))
    accumulated = _last_row(cli("train", *options, "--out", tmp_path / "accum", "--batch-size", "1",
                                "--grad-accum", "2"))
    assert _losses(store, accumulated["adapter_id"]) == pytest.approx(_losses(store, whole["adapter_id"]), abs=1e-5)
    assert accumulated["tokens"] == whole["tokens"] and accumulated["adapter_id"] != whole["adapter_id"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: bitsandbytes' 4-bit layers may run")
def test_load_in_4bit_without_a_gpu_is_one_line_and_changes_nothing(cli, store, tmp_path):
    _store_set(store, "tiny", _shortest_prompts(1))
    result = cli("train", "--set", "tiny", "--model", EMBEDDED_MODEL, "--out", tmp_path / "out", "--load-in-4bit")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: --load-in-4bit needs an NVIDIA GPU") and result.stderr.count("\n") == 1
    assert store.count("adapters") == 0 and store.count("train_metrics") == 0
    assert not (tmp_path / "out").exists()


def test_an_unknown_dtype_is_refused_by_name(cli, store, tmp_path):
    result = cli("train", "--set", "tiny", "--model", EMBEDDED_MODEL, "--out", tmp_path / "out", "--dtype", "float16")
    assert result.exit_code == 2 and "--dtype" in result.stderr and "float16" in result.stderr


def test_the_library_refuses_an_unknown_dtype(store, tmp_path):
    from refusaldata.errors import InputError

    _store_set(store, "tiny", _shortest_prompts(1))
    with pytest.raises(InputError, match="--dtype must be one of auto, bfloat16, float32"):
        train_adapter(store, "tiny", EMBEDDED_MODEL, tmp_path / "out", dtype="half")
