"""Pattern mining over the labels: rates, openings, uniformity, templates, correlation.

Each measurement is one query in sql/mine_*.sql run by DuckDB over the store (see
DESIGN.md, "Mining: what the numbers mean"). Only the fuzzy parts run in Python, and
vectorized: rapidfuzz's `process.cdist` for the mean pairwise similarity of a seeded
sample of openings, and for clustering distinct openings into templates. Every function
reads `best` labels unless `labeler` names one, as the `mine` commands do.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz, process

from refusaldata.errors import InputError, NotFoundError
from refusaldata.io import sha256_text
from refusaldata.label import run_ids_for
from refusaldata.labelers.registry import BEST
from refusaldata.labelers.rules import OPENING_WORDS, prepare
from refusaldata.queries import sql_text
from refusaldata.runs import now
from refusaldata.schemas import TEMPLATES
from refusaldata.store import Store

GROUPINGS = ("run", "dataset", "category", "attack")
SIMILARITY_SAMPLE = 500
SIMILARITY_SEED = 0
MIN_REFUSALS = 20
"""Runs with fewer refusals have a uniformity too noisy to trust (with 2-4 refusals it swings
between 0 and 1): `uniformity` marks them and `correlation` leaves them out."""
PERMUTATIONS = 10_000
PERMUTATION_SEED = 0
MAX_TEMPLATE_OPENINGS = 5000


def _connect(store: Store) -> duckdb.DuckDBPyConnection:
    con = store.connect(["prompts", "runs", "responses", "labels"])
    prepare(con)
    con.execute(sql_text("mine_macros"))
    return con


def _check_k(k: int) -> None:
    if not 1 <= k <= OPENING_WORDS:
        raise InputError(f"--k must be between 1 and {OPENING_WORDS} (labels keep {OPENING_WORDS} words), got {k}")


def _query(store: Store, name: str, labeler: str, runs: list[str] | None, **params) -> pa.Table:
    run_ids = run_ids_for(store, runs) if runs else []
    con = _connect(store)
    try:
        if not con.sql("SELECT count(*) FROM labels_of($labeler)",
                       params={"labeler": labeler}).fetchall()[0][0]:
            raise NotFoundError(f"no labels by '{labeler}' in {store.root}; run `refusaldata label` first")
        return con.sql(sql_text(name), params={"labeler": labeler, "run_ids": run_ids, **params}).to_arrow_table()
    finally:
        con.close()


def rates(store: Store, runs: list[str] | None = None, by: str = "run", labeler: str = BEST) -> pa.Table:
    """Refusal, over-refusal and unsafe rates with Wilson 95% intervals, per run (and group).

    By attack, each attack's row also gets the paired difference to its unattacked source
    prompts (sql/mine_attack_pairs.sql).
    """
    if by not in GROUPINGS:
        raise InputError(f"--by must be one of {', '.join(GROUPINGS[1:])}, got '{by}'")
    table = _query(store, "mine_rates", labeler, runs, by=by)
    if by == "attack":
        table = _attack_pairs(store, table, labeler, runs)
    if by == "run":
        return table.drop_columns(["group_value"])
    return table.rename_columns([by if name == "group_value" else name for name in table.column_names])


def _attack_pairs(store: Store, rates_by_attack: pa.Table, labeler: str, runs: list[str] | None) -> pa.Table:
    run_ids = run_ids_for(store, runs) if runs else []
    con = _connect(store)
    try:
        con.execute(sql_text("attack_macros"))
        con.register("rates", rates_by_attack)
        return con.sql(sql_text("mine_attack_pairs"), params={"labeler": labeler, "run_ids": run_ids}).to_arrow_table()
    finally:
        con.close()


def openings(store: Store, runs: list[str] | None = None, k: int = 5, top: int = 10,
             labeler: str = BEST) -> pa.Table:
    """The `top` most frequent refusal openings of k words per run, with shares."""
    _check_k(k)
    if top < 1:
        raise InputError(f"--top must be at least 1, got {top}")
    return _query(store, "mine_openings", labeler, runs, k=k, top=top)


def mean_pairwise_similarity(openings_sample: list[str]) -> float | None:
    """Mean rapidfuzz ratio (0..1) over the distinct pairs of a sample; None under two."""
    if len(openings_sample) < 2:
        return None
    matrix = process.cdist(openings_sample, openings_sample, scorer=fuzz.ratio, dtype=np.float32, workers=1)
    upper = np.triu_indices(len(openings_sample), k=1)
    return float(matrix[upper].mean()) / 100.0


def _check_min_refusals(min_refusals: int) -> None:
    if min_refusals < 1:
        raise InputError(f"--min-refusals must be at least 1, got {min_refusals}")


def uniformity(store: Store, runs: list[str] | None = None, k: int = 5, labeler: str = BEST,
               sample: int = SIMILARITY_SAMPLE, seed: int = SIMILARITY_SEED,
               min_refusals: int = MIN_REFUSALS) -> pa.Table:
    """Per run: how uniform its refusal openings are, with its refusal rate beside.

    enough_refusals says the run has at least `min_refusals` refusals to harmful prompts; the
    runs without come last (a uniformity of a handful of refusals is noise, not a pattern)."""
    _check_k(k)
    _check_min_refusals(min_refusals)
    table = _query(store, "mine_uniformity", labeler, runs, k=k)
    samples = _query(store, "mine_opening_sample", labeler, runs, k=k, sample=sample, seed=seed)
    by_run: dict[str, list[str]] = {}
    for run_id, opening in zip(samples.column("run_id").to_pylist(), samples.column("opening").to_pylist()):
        by_run.setdefault(run_id, []).append(opening)
    similarity = [mean_pairwise_similarity(by_run.get(run_id, [])) for run_id in table.column("run_id").to_pylist()]
    position = table.column_names.index("distinct_4") + 1
    table = table.add_column(position, "mean_similarity", pa.array(similarity, pa.float64()))
    # No run holds more refusals than an int64 counts: a larger bound is the largest one.
    enough = pc.greater_equal(table.column("refusals"), pa.scalar(min(min_refusals, 2**63 - 1), pa.int64()))
    table = table.append_column("enough_refusals", enough)
    order = np.argsort(~np.asarray(enough.to_numpy(zero_copy_only=False), dtype=bool), kind="stable")
    return table.take(pa.array(order, pa.int64()))


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank (as mine_correlation.sql ranks)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    unique, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks, minlength=len(unique))
    return (sums / np.bincount(inverse, minlength=len(unique)))[inverse]


def permutation_p(values: np.ndarray, rates: np.ndarray, permutations: int = PERMUTATIONS,
                  seed: int = PERMUTATION_SEED) -> float | None:
    """Two-sided p-value of a Spearman correlation: the share of seeded permutations of the rates
    whose |correlation| reaches the observed one (plus one, so it is never 0); None under 3 runs
    or when either side is constant."""
    if len(values) < 3:
        return None
    x, y = _ranks(values), _ranks(rates)
    x, y = x - x.mean(), y - y.mean()
    scale = float(np.sqrt((x @ x) * (y @ y)))
    if scale == 0:
        return None
    observed = abs(float(x @ y)) / scale
    shuffled = np.random.default_rng(seed).permuted(np.tile(y, (permutations, 1)), axis=1)
    reached = np.count_nonzero(np.abs(shuffled @ x) / scale >= observed - 1e-12)
    return (reached + 1) / (permutations + 1)


def correlation(store: Store, runs: list[str] | None = None, k: int = 5, labeler: str = BEST,
                min_refusals: int = MIN_REFUSALS) -> pa.Table:
    """Spearman correlation across runs between each uniformity measure and the refusal rate,
    with the number of runs it rests on and a permutation p-value (`permutation_p`).

    Only runs with at least `min_refusals` refusals count; the others are named in the
    table's metadata (`left_out`: JSON [[run name, refusals], ...]), so they are listed apart."""
    per_run = uniformity(store, runs, k=k, labeler=labeler, min_refusals=min_refusals)
    counted = per_run.filter(per_run.column("enough_refusals"))
    left_out = per_run.filter(pc.invert(per_run.column("enough_refusals")))
    con = duckdb.connect()
    try:
        con.register("uniformity", counted)
        table = con.sql(sql_text("mine_correlation")).to_arrow_table()
    finally:
        con.close()
    rates = counted.column("refusal_rate")
    p_values = []
    for measure in table.column("measure").to_pylist():
        values = counted.column(measure)
        known = pc.and_(pc.is_valid(values), pc.is_valid(rates))
        p_values.append(permutation_p(np.asarray(values.filter(known).to_numpy(), dtype=np.float64),
                                      np.asarray(rates.filter(known).to_numpy(), dtype=np.float64)))
    table = table.append_column("p_value", pa.array(p_values, pa.float64()))
    names = [[name or run_id, refusals] for name, run_id, refusals in zip(
        *(left_out.column(c).to_pylist() for c in ("run_name", "run_id", "refusals")))]
    return table.replace_schema_metadata({"min_refusals": str(min_refusals), "left_out": json.dumps(names)})


def cluster_openings(openings_list: list[str], counts: list[int], threshold: float) -> list[dict]:
    """Greedy leader clustering of distinct openings, weighted by their counts.

    The most frequent unassigned opening leads a new cluster and takes every unassigned
    opening whose rapidfuzz ratio to it reaches `threshold`; then the next one. Each
    cluster's medoid is the member with the highest count-weighted similarity to its
    members. One similarity matrix (process.cdist); the loop runs over clusters, not rows.
    """
    order = np.argsort(-np.asarray(counts), kind="stable")
    texts = [openings_list[i] for i in order]
    weights = np.asarray(counts, dtype=np.float64)[order]
    similarity = process.cdist(texts, texts, scorer=fuzz.ratio, dtype=np.float32, workers=1)
    unassigned = np.ones(len(texts), dtype=bool)
    clusters = []
    for leader in range(len(texts)):
        if not unassigned[leader]:
            continue
        members = np.flatnonzero(unassigned & (similarity[leader] >= threshold))
        members = np.concatenate(([leader], members[members != leader]))
        unassigned[members] = False
        within = similarity[np.ix_(members, members)] @ weights[members]
        clusters.append({
            "medoid": texts[members[int(np.argmax(within))]],
            "support": int(weights[members].sum()),
            "openings": [texts[m] for m in members],
        })
    return clusters


def template_id(medoid: str) -> str:
    """A stable id for a template: a hash of its medoid text."""
    return sha256_text(medoid)[:16]


def templates(store: Store, runs: list[str] | None = None, k: int = 5, threshold: float = 80.0,
              labeler: str = BEST) -> pa.Table:
    """Cluster each run's refusal openings into templates and store them (table `templates`).

    Each (labeler, run, k) partition of `templates` is replaced, so it holds the latest
    clustering of that k by that labeler; other labelers' and other k's templates stay.
    The MAX_TEMPLATE_OPENINGS most frequent distinct openings of a run are clustered
    (rarer ones are left out); share is support over all of the run's refusals.
    """
    _check_k(k)
    if not 0 < threshold <= 100:
        raise InputError(f"--threshold must be in (0, 100], got {threshold}")
    distinct = _query(store, "mine_template_openings", labeler, runs, k=k)
    created_at = now()
    per_run: dict[str, tuple[list[str], list[int]]] = {}
    for run_id, opening, count in zip(*(distinct.column(c).to_pylist() for c in ("run_id", "opening", "refusals"))):
        texts, counts = per_run.setdefault(run_id, ([], []))
        texts.append(opening)
        counts.append(count)
    rows = []
    for run_id, (texts, counts) in per_run.items():
        total = sum(counts)
        clusters = cluster_openings(texts[:MAX_TEMPLATE_OPENINGS], counts[:MAX_TEMPLATE_OPENINGS], threshold)
        rows.extend({"run_id": run_id, "labeler": labeler, "k": k, "template_id": template_id(c["medoid"]),
                     "share": c["support"] / total, "created_at": created_at, **c} for c in clusters)
    table = pa.Table.from_pylist(rows, schema=TEMPLATES.schema)
    for run_id in (run_ids_for(store, runs) if runs else per_run):
        store.replace("templates", table.filter(pc.equal(table.column("run_id"), run_id)),
                      partition={"labeler": labeler, "run_id": run_id, "k": k})
    return table.drop_columns(["labeler", "created_at"]).sort_by([("run_id", "ascending"), ("support", "descending")])
