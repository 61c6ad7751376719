"""The LoRA training loop: SFT on assistant tokens, the DPO family on preference pairs.

One loop serves every loss (losses.py holds the pair losses). Choices and why:
- logits only where there is loss: the decoder's hidden states go through the output
  head at reply positions only, so the batch × length × vocabulary logits tensor (2 GB
  in fp32 for batch 8 × 512 tokens of a 128k vocabulary) is never materialized; on the
  embedded model (49k vocabulary) it saved 3-5% of peak memory and ×1.00 to ×1.27 of the
  time in bench/train_speed.py runs on a busy shared machine;
- dynamic padding (each micro-batch padded to its own longest sequence);
- the SFT loss is the mean over every reply token of the optimizer step, so batch 8 and
  batch 4 × grad-accum 2 give the same update; pair losses are the mean over pairs;
- the reference of the pair losses is the same base with the adapter disabled (no second
  copy); reference-free losses (SimPO, ORPO) skip its forward pass;
- no dropout anywhere (LoRA dropout 0, the model in eval mode, as TRL's DPO disables
  dropout) and a data order fixed by the seed: the DPO/NCA reference pass is exact, and a
  run resumed from a checkpoint continues exactly as the uninterrupted run would have;
- constant learning rate (AdamW, no weight decay), gradients clipped at norm 1.0;
- the frozen base weights in `--dtype` (auto: bf16 on a GPU that supports it, fp32 on
  CPU, where bf16 matmuls without bf16 units run ~19x slower), or 4-bit NF4 through
  bitsandbytes (QLoRA) on a GPU; computation runs in the weights' dtype, without autocast,
  and the LoRA weights and their optimizer state stay fp32 (PEFT upcasts them), so the
  saved adapter is the same fp32 PEFT folder whatever the base's precision;
- `--gradient-checkpointing` recomputes each decoder layer in the backward pass instead of
  keeping its activations (the memory that grows with batch × length);
- data parallelism through accelerate: under `accelerate launch` each process takes its
  share of every optimizer step (batch × grad-accum examples) and the LoRA gradients are
  summed across processes before the step; a plain run is the same code with one process.
  The gradients are reduced by hand rather than by DistributedDataParallel because the
  scorer calls the decoder and the output head separately and the DPO reference pass
  disables the adapter, neither of which DDP's forward hooks would see; LoRA gradients are
  a few MB, so one all-reduce per step costs little.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import torch
import torch.nn.functional as F

from refusaldata import io
from refusaldata.errors import BackendError, InputError
from refusaldata.generate.vllm_backend import LORA_RANKS
from refusaldata.keys import canonical_json, digest, slug
from refusaldata.models import resolve_model
from refusaldata.runs import library_versions, now
from refusaldata.store import Store
from refusaldata.train import checkpoint
from refusaldata.train.data import PAIRED, SUPERVISED, Batch, Encoded, collate, encode, load_rows, rows_digest
from refusaldata.train.losses import PAIR_LOSSES, REFERENCE_FREE, SMOOTHED, PairOptions, PairScores

LOSSES = (SUPERVISED, *PAIRED)
DTYPES = ("auto", "bfloat16", "float32")
RECORD = "train_config.json"
LORA_DROPOUT = 0.0
MAX_GRAD_NORM = 1.0
# torch takes its thread count as a C int; far more threads than cores only slows it.
MAX_THREADS = 1024
# train_metrics numbers steps as int32: a run of more steps could never store its metrics.
MAX_STEPS = 2**31 - 1
# A step may hold more examples than a small set (repeating some) up to the default batch, never more.
DEFAULT_BATCH_SIZE = 8
# vLLM serves LoRA on the linear layers of attention and MLP; adapters on these cannot be served.
UNSERVABLE_MODULES = ("embed_tokens", "lm_head", "wte", "wpe")


@dataclass(frozen=True)
class TrainResult:
    adapter_id: str
    adapter_dir: Path
    steps: int
    first_loss: float
    last_loss: float
    examples: int
    tokens: int
    elapsed_s: float
    resumed_from_step: int = 0
    already_trained: bool = False


def _validate_pair_options(loss: str, options: PairOptions) -> None:
    if options.label_smoothing and loss not in SMOOTHED:
        raise InputError(f"--label-smoothing applies to {', '.join(SMOOTHED)}, not --loss {loss}")
    if loss in SMOOTHED:
        low, high = SMOOTHED[loss]
        if not low <= options.label_smoothing < high:
            raise InputError(f"--label-smoothing must be in [{low}, {high}) for --loss {loss}, "
                             f"not {options.label_smoothing}")
    if loss == "exo_pair" and options.label_smoothing == 0:
        raise InputError("--loss exo_pair needs --label-smoothing above 0 (the EXO paper suggests 1e-3)")
    if not math.isfinite(options.simpo_gamma):
        raise InputError(f"--simpo-gamma must be a number, not {options.simpo_gamma}")


def _pair_config(loss: str, options: PairOptions) -> dict:
    """The pair-loss settings an adapter's id covers; only those the loss reads, so the ids of
    adapters trained before these options existed stay the same."""
    if loss not in PAIR_LOSSES:
        return {"beta": None}
    config = {"beta": options.beta}
    if options.label_smoothing:
        config["label_smoothing"] = options.label_smoothing
    if loss == "simpo":
        config["simpo_gamma"] = options.simpo_gamma
    return config


def _validate(loss: str, beta: float, lora_r: int, lora_alpha: int, target_modules: tuple[str, ...],
              epochs: int, max_steps: int | None, lr: float, batch_size: int, grad_accum: int,
              max_length: int, threads: int | None, checkpoint_every: int, seed: int = 0) -> None:
    if loss not in LOSSES:
        raise InputError(f"--loss must be one of {', '.join(LOSSES)}, not '{loss}'")
    positive = {"--lora-r": lora_r, "--lora-alpha": lora_alpha, "--epochs": epochs, "--batch-size": batch_size,
                "--grad-accum": grad_accum, "--max-length": max_length, "checkpoint_every": checkpoint_every}
    if max_steps is not None:
        positive["--max-steps"] = max_steps
    if threads is not None:
        positive["--threads"] = threads
    for option, value in positive.items():
        if value < 1:
            raise InputError(f"{option} must be at least 1, not {value}")
    if threads is not None and threads > MAX_THREADS:
        raise InputError(f"--threads must be at most {MAX_THREADS}, not {threads}")
    if not 0 <= seed < 2**63:
        raise InputError(f"--seed must be between 0 and 2^63 - 1, not {seed}")
    if not (lr > 0 and math.isfinite(lr)):
        raise InputError(f"--lr must be a positive number, not {lr}")
    if not (beta > 0 and math.isfinite(beta)):
        raise InputError(f"--beta must be a positive number, not {beta}")
    if not target_modules or any(not name for name in target_modules):
        raise InputError("--target-modules needs one or more module names, comma-separated (e.g. q_proj,v_proj)")
    if lora_r > LORA_RANKS[-1]:
        raise InputError(f"--lora-r {lora_r} is above vLLM's largest LoRA rank {LORA_RANKS[-1]}: "
                         "the adapter could not be served")
    unservable = [name for name in target_modules if name in UNSERVABLE_MODULES]
    if unservable:
        raise InputError(f"--target-modules {unservable[0]}: vLLM cannot serve LoRA on embeddings or the "
                         "output head; target attention/MLP projections such as q_proj,v_proj")


def _check_sizes(examples: int, batch_size: int, grad_accum: int, processes: int, epochs: int,
                 max_steps: int | None) -> int:
    """The run's optimizer steps, refusing sizes that do not fit the set's `examples`.

    One step takes batch_size x grad_accum examples on each process: more than the set holds
    (beyond the default batch, which small sets have always been trained with) repeats every
    example within the step, and a huge --grad-accum or --batch-size turns one step into
    billions of micro-steps that never finish. The steps --epochs asks for must fit the
    metrics table's step numbers.
    """
    per_step = batch_size * grad_accum * processes
    limit = max(examples, DEFAULT_BATCH_SIZE)
    if per_step > limit:
        across = f" x {processes} processes" if processes > 1 else ""
        raise InputError(f"--batch-size {batch_size} x --grad-accum {grad_accum}{across} = {per_step:,} examples per "
                         f"optimizer step, but the set has {examples:,} train example(s): a step of more than "
                         f"{limit:,} would only repeat them; lower --batch-size or --grad-accum")
    steps = max_steps if max_steps is not None else math.ceil(epochs * examples / per_step)
    if steps > MAX_STEPS:
        asked = f"--max-steps {max_steps:,}" if max_steps is not None else (
            f"--epochs {epochs:,} over {examples:,} examples is {steps:,} optimizer steps, which")
        raise InputError(f"{asked} is more than the {MAX_STEPS:,} steps a run can number; ask for fewer")
    return steps


def _check_out(out: Path, adapter_id: str, replace: bool) -> None:
    """Refuse an --out folder holding another finished adapter, unless `replace`.

    Its adapters row and the runs generated with it name that folder: training there would
    swap the weights under them. A checkpoint of another configuration is not finished work
    and is cleared as before.
    """
    try:
        record = json.loads((out / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    other = record.get("adapter_id") if isinstance(record, dict) else None
    if not replace and other and other != adapter_id and (out / "adapter_model.safetensors").is_file():
        raise InputError(f"--out {out} holds adapter {other} (set '{record.get('set')}'), trained with other "
                         f"options; give another --out folder, or --replace to train over it")


def _accelerator():
    """This process's place in a data-parallel run: one process unless started by `accelerate launch`.

    Without a GPU it must be told so (cpu=True) to join a launched run through gloo.
    """
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available())


def _weights_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The dtype of the frozen base weights for `--dtype` on `device`."""
    if dtype not in DTYPES:
        raise InputError(f"--dtype must be one of {', '.join(DTYPES)}, not '{dtype}'")
    bf16_gpu = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if dtype == "auto":
        return torch.bfloat16 if bf16_gpu else torch.float32
    if dtype == "bfloat16" and device.type == "cuda" and not bf16_gpu:
        raise InputError("--dtype bfloat16: this GPU does not support bfloat16; use --dtype float32")
    return getattr(torch, dtype)


def _check_4bit(device: torch.device) -> None:
    """Refuse --load-in-4bit where bitsandbytes' 4-bit layers cannot train, before anything is loaded."""
    if device.type != "cuda":
        raise BackendError("--load-in-4bit needs an NVIDIA GPU (bitsandbytes' 4-bit layers); none is visible "
                           "here: use --dtype bfloat16 --gradient-checkpointing to save memory instead")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise BackendError("--load-in-4bit needs bitsandbytes: pip install -e \".[qlora]\"") from None


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Use `threads` intra-op threads for the duration (torch's setting is process-wide)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _load_model(model_path: str, model_name: str, device: torch.device, dtype: torch.dtype, load_in_4bit: bool):
    """The tokenizer and the base model, loaded straight onto `device` in `dtype` (or NF4 4-bit)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    quantization = None
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        # QLoRA's recipe: NF4 with double-quantized scales, computing in the --dtype
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        base = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, use_safetensors=True,
                                                    device_map={"": device}, quantization_config=quantization)
    except OSError as exc:
        raise BackendError(f"cannot load model '{model_name}': {' '.join(str(exc).split())[:200]}") from None
    finally:
        hf_logging.enable_progress_bar()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, base


def _checkpoint_layers(model) -> None:
    """Turn on gradient checkpointing: each decoder layer's activations are recomputed in backward.

    transformers checkpoints a layer only while that layer is in training mode, and the loop
    keeps the model in eval mode (no dropout). So only the checkpointed layers themselves are
    marked as training; the submodules that hold dropout stay in eval mode and the recompute is
    exact.
    """
    from transformers.modeling_layers import GradientCheckpointingLayer

    base = model.get_base_model()
    try:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    except ValueError as exc:
        raise InputError(f"--gradient-checkpointing: {' '.join(str(exc).split())[:200]}") from None
    layers = [module for module in base.modules()
              if isinstance(module, GradientCheckpointingLayer) and module.gradient_checkpointing]
    if not layers:
        raise InputError(f"--gradient-checkpointing: {type(base).__name__} has no layers transformers can checkpoint")
    for layer in layers:
        layer.training = True


def _sum_over_processes(accelerator, parameters: list[torch.nn.Parameter], loss: float,
                        tokens: int) -> tuple[float, int]:
    """Add up every process's gradients, loss part and tokens (one process: unchanged).

    Each process's part is already divided by the whole step's count, so the sum is the
    gradient a single process would have computed over the whole step.
    """
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    flat = accelerator.reduce(torch.cat([parameter.grad.flatten() for parameter in parameters]), reduction="sum")
    offset = 0
    for parameter in parameters:
        parameter.grad.copy_(flat[offset: offset + parameter.numel()].view_as(parameter.grad))
        offset += parameter.numel()
    totals = accelerator.reduce(torch.tensor([loss, tokens], dtype=torch.float64, device=flat.device), reduction="sum")
    return float(totals[0]), int(totals[1])


def _wrap_lora(base, lora_r: int, lora_alpha: int, target_modules: tuple[str, ...], seed: int):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=LORA_DROPOUT,
                        target_modules=list(target_modules), bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(base, config)
    except ValueError as exc:
        raise InputError(f"--target-modules {','.join(target_modules)}: {' '.join(str(exc).split())[:200]}") from None


class ReplyScorer:
    """Log-probabilities of reply tokens, computing the output head only where needed.

    Falls back to the model's full logits when head(decoder(x)) is not the model's own
    output (architectures that scale or cap logits).
    """

    def __init__(self, model, device: torch.device):
        self.model = model
        self.device = device
        base = model.get_base_model()
        self.decoder = base.get_decoder()
        self.head = base.get_output_embeddings()
        self.split = self.decoder is not None and self.head is not None and self._split_matches()

    def _split_matches(self) -> bool:
        probe = torch.arange(1, 9, device=self.device)[None, :]
        with torch.no_grad():
            whole = self.model(input_ids=probe, use_cache=False).logits
            split = self.head(self.decoder(input_ids=probe, use_cache=False).last_hidden_state)
        tolerance = max(1e-4, 4 * torch.finfo(whole.dtype).eps)  # bf16 logits carry ~3 digits
        return torch.allclose(whole, split, atol=tolerance, rtol=tolerance)

    def token_logps(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-prob of each reply token, the row each belongs to), flattened over the batch."""
        mask = batch.loss_mask[:, 1:]
        targets = batch.input_ids[:, 1:][mask]
        rows = mask.nonzero()[:, 0]
        if self.split:
            hidden = self.decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                  use_cache=False).last_hidden_state
            logits = self.head(hidden[:, :-1][mask])
        else:
            logits = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                use_cache=False).logits[:, :-1][mask]
        return -F.cross_entropy(logits.float(), targets, reduction="none"), rows

    def sequence_logps(self, batch: Batch) -> torch.Tensor:
        """Summed reply log-probability per row (the quantity DPO-family losses compare)."""
        logps, rows = self.token_logps(batch)
        return torch.zeros(batch.input_ids.shape[0], device=logps.device, dtype=logps.dtype).index_add(0, rows, logps)


def _step_examples(order_for_epoch, step: int, per_step: int, count: int) -> list[int]:
    """The example indices optimizer step `step` (0-based) consumes from the seeded stream."""
    indices = []
    for position in range(step * per_step, (step + 1) * per_step):
        epoch, offset = divmod(position, count)
        indices.append(int(order_for_epoch(epoch)[offset]))
    return indices


def _pair_scores(scorer: ReplyScorer, batch: Batch, pairs: int, reference_free: bool) -> PairScores:
    """Policy (and, unless `reference_free`, reference) scores of a [chosen..., rejected...] batch."""
    tokens = batch.loss_mask[:, 1:].sum(dim=1).to(torch.float32)
    reference = None
    if not reference_free:
        with torch.no_grad(), scorer.model.disable_adapter():
            reference = scorer.sequence_logps(batch)
    policy = scorer.sequence_logps(batch)
    return PairScores(policy[:pairs], policy[pairs:], None if reference is None else reference[:pairs],
                      None if reference is None else reference[pairs:], tokens[:pairs], tokens[pairs:])


def _train_step(scorer: ReplyScorer, encoded: Encoded, indices: list[int], loss: str, options: PairOptions,
                batch_size: int, pad_id: int, device: torch.device, share: slice = slice(None)) -> tuple[float, int]:
    """Accumulate gradients for this process's `share` of one optimizer step; returns (loss, tokens seen).

    `indices` are the examples of the whole step; every part is divided by the whole step's
    count, so the processes' gradients and losses add up to those of one process.
    """
    micro = [indices[share][i: i + batch_size] for i in range(0, len(indices[share]), batch_size)]
    tokens = 0
    total = 0.0
    if loss == SUPERVISED:
        # Each reply token counts with its row's weight (retention rows: --retention-weight); the
        # positions batch.loss_mask[:, 1:] marks, weighted, counted over the whole step.
        reply_tokens = sum(sequence.weight * (len(sequence.ids) - max(sequence.start, 1))
                           for sequence in (encoded.examples[i][0] for i in indices))
        batches = [(collate([encoded.examples[i][0] for i in chunk], pad_id),
                    torch.tensor([encoded.examples[i][0].weight for i in chunk])) for chunk in micro]
        for batch, weights in batches:
            batch = batch.to(device)
            logps, rows = scorer.token_logps(batch)
            part = -(logps * weights.to(device)[rows]).sum() / reply_tokens
            part.backward()
            total += float(part.detach())
            tokens += batch.tokens
        return total, tokens
    pair_loss = PAIR_LOSSES[loss]
    for chunk in micro:
        sequences = [encoded.examples[i][0] for i in chunk] + [encoded.examples[i][1] for i in chunk]
        batch = collate(sequences, pad_id).to(device)
        losses = pair_loss(_pair_scores(scorer, batch, len(chunk), loss in REFERENCE_FREE), options)
        part = losses.sum() / len(indices)
        part.backward()
        total += float(part.detach())
        tokens += batch.tokens
    return total, tokens


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
    )

    return Progress(TextColumn("train", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}", markup=False),
                    TextColumn("{task.fields[speed]} tok/s", markup=False),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                    disable=not enabled, transient=False)


def _save_adapter(model, out: Path) -> None:
    """Save the PEFT folder next to `out` first, then move each file in (no torn adapter)."""
    staging = Path(tempfile.mkdtemp(prefix=".adapter-", dir=out))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        io.move_files_into(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def train_adapter(store: Store, set_name: str, model: str, out: str | os.PathLike[str], *, loss: str = SUPERVISED,
                  beta: float = 0.1, label_smoothing: float = 0.0, simpo_gamma: float = 0.5,
                  retention_weight: float = 1.0, lora_r: int = 8, lora_alpha: int = 16,
                  target_modules: tuple[str, ...] | list[str] = ("q_proj", "v_proj"), epochs: int = 1,
                  max_steps: int | None = None, lr: float = 2e-4, batch_size: int = 8, grad_accum: int = 1,
                  max_length: int = 512, seed: int = 0, threads: int | None = None,
                  checkpoint_every: int = 10, progress: bool = False, dtype: str = "auto",
                  gradient_checkpointing: bool = False, load_in_4bit: bool = False,
                  replace: bool = False, reply_tokens: int | None = None) -> TrainResult:
    """Train a LoRA adapter on the train split of `set_name` and save it in `out`.

    `out` receives a standard PEFT folder (adapter_config.json, adapter_model.safetensors)
    and train_config.json (set, base model, hyperparameters, final loss). Per-step
    metrics go to the train_metrics table and the adapter to the adapters table. A rerun
    with the same configuration returns the finished adapter; one interrupted resumes
    from its last checkpoint (every `checkpoint_every` steps).
    `threads`: torch intra-op threads on CPU (None: torch's default, one per core); on a
    machine already loaded by other work, 1 can be faster than all cores.
    `dtype`, `gradient_checkpointing`, `load_in_4bit`: the base's precision and the memory
    savers (module docstring). Under `accelerate launch` every process runs this function;
    an optimizer step takes batch_size × grad_accum examples on each, and only the main
    process writes the adapter, checkpoints and store rows.
    `label_smoothing` and `simpo_gamma` are read by the pair losses that define them;
    `retention_weight` scales the SFT loss of an sft set's retention rows. `reply_tokens`: train
    on each reply's first that many tokens only (data.encode). `replace`: train
    into an `out` that holds an adapter of another configuration (refused otherwise).
    """
    target_modules = tuple(target_modules)
    _validate(loss, beta, lora_r, lora_alpha, target_modules, epochs, max_steps, lr, batch_size, grad_accum,
              max_length, threads, checkpoint_every, seed)
    accelerator = _accelerator()
    device = accelerator.device
    weights_dtype = _weights_dtype(dtype, device)
    if load_in_4bit:
        _check_4bit(device)
    pair_options = PairOptions(beta=beta, label_smoothing=label_smoothing, simpo_gamma=simpo_gamma)
    _validate_pair_options(loss, pair_options)
    if not (retention_weight >= 0 and math.isfinite(retention_weight)):
        raise InputError(f"--retention-weight must be a number >= 0, not {retention_weight}")
    if reply_tokens is not None and reply_tokens < 1:
        raise InputError(f"reply_tokens must be at least 1, not {reply_tokens}")
    if retention_weight != 1.0 and loss != SUPERVISED:
        raise InputError("--retention-weight applies to --loss sft (pairs sets have no retention rows)")
    table, rows = load_rows(store, set_name, loss)
    processes, main = accelerator.num_processes, accelerator.is_main_process
    share = slice(accelerator.process_index * batch_size * grad_accum,
                  (accelerator.process_index + 1) * batch_size * grad_accum)
    per_step = batch_size * grad_accum * processes
    config = {
        "set": set_name, "set_table": table, "set_digest": rows_digest(rows), "base_model": model,
        "loss": loss, **_pair_config(loss, pair_options), "lora_r": lora_r, "lora_alpha": lora_alpha,
        **({"retention_weight": retention_weight} if retention_weight != 1.0 else {}),
        **({"reply_tokens": reply_tokens} if reply_tokens is not None else {}),
        "lora_dropout": LORA_DROPOUT, "target_modules": list(target_modules), "epochs": epochs,
        "max_steps": max_steps, "lr": lr, "lr_schedule": "constant", "optimizer": "adamw",
        "weight_decay": 0.0, "max_grad_norm": MAX_GRAD_NORM, "batch_size": batch_size, "grad_accum": grad_accum,
        "max_length": max_length, "seed": seed, "dtype": str(weights_dtype).removeprefix("torch."),
    }
    # Options added after adapters were first trained enter the id only away from their
    # default, so an adapter trained before they existed keeps its id (and resumes).
    # Gradient checkpointing changes memory, not results, so it is recorded but not hashed.
    config.update({name: value for name, value in (("load_in_4bit", load_in_4bit), ("processes", processes))
                   if value != {"load_in_4bit": False, "processes": 1}[name]})
    adapter_id = f"{slug(set_name, 30)}-{loss}-{digest(canonical_json(config), 10)}"
    given = Path(out).expanduser()
    within = store.root if not store.remote and io.under_root(given, store.root) else None  # quickstart's trained/
    if within is not None:
        io.check_within(given, within, BackendError, folder=True)  # and its files, below: never through a link
    out = given.resolve()
    _check_out(out, adapter_id, replace)
    finished = _finished(out, adapter_id)
    if finished is not None:
        return finished
    _check_sizes(rows.num_rows, batch_size, grad_accum, processes, epochs, max_steps)
    model_path = resolve_model(model)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create --out {out}: {exc.strerror}") from None

    with _torch_threads(threads):
        tokenizer, base = _load_model(model_path, model, device, weights_dtype, load_in_4bit)
        encoded = encode(tokenizer, rows, table, max_length, retention_weight, reply_tokens)
        count = len(encoded.examples)
        total_steps = _check_sizes(count, batch_size, grad_accum, processes, epochs, max_steps)
        peft_model = _wrap_lora(base, lora_r, lora_alpha, target_modules, seed)
        peft_model.eval()
        if gradient_checkpointing:
            _checkpoint_layers(peft_model)
        scorer = ReplyScorer(peft_model, device)
        trainable = [parameter for parameter in peft_model.parameters() if parameter.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)

        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        start_step, elapsed, seen_tokens, first_loss = 0, 0.0, 0, None
        with accelerator.main_process_first():  # the main process clears a stale checkpoint before others look
            resumed = checkpoint.load(out, adapter_id)
        if resumed is not None:
            set_peft_model_state_dict(peft_model, resumed.adapter)
            optimizer.load_state_dict(resumed.optimizer)
            start_step = resumed.step
            elapsed = resumed.state["elapsed_s"]
            seen_tokens = resumed.state["tokens"]
            first_loss = resumed.state["first_loss"]

        orders: dict[int, torch.Tensor] = {}

        def order_for_epoch(epoch: int) -> torch.Tensor:
            if epoch not in orders:
                orders[epoch] = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
            return orders[epoch]

        metrics: list[dict] = []
        last_loss = math.nan
        pad_id = tokenizer.pad_token_id
        with _progress(progress and main) as bar:
            task = bar.add_task("train", total=total_steps, completed=start_step, loss="-", speed="-")
            for step in range(start_step, total_steps):
                began = time.perf_counter()
                indices = _step_examples(order_for_epoch, step, per_step, count)
                last_loss, tokens = _train_step(scorer, encoded, indices, loss, pair_options, batch_size, pad_id,
                                                device, share)
                last_loss, tokens = _sum_over_processes(accelerator, trainable, last_loss, tokens)
                if not math.isfinite(last_loss):
                    raise BackendError(f"the loss became {last_loss} at step {step + 1}; lower --lr")
                torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                took = time.perf_counter() - began
                elapsed += took
                seen_tokens += tokens
                first_loss = last_loss if first_loss is None else first_loss
                metrics.append({"adapter_id": adapter_id, "step": step + 1, "epoch": (step + 1) * per_step / count,
                                "loss": last_loss, "learning_rate": lr, "tokens": tokens,
                                "tokens_per_s": tokens / took, "elapsed_s": elapsed, "created_at": now()})
                bar.update(task, advance=1, loss=f"{last_loss:.4f}", speed=f"{tokens / took:,.0f}")
                if main and (step + 1) % checkpoint_every == 0 and step + 1 < total_steps:
                    # Metrics first: a resumed run starts after the checkpoint, so steps it covers must
                    # already be stored; a kill between the two redoes them, and the append skips their keys.
                    store.append("train_metrics", pa.Table.from_pylist(metrics), where=f"metrics of {adapter_id}")
                    metrics = []
                    checkpoint.save(out, step + 1, get_peft_model_state_dict(peft_model), optimizer.state_dict(),
                                    {"adapter_id": adapter_id, "elapsed_s": elapsed, "tokens": seen_tokens,
                                     "first_loss": first_loss}, within)

        if main:
            _save_adapter(peft_model, out)

    if not main:
        accelerator.wait_for_everyone()  # the other processes return once the main one has written the adapter
        return TrainResult(adapter_id, out, total_steps, float(first_loss), float(last_loss), count, seen_tokens,
                           elapsed, start_step)
    if metrics:
        store.append("train_metrics", pa.Table.from_pylist(metrics), where=f"metrics of {adapter_id}")
    result = TrainResult(adapter_id, out, total_steps, float(first_loss), float(last_loss), count, seen_tokens,
                         elapsed, start_step)
    record = {"adapter_id": adapter_id, "base_model_path": model_path, **config,
              "gradient_checkpointing": gradient_checkpointing, "load_in_4bit": load_in_4bit, "processes": processes,
              "steps": total_steps,
              "examples": count, "truncated": encoded.truncated, "dropped": encoded.dropped,
              "first_loss": result.first_loss, "final_loss": result.last_loss, "tokens": seen_tokens,
              "elapsed_s": elapsed, "resumed_from_step": start_step, "versions": library_versions(),
              "created_at": now().isoformat()}
    store.append("adapters", pa.Table.from_pylist([{
        "adapter_id": adapter_id, "path": str(out), "base_model": model, "set_name": set_name, "loss": loss,
        "config": json.dumps(record, sort_keys=True), "created_at": now()}]), where=f"adapter {adapter_id}")
    # The record goes last: its presence is what marks the run finished.
    io.write_json(out / RECORD, record, BackendError, within)
    checkpoint.clear(out)
    accelerator.wait_for_everyone()
    return result


def _finished(out: Path, adapter_id: str) -> TrainResult | None:
    """The result recorded in `out` by a finished run of the same configuration, if any."""
    try:
        record = json.loads((out / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("adapter_id") != adapter_id or not (out / "adapter_model.safetensors").is_file():
        return None
    return TrainResult(adapter_id, out, record["steps"], record["first_loss"], record["final_loss"],
                       record["examples"], record["tokens"], record["elapsed_s"], record["resumed_from_step"],
                       already_trained=True)


def result_row(result: TrainResult) -> dict:
    """A TrainResult as a flat dict (paths as strings) for printing."""
    row = asdict(result)
    row["adapter_dir"] = str(result.adapter_dir)
    return row
