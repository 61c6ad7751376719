"""The KL divergence of an adapted model from its base: the cheap damage signal.

Refusal-ablation work checks that an intervention leaves harmless behaviour alone by the
KL divergence between the edited and the original model's next-token distributions on
harmless prompts. Here: for each benign prompt and the adapted model's own answer to it,
KL(adapted ‖ base) at every answer position (teacher forcing, the full vocabulary), averaged
over the answer's tokens. The base is the same weights with the adapter disabled, and both
see the run's whole conversation (system prompt and few-shot turns included).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from refusaldata.errors import BackendError
from refusaldata.generate import GenerateOptions, conversation
from refusaldata.generate.transformers_backend import torch_threads
from refusaldata.models import resolve_model
from refusaldata.train.data import Sequence, collate

BATCH = 4


def kl_to_base(options: GenerateOptions, prompts: list[str], replies: list[str | None]) -> list[float | None]:
    """Mean per-token KL(adapted ‖ base) over each reply (None for an empty or missing reply)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if options.adapter is None:
        return [0.0 if reply else None for reply in replies]
    path = resolve_model(options.model)
    hf_logging.disable_progress_bar()
    previous = torch.get_num_threads()
    torch.set_num_threads(torch_threads())
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
        model = PeftModel.from_pretrained(base, options.adapter, use_safetensors=True).eval()
    except OSError as exc:
        raise BackendError(f"cannot load '{options.model}' with adapter {options.adapter}: {exc}") from None
    try:
        heads = tokenizer.apply_chat_template(
            [conversation(options.system_prompt, options.few_shot, prompt) for prompt in prompts],
            tokenize=False, add_generation_prompt=True)
        wanted = [index for index, reply in enumerate(replies) if reply]
        head_ids = tokenizer([heads[i] for i in wanted], add_special_tokens=False)["input_ids"]
        reply_ids = tokenizer([replies[i] for i in wanted], add_special_tokens=False)["input_ids"]
        sequences = [Sequence(head + reply, len(head)) for head, reply in zip(head_ids, reply_ids)]
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        values: list[float | None] = [None] * len(replies)
        with torch.inference_mode():
            for start in range(0, len(sequences), BATCH):
                batch = collate(sequences[start:start + BATCH], pad_id)
                mask = batch.loss_mask[:, 1:]
                rows = mask.nonzero()[:, 0]
                adapted = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1][mask]
                with model.disable_adapter():
                    reference = model(input_ids=batch.input_ids,
                                      attention_mask=batch.attention_mask).logits[:, :-1][mask]
                adapted, reference = F.log_softmax(adapted.float(), -1), F.log_softmax(reference.float(), -1)
                per_token = (adapted.exp() * (adapted - reference)).sum(-1)
                sums = torch.zeros(mask.shape[0]).index_add(0, rows, per_token)
                counts = mask.sum(dim=1).clamp(min=1)
                for offset, value in enumerate((sums / counts).tolist()):
                    values[wanted[start + offset]] = max(0.0, value)
        return values
    finally:
        torch.set_num_threads(previous)
