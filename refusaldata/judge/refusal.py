"""The learned labeler's refusal target (`judge train --target refusal`): features and data.

Refusal as PyRIT's human raters score it is relative to the request: an answer to a
different question ("off-topic") refuses the objective, and no reader of the response
alone (the rule labeler, the peers' string lists) can see that. So a (prompt, response)
pair is read as

    [e_r, e_p * e_r, cos(e_p, e_r), rule verdict, marker at start, marker in opening, log length]

with e_* the MiniLM embeddings of embed.py: what the response says, how much of it is
about what was asked, and the SQL rule labeler's verdict and where its phrase sits. The
rule facts come from running sql/label_rules.sql itself over the texts as an in-memory
relation (sql/learned_refusal_facts.sql reads its output), so the lexicon lives in one
place. The classifier, its threshold and card are the unsafe labeler's (learned.py);
only the features and the stored column (`refusal`, with the rules' marker and opening)
differ.

Training data assembled here, all openly licensed: XSTest v1 completions (CC-BY-4.0;
full and partial refusal count as refusal), PyRIT's human-scored refusal sets (MIT) and
uncensorbench's 150 prompts with a reference refusal and a reference compliant answer
(MIT). Mismatched pairs add PyRIT's off-topic definition on more topics: prompt i with
the compliant answer to another prompt j is a refusal of objective i.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from refusaldata.errors import InputError
from refusaldata.judge.common import run_inputs, write_verdicts
from refusaldata.judge.embed import embed
from refusaldata.label import prepare_rules
from refusaldata.queries import sql_text
from refusaldata.store import Store

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


def rule_facts(responses: Sequence[str | None], lexicon_text: str | None = None) -> pa.Table:
    """The rule labeler's refusal, marker, opening, marker_at_start, marker_in_opening per response, in order."""
    count = len(responses)
    inputs = pa.table({
        "run_id": pa.array([""] * count, pa.string()),
        "prompt_id": pa.array([f"{i:012d}" for i in range(count)], pa.string()),
        "sample_index": pa.array([0] * count, pa.int32()),
        "response": pa.array(["" if r is None else str(r) for r in responses], pa.string()),
        "finish_reason": pa.array(["stop"] * count, pa.string()),
    })
    con = duckdb.connect()
    try:
        params = prepare_rules(con, lexicon_text=lexicon_text)
        con.register("responses", inputs)
        rules = con.sql(sql_text("label_rules"), params={**params, "run_id": ""}).to_arrow_table()
        con.register("rule_labels", rules)
        return con.sql(sql_text("learned_refusal_facts")).to_arrow_table()
    finally:
        con.close()


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


def label_run(store: Store, run_id: str, labeler: str,
              score: Callable[[list, list, pa.Table], np.ndarray], threshold: float) -> int:
    """Write one run's refusal verdicts: the learned score decides; marker and opening are the rules'.

    The marker is kept only on rows the learned labeler calls refusals (an off-topic
    refusal has none); every row keeps its opening, which the mining queries group on.
    """
    rows = run_inputs(store, run_id)
    prompts, responses = rows.column("prompt").to_pylist(), rows.column("response").to_pylist()
    facts = rule_facts(responses)
    scores = score(prompts, responses, facts)
    refusal = scores >= threshold
    markers = np.where(refusal, np.array(facts.column("marker").to_pylist(), dtype=object), None)
    return write_verdicts(store, run_id, labeler, rows, refusal=refusal.tolist(), score=scores.tolist(),
                          markers=markers.tolist(), openings=facts.column("opening").to_pylist(),
                          verdicts=np.where(refusal, "refusal", "compliance").tolist())


# -- training data ---------------------------------------------------------------------------

def _csv(path: Path) -> pl.DataFrame:
    """A CSV whose leading lines may be `#` comments, all columns as strings."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return pl.read_csv(io.StringIO("".join(lines)), infer_schema=False)


def human_refusal_sets(data: Path) -> dict[str, pl.DataFrame]:
    """(prompt, response, refusal) per human-labelled refusal set under data/labelled that is present."""
    sets = {}
    xstest = data / "labelled/xstest_v1/xstest_completions_llama2_v1.csv"
    if xstest.is_file():
        sets["xstest_v1"] = _csv(xstest).select(
            pl.col("prompt"), pl.col("completion").alias("response"),
            pl.col("final_label").is_in(["2_full_refusal", "3_partial_refusal"]).alias("refusal"))
    for name in ("refusal", "refusal_extra", "mini_refusal"):
        path = data / f"labelled/pyrit_refusal/{name}.csv"
        if path.is_file():
            sets[f"pyrit_{name}"] = _csv(path).select(
                pl.col("objective").alias("prompt"), pl.col("assistant_response").alias("response"),
                (pl.col("human_score").str.strip_chars() == "1").alias("refusal"))
    return sets


def uncensorbench_pairs() -> pl.DataFrame:
    """uncensorbench's prompts, each with its reference refusal (true) and compliant answer (false)."""
    from refusaldata.fetch import package_data
    from refusaldata.io import read_records
    from refusaldata.registry import BUILTINS

    frame = read_records(package_data(BUILTINS["uncensorbench"].location), "json", records_key="prompts")
    return pl.concat([
        frame.select("prompt", pl.col("censored_response").alias("response"), pl.lit(True).alias("refusal")),
        frame.select("prompt", pl.col("uncensored_response").alias("response"), pl.lit(False).alias("refusal")),
    ])


def mismatched_pairs(frame: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    """Off-topic refusals: each compliant row's prompt with another prompt's compliant answer.

    The answers are a random cyclic shift of the compliant rows, so every answer is used
    once; pairs that land on the same prompt text are dropped.
    """
    compliant = frame.filter(~pl.col("refusal")).select("prompt", "response")
    if compliant.height < 2:
        return frame.clear().select("prompt", "response", "refusal")
    order = np.random.default_rng(seed).permutation(compliant.height)
    shuffled = compliant[order]
    answers = shuffled.select(pl.col("prompt").shift(-1, fill_value=shuffled["prompt"][0]).alias("answered"),
                              pl.col("response").shift(-1, fill_value=shuffled["response"][0]))
    return (shuffled.select("prompt").hstack(answers)
            .filter(pl.col("prompt") != pl.col("answered"))
            .select("prompt", "response", pl.lit(True).alias("refusal")))


def training_set(data: Path, seed: int = 0) -> pl.DataFrame:
    """Every human-labelled refusal set, uncensorbench and their mismatched pairs, deduplicated.

    Columns prompt, response, refusal (bool), source (the set, or '<set>+mismatched').
    """
    sources = {**human_refusal_sets(data), "uncensorbench": uncensorbench_pairs()}
    pooled = pl.concat([rows.with_columns(pl.lit(name).alias("source")) for name, rows in sources.items()])
    pooled = pooled.unique(["prompt", "response"], keep="first", maintain_order=True)
    mismatched = mismatched_pairs(pooled, seed).join(
        pooled.select("prompt", "response"), on=["prompt", "response"], how="anti")
    return pl.concat([pooled, mismatched.with_columns(pl.lit("mismatched").alias("source"))])
