"""`refusaldata train`: a LoRA adapter from an SFT set or a pairs set."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer

from refusaldata.cli.common import FormatOption, OutputFormat, OutputOption, StoreOption, emit, open_store
from refusaldata.store import DEFAULT_STORE


class Loss(str, enum.Enum):
    sft = "sft"
    dpo = "dpo"
    nca = "nca"


class Dtype(str, enum.Enum):
    auto = "auto"
    bfloat16 = "bfloat16"
    float32 = "float32"


def train(
    set_name: Annotated[str, typer.Option("--set", help="The sft set (--loss sft) or pairs set (dpo, nca) to train on.")],
    model: Annotated[str, typer.Option("--model", help="Base model: 'smollm2-135m-instruct', a folder or a hub id.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the PEFT adapter and train_config.json.")],
    loss: Annotated[Loss, typer.Option("--loss", help="sft: assistant tokens only; dpo / nca: preference pairs.")] = Loss.sft,
    beta: Annotated[float, typer.Option("--beta", help="β of the DPO / NCA losses.")] = 0.1,
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank.")] = 8,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", help="LoRA alpha (scale = alpha / r).")] = 16,
    target_modules: Annotated[str, typer.Option("--target-modules", help="Comma-separated module names.")] = "q_proj,v_proj",
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the train split (unless --max-steps).")] = 1,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Optimizer steps, overriding --epochs.")] = None,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (constant, AdamW).")] = 2e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per micro-batch (per process).")] = 8,
    grad_accum: Annotated[int, typer.Option(
        "--grad-accum", help="Micro-batches per optimizer step (per process): a bigger step in the same memory.")] = 1,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per sequence; longer replies are cut.")] = 512,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the LoRA init and the data order.")] = 0,
    threads: Annotated[int | None, typer.Option(
        "--threads", help="CPU threads for torch (default: one per core; 1 is often faster on a busy machine).")] = None,
    checkpoint_every: Annotated[int, typer.Option(
        "--checkpoint-every", help="Steps between checkpoints an interrupted run resumes from.")] = 10,
    dtype: Annotated[Dtype, typer.Option(
        "--dtype", help="The frozen base weights: auto is bfloat16 on a GPU that supports it, float32 on CPU.")] = Dtype.auto,
    gradient_checkpointing: Annotated[bool, typer.Option(
        "--gradient-checkpointing", help="Recompute each layer in the backward pass: less activation memory, one more forward.")] = False,
    load_in_4bit: Annotated[bool, typer.Option(
        "--load-in-4bit", help="QLoRA: the base in 4-bit NF4 (bitsandbytes, an NVIDIA GPU; pip install -e \".[qlora]\").")] = False,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Train a LoRA adapter on a set's train split; print where it is and how the loss moved.

    Rerunning the same command returns the finished adapter; an interrupted run resumes
    from its last checkpoint in --out. On several GPUs, start it with
    `accelerate launch --num_processes N -m refusaldata.cli.main train ...` (data parallel).
    """
    from refusaldata.train import result_row, train_adapter  # torch loads only when training

    result = train_adapter(
        open_store(store), set_name, model, out, loss=loss.value, beta=beta, lora_r=lora_r, lora_alpha=lora_alpha,
        target_modules=[name.strip() for name in target_modules.split(",")], epochs=epochs, max_steps=max_steps,
        lr=lr, batch_size=batch_size, grad_accum=grad_accum, max_length=max_length, seed=seed, threads=threads,
        checkpoint_every=checkpoint_every, progress=True, dtype=dtype.value,
        gradient_checkpointing=gradient_checkpointing, load_in_4bit=load_in_4bit)
    emit(pa.Table.from_pylist([result_row(result)]), fmt, output, title="adapter")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
