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
    semantic_chars: int = 400
    """The head of prompt and response that semantic relevance embeds (400: about 100 tokens)."""
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


WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
              "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
"""What Python's `\\s` and str.strip() take for white space (str.isspace); Rust's `\\s` lacks \\x1c-\\x1f."""
_TOKEN_KERNEL = "[a-z0-9']+|[^" + "".join(f"\\x{{{ord(c):x}}}" for c in WHITESPACE) + "a-z0-9]"
"""TOKEN for Polars' regex engine."""
_TAGS = {"o": 0, "h": 1, "t": 2, "ls": 3}


class Vocabulary:
    """A model's terms as integer keys (tag, first word, second word), so a batch of responses
    is mapped on the vocabulary by array lookups instead of building each term's string."""

    def __init__(self, terms: Sequence[str]):
        import polars as pl

        # Split by Polars' kernels: a Python loop over a hundred thousand terms was a second of start-up.
        parts = pl.DataFrame({"term": list(terms)}, schema={"term": pl.String}).with_row_index("row").select(
            "row", "term", tag=pl.col("term").str.split_exact(":", 1).struct.field("field_0"),
            rest=pl.col("term").str.splitn(":", 2).struct.field("field_1"))
        tagged = parts.filter(pl.col("tag").is_in(list(_TAGS))).with_columns(
            first=pl.col("rest").str.splitn(" ", 2).struct.field("field_0"),
            second=pl.col("rest").str.splitn(" ", 2).struct.field("field_1"))
        words = pl.concat([tagged["first"], tagged["second"].drop_nulls()]).unique(maintain_order=True)
        self.words: dict[str, int] = dict(zip(words.to_list(), range(len(words))))
        other = parts.filter(~pl.col("tag").is_in(list(_TAGS)) | pl.col("tag").is_null())
        self.other: dict[str, int] = dict(zip(other["term"].to_list(), other["row"].to_list()))
        tags = tagged["tag"].replace_strict(_TAGS, return_dtype=pl.Int64).to_numpy()
        firsts = self.ids(tagged["first"])
        seconds = np.where(tagged["second"].is_null().to_numpy(), -1, self.ids(tagged["second"].fill_null("")))
        rows = tagged["row"].to_numpy()
        tag, first, second, row = (np.asarray(column, dtype=np.int64) for column in (tags, firsts, seconds, rows))
        # Keys once every word has its id: the base is the number of words.
        keys = self.key(tag, first, second)
        order = np.argsort(keys)
        self.keys, self.rows, self.width = keys[order], row[order], len(terms)
        self._table = None
        # Unigrams by direct lookup; a bigram is searched only where its first word starts one.
        self.unigrams = np.full((len(_TAGS), len(self.words) + 1), -1, dtype=np.int64)
        self.starts = np.zeros((len(_TAGS), len(self.words) + 1), dtype=bool)
        single = second < 0
        self.unigrams[tag[single], first[single]] = row[single]
        self.starts[tag[~single], first[~single]] = True

    @property
    def base(self) -> int:
        return len(self.words) + 2

    def key(self, tag, first, second):
        """One integer per (tag, word id, word id or -1); ids are -1 for no word."""
        return (tag * self.base + np.add(first, 1)) * self.base + np.add(second, 1)

    def ids(self, words) -> np.ndarray:
        """Each word's id, -2 for a word in no term."""
        import polars as pl

        return words.replace_strict(self.words, default=-2, return_dtype=pl.Int64).to_numpy() if len(words) else \
            np.empty(0, np.int64)

    def unigram(self, rows: np.ndarray, tag: str, ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, vocabulary index) of the `wanted` words that are terms under `tag`."""
        found = np.where(wanted & (ids >= 0), self.unigrams[_TAGS[tag], ids], -1)
        return rows[found >= 0], found[found >= 0]

    def bigram(self, rows: np.ndarray, tag: str, ids: np.ndarray, following: np.ndarray,
               wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, vocabulary index) of the `wanted` word pairs that are terms under `tag`."""
        wanted = wanted & (ids >= 0) & (following >= 0)
        wanted[wanted] = self.starts[_TAGS[tag], ids[wanted]]
        return self.find(rows, self.key(_TAGS[tag], ids, following), wanted)

    def find(self, rows: np.ndarray, keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, vocabulary index) of the `wanted` keys that are terms (a hash join: random lookups
        into a sorted array of the keys are several times slower)."""
        import polars as pl

        if self._table is None:
            self._table = pl.DataFrame({"key": self.keys, "index": self.rows})
        hits = pl.DataFrame({"key": keys[wanted], "row": rows[wanted]}).join(self._table, on="key", how="inner")
        return hits["row"].to_numpy(), hits["index"].to_numpy()


def _flat(lists) -> tuple[np.ndarray, np.ndarray, object]:
    """A Polars list Series as (row, position in its list, values)."""
    lengths = lists.list.len().fill_null(0).to_numpy().astype(np.int64)
    values = lists.explode().drop_nulls()
    rows = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    return rows, np.arange(len(rows), dtype=np.int64) - np.repeat(starts, lengths), values


def _log2_floor(values: np.ndarray) -> np.ndarray:
    """int(log2(v)) of positive integers, exactly (frexp's exponent)."""
    return np.frexp(values.astype(np.float64))[1].astype(np.int64) - 1


@dataclass
class Terms:
    """response_terms of many responses at once: Polars' compiled string kernels split the words
    (one pass per batch, no Python loop per response) and `bag` maps them on a model's vocabulary.
    The terms and counts are response_terms' (tests/test_ngram_labeler.py compares them)."""

    count: int
    head: tuple
    end: tuple
    lines: tuple
    sizes: np.ndarray
    breaks: np.ndarray

    @classmethod
    def read(cls, texts: Sequence[str | None], settings: Settings = Settings()) -> Terms:
        import polars as pl

        # Python lower-cases: Polars' tables are of a newer Unicode than Python's for a few letters.
        lowered = pl.Series("text", [_normal(text) for text in texts], dtype=pl.String)
        tokens = lowered.str.slice(0, settings.read_chars).str.extract_all(_TOKEN_KERNEL)
        chars = lowered.str.len_chars().to_numpy().astype(np.int64)
        long = pl.Series(chars > settings.read_chars)
        ending = pl.select(pl.when(long).then(lowered.str.slice(-600).str.extract_all(_TOKEN_KERNEL))
                           .otherwise(tokens)).to_series()
        ending = ending.list.tail(settings.tail_tokens) if settings.tail_tokens else ending
        firsts = (pl.DataFrame({"line": lowered.str.split("\n")}).with_row_index("row").explode("line")
                  .select("row", first=pl.col("line").str.strip_chars(WHITESPACE).str.slice(0, 12)
                          .str.extract_all(_TOKEN_KERNEL).list.head(2))
                  .filter(pl.col("first").list.len() > 0)
                  .select("row", a=pl.col("first").list.get(0), b=pl.col("first").list.get(1, null_on_oob=True)))
        # A line's first word keeps the one after it when it is not alphanumeric ("- **", "# step").
        alnum = {word: word.isalnum() for word in firsts["a"].unique().to_list()}
        firsts = firsts.with_columns(b=pl.when(pl.col("a").replace_strict(alnum, return_dtype=pl.Boolean))
                                     .then(None).otherwise(pl.col("b")))
        newlines = lowered.str.count_matches("\n", literal=True).to_numpy().astype(np.int64)
        return cls(len(texts), _flat(tokens.list.head(max(settings.head_tokens, settings.opening_tokens))),
                   _flat(ending), (firsts["row"].to_numpy().astype(np.int64), firsts["a"], firsts["b"]),
                   _log2_floor(chars + 1), np.minimum(_log2_floor(newlines + 1), 6), )

    def bag(self, vocabulary: Vocabulary, settings: Settings = Settings()) -> Bag:
        """The Bag that Bag.of(response_terms of each text, the model's index) builds."""
        found: list[tuple[np.ndarray, np.ndarray]] = []

        def grams(tag: str, rows: np.ndarray, ids: np.ndarray, unigram: np.ndarray, bigram: np.ndarray) -> None:
            following = np.append(ids[1:], -2)
            paired = np.append(rows[1:] == rows[:-1], False) if len(rows) else unigram
            found.append(vocabulary.unigram(rows, tag, ids, unigram))
            found.append(vocabulary.bigram(rows, tag, ids, following, paired & bigram))

        rows, place, words = self.head
        ids = vocabulary.ids(words)
        grams("o", rows, ids, place < settings.opening_tokens, place + 1 < settings.opening_tokens)
        grams("h", rows, ids, place < settings.head_tokens, place + 1 < settings.head_tokens)
        rows, _, words = self.end
        everywhere = np.ones(len(rows), dtype=bool)
        grams("t", rows, vocabulary.ids(words), everywhere, everywhere)
        rows, first, second = self.lines
        first_ids, second_ids, two = vocabulary.ids(first), vocabulary.ids(second.fill_null("")), \
            second.is_not_null().to_numpy()
        found.append(vocabulary.find(rows, vocabulary.key(_TAGS["ls"], first_ids, np.where(two, second_ids, -1)),
                                     (first_ids >= 0) & (~two | (second_ids >= 0))))
        every = np.arange(self.count, dtype=np.int64)
        for name, values in (("len", self.sizes), ("lines", self.breaks)):
            index = {value: vocabulary.other.get(f"{name}:{value}", -1) for value in np.unique(values).tolist()}
            column = np.array([index[value] for value in values.tolist()], dtype=np.int64)
            found.append((every[column >= 0], column[column >= 0]))
        keys = np.sort(np.concatenate([r * vocabulary.width + c for r, c in found]))
        starts = np.flatnonzero(np.diff(keys, prepend=-1))
        counts = np.diff(np.append(starts, len(keys)))
        keys = keys[starts]
        rows, indices = keys // vocabulary.width, keys % vocabulary.width
        values = np.log1p(counts.astype(np.float32))
        norms = np.sqrt(np.bincount(rows, weights=values.astype(np.float64) ** 2, minlength=self.count))
        values = values / norms.astype(np.float32)[rows]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=self.count))]).astype(np.int64)
        return Bag(indptr, indices.astype(np.int64), values.astype(np.float32), vocabulary.width)


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
        count = len(self.indptr) - 1
        rows = np.repeat(np.arange(count), np.diff(self.indptr))
        values = self.values.astype(np.float64)
        # One weighted count per class: no (entries, classes) array of products.
        return np.stack([np.bincount(rows, weights=values * weights[self.indices, column], minlength=count)
                         for column in range(weights.shape[1])], axis=1)

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

    @functools.cached_property
    def vocabulary(self) -> Vocabulary:
        return Vocabulary(self.terms)

    def probabilities(self, documents: Sequence[list[str]] | Terms, dense: np.ndarray) -> np.ndarray:
        """(rows, classes) class probabilities of documents given as term lists or read as Terms."""
        bag = documents.bag(self.vocabulary, self.settings) if isinstance(documents, Terms) \
            else Bag.of(documents, self.index)
        logits = bag.matmul(self.ngram_weights.astype(np.float64))
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
