"""The labelers by name: one `Labeler` per name, found with `get_labeler`, as simonw/llm finds
a model with get_model.

A Labeler says what it is (description, speed), which options it takes, what makes its
version, and scores (prompt, response) pairs into label columns. refusaldata/label.py runs
the one loop that reads a run, scores what this version has not labelled yet and writes the
partition. The built-in labelers are registered at the bottom; their code is imported on
first use, so listing them (the `--labeler` help, an error) imports nothing heavy. Anyone
(a test, a plugin) adds one with `register`.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from refusaldata.errors import InputError, NotFoundError
from refusaldata.schemas import LABELS

if TYPE_CHECKING:
    from refusaldata.store import Store

RULES = "rules"
DEFAULT_LABELER = "ngram"
"""The default of `refusaldata label`: the shipped n-gram model over prompt and response (ngram.py)."""
HYBRID = "hybrid"
UNSAFE_LABELER = "unsafe"
JUDGE = "judge"
LEARNED = "learned"
HUMAN = "human"
"""People's verdicts (`refusaldata review import`): stored as labels, never computed."""
BEST = "best"
"""Not a labeler but a reading: the human verdict where one exists, else the default labeler's
(the best_labels view, sql/best_labels.sql)."""
VERDICTS = ("compliance", "refusal", "partial")
"""A partial refusal declines part of a request and answers part; refusal = verdict != compliance."""
COLUMNS = ("refusal", "score", "verdict", "marker", "opening", "unsafe", "categories", "raw")
"""What a labeler's scores may hold, one value per (prompt, response) in input order."""

Scores = dict[str, Sequence]
Scorer = Callable[..., Scores]


def resolve(target: str | Callable) -> Callable:
    """A callable given as itself or as "module:attribute" (imported now)."""
    if callable(target):
        return target
    module_name, _, attribute = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise NotFoundError(f"{target} is not available ({type(exc).__name__}: {exc})") from None


def _resource(path: str):
    """A file shipped in the package: "sql/NAME" in refusaldata.sql, anything else under refusaldata/."""
    if path.startswith("sql/"):
        return files("refusaldata.sql") / path.removeprefix("sql/")
    return files("refusaldata").joinpath(*path.split("/"))


@cache
def files_digest(paths: tuple[str, ...]) -> str:
    """sha256 (first 12 hex digits) over the named package files' bytes: a shipped labeler's version."""
    digest = hashlib.sha256()
    for path in paths:
        resource = _resource(path)
        digest.update(path.encode() + b"\0" + (resource.read_bytes() if resource.is_file() else b"missing") + b"\0")
    return digest.hexdigest()[:12]


def content_hashes(texts: Sequence[str | None]) -> np.ndarray:
    """Each text's identity as a training row: sha256 of its whitespace-collapsed UTF-8, first 8
    bytes as an unsigned big-endian integer (a shipped labeler's training hashes, label's in-sample count)."""
    out = np.empty(len(texts), dtype=np.uint64)
    for i, text in enumerate(texts):
        out[i] = int.from_bytes(hashlib.sha256(" ".join((text or "").split()).encode("utf-8")).digest()[:8], "big")
    return out


@dataclass(frozen=True)
class Labeler:
    """One labeler: what `refusaldata label --labeler NAME` runs.

    `scorer` (a function or "module:function") gets (prompts, responses, name=, store=,
    **options) and returns Scores. A `family` labeler is named NAME:SUFFIX ("learned:mine",
    "judge:lg3"). Its version is the digest of `version_files` (a shipped model changes when
    they do), or what `versioner` (name, store, options) says where it depends on the store or
    the options. `run_labeler` (store, run_ids, labeler, version, force), where given, labels the
    runs and writes their partitions inside the store (the rules' one SQL statement) instead of
    scoring in Python, and returns (new, kept) per run.
    `training_hashes` names a packaged file of its training responses' content_hashes.
    """

    name: str
    description: str
    scorer: str | Scorer
    speed: str = ""
    options: tuple[str, ...] = ()
    family: bool = False
    version_files: tuple[str, ...] = ()
    versioner: str | Callable[..., str] | None = None
    run_labeler: str | Callable[..., dict[str, tuple[int, int]]] | None = None
    training_hashes: str | None = None

    @property
    def usage(self) -> str:
        """How a user names it: `ngram`, or `learned:NAME` for a family."""
        return f"{self.name}:NAME" if self.family and self.name == LEARNED else self.name

    def describe(self) -> str:
        return f"{self.description}; {self.speed}" if self.speed else self.description

    def check_options(self, name: str, options: dict) -> None:
        """A one-line error naming the options it does not take."""
        unknown = sorted(key for key, value in options.items() if value is not None and key not in self.options)
        if unknown:
            takes = f"takes only {', '.join(self.options)}" if self.options else "takes no options"
            raise InputError(f"the {name} labeler {takes} (got {', '.join(unknown)})")

    def version(self, name: str, store: Store | None = None, options: dict | None = None) -> str:
        """The version whose labels count as current (what `label` compares labels.labeler_version with)."""
        if self.versioner is not None:
            return resolve(self.versioner)(name, store, {k: v for k, v in (options or {}).items() if v is not None})
        return files_digest(self.version_files)

    def score(self, prompts: Sequence[str | None], responses: Sequence[str], *, name: str | None = None,
              store: Store | None = None, **options) -> Scores:
        """Label columns for each (prompt, response), in order."""
        name = name or self.name
        self.check_options(name, options)
        return resolve(self.scorer)(list(prompts), list(responses), name=name, store=store,
                                     **{k: v for k, v in options.items() if v is not None})

    def training_set(self) -> np.ndarray | None:
        """Sorted content hashes of its training responses, or None where it ships none."""
        return _training_set(self.training_hashes) if self.training_hashes else None


@cache
def _training_set(path: str) -> np.ndarray | None:
    resource = _resource(path)
    if not resource.is_file():
        return None
    return np.sort(np.frombuffer(resource.read_bytes(), dtype=">u8").astype(np.uint64))


def in_sample(texts: Sequence[str | None], training: np.ndarray | None) -> int:
    """How many of `texts` are among the training responses `training` (sorted content hashes)."""
    if training is None or not len(texts) or not len(training):
        return 0
    hashes = content_hashes(texts)
    found = np.searchsorted(training, hashes).clip(max=len(training) - 1)
    return int((training[found] == hashes).sum())


_REGISTRY: dict[str, Labeler] = {}


def register(labeler: Labeler) -> Labeler:
    """Add (or replace) the labeler of that name; returns it."""
    _REGISTRY[labeler.name] = labeler
    return labeler


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def labelers() -> list[Labeler]:
    """Every registered labeler, the default first, then by name."""
    return sorted(_REGISTRY.values(), key=lambda labeler: (labeler.name != DEFAULT_LABELER, labeler.name))


def get_labeler(name: str) -> Labeler:
    """The labeler called `name` (exact name first, then a family's NAME:SUFFIX)."""
    if name == BEST:
        raise InputError(f"'{BEST}' is how to read labels (a human verdict where one exists, else "
                         f"{DEFAULT_LABELER}'s), not a labeler: label with {DEFAULT_LABELER}")
    if name == HUMAN:
        raise InputError(f"'{HUMAN}' labels come from people: `refusaldata review export` then `review import`")
    if name in _REGISTRY:
        return _REGISTRY[name]
    family, colon, suffix = name.partition(":")
    if colon and suffix and family in _REGISTRY and _REGISTRY[family].family:
        return _REGISTRY[family]
    known = ", ".join(labeler.usage for labeler in labelers())
    raise NotFoundError(f"no labeler '{name}' (known: {known})")


def describe_labeler(name: str) -> str:
    """`name` with what it is, as `refusaldata label` prints it."""
    return f"{name} ({get_labeler(name).describe()})"


def labeler_help() -> str:
    """The `--labeler` help: every registered labeler with what it is."""
    return "; ".join(f"{labeler.usage} ({'the default: ' if labeler.name == DEFAULT_LABELER else ''}"
                     f"{labeler.describe()})" for labeler in labelers()) + "."


def verdict_table(rows: pa.Table, labeler: str, version: str | None, scores: Scores, created_at) -> pa.Table:
    """The labels rows of `scores` for `rows` (run_id, prompt_id, sample_index of each scored
    response): every LABELS column, null where the labeler gives none."""
    count = rows.num_rows
    unknown = set(scores) - set(COLUMNS)
    if unknown:
        raise ValueError(f"labeler {labeler} gave columns labels do not hold: {', '.join(sorted(unknown))}")
    columns = {"run_id": rows.column("run_id"), "prompt_id": rows.column("prompt_id"),
               "sample_index": rows.column("sample_index"), "labeler": pa.array([labeler] * count, pa.string()),
               "created_at": pa.array([created_at] * count, LABELS.schema.field("created_at").type),
               "labeler_version": pa.array([version] * count, pa.string())}
    for name, values in scores.items():
        values = values.tolist() if isinstance(values, np.ndarray) else list(values)
        if len(values) != count:
            raise ValueError(f"labeler {labeler} gave {len(values)} values of {name} for {count} responses")
        columns[name] = pa.array(values, LABELS.schema.field(name).type)
    return pa.table({field.name: columns.get(field.name, pa.nulls(count, field.type)) for field in LABELS.schema},
                    schema=LABELS.schema)


# -- the built-in labelers -----------------------------------------------------------------------

# Speeds: `refusaldata label` through a store, docs/benchmarks.md (2026-12-07).
RULE_FILES = ("sql/refusal_lexicon.csv", "sql/label_rules.sql", "sql/normalize.sql", "data/refusal_model.json")
"""What the rule verdicts and their calibrated scores are made of."""
FACT_FILES = (*RULE_FILES, "sql/rule_facts.sql")
NGRAM_FILES = (*FACT_FILES, "data/refusal_ngram.safetensors")

register(Labeler(
    DEFAULT_LABELER, "the shipped n-gram model over prompt and response: the refusal labeler that held up "
    "best on sources it was not trained on",
    "refusaldata.labelers.ngram:score",
    speed="about 1/8 of hybrid's speed, mostly MiniLM on answers sharing no word with the prompt",
    version_files=NGRAM_FILES,
    training_hashes="data/refusal_ngram.train.u64"))
register(Labeler(
    HYBRID, "the rules where they are sure, the shipped cue model elsewhere: for corpora too large for ngram",
    "refusaldata.labelers.hybrid:score", speed="~6,600 responses/s on 2 cores", version_files=FACT_FILES))
register(Labeler(
    RULES, "the SQL lexicon alone, sql/refusal_lexicon.csv: every verdict names the phrase that made it",
    "refusaldata.labelers.rules:score", speed="one SQL pass, ~14,000 responses/s on 2 cores", version_files=RULE_FILES,
    run_labeler="refusaldata.labelers.rules:label_runs"))
register(Labeler(
    UNSAFE_LABELER, "the shipped unsafe-content judge: does the answer give what a harmful request asked for, "
    "and compare's unsafe rate reads it", "refusaldata.labelers.unsafe:score",
    speed="ngram's speed (it reads the refusal model)",
    version_files=(*NGRAM_FILES, "data/unsafe_ngram.safetensors")))
register(Labeler(
    JUDGE, "a generative safety classifier, Llama Guard 3, HarmBench or WildGuard in its published prompt format, "
    "with --judge-model and --judge-format; judge:NAME keeps several apart", "refusaldata.labelers.generative:score",
    speed="a 7-13B model: needs a GPU", options=("judge_model", "judge_format", "batch_size"), family=True,
    versioner="refusaldata.labelers.generative:version"))
register(Labeler(
    LEARNED, "a labeler trained in the store with `refusaldata judge train`", "refusaldata.labelers.learned:score",
    speed="MiniLM embeddings on CPU, slower than the shipped labelers", family=True,
    versioner="refusaldata.labelers.learned:version"))
