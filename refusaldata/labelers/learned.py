"""A learned labeler: MiniLM sentence embeddings + a small classifier, trained by `judge train`.

It runs on CPU in seconds, where a 7–13B judge needs a GPU. The unsafe-content target
reads [e_response, e_prompt * e_response, refusal cues] (features.py, feature sets
`minilm` and `minilm-head`); the refusal target reads refusal.py's features. The
classifier and its threshold are classifier.py's; weights and card are stored under
<store>/judges/<name>/ (cards.py).

Training data is a labelled file, or, for the refusal target, the verdicts people stored
with `refusaldata review import` (`--from-store human`). Training holds out a validation
part of the data, grouped by prompt so no prompt is on both sides, and picks the
decision threshold there; the final classifier is then refit on all rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from refusaldata import io
from refusaldata.errors import InputError, excerpt
from refusaldata.labelers import cards
from refusaldata.labelers.classifier import TrainSettings, best_threshold, fit, group_split, metrics, predict
from refusaldata.labelers.embed import EMBEDDING_MODEL
from refusaldata.labelers.features import FEATURE_SETS, MINILM, check_feature_set, features
from refusaldata.labelers.learned_refusal import FEATURE_NAMES as REFUSAL_FEATURE_NAMES
from refusaldata.labelers.learned_refusal import REFUSAL, UNSAFE, check_target
from refusaldata.labelers.learned_refusal import features as refusal_features
from refusaldata.labelers.learned_refusal import refusal_scores
from refusaldata.labelers.registry import HUMAN, RULE_FILES, files_digest
from refusaldata.runs import now
from refusaldata.store import Store

STORE_SOURCES = (HUMAN,)
"""What `judge train --from-store` reads: the labels people stored."""


# -- data ------------------------------------------------------------------------------------

def _labels(data: pa.Table, column: str, path: Path) -> np.ndarray:
    """The label column as 0/1 floats; 1/0, true/false (any case) are accepted."""
    import polars as pl

    text = pl.Series(data.column(column)).cast(pl.String).str.strip_chars().str.to_lowercase()
    truth = {"1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0, "true": 1.0, "false": 0.0}
    values = text.replace_strict(truth, default=None, return_dtype=pl.Float32)
    bad = values.is_null().arg_true()
    if len(bad):
        row = int(bad[0])
        raise InputError(f"{path}: row {row + 1}: column '{column}' must be 0/1 or true/false, "
                         f"got '{excerpt(data.column(column)[row].as_py())}'")
    return np.array(values.to_numpy(), dtype=np.float32)


def _texts(data: pa.Table, columns: list[str], path: Path) -> tuple[list | None, list]:
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise InputError(f"{path}: no column '{missing[0]}' (columns: {', '.join(data.column_names)})")
    if len(columns) == 1:
        return None, data.column(columns[0]).to_pylist()
    if len(columns) == 2:
        return data.column(columns[0]).to_pylist(), data.column(columns[1]).to_pylist()
    raise InputError("--text-columns takes RESPONSE or PROMPT,RESPONSE (one or two columns)")


# -- train / load / apply --------------------------------------------------------------------

@dataclass(frozen=True)
class TrainingData:
    """Labelled rows and where they came from (the card's `data`)."""

    prompts: list | None
    responses: list
    y: np.ndarray
    text_columns: list[str]
    label_column: str
    provenance: dict
    where: str


def file_data(path: Path, text_columns: list[str], label_column: str) -> TrainingData:
    """Labelled rows from a CSV, JSONL or Parquet file."""
    data = io.read_table(path)
    if label_column not in data.column_names:
        raise InputError(f"{path}: no label column '{label_column}' (columns: {', '.join(data.column_names)})")
    prompts, responses = _texts(data, text_columns, path)
    y = _labels(data, label_column, path)
    return TrainingData(prompts, responses, y, text_columns, label_column,
                        {"path": str(Path(path).resolve()), "sha256": io.sha256_file(path), "rows": data.num_rows,
                         "positives": int(y.sum())}, str(path))


def store_data(store: Store, source: str) -> TrainingData:
    """The `source` labels of the store (people's verdicts) as (prompt, response, refusal) rows."""
    if source not in STORE_SOURCES:
        raise InputError(f"--from-store takes {' or '.join(STORE_SOURCES)}, not '{source}'")
    con = store.connect(["prompts", "responses", "labels"])
    try:
        rows = con.sql(
            "SELECT p.text AS prompt, r.response, l.refusal FROM labels l "
            "JOIN responses r USING (run_id, prompt_id, sample_index) "
            "LEFT JOIN (SELECT prompt_id, any_value(text) AS text FROM prompts GROUP BY prompt_id) p USING (prompt_id) "
            "WHERE l.labeler = $source AND l.refusal IS NOT NULL "
            "ORDER BY l.run_id, l.prompt_id, l.sample_index", params={"source": source}).to_arrow_table()
    finally:
        con.close()
    y = np.array(rows.column("refusal").to_pylist(), dtype=np.float32)
    texts = [f"{p}\n{r}" for p, r in zip(rows.column("prompt").to_pylist(), rows.column("response").to_pylist())]
    return TrainingData(rows.column("prompt").to_pylist(), rows.column("response").to_pylist(), y,
                        ["prompt", "response"], "refusal",
                        {"store": str(store.root), "labeler": source, "rows": rows.num_rows,
                         "positives": int(y.sum()), "sha256": io.sha256_parts(texts + [str(v) for v in y])},
                        f"the store's {source} labels")


def _lineage(target: str, provenance: dict, text_columns, label_column) -> tuple:
    """What makes a judge the same judge when retrained: its target and where its labels come
    from (a file's path, or the store's labeler), whatever rows they hold today."""
    source = provenance.get("path") or f"the store's {provenance.get('labeler')} labels"
    return target, source, tuple(text_columns or ()), label_column


def _check_replace(store: Store, name: str, target: str, data: TrainingData, replace: bool) -> None:
    """Refuse to overwrite another judge of that name (its labels in the store would then
    be read as the new one's) unless `replace`; retraining the same one refreshes it."""
    if replace or name not in cards.known_judges(store):
        return
    card, _ = cards.read(store, name)
    stored = _lineage(card.get("target", UNSAFE), card.get("data") or {}, card.get("text_columns"),
                      card.get("label_column"))
    if stored != _lineage(target, data.provenance, data.text_columns, data.label_column):
        raise InputError(f"judge '{name}' already holds a labeler of target {stored[0]} trained on {stored[1]}: "
                         "give another name, or --replace to train it anew")


def train(store: Store, name: str, data: TrainingData, settings: TrainSettings | None = None,
          target: str = UNSAFE, replace: bool = False) -> dict:
    """Train the labeler `name` on `data` and save it; returns its card.

    `target` is what the labels say: unsafe content, or refusal (refusal.py's features;
    `label` then writes the refusal column). Another judge of that name (another target or
    source of labels) is refused unless `replace`.
    """
    settings = settings or TrainSettings()
    cards.check_name(name)
    check_target(target)
    _check_replace(store, name, target, data, replace)
    feature_set = check_feature_set(settings.feature_set) if target == UNSAFE else None
    prompts, responses, y = data.prompts, data.responses, data.y
    if len(y) < 10 or y.min() == y.max():
        raise InputError(f"{data.where}: needs at least 10 rows with both labels present "
                         f"(has {len(y)} rows, {int(y.sum())} positive)")
    x = (refusal_features(responses, prompts) if target == REFUSAL
         else features(responses, prompts, feature_set=feature_set))
    # Validation by prompt when there are prompts (no prompt on both sides), else by row.
    groups = prompts if prompts is not None and len(set(prompts)) >= 5 else list(range(len(y)))
    held = group_split(groups, settings.validation_fraction, settings.seed)
    if y[held].min() == y[held].max() or y[~held].min() == y[~held].max():
        held = group_split(list(range(len(y))), settings.validation_fraction, settings.seed)
    split_weights = fit(x[~held], y[~held], settings)
    validation_scores = predict(split_weights, x[held])
    threshold = best_threshold(y[held], validation_scores)
    weights = fit(x, y, settings)
    card = {
        "name": name,
        "kind": "learned",
        "target": target,
        "embedding_model": EMBEDDING_MODEL,
        "feature_set": feature_set,
        "features": (REFUSAL_FEATURE_NAMES if target == REFUSAL
                     else FEATURE_SETS[feature_set] if prompts is not None
                     else FEATURE_SETS[feature_set].replace("prompt*response, ", "")),
        "text_columns": data.text_columns,
        "label_column": data.label_column,
        "data": data.provenance,
        "split": {"validation_fraction": settings.validation_fraction, "seed": settings.seed,
                  "grouped_by": "prompt" if groups is prompts else "row",
                  "train_rows": int((~held).sum()), "validation_rows": int(held.sum())},
        "classifier": {"type": "mlp", **{k: v for k, v in settings.__dict__.items() if k != "feature_set"}},
        "threshold": threshold,
        "metrics": {
            "validation": metrics(y[held], validation_scores >= threshold),
            "train": metrics(y[~held], predict(split_weights, x[~held]) >= threshold),
        },
        "created_at": now().isoformat(),
    }
    cards.save(store, name, weights, card)
    return card


@dataclass(frozen=True)
class LearnedJudge:
    name: str
    card: dict
    weights: dict[str, np.ndarray]

    @property
    def uses_prompt(self) -> bool:
        return len(self.card["text_columns"]) == 2

    @property
    def target(self) -> str:
        """unsafe or refusal (cards written before --target existed are unsafe)."""
        return self.card.get("target", UNSAFE)

    def scores(self, prompts: list[str | None], responses: list[str | None], cache: bool = False,
               facts: pa.Table | None = None) -> np.ndarray:
        """Scores of the pairs; `facts` are the rule facts of `responses` (refusal target) when already known."""
        prompts = prompts if self.uses_prompt else None
        if self.target == REFUSAL:
            return predict(self.weights, refusal_features(responses, prompts, cache=cache, facts=facts))
        feature_set = self.card.get("feature_set") or MINILM  # cards before feature sets were minilm
        return predict(self.weights, features(responses, prompts, cache=cache, feature_set=feature_set))


def load(store: Store, name: str) -> LearnedJudge:
    """The learned labeler `name` from <store>/judges/<name>/."""
    card, weights = cards.read(store, name)
    return LearnedJudge(name, card, weights)


def _judge_name(labeler: str) -> str:
    family, _, name = labeler.partition(":")
    if family != "learned" or not name:
        raise InputError(f"labeler '{labeler}': name the learned labeler as learned:NAME")
    return name


def version(labeler: str, store: Store | None, options: dict) -> str:
    """The labeler's card (retraining writes a new one) and, for the refusal target, the rules it reads."""
    if store is None:
        raise InputError(f"{labeler} lives in a store: label a stored run with it")
    card, _ = cards.read(store, _judge_name(labeler))
    digest = hashlib.sha256(json.dumps(card, sort_keys=True).encode("utf-8"))
    if card.get("target", UNSAFE) == REFUSAL:
        digest.update(files_digest(RULE_FILES).encode())
    return digest.hexdigest()[:12]


def score(prompts: list[str | None], responses: list[str], *, name: str, store: Store | None = None) -> dict[str, list]:
    """The columns of the labeler named 'learned:NAME' for each (prompt, response).

    Unsafe-content labelers give unsafe (score >= the card's threshold) and the score; one
    trained with --target refusal gives refusal, with the rule labeler's marker and opening
    (learned_refusal.refusal_scores).
    """
    if store is None:
        raise InputError(f"{name} lives in a store: label a stored run with it")
    judge = load(store, _judge_name(name))
    threshold = float(judge.card["threshold"])
    if judge.target == REFUSAL:
        return refusal_scores(prompts, responses,
                              lambda prompts, responses, facts: judge.scores(prompts, responses, facts=facts),
                              threshold)
    scores = judge.scores(prompts, responses)
    return {"unsafe": (scores >= threshold).tolist(), "score": scores.tolist()}
