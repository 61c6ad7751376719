"""A local model as the local backends see it: folder, chat template, context, adapter.

Both vllm and transformers load the same folder and the same chat template, so the run
id of either is derived the same way and their fp32 greedy outputs can be compared.
Only the tokenizer loads here (fast); the weights load in the engines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from refusaldata import models
from refusaldata.errors import BackendError, InputError, NotFoundError
from refusaldata.generate import Prompt, conversation, json_file
from refusaldata.io import sha256_files, sha256_text

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class Adapter:
    """A PEFT LoRA adapter folder: safetensors weights only, never pickle."""

    path: Path
    sha256: str
    rank: int

    @classmethod
    def load(cls, folder: str) -> Adapter:
        path = Path(folder).expanduser().resolve()
        config_path = path / "adapter_config.json"
        if not config_path.is_file():
            raise NotFoundError(f"adapter folder {path} has no adapter_config.json")
        weights = path / "adapter_model.safetensors"
        if not weights.is_file():
            pickled = [p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
            reason = f" (found {pickled[0]}: pickle files are never loaded)" if pickled else ""
            raise InputError(f"adapter folder {path} has no adapter_model.safetensors{reason}")
        config = json_file(config_path)
        rank = config.get("r")
        if not isinstance(rank, int) or rank < 1:
            raise InputError(f"{config_path}: 'r' (the LoRA rank) must be a positive integer")
        _check_weights(weights)
        return cls(path, sha256_files([config_path, weights]), rank)


def _check_weights(weights: Path) -> None:
    """Refuse an adapter whose safetensors file is not one (truncated, another format) before any
    run is recorded: its header and tensor offsets are read here, the tensors by the engine."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="numpy") as handle:
            tensors = len(list(handle.keys()))
    except (SafetensorError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{weights}: not a readable safetensors file ({reason})") from None
    if not tensors:
        raise InputError(f"{weights}: holds no tensors")


def model_label(name: str, path: Path | None) -> str:
    """A readable name for run ids: the alias or hub id as given, a local folder's name."""
    if path is not None and name != models.EMBEDDED_MODEL:
        return path.name
    return name


def folder_fingerprint(path: Path) -> str:
    """A cheap identity of a local model folder: its config and the names and sizes of its weights.

    Hashing the weights themselves would take seconds per gigabyte on every run.
    """
    digest_parts = [(path / "config.json").read_text(encoding="utf-8")]
    for weights in sorted(path.glob("*.safetensors")):
        digest_parts.append(f"{weights.name}:{weights.stat().st_size}")
    return sha256_text("\n".join(digest_parts))[:16]


@dataclass
class LocalModel:
    """A resolved local model with its tokenizer (used for templates and token counts)."""

    name: str
    path: str
    tokenizer: object
    chat_template: str
    context_length: int
    fingerprint: str | None
    adapter: Adapter | None
    system_prompt: str | None
    few_shot: tuple[tuple[str, str], ...] = ()

    @classmethod
    def load(cls, name: str, adapter: str | None, system_prompt: str | None,
             few_shot: tuple[tuple[str, str], ...] = ()) -> LocalModel:
        path = models.resolve_model(name)
        local_folder = Path(path) if Path(path).is_dir() else None
        from transformers import AutoConfig, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
            config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        except OSError as exc:
            if local_folder is None:
                raise models.hub_unreachable(name, exc) from None
            raise BackendError(f"cannot load the tokenizer of {path}: {exc}") from None
        template = getattr(tokenizer, "chat_template", None)
        if not template or not isinstance(template, str):
            raise BackendError(
                f"model '{name}' has no chat template (a base model?): generation needs an instruct "
                "model whose tokenizer carries one")
        context = getattr(config, "max_position_embeddings", None) or 2048
        max_length = getattr(tokenizer, "model_max_length", None)
        if isinstance(max_length, int) and 0 < max_length < context:
            context = max_length
        fingerprint = folder_fingerprint(local_folder) if local_folder is not None else None
        return cls(name=name, path=path, tokenizer=tokenizer, chat_template=template,
                   context_length=int(context), fingerprint=fingerprint,
                   adapter=Adapter.load(adapter) if adapter else None, system_prompt=system_prompt,
                   few_shot=few_shot)

    def identity(self, dtype: str) -> dict:
        """The model's part of the run config and of the runs row."""
        model = model_label(self.name, Path(self.path) if os.path.isdir(self.path) else None)
        return {
            "label": f"{model}-{self.adapter.path.name}" if self.adapter else model,
            "model": model,
            "model_fingerprint": self.fingerprint,
            "adapter": str(self.adapter.path) if self.adapter else None,
            "adapter_sha256": self.adapter.sha256 if self.adapter else None,
            "chat_template_sha": sha256_text(self.chat_template),
            "dtype": dtype,
        }

    def messages(self, text: str) -> list[dict[str, str]]:
        """The conversation for one prompt: the run's system prompt and few-shot turns, then the user turn."""
        return conversation(self.system_prompt, self.few_shot, text)

    def render(self, prompts: list[Prompt]) -> list[str]:
        """The chat-templated prompt strings, ready for generation."""
        return self.tokenizer.apply_chat_template(
            [self.messages(p.text) for p in prompts], tokenize=False, add_generation_prompt=True)

    def too_long(self, prompts: list[Prompt], max_tokens: int) -> dict[str, int]:
        """prompt_id -> prompt tokens, for prompts that leave fewer than max_tokens of context."""
        if not prompts:
            return {}
        encoded = self.tokenizer(self.render(prompts), add_special_tokens=False)["input_ids"]
        budget = self.context_length - max_tokens
        return {p.prompt_id: len(ids) for p, ids in zip(prompts, encoded) if len(ids) > budget}


def resolve_dtype(requested: str) -> str:
    """`auto`: float32 on CPU (reproducible, bit-equal across backends), bfloat16 on a GPU."""
    if requested != "auto":
        return requested
    import torch

    return "bfloat16" if torch.cuda.is_available() else "float32"
