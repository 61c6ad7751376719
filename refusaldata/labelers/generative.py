"""Judge a run with a generative safety classifier (Llama Guard 3, HarmBench, WildGuard) in
its published prompt format, and store unsafe / categories / the raw verdict as labels;
WildGuard also judges refusal, stored as refusal, verdict and score (1 or 0).

The judge decodes greedily with vLLM where a GPU is present (fed our own token ids) and
with transformers otherwise, batched with left padding. The generation package's engines
render chat templates (`LLM.chat`), while a judge needs its exact published prompt text,
so the judge drives the engines itself. Prompts are the
exact template text (see formats.py), tokenized without an extra BOS for Llama Guard 3
and WildGuard, whose templates start with their BOS text (<|begin_of_text|>, <s>), and
with the tokenizer's BOS for the Llama-2 HarmBench template.

Real judge weights (meta-llama/Llama-Guard-3-8B, cais/HarmBench-Llama-2-13b-cls,
allenai/wildguard) cannot
be reached from the development machine: the plumbing is tested with the embedded
SmolLM2-135M-Instruct standing in as the judge, whose outputs are mostly not verdicts and
so exercise the "unsafe null, raw kept" path.
"""

from __future__ import annotations

import functools

from refusaldata.errors import BackendError, InputError
from refusaldata.labelers.formats import FORMATS, JudgeFormat
from refusaldata.models import hub_unreachable, resolve_model


def judge_format_named(name: str) -> JudgeFormat:
    """The format named `name`, or an InputError listing the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise InputError(f"unknown judge format '{name}': choose one of {', '.join(FORMATS)}") from None


@functools.lru_cache(maxsize=1)
def _load(model: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reference = resolve_model(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(reference)
        judge = AutoModelForCausalLM.from_pretrained(reference, dtype=torch.float32, use_safetensors=True).eval()
    except OSError as exc:
        raise hub_unreachable(model, exc) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, judge


def judge_backend() -> str:
    """'vllm' where a GPU and vLLM are both present (what a 7–13B judge needs), else 'transformers'."""
    import importlib.util

    import torch

    return "vllm" if torch.cuda.is_available() and importlib.util.find_spec("vllm") else "transformers"


def _vllm_outputs(model: str, token_ids: list[list[int]], max_new_tokens: int) -> list[str]:
    """Greedy outputs from a vLLM engine fed our token ids (no second BOS, no re-tokenizing)."""
    import torch

    from refusaldata.generate.vllm_backend import prepare_environment

    on_gpu = torch.cuda.is_available()
    prepare_environment(on_gpu)
    from vllm import LLM, SamplingParams

    try:
        engine = LLM(model=resolve_model(model), dtype="auto" if on_gpu else "float32", seed=0,
                     enforce_eager=not on_gpu, generation_config="vllm")
    except Exception as exc:
        raise BackendError(f"vLLM could not start judge '{model}': {type(exc).__name__}: {exc}") from None
    outputs = engine.generate([{"prompt_token_ids": ids} for ids in token_ids],
                              SamplingParams(temperature=0.0, max_tokens=max_new_tokens), use_tqdm=False)
    return [output.outputs[0].text for output in outputs]


def generate_verdicts(model: str, fmt: JudgeFormat, prompts: list[str | None],
                      responses: list[str | None], batch_size: int = 8, backend: str | None = None) -> list[str]:
    """The judge's raw greedy output for each (prompt, response), in input order.

    `backend` is 'transformers' or 'vllm' (default: `judge_backend()`); both get the same
    token ids, and both decode greedily.
    """
    texts = [fmt.render(prompt, response) for prompt, response in zip(prompts, responses)]
    add_bos = not fmt.has_bos
    if (backend or judge_backend()) == "vllm":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(resolve_model(model))
        token_ids = tokenizer(texts, add_special_tokens=add_bos)["input_ids"]
        return _vllm_outputs(model, token_ids, fmt.max_new_tokens)
    return _transformers_outputs(model, texts, add_bos, fmt.max_new_tokens, batch_size)


def _transformers_outputs(model: str, texts: list[str], add_bos: bool, max_new_tokens: int,
                          batch_size: int) -> list[str]:
    import torch

    tokenizer, judge = _load(model)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    outputs: list[str] = [""] * len(texts)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in index], return_tensors="pt", padding=True,
                              add_special_tokens=add_bos)
            try:
                generated = judge.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                                           pad_token_id=tokenizer.pad_token_id)
            except RuntimeError as exc:
                raise BackendError(f"judge '{model}' failed to generate: {exc}") from None
            new_tokens = generated[:, batch["input_ids"].shape[1]:]
            for i, text in zip(index, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
                outputs[i] = text
    return outputs


def _checked(labeler: str, judge_model: str | None, judge_format: str | None) -> JudgeFormat:
    if not judge_model:
        raise InputError(f"--labeler {labeler} needs --judge-model MODEL (a folder or hub id)")
    if not judge_format:
        raise InputError(f"--labeler {labeler} needs --judge-format ({' or '.join(FORMATS)})")
    return judge_format_named(judge_format)


def version(labeler: str, store, options: dict) -> str:
    """Which judge in which format: labels of another judge model or format are not current."""
    _checked(labeler, options.get("judge_model"), options.get("judge_format"))
    return f"{options['judge_model']} {options['judge_format']}"


def score(prompts: list[str | None], responses: list[str], *, name: str = "judge", store=None,
          judge_model: str | None = None, judge_format: str | None = None, batch_size: int = 8) -> dict[str, list]:
    """The judge's columns for each (prompt, response).

    Each row keeps the raw output; unsafe is null where the output is not a verdict;
    `marker` names the judge model. A format that judges refusal (wildguard) also gives
    refusal, its verdict (refusal or compliance; the judge has no partial) and score 1.0 /
    0.0, null where its refusal answer is not yes or no. Labels are stored under the
    labeler's name ('judge', or e.g. 'judge:lg3' to keep several judges apart).
    """
    fmt = _checked(name, judge_model, judge_format)
    raw = generate_verdicts(judge_model, fmt, prompts, responses, batch_size) if responses else []
    verdicts = [fmt.parse(text) for text in raw]
    columns = {"unsafe": [v.unsafe for v in verdicts], "categories": [v.categories for v in verdicts], "raw": raw,
               "marker": [judge_model] * len(verdicts)}
    if fmt.judges_refusal:
        columns |= {"refusal": [v.refusal for v in verdicts],
                    "score": [None if v.refusal is None else float(v.refusal) for v in verdicts],
                    "verdict": [None if v.refusal is None else "refusal" if v.refusal else "compliance"
                                for v in verdicts]}
    return columns
