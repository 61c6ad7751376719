"""`refusaldata train`: a LoRA adapter from an SFT set or a pairs set."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer

from refusaldata.cli.common import FormatOption, OutputFormat, OutputOption, StoreOption, emit, open_store, refuse
from refusaldata.store import DEFAULT_STORE
from refusaldata.train.loss_names import PAIR_LOSS_NAMES

# sft, then every pair loss (losses.py): dpo, nca, ipo, simpo, orpo, hinge, robust, ...
Loss = enum.Enum("Loss", {name: name for name in ("sft", *PAIR_LOSS_NAMES)}, type=str)
LOSS_HELP = ("sft: assistant tokens of an sft set. Pairs sets, as TRL defines them: dpo (TRL sigmoid; cDPO with "
             "--label-smoothing), nca (nca_pair), ipo, simpo and orpo (no reference model), hinge, robust, exo_pair, "
             "bco_pair, sppo_hard, apo_zero, apo_down, sigmoid_norm.")


class Dtype(str, enum.Enum):
    auto = "auto"
    bfloat16 = "bfloat16"
    float32 = "float32"


def train(
    ctx: typer.Context,
    set_name: Annotated[str, typer.Option(
        "--set", help="The sft set (--loss sft) or pairs set (pair losses) to train on.")],
    model: Annotated[str, typer.Option("--model", help="Base model: 'smollm2-135m-instruct', a folder or a hub id.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the PEFT adapter and train_config.json.")],
    loss: Annotated[Loss, typer.Option("--loss", help=LOSS_HELP)] = Loss.sft,
    beta: Annotated[float, typer.Option("--beta", help="β of the pair losses.")] = 0.1,
    label_smoothing: Annotated[float, typer.Option(
        "--label-smoothing",
        help="ε of dpo (cDPO), robust, exo_pair and simpo: the assumed share of flipped pairs.")] = 0.0,
    simpo_gamma: Annotated[float, typer.Option("--simpo-gamma", help="γ, SimPO's target reward margin.")] = 0.5,
    retention_weight: Annotated[float, typer.Option(
        "--retention-weight",
        help="--loss sft: loss weight of the set's retention rows (refusal rows weigh 1).")] = 1.0,
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank.")] = 8,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", help="LoRA alpha (scale = alpha / r).")] = 16,
    target_modules: Annotated[str, typer.Option(
        "--target-modules", help="Comma-separated module names.")] = "q_proj,v_proj",
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the train split (unless --max-steps).")] = 1,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Optimizer steps, overriding --epochs.")] = None,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (constant, AdamW).")] = 2e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per micro-batch (per process).")] = 8,
    grad_accum: Annotated[int, typer.Option(
        "--grad-accum", help="Micro-batches per optimizer step (per process): a bigger step in the same memory.")] = 1,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per sequence; longer replies are cut.")] = 512,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the LoRA init and the data order.")] = 0,
    threads: Annotated[int | None, typer.Option(
        "--threads",
        help="CPU threads for torch (default: one per core; 1 is often faster on a busy machine).")] = None,
    checkpoint_every: Annotated[int, typer.Option(
        "--checkpoint-every", help="Steps between checkpoints an interrupted run resumes from.")] = 10,
    dtype: Annotated[Dtype, typer.Option(
        "--dtype", help="The frozen base weights: auto is bfloat16 on a GPU that supports it, float32 on CPU.")
    ] = Dtype.auto,
    gradient_checkpointing: Annotated[bool, typer.Option(
        "--gradient-checkpointing",
        help="Recompute each layer in the backward pass: less activation memory, one more forward.")] = False,
    load_in_4bit: Annotated[bool, typer.Option(
        "--load-in-4bit",
        help="QLoRA: the base in 4-bit NF4 (bitsandbytes, an NVIDIA GPU; pip install -e \".[qlora]\").")] = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Train into an --out folder that holds an adapter of other options, replacing it "
                          "(refused otherwise).")] = False,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Train a LoRA adapter on a set's train split; print where it is and how the loss moved.

    Rerunning the same command returns the finished adapter; an interrupted run resumes
    from its last checkpoint in --out. On several GPUs, start it with
    `accelerate launch --num_processes N -m refusaldata.cli.main train ...` (data parallel).
    """
    if loss.value == "sft":
        refuse(ctx, ("beta", "label_smoothing", "simpo_gamma"),
               "applies only to the pair losses (--loss dpo, nca, ...)")
    elif loss.value != "simpo":
        refuse(ctx, ("simpo_gamma",), "applies only to --loss simpo")
    from refusaldata.train import result_row, train_adapter  # torch loads only when training

    result = train_adapter(
        open_store(store), set_name, model, out, loss=loss.value, beta=beta, label_smoothing=label_smoothing,
        simpo_gamma=simpo_gamma, retention_weight=retention_weight, lora_r=lora_r, lora_alpha=lora_alpha,
        target_modules=[name.strip() for name in target_modules.split(",")], epochs=epochs, max_steps=max_steps,
        lr=lr, batch_size=batch_size, grad_accum=grad_accum, max_length=max_length, seed=seed, threads=threads,
        checkpoint_every=checkpoint_every, progress=True, dtype=dtype.value,
        gradient_checkpointing=gradient_checkpointing, load_in_4bit=load_in_4bit, replace=replace)
    emit(pa.Table.from_pylist([result_row(result)]), fmt, output, title="adapter")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
