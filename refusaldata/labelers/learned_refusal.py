"""The learned labeler's refusal target (`judge train --target refusal`): its features.

Refusal as PyRIT's human raters score it is relative to the request: an answer to a
different question ("off-topic") refuses the objective, and no reader of the response
alone (the rule labeler, the peers' string lists) can see that. So a (prompt, response)
pair is read as

    [e_r, e_p * e_r, cos(e_p, e_r), rule verdict, marker at start, marker in opening, log length]

with e_* the MiniLM embeddings of embed.py: what the response says, how much of it is
about what was asked, and the SQL rule labeler's verdict and where its phrase sits. The
rule facts come from running sql/label_rules.sql itself over the texts as an in-memory
relation (rules.rule_facts), so the lexicon lives in one place. The classifier, its threshold
and card are the unsafe labeler's (learned.py);
only the features and the stored column (`refusal`, with the rules' marker and opening)
differ.

Its training file is assembled by bench/refusal_training_set.py from the labelled sources
of bench/refusal_sources.py (data only benches use stays out of the package).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from refusaldata.errors import InputError
from refusaldata.labelers.embed import embed
from refusaldata.labelers.rules import rule_facts

UNSAFE = "unsafe"
REFUSAL = "refusal"
TARGETS = (UNSAFE, REFUSAL)
FEATURE_NAMES = "response, prompt*response, cos(prompt, response), rule verdict and marker place, length"
SCALAR_SCALE = 3.0
"""The scalar features sit beside 768 embedding dimensions; scaling them keeps weight
decay from drowning them (as the unsafe labeler's cues)."""


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise InputError(f"unknown --target '{target}' (one of {', '.join(TARGETS)})")
    return target


def features(responses: Sequence[str | None], prompts: Sequence[str | None] | None = None,
             batch_size: int = 64, cache: bool = True, facts: pa.Table | None = None) -> np.ndarray:
    """The classifier's input rows (without prompts: [e_r, rule facts, length])."""
    responses = ["" if r is None else str(r) for r in responses]
    facts = rule_facts(responses) if facts is None else facts
    response_vectors = embed(responses, batch_size, cache)
    if prompts is None:
        return pair_features(response_vectors, None, facts, responses)
    # Prompts repeat (many responses per prompt): embed each distinct text once.
    distinct, index = np.unique(np.array(["" if p is None else str(p) for p in prompts], dtype=object),
                                return_inverse=True)
    return pair_features(response_vectors, embed(distinct.tolist(), batch_size, cache)[index], facts, responses)


def pair_features(response_vectors: np.ndarray, prompt_vectors: np.ndarray | None, facts: pa.Table,
                  responses: Sequence[str]) -> np.ndarray:
    """Feature rows from embeddings already computed (row i: response i, prompt i, facts of response i)."""
    scalars = [facts.column(name).to_numpy(zero_copy_only=False).astype(np.float32)
               for name in ("refusal", "marker_at_start", "marker_in_opening")]
    lengths = pl.Series(responses, dtype=pl.String).str.len_chars().to_numpy().astype(np.float32)
    scalars.append(np.log1p(lengths) / 10)
    if prompt_vectors is None:
        return np.concatenate([response_vectors, SCALAR_SCALE * np.stack(scalars, axis=1)], axis=1)
    product = prompt_vectors * response_vectors
    scalars.insert(0, product.sum(axis=1))
    return np.concatenate([response_vectors, product, SCALAR_SCALE * np.stack(scalars, axis=1)], axis=1)


def refusal_scores(prompts: list[str | None], responses: list[str],
                   score: Callable[[list, list, pa.Table], np.ndarray], threshold: float) -> dict[str, list]:
    """A learned refusal labeler's columns: its score decides; marker and opening are the rules'.

    The marker is kept only on rows the learned labeler calls refusals (an off-topic
    refusal has none); every row keeps its opening, which the mining queries group on.
    """
    facts = rule_facts(responses)
    scores = score(prompts, responses, facts)
    refusal = scores >= threshold
    markers = np.where(refusal, np.array(facts.column("marker").to_pylist(), dtype=object), None)
    return {"refusal": refusal.tolist(), "score": scores.tolist(), "marker": markers.tolist(),
            "opening": facts.column("opening").to_pylist(),
            "verdict": np.where(refusal, "refusal", "compliance").tolist()}
