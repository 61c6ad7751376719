"""A fine-tuned MiniLM cross-encoder for the refusal target: (prompt, response) -> logit.

The MLP refusal labeler (refusal.py) reads frozen sentence embeddings, and its misses on
XSTest v1 are semantic: a Llama-2 "happy to help, but I must point out the term is
problematic" hedge is a refusal, "I cannot answer, the question has a false premise" is
not. A cross-encoder lets attention read prompt and response together and learns what
a hedge is from the labels, at the cost of training the encoder (minutes on CPU).

Measured only, not shipped (so it lives beside the bench, not in the package):
bench/detector_accuracy.py --crossencoder scores it
out-of-fold on the MLP labeler's folds, and it lost on every set (XSTest v1 0.775 vs the
MLP's 0.870, PyRIT refusal 0.819 vs 0.905, refusal_extra 0.859 vs 0.984, mini 0.917 vs
0.958; the inner validation chose the most epochs, 3, in every fold, so it is
undertrained at this CPU budget). `judge train` does not offer it.

Input: the pair tokenized as [CLS] prompt [SEP] response [SEP], truncated to
`max_tokens` (the opening matters most; the longer side is cut first). Only the top
`trainable_layers` layers are trained: the frozen layers' output is computed once per
pair, which makes an epoch ~6x cheaper than training all six on 2 shared cores (one
epoch of 160 pairs: 68 s for all layers at 160 tokens, 11 s for the top two at 128). The head is a
linear layer over the mean-pooled last hidden state (MiniLM is trained mean-pooled)
concatenated with the rule labeler's facts (verdict, marker at start, marker in
opening, log length; refusal.pair_features' scalars). Loss: class-weighted BCE; AdamW
with a linear warm-up and decay; fixed seeds; torch threads capped (shared CPUs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import polars as pl

from refusaldata.judge.embed import EMBEDDING_DIM, minilm_dir

FACT_NAMES = ("refusal", "marker_at_start", "marker_in_opening")
FACT_SCALE = 3.0


@dataclass(frozen=True)
class CrossEncoderSettings:
    """Fine-tuning hyperparameters (stored in the card)."""

    max_tokens: int = 160
    batch_size: int = 16
    epochs: int = 3
    learning_rate: float = 4e-5
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    seed: int = 0
    threads: int = 2
    trainable_layers: int = 2
    use_facts: bool = True


def fact_matrix(facts: pa.Table, responses: Sequence[str]) -> np.ndarray:
    """(n, 4) float32: the rule verdict, marker at start, marker in opening, log length / 10, scaled."""
    columns = [facts.column(name).to_numpy(zero_copy_only=False).astype(np.float32) for name in FACT_NAMES]
    lengths = pl.Series(list(responses), dtype=pl.String).fill_null("").str.len_chars().to_numpy()
    columns.append((np.log1p(lengths.astype(np.float32)) / 10).astype(np.float32))
    return FACT_SCALE * np.stack(columns, axis=1)


def _model(settings: CrossEncoderSettings):
    """(tokenizer, model): MiniLM with all but its top `trainable_layers` layers frozen, and the head."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    class CrossEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(minilm_dir(), dtype=torch.float32, use_safetensors=True)
            self.split = len(self.encoder.encoder.layer) - settings.trainable_layers
            for module in (self.encoder.embeddings, *self.encoder.encoder.layer[:self.split]):
                module.requires_grad_(False)
            self.head = torch.nn.Linear(EMBEDDING_DIM + (len(FACT_NAMES) + 1 if settings.use_facts else 0), 1)

        def _layers(self, hidden, attention_mask, layers):
            additive = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
            for layer in layers:
                output = layer(hidden, attention_mask=additive)
                hidden = output[0] if isinstance(output, tuple) else output
            return hidden

        def bottom(self, batch):
            """Hidden states after the frozen layers (no gradient): computed once per pair in fit."""
            with torch.no_grad():
                hidden = self.encoder.embeddings(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"])
                return self._layers(hidden, batch["attention_mask"], self.encoder.encoder.layer[:self.split])

        def top(self, hidden, attention_mask, facts):
            hidden = self._layers(hidden, attention_mask, self.encoder.encoder.layer[self.split:])
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            inputs = torch.cat([pooled, facts], dim=1) if settings.use_facts else pooled
            return self.head(inputs).squeeze(-1)

        def forward(self, batch, facts):
            return self.top(self.bottom(batch), batch["attention_mask"], facts)

    torch.manual_seed(settings.seed)
    model = CrossEncoder()
    torch.nn.init.zeros_(model.head.bias)
    return AutoTokenizer.from_pretrained(minilm_dir()), model


def _batch(tokenizer, prompts, responses, settings: CrossEncoderSettings):
    return tokenizer(list(prompts), list(responses), padding=True, truncation="longest_first",
                     max_length=settings.max_tokens, return_tensors="pt")


def _texts(values: Sequence[str | None]) -> list[str]:
    return ["" if v is None else str(v) for v in values]


def score(model_and_tokenizer, prompts: Sequence[str | None], responses: Sequence[str | None],
          facts: np.ndarray, settings: CrossEncoderSettings, batch_size: int = 64) -> np.ndarray:
    """Probabilities in [0, 1] that each pair is a refusal (batches sorted by length)."""
    import torch

    tokenizer, model = model_and_tokenizer
    prompts, responses = _texts(prompts), _texts(responses)
    order = np.argsort([len(p) + len(r) for p, r in zip(prompts, responses)], kind="stable")
    out = np.empty(len(responses), dtype=np.float64)
    torch.set_num_threads(settings.threads)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = _batch(tokenizer, [prompts[i] for i in index], [responses[i] for i in index], settings)
            logits = model(batch, torch.from_numpy(facts[index]))
            out[index] = torch.sigmoid(logits.double()).numpy()
    return out


def fit(prompts: Sequence[str | None], responses: Sequence[str | None], facts: np.ndarray, labels: np.ndarray,
        settings: CrossEncoderSettings, after_epoch: Callable[[int, tuple], None] | None = None) -> tuple:
    """Fine-tune encoder and head on the pairs; returns (tokenizer, model).

    `after_epoch(epoch, (tokenizer, model))` is called after each epoch (1-based), so a
    caller can score a validation split and pick the epoch without a second run.
    """
    import torch

    torch.set_num_threads(settings.threads)
    tokenizer, model = _model(settings)
    prompts, responses = _texts(prompts), _texts(responses)
    targets = torch.from_numpy(labels.astype(np.float32))
    positives = float(labels.sum())
    pos_weight = (len(labels) - positives) / max(positives, 1.0)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = -(-len(labels) // settings.batch_size)
    total = steps_per_epoch * settings.epochs
    warmup = max(1, int(settings.warmup_fraction * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup))))
    # The frozen layers' output of every pair, computed once (unpadded) and re-padded per batch.
    cached = []
    order = np.argsort([len(p) + len(r) for p, r in zip(prompts, responses)], kind="stable")
    model.eval()
    for start in range(0, len(order), 64):
        index = order[start:start + 64]
        batch = _batch(tokenizer, [prompts[i] for i in index], [responses[i] for i in index], settings)
        hidden = model.bottom(batch)
        lengths = batch["attention_mask"].sum(1).tolist()
        cached.extend((int(i), hidden[row, :length].clone()) for row, (i, length) in enumerate(zip(index, lengths)))
    states = [state for _, state in sorted(cached, key=lambda pair: pair[0])]
    generator = torch.Generator().manual_seed(settings.seed)
    fact_tensor = torch.from_numpy(facts)
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = torch.randperm(len(labels), generator=generator).numpy()
        for start in range(0, len(order), settings.batch_size):
            index = order[start:start + settings.batch_size]
            hidden = torch.nn.utils.rnn.pad_sequence([states[i] for i in index], batch_first=True)
            mask = torch.nn.utils.rnn.pad_sequence([torch.ones(len(states[i]), dtype=torch.long) for i in index],
                                                   batch_first=True)
            loss = loss_fn(model.top(hidden, mask, fact_tensor[index]), targets[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        if after_epoch is not None:
            after_epoch(epoch, (tokenizer, model))
    return tokenizer, model

