"""Learned text models over word n-grams and a few dense facts: the machinery behind the
shipped default refusal labeler (`ngram`) and the shipped unsafe judge.

A response is read as a bag of word uni- and bigrams, each tagged with where it occurs:
its opening (how it starts: "i can't", "## step"), its head (what it goes on to do), its
tail (a closing "seek professional help" or "i hope this helps"), and the first token of
each line (markdown structure: headings, bullets, numbered steps, bold lead-ins), plus
its length. The target's own dense features (for refusal: the rule labeler's facts, cue
counts and how much of the prompt the response takes up, cue_model.features) sit
beside the bag. A multinomial logistic regression reads both.

Why this family: scored leave-one-source-out over eighteen sources (bench/detector_accuracy.py),
it held up as well as frozen MiniLM sentence embeddings with the same facts, beat them on
the frontier models' long markdown answers, and labels thousands of responses a second
on two cores, where a transformer encoder reads tens.

A model is one safetensors file: the vocabulary (newline-joined UTF-8, as a uint8
tensor), the n-gram weights in int8 with a scale per class, the dense weights and the
bias in float32; its card (sources, settings, figures) is a JSON file beside it.
`fit` is deterministic for the same rows and seed, so the bench that writes a shipped
model writes the same file again.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

TOKEN = re.compile(r"[a-z0-9']+|[^\sa-z0-9]")
"""Words (letters, digits, apostrophes) and single punctuation marks, which carry markdown."""


@dataclass(frozen=True)
class Settings:
    """How a response is read and how the model is fitted (stored in the card)."""

    opening_tokens: int = 12
    head_tokens: int = 200
    tail_tokens: int = 40
    read_chars: int = 4000
    """Characters read from the start; a longer response's tail is read from its end."""
    relevance_plural: bool = False
    relevance_stem: int = 0
    """How the refusal target's dense facts match prompt words in the response: a final s
    dropped, and words compared by their first `relevance_stem` letters (0: whole words)."""
    semantic_relevance: bool = False
    """Where no prompt word is found in the response, also read how close their meanings are
    (MiniLM sentence embeddings of the prompt and the response's head): a chatty prompt's
    answer shares few of its words, an off-topic one shares neither words nor meaning."""
    min_df: int = 3
    """An n-gram joins the vocabulary when at least this many training responses hold it."""
    l2: float = 1e-4
    epochs: int = 150
    learning_rate: float = 0.05
    seed: int = 0


def _normal(text: str | None) -> str:
    return (text or "").replace("’", "'").replace("‘", "'").lower()


def _grams(tokens: list[str], tag: str) -> list[str]:
    return [tag + t for t in tokens] + [f"{tag}{a} {b}" for a, b in zip(tokens, tokens[1:])]


def response_terms(text: str | None, settings: Settings = Settings()) -> list[str]:
    """The tagged terms of one response (repeats kept: counts are features)."""
    text = _normal(text)
    tokens = TOKEN.findall(text[:settings.read_chars])
    terms = _grams(tokens[:settings.opening_tokens], "o:") + _grams(tokens[:settings.head_tokens], "h:")
    ending = TOKEN.findall(text[-600:]) if len(text) > settings.read_chars else tokens
    terms += _grams(ending[-settings.tail_tokens:], "t:")
    for line in text.split("\n"):
        first = TOKEN.findall(line.strip()[:12])
        if first:
            # A punctuation mark opening a line keeps the word after it ("- **", "# step").
            terms.append("ls:" + first[0] + (" " + first[1] if len(first) > 1 and not first[0].isalnum() else ""))
    terms.append(f"len:{int(np.log2(len(text) + 1))}")
    terms.append(f"lines:{min(int(np.log2(text.count(chr(10)) + 1)), 6)}")
    return terms


def prompt_terms(text: str | None, settings: Settings = Settings()) -> list[str]:
    """The tagged uni- and bigrams ("p:") of a prompt's first `head_tokens` words, for a target
    that reads the request as context beside the response's terms."""
    return _grams(TOKEN.findall(_normal(text)[:settings.read_chars])[:settings.head_tokens], "p:")


def vocabulary(documents: Sequence[list[str]], min_df: int) -> list[str]:
    """Terms held by at least `min_df` documents, sorted (the order is the weights' row order)."""
    counts: Counter = Counter()
    for terms in documents:
        counts.update(set(terms))
    return sorted(term for term, n in counts.items() if n >= min_df)


@dataclass
class Bag:
    """Documents as a CSR matrix over a vocabulary: log(1 + count), each row of unit length."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    width: int

    @classmethod
    def of(cls, documents: Sequence[list[str]], index: dict[str, int]) -> Bag:
        indptr, indices, values = [0], [], []
        for terms in documents:
            counts = Counter(t for t in terms if t in index)
            row = np.log1p(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
            norm = float(np.linalg.norm(row))
            indices.append(np.fromiter((index[t] for t in counts), dtype=np.int64, count=len(counts)))
            values.append(row / norm if norm else row)
            indptr.append(indptr[-1] + len(counts))
        return cls(np.array(indptr, dtype=np.int64),
                   np.concatenate(indices) if indices else np.empty(0, np.int64),
                   np.concatenate(values) if values else np.empty(0, np.float32), len(index))

    def matmul(self, weights: np.ndarray) -> np.ndarray:
        """self @ weights, (rows, classes), without a sparse library."""
        out = np.zeros((len(self.indptr) - 1, weights.shape[1]), dtype=np.float64)
        filled = np.diff(self.indptr) > 0
        if filled.any():
            products = self.values[:, None].astype(np.float64) * weights[self.indices]
            out[filled] = np.add.reduceat(products, self.indptr[:-1][filled], axis=0)
        return out

    def torch(self):
        import torch

        return torch.sparse_csr_tensor(torch.from_numpy(self.indptr), torch.from_numpy(self.indices),
                                       torch.from_numpy(self.values), size=(len(self.indptr) - 1, self.width))


@dataclass
class Model:
    """A fitted model: vocabulary, weights and the classes its columns are."""

    terms: list[str]
    ngram_weights: np.ndarray
    dense_weights: np.ndarray
    bias: np.ndarray
    classes: list[str]
    settings: Settings

    @functools.cached_property
    def index(self) -> dict[str, int]:
        return {term: i for i, term in enumerate(self.terms)}

    def probabilities(self, documents: Sequence[list[str]], dense: np.ndarray) -> np.ndarray:
        """(rows, classes) class probabilities."""
        logits = Bag.of(documents, self.index).matmul(self.ngram_weights.astype(np.float64))
        logits += dense.astype(np.float64) @ self.dense_weights.astype(np.float64) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


def fit(documents: Sequence[list[str]], dense: np.ndarray, targets: np.ndarray, weights: np.ndarray,
        classes: list[str], settings: Settings = Settings()) -> Model:
    """Multinomial logistic regression, full batch with Adam and L2, weighted rows.

    `targets` are class indices; `weights` are per-row (a source-balanced sample gives each
    source the same total). One thread, fixed seed: the same rows give the same weights.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(settings.seed)
        terms = vocabulary(documents, settings.min_df)
        bag = Bag.of(documents, {t: i for i, t in enumerate(terms)})
        x, xt = (bag.torch(), bag.torch().to_sparse_coo().t().coalesce().to_sparse_csr()) if terms else (None, None)
        count = len(classes)
        ngram = torch.zeros(len(terms), count, dtype=torch.float32)
        linear = torch.zeros(dense.shape[1], count, dtype=torch.float32, requires_grad=True)
        bias = torch.zeros(count, dtype=torch.float32, requires_grad=True)
        ngram.requires_grad_(True)
        optimizer = torch.optim.Adam([ngram, linear, bias], lr=settings.learning_rate)
        inputs = torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32))
        labels = torch.from_numpy(np.asarray(targets, dtype=np.int64))
        row_weights = torch.from_numpy(np.asarray(weights, dtype=np.float32))
        row_weights = row_weights / row_weights.sum()
        for _ in range(settings.epochs):
            # The bag's part of the logits is a leaf: its gradient, mapped back through the
            # transposed bag, is the n-gram weights' gradient (sparse autograd is far slower).
            with torch.no_grad():
                from_bag = x @ ngram if terms else torch.zeros(len(labels), count)
            from_bag.requires_grad_(True)
            logits = from_bag + inputs @ linear + bias
            loss = (torch.nn.functional.cross_entropy(logits, labels, reduction="none") * row_weights).sum()
            loss = loss + settings.l2 * (linear ** 2).sum()
            optimizer.zero_grad()
            loss.backward()
            with torch.no_grad():
                ngram.grad = (xt @ from_bag.grad if terms else 0) + 2 * settings.l2 * ngram
            optimizer.step()
        return Model(terms, ngram.detach().numpy().copy(), linear.detach().numpy().copy(),
                     bias.detach().numpy().astype(np.float64), list(classes), settings)
    finally:
        torch.set_num_threads(threads)


def save(model: Model, path: Path, card: dict) -> None:
    """Write the model (int8 n-gram weights) to `path` and its card beside it (`path` with .json)."""
    from safetensors.numpy import save_file

    from refusaldata import io

    scale = np.abs(model.ngram_weights).max(axis=0) / 127
    scale[scale == 0] = 1.0
    tensors = {
        "terms": np.frombuffer("\n".join(model.terms).encode("utf-8"), dtype=np.uint8),
        "ngram_codes": np.round(model.ngram_weights / scale).astype(np.int8),
        "ngram_scale": scale.astype(np.float32),
        "dense_weights": model.dense_weights.astype(np.float32),
        "bias": model.bias.astype(np.float32),
    }
    metadata = {"classes": json.dumps(model.classes), "settings": json.dumps(asdict(model.settings))}
    with io.atomic_path(path) as staging:
        save_file(tensors, str(staging), metadata=metadata)
    with io.atomic_path(path.with_suffix(".json")) as staging:
        Path(staging).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")


def load(path: Path) -> Model:
    """A model written by `save`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata()
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (no __iter__)
    terms = tensors["terms"].tobytes().decode("utf-8").split("\n")
    weights = tensors["ngram_codes"].astype(np.float32) * tensors["ngram_scale"]
    return Model(terms, weights, tensors["dense_weights"], tensors["bias"].astype(np.float64),
                 json.loads(metadata["classes"]), Settings(**json.loads(metadata["settings"])))
