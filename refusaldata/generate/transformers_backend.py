"""The transformers backend: batched generation with left padding, on CPU or one GPU.

Used where vLLM is absent. Each chunk is one batch; greedy when the temperature is 0,
otherwise sampling seeded from the run seed and the chunk's first prompt, so a rerun of the
same chunk samples the same tokens. The generation settings are built from scratch, never
merged with the model's generation_config defaults, matching the vllm backend.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence

from refusaldata import keys
from refusaldata.errors import BackendError
from refusaldata.generate import Completion, GenerateOptions, Prompt
from refusaldata.generate.chat import Adapter, LocalModel, resolve_dtype

THREADS_ENV = "REFUSALDATA_THREADS"


def torch_threads() -> int:
    """`REFUSALDATA_THREADS`, else `_default_threads()`."""
    configured = os.environ.get(THREADS_ENV)
    if configured:
        try:
            return max(1, int(configured))
        except ValueError:
            raise BackendError(f"{THREADS_ENV} must be a whole number, not '{configured}'") from None
    return _default_threads()


@functools.cache
def _default_threads() -> int:
    """All cores where the machine is idle when this process first asks, else all but one.

    Measured on the 2-core machine: `quickstart --fast` took 6.6 minutes on two threads and
    10.2 on one with nothing else running, while under load one thread of two was the faster.
    Decided once per process, before its own work keeps the cores busy.
    """
    cores = os.cpu_count() or 2
    return cores if _busy_cores() < 0.5 else max(1, cores - 1)


def _busy_cores(window_s: float = 0.25) -> float:
    """How many cores other work keeps busy now: /proc/stat over `window_s` (Linux), else
    the one-minute load average, else as if one were."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as handle:
            ticks = [int(value) for value in handle.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # total, idle + iowait

    try:
        total, idle = sample()
        time.sleep(window_s)
        total_after, idle_after = sample()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 1.0
    elapsed = total_after - total
    return (os.cpu_count() or 1) * (1 - (idle_after - idle) / elapsed) if elapsed > 0 else 1.0


class TransformersBackend:
    name = "transformers"

    def __init__(self, local: LocalModel, options: GenerateOptions):
        self.local = local
        self.options = options
        self.dtype = resolve_dtype(options.dtype)

    def identity(self) -> dict:
        return self.local.identity(self.dtype)

    def too_long(self, prompts: list[Prompt]) -> dict[str, int]:
        return self.local.too_long(prompts, self.options.max_tokens)

    def open(self, adapters: Sequence[Adapter | None] = ()) -> TransformersEngine:
        """The engine; the adapters a pass names per prompt load when first named."""
        return TransformersEngine(self.local, self.options, self.dtype)


class TransformersEngine:
    def __init__(self, local: LocalModel, options: GenerateOptions, dtype: str):
        import torch
        from transformers import AutoModelForCausalLM, GenerationConfig
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        torch.set_num_threads(torch_threads())
        self.torch = torch
        self.local = local
        self.options = options
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            model = AutoModelForCausalLM.from_pretrained(
                local.path, dtype=getattr(torch, dtype), use_safetensors=True, trust_remote_code=False)
        except OSError as exc:
            raise BackendError(f"cannot load model '{local.name}': {exc}") from None
        self.model = model.to(self.device).eval()
        self._adapter_names: dict[str, str] = {}  # adapter folder -> its name in the PEFT model
        if local.adapter is not None:
            self._adapter_name(local.adapter)
        tokenizer = local.tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        stop_ids = {tokenizer.eos_token_id}
        configured = getattr(model.generation_config, "eos_token_id", None)
        stop_ids.update(configured if isinstance(configured, list) else [configured])
        self.stop_ids = sorted(i for i in stop_ids if i is not None)
        sampling = {} if options.greedy else {"temperature": options.temperature, "top_p": options.top_p, "top_k": 0}
        self.generation_config = GenerationConfig(
            max_new_tokens=options.max_tokens, do_sample=not options.greedy, num_return_sequences=options.n,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=self.stop_ids, **sampling)

    def _adapter_name(self, adapter: Adapter | None) -> str:
        """The PEFT name `adapter` answers under, loading it on first use; BASE for none."""
        if adapter is None:
            return BASE
        key = str(adapter.path)
        if key not in self._adapter_names:
            from peft import PeftModel

            name = f"adapter{len(self._adapter_names)}"
            try:
                if self._adapter_names:
                    self.model.load_adapter(key, adapter_name=name, use_safetensors=True)
                else:
                    self.model = PeftModel.from_pretrained(self.model, key, adapter_name=name,
                                                           use_safetensors=True).eval()
            except (OSError, ValueError) as exc:
                raise BackendError(f"cannot load adapter {key}: {exc}") from None
            self._adapter_names[key] = name
            if len(self._adapter_names) == 1:
                self.model.set_adapter(name)
        return self._adapter_names[key]

    def generate(self, prompts: list[Prompt], adapters: list[Adapter | None] | None = None) -> list[Completion]:
        """Answer `prompts`; with `adapters` (one per prompt, None for the base model), each row
        under its own adapter in one batch (PEFT's mixed-adapter inference), else all under
        the run's adapter."""
        torch = self.torch
        names = None
        if adapters is None and len(self._adapter_names) > (self.local.adapter is not None):
            adapters = [self.local.adapter] * len(prompts)  # other adapters are loaded: name the run's
        if adapters is not None:
            if self.options.n != 1:
                raise BackendError("several adapters in one batch answer one sample per prompt (n = 1)")
            names = [self._adapter_name(adapter) for adapter in adapters]
            if not self._adapter_names:  # every row on the base model: a plain batch
                names = None
        batch = self._batch(self.local.render(prompts), names)
        prompt_tokens = batch["attention_mask"].sum(dim=1).tolist()
        if not self.options.greedy:
            torch.manual_seed(self.options.seed ^ int(keys.digest(prompts[0].prompt_id, 8), 16))
        extra = {} if names is None else {"adapter_names": names}
        with torch.inference_mode():
            output = self.model.generate(**batch, generation_config=self.generation_config, **extra)
        new_tokens = output[:, batch["input_ids"].shape[1]:]
        stops = torch.isin(new_tokens, torch.tensor(self.stop_ids, device=new_tokens.device))
        stopped = stops.any(dim=1)
        # Tokens up to and including the first stop token, as vLLM counts them.
        lengths = torch.where(stopped, stops.int().argmax(dim=1) + 1,
                              torch.full_like(stopped, new_tokens.shape[1], dtype=torch.long)).tolist()
        texts = self.tokenizer.batch_decode(
            [row[:length] for row, length in zip(new_tokens.tolist(), lengths)], skip_special_tokens=True)
        n = self.options.n
        return [
            Completion(prompt.prompt_id, index % n, texts[index], prompt_tokens[index // n], lengths[index],
                       "stop" if stopped[index] else "length")
            for index, prompt in ((i, prompts[i // n]) for i in range(len(texts)))
        ]

    def _batch(self, texts: list[str], adapter_names: list[str] | None = None) -> dict:
        """The model's inputs for one chunk, left-padded, its shared prefix computed once.

        Every prompt of a chunk starts with the same tokens (the chat template's system
        turn, and a run's own system prompt and few-shot turns): a quarter of a plain
        prompt's tokens, most of a few-shot one's. Those are run once and their cache
        copied to every row; each row is then [prefix, padding, its own tokens], the
        padding masked out and the positions counted from the mask, so the model computes
        what it does for a left-padded batch (the same greedy tokens on the quickstart's
        test split, 1.41x sooner; bench/generate_prefix.py). Without such a prefix (or with
        several samples per prompt, whose rows are expanded after the cache is built) the
        prefix is empty: a plain left-padded batch. With `adapter_names` (one per row), the
        prefix runs once per adapter and each row gets its adapter's cache.
        """
        torch = self.torch
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        shared = _shared_prefix(ids)
        if len(ids) < 2 or shared < PREFIX_MIN_TOKENS or self.options.n != 1:
            shared = 0
        own = [row[shared:] for row in ids]
        width = max(map(len, own))
        pad = self.tokenizer.pad_token_id
        batch = {
            "input_ids": torch.tensor([ids[0][:shared] + [pad] * (width - len(row)) + row for row in own],
                                      device=self.device),
            "attention_mask": torch.tensor([[1] * shared + [0] * (width - len(row)) + [1] * len(row) for row in own],
                                           device=self.device),
        }
        if shared:
            from transformers import DynamicCache

            cache = DynamicCache(config=self.model.config)
            names = adapter_names or [BASE] * len(ids)
            distinct = list(dict.fromkeys(names))
            adapters = {} if adapter_names is None else {"adapter_names": distinct}
            with torch.inference_mode():
                self.model(input_ids=batch["input_ids"][:1, :shared].expand(len(distinct), -1),
                           past_key_values=cache, use_cache=True, **adapters)
            cache.batch_select_indices(torch.tensor([distinct.index(name) for name in names], device=self.device))
            batch["past_key_values"] = cache
        return batch

    def close(self) -> None:
        self.model = None


PREFIX_MIN_TOKENS = 8
"""A shared prefix shorter than this is run with the rest (copying its cache costs more)."""
BASE = "__base__"
"""PEFT's name for "no adapter" in a mixed-adapter batch."""


def _shared_prefix(ids: list[list[int]]) -> int:
    """How many leading tokens every row shares, leaving each row at least one of its own."""
    shortest = min(map(len, ids)) - 1
    length = 0
    while length < shortest and all(row[length] == ids[0][length] for row in ids):
        length += 1
    return length
