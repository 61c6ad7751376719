"""Compare runs: refusal rate, over-refusal, uniformity, unsafe rate and capability with bootstrap CIs.

The first run is the reference: every other run also gets its difference to it, with its
own interval. Intervals are 95% percentile intervals of a seeded bootstrap that resamples
prompts (the samples of one prompt stay together), shifted by the bootstrap's bias for the
opening statistics (uniformity, top-1 share), whose resamples are biased upward. When a
run answered exactly the reference's prompts the difference is paired (both runs see the
same resampled prompts), which is what makes before/after comparisons of one prompt set
tight.

The bootstrap is vectorized: each (run, prompt kind) draws one (B x n) index matrix, turned
into a (B x n) multiplicity matrix; every statistic is then a matrix product or a
reduceat over it, never a Python loop over resamples or rows.

Capability (prompt-level strict accuracy of `evaluate capability`, one suite) is resampled
over its own prompts the same way, paired with the reference when both answered the same
suite prompts; kl_to_base is the mean per-prompt KL of the run's adapter from its base.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from refusaldata.errors import InputError, NotFoundError
from refusaldata.labelers.rules import prepare
from refusaldata.queries import sql_text
from refusaldata.runs import is_glob, select_runs
from refusaldata.store import Store

CONFIDENCE = 0.95
# A run named M + NO_BOUNDARY_SUFFIX is method M trained without boundary rows (look-alikes
# with compliant answers); the run named M is the same method with them.
NO_BOUNDARY_SUFFIX = "-no-boundary"
STUDY_METHODS = ("base", "baseline-sft", "self-distill", "cross-distill", "dpo", "nca")
# The study's methods, in the order every table and chart shows them: each trained method
# followed by its run without boundary rows.
METHOD_ORDER = tuple(name for method in STUDY_METHODS
                     for name in ((method,) if method == "base" else (method, f"{method}{NO_BOUNDARY_SUFFIX}")))
# Resamples held at once are a (resamples x prompts) matrix: 20,000 keeps it within memory
# for thousands of prompts, far past where the 95% percentiles stop moving.
MAX_BOOTSTRAP = 20_000
# Elements of one (resamples x refusals) block in the uniformity reduction (~160 MB of f64).
_BLOCK_ELEMENTS = 20_000_000

# The statistics compared, each with an estimate, an interval and a difference.
STATISTICS = ("refusal_rate", "over_refusal_rate", "uniformity", "top1_share", "unsafe_rate")
# Statistics of how refusals open: their intervals are shifted by the bootstrap's bias (see _interval).
OPENING_STATISTICS = ("uniformity", "top1_share")


@dataclass
class _Prompts:
    """One run's prompts of one kind (harmful or benign), sorted by prompt_id."""

    prompt_ids: np.ndarray
    responses: np.ndarray
    refusals: np.ndarray
    judged: np.ndarray
    unsafe: np.ndarray
    # Refusal openings (harmful prompts only): the prompt each count belongs to, grouped
    # by opening; `opening_starts` marks where each opening's counts begin.
    opening_prompt: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    opening_refusals: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    opening_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def size(self) -> int:
        return len(self.prompt_ids)

    def same_prompts(self, other: _Prompts) -> bool:
        return self.size == other.size and bool(np.array_equal(self.prompt_ids, other.prompt_ids))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def rate_statistics(weights: np.ndarray, prompts: _Prompts) -> dict[str, np.ndarray]:
    """Refusal and unsafe rates for each row of `weights` (resamples x prompts multiplicities)."""
    # One pass over `weights` for all four sums.
    sums = weights @ np.stack([prompts.refusals, prompts.responses, prompts.unsafe, prompts.judged], axis=1)
    return {"refusal": _ratio(sums[:, 0], sums[:, 1]), "unsafe": _ratio(sums[:, 2], sums[:, 3])}


def opening_statistics(weights: np.ndarray, prompts: _Prompts) -> dict[str, np.ndarray]:
    """Uniformity (1 - H/log n, n = refusals) and top-1 share of refusal openings per row.

    As `mine uniformity` defines it: 1 for a single refusal; undefined (NaN) with none.
    """
    rows = weights.shape[0]
    uniformity = np.full(rows, np.nan)
    top1_share = np.full(rows, np.nan)
    if len(prompts.opening_starts) == 0:
        return {"uniformity": uniformity, "top1_share": top1_share}
    block = max(1, _BLOCK_ELEMENTS // len(prompts.opening_prompt))
    for start in range(0, rows, block):
        counts = np.add.reduceat(
            weights[start:start + block, prompts.opening_prompt] * prompts.opening_refusals,
            prompts.opening_starts, axis=1)
        total = counts.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = counts / total[:, None]
            entropy = -np.sum(np.where(counts > 0, share * np.log(np.where(counts > 0, share, 1.0)), 0.0), axis=1)
            uniformity[start:start + block] = np.where(
                total > 1, np.maximum(0.0, 1.0 - entropy / np.log(total)), np.where(total == 1, 1.0, np.nan))
            top1_share[start:start + block] = np.where(total > 0, counts.max(axis=1) / total, np.nan)
    return {"uniformity": uniformity, "top1_share": top1_share}


def resample_weights(size: int, bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """A (bootstrap x size) matrix of how often each prompt is drawn in each resample."""
    if size == 0:
        return np.zeros((bootstrap, 0))
    indices = rng.integers(0, size, size=(bootstrap, size))
    offsets = (indices + np.arange(bootstrap)[:, None] * size).ravel()
    return np.bincount(offsets, minlength=bootstrap * size).reshape(bootstrap, size).astype(np.float64)


def _statistics(weights: np.ndarray, prompts: _Prompts, harmful: bool) -> dict[str, np.ndarray]:
    rates = rate_statistics(weights, prompts)
    if not harmful:
        return {"over_refusal_rate": rates["refusal"]}
    return {"refusal_rate": rates["refusal"], "unsafe_rate": rates["unsafe"],
            **opening_statistics(weights, prompts)}


def _interval(values: np.ndarray, estimate: float | None = None,
              bounds: tuple[float, float] = (-1.0, 1.0)) -> tuple[float | None, float | None]:
    """The 95% percentile interval of `values`; with `estimate`, shifted by the bootstrap's
    bias (the resamples' mean minus `estimate`) and kept within `bounds`.

    The opening statistics need the shift: a resample repeats prompts, so it repeats their
    openings, and every resample looks more uniform than the data. The plain percentiles
    then missed the estimate itself (0.046 [0.12, 0.30] was printed).
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None, None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    if estimate is not None:
        bias = float(finite.mean()) - estimate
        low, high = max(bounds[0], low - bias), min(bounds[1], high - bias)
    return float(low), float(high)


def _value(values: np.ndarray) -> float | None:
    value = float(values[0])
    return value if np.isfinite(value) else None


def _rng(seed: int, run_id: str, harmful: bool) -> np.random.Generator:
    """A generator per (seed, run, prompt kind): a run's intervals do not depend on its company."""
    return np.random.default_rng([seed, zlib.crc32(run_id.encode("utf-8")), int(harmful)])


def _query(con, name: str, params: dict) -> pa.Table:
    return con.sql(sql_text(name), params=params).to_arrow_table()


Rows = pa.Table | dict[str, np.ndarray]


def _column(rows: Rows, name: str, dtype: type | None = None) -> np.ndarray:
    """A column of query rows as numpy. Rows are an Arrow table or DuckDB's `fetchnumpy()`
    dict, which converts without importing pandas (Arrow's to_numpy imports it, a second of
    start-up that `gate` on a small fixture cannot afford)."""
    values = rows[name] if isinstance(rows, dict) else rows.column(name).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=dtype)


def _row_count(rows: Rows) -> int:
    return len(next(iter(rows.values()), ())) if isinstance(rows, dict) else rows.num_rows


def _group_prompts(prompt_rows: Rows, opening_rows: Rows, run_id: str, harmful: bool) -> _Prompts:
    """Arrays for one run and prompt kind from the rows of compare_prompts / compare_openings."""
    runs = _column(prompt_rows, "run_id")
    kinds = _column(prompt_rows, "harmful")
    mask = (runs == run_id) & (kinds == harmful)
    prompt_ids = _column(prompt_rows, "prompt_id")[mask]
    order = np.argsort(prompt_ids, kind="stable")
    prompt_ids = prompt_ids[order]

    def column(name: str) -> np.ndarray:
        return _column(prompt_rows, name, np.float64)[mask][order]

    prompts = _Prompts(prompt_ids, column("responses"), column("refusals"), column("judged"), column("unsafe"))
    if harmful and _row_count(opening_rows):
        selected = _column(opening_rows, "run_id") == run_id
        openings = _column(opening_rows, "opening")[selected]
        opening_prompts = _column(opening_rows, "prompt_id")[selected]
        refusals = _column(opening_rows, "refusals", np.float64)[selected]
        # Rows arrive grouped by opening (ORDER BY run_id, opening); keep that grouping.
        by_opening = np.argsort(openings, kind="stable")
        openings, opening_prompts, refusals = openings[by_opening], opening_prompts[by_opening], refusals[by_opening]
        prompts.opening_prompt = np.searchsorted(prompt_ids, opening_prompts)
        prompts.opening_refusals = refusals
        if len(openings):
            prompts.opening_starts = np.flatnonzero(np.r_[True, openings[1:] != openings[:-1]])
    return prompts


def method_name(name: str | None, run_id: str) -> str:
    """What a run is called in tables and charts: its name, else the start of its id."""
    return name if name else run_id[:12]


def _method_names(run_ids: list[str], run_rows: dict[str, dict]) -> dict[str, str]:
    """Method per run; runs sharing a name are told apart by the start of their id."""
    names = {run_id: method_name(run_rows.get(run_id, {}).get("name"), run_id) for run_id in run_ids}
    shared = {name for name in names.values() if list(names.values()).count(name) > 1}
    return {run_id: f"{name} ({run_id[-10:]})" if name in shared else name for run_id, name in names.items()}


def resolve_runs(store: Store, runs: Sequence[str]) -> list[str]:
    """Run ids for the given references (ids, names, unique prefixes or globs, see
    `runs.select_runs`), each at most once: a run named twice outright is an error, a run a
    glob matches again is taken once."""
    if not runs:
        raise InputError("name at least one run to compare")
    con = store.connect(["runs"])
    try:
        known = set(_query(con, "compare_known_runs", {"runs": list(runs)}).column("run_id").to_pylist())
    finally:
        con.close()
    resolved: list[str] = []
    for ref in runs:
        found = [ref] if ref in known else select_runs(store, [ref])
        if not is_glob(ref) and found[0] in resolved:
            raise InputError(f"run '{ref}' is given twice (as {found[0]})")
        resolved += [run_id for run_id in found if run_id not in resolved]
    return resolved


def pick_unsafe_labeler(con, run_ids: list[str], requested: str | None) -> str | None:
    """Whose unsafe verdicts count: `requested`, else the one labeler that stored some on
    these runs; None when none did, an error when several did and none was chosen."""
    found = _query(con, "compare_unsafe_labelers", {"runs": run_ids}).column("labeler").to_pylist()
    if requested is not None:
        if requested not in found:
            raise NotFoundError(f"labeler '{requested}' stored no unsafe verdicts on these runs"
                                + (f" (found: {', '.join(found)})" if found else ""))
        return requested
    if len(found) > 1:
        raise InputError(f"several labelers stored unsafe verdicts ({', '.join(found)}); "
                         "choose one with --unsafe-labeler")
    return found[0] if found else None


COLUMNS = [
    ("method", pa.string()), ("run_id", pa.string()), ("model", pa.string()), ("adapter", pa.string()),
    ("harmful_prompts", pa.int64()), ("harmful_responses", pa.int64()), ("refusals", pa.int64()),
    ("benign_prompts", pa.int64()), ("benign_responses", pa.int64()), ("templates", pa.int64()),
    ("unsafe_judged", pa.int64()),
]
_SUFFIXES = ("", "_low", "_high", "_diff", "_diff_low", "_diff_high")
CAPABILITY_SUITE = "embedded"


def comparison_schema() -> pa.Schema:
    fields = [pa.field(name, type_) for name, type_ in COLUMNS]
    for statistic in STATISTICS:
        fields += [pa.field(f"{statistic}{suffix}", pa.float64()) for suffix in _SUFFIXES]
    fields += [pa.field("paired_harmful", pa.bool_()), pa.field("paired_benign", pa.bool_())]
    fields += [pa.field("capability_prompts", pa.int64())]
    fields += [pa.field(f"capability{suffix}", pa.float64()) for suffix in _SUFFIXES]
    fields += [pa.field("paired_capability", pa.bool_()), pa.field("kl_to_base", pa.float64())]
    return pa.schema(fields)


def check_resampling(bootstrap: int, seed: int) -> None:
    if bootstrap < 1:
        raise InputError(f"--bootstrap must be at least 1 (got {bootstrap})")
    if bootstrap > MAX_BOOTSTRAP:
        raise InputError(f"--bootstrap must be at most {MAX_BOOTSTRAP:,} (got {bootstrap})")
    if seed < 0:
        raise InputError(f"--seed must not be negative (got {seed})")


def _capability(rows: pa.Table, run_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted prompt keys, strict 0/1 per prompt, KL per prompt) of one run."""
    runs = np.asarray(rows.column("run_id").to_numpy(zero_copy_only=False))
    mask = runs == run_id
    keys = np.asarray(rows.column("key").to_numpy(zero_copy_only=False))[mask]
    strict = np.asarray(rows.column("strict").to_numpy(zero_copy_only=False), dtype=np.float64)[mask]
    kl = np.asarray(rows.column("kl_to_base").to_numpy(zero_copy_only=False), dtype=np.float64)[mask]
    order = np.argsort(keys, kind="stable")
    return keys[order], strict[order], kl[order]


def _capability_columns(rows: pa.Table, run_ids: list[str], bootstrap: int, seed: int,
                        reference: str | None) -> dict[str, dict]:
    """Per run: capability (share of prompts with every instruction followed) with its interval,
    its difference to the reference run if any (paired when both answered the same prompts) and
    kl_to_base."""
    reference_keys, _, _ = _capability(rows, reference or run_ids[0])
    reference_draws = reference_weights = None
    result = {}
    for run_id in run_ids:
        keys, strict, kl = _capability(rows, run_id)
        row: dict = {"capability_prompts": len(keys) or None, "paired_capability": None}
        row.update({f"capability{suffix}": None for suffix in _SUFFIXES})
        finite_kl = kl[np.isfinite(kl)]
        row["kl_to_base"] = float(finite_kl.mean()) if finite_kl.size else None
        if len(keys):
            rng = np.random.default_rng([seed, zlib.crc32(run_id.encode("utf-8")), 2])
            weights = resample_weights(len(keys), bootstrap, rng)
            draws = (weights @ strict) / weights.sum(axis=1)
            row["capability"] = float(strict.mean())
            row["capability_low"], row["capability_high"] = _interval(draws)
            if run_id == reference:
                reference_draws, reference_weights, reference_value = draws, weights, row["capability"]
            elif reference_draws is not None:
                paired = len(keys) == len(reference_keys) and bool(np.array_equal(keys, reference_keys))
                row["paired_capability"] = paired
                run_draws = (reference_weights @ strict) / reference_weights.sum(axis=1) if paired else draws
                row["capability_diff"] = row["capability"] - reference_value
                row["capability_diff_low"], row["capability_diff_high"] = _interval(run_draws - reference_draws)
        result[run_id] = row
    return result


def compare_runs(store: Store, runs: Sequence[str], *, labeler: str = "rules", k: int = 5,
                 bootstrap: int = 1000, seed: int = 0, split: str | None = None,
                 unsafe_labeler: str | None = None, capability_suite: str = CAPABILITY_SUITE,
                 reference: str | None = None) -> pa.Table:
    """One row per run with estimates and CIs, and differences to the reference run if there is one.

    The runs are a corpus or a study (`comparison_mode`). A study's reference is its first
    run and `split` defaults to 'test'; a corpus has no reference unless `reference` names
    one (it then comes first) and counts every prompt (`split` 'all'). A run with no labelled
    response to a prompt of `split` keeps its row, with n 0 and no estimate.

    refusal_rate: refused / labelled responses to harmful prompts of `split` ('all' for
    every split); over_refusal_rate: the same on benign prompts of `split`; uniformity and
    top1_share: over the openings (first `k` words) of refusals to those harmful prompts,
    defined as `mine uniformity` defines them (which reads every split); templates:
    the run's rows in the templates table (NULL when not mined); unsafe_rate: unsafe /
    judged responses to harmful prompts, from the one labeler that stored unsafe verdicts
    (or `unsafe_labeler`), NULL without one. paired_harmful / paired_benign say the run
    answered exactly the reference's prompts of that kind, so those differences come from
    a paired bootstrap (else from independent ones). capability: prompt-level strict
    accuracy on `capability_suite` (`evaluate capability`), NULL where not evaluated;
    kl_to_base: the run's mean per-token KL from its base model on those prompts.
    """
    check_resampling(bootstrap, seed)
    if k < 1:
        raise InputError(f"--k must be at least 1 (got {k})")
    run_ids, reference = _with_reference(store, resolve_runs(store, runs), reference)
    con = store.connect(["prompts", "runs", "responses", "labels", "templates", "capability"])
    prepare(con)
    try:
        run_rows = {row["run_id"]: row for row in _query(
            con, "compare_runs", {"runs": run_ids, "labeler": labeler, "k": k}).to_pylist()}
        mode = comparison_mode(run_rows.values())
        split = split or MODE_SPLITS[mode]
        if reference is None and mode == STUDY:
            reference = run_ids[0]
        _check_labelled(con, run_ids, run_rows, labeler)
        capability_rows = _query(con, "compare_capability", {"runs": run_ids, "suite": capability_suite})
        unsafe_from = pick_unsafe_labeler(con, run_ids, unsafe_labeler)
        params = {"runs": run_ids, "labeler": labeler, "split": split}
        prompt_rows = _query(con, "compare_prompts", {**params, "unsafe_labeler": unsafe_from})
        opening_rows = _query(con, "compare_openings", {**params, "k": k})
    finally:
        con.close()

    # Per run and prompt kind: the prompts, the point estimates and the resampled values.
    methods = _method_names(run_ids, run_rows)
    # The reference's prompts, resamples and values per prompt kind, kept for the differences;
    # every other run's resamples are dropped once its row is done, so memory stays at a few
    # (B x prompts) matrices however many runs are compared.
    reference_fit: dict[bool, tuple[_Prompts, np.ndarray, dict, dict]] = {}
    capability = _capability_columns(capability_rows, run_ids, bootstrap, seed, reference)
    rows = []
    for run_id in run_ids:
        meta = run_rows.get(run_id, {})
        harmful, benign = (_group_prompts(prompt_rows, opening_rows, run_id, kind) for kind in (True, False))
        row = {
            "method": methods[run_id], "run_id": run_id,
            "model": meta.get("model"), "adapter": meta.get("adapter"),
            "harmful_prompts": harmful.size, "harmful_responses": int(harmful.responses.sum()),
            "refusals": int(harmful.refusals.sum()),
            "benign_prompts": benign.size, "benign_responses": int(benign.responses.sum()),
            "templates": meta.get("templates"),
            "unsafe_judged": int(harmful.judged.sum()) if unsafe_from else None,
        }
        for kind, run_prompts in ((True, harmful), (False, benign)):
            weights = resample_weights(run_prompts.size, bootstrap, _rng(seed, run_id, kind))
            estimates = _statistics(np.ones((1, run_prompts.size)), run_prompts, kind)
            draws = _statistics(weights, run_prompts, kind)
            for statistic, values in estimates.items():
                row[statistic] = _value(values)
                corrected = statistic in OPENING_STATISTICS
                row[f"{statistic}_low"], row[f"{statistic}_high"] = _interval(
                    draws[statistic], row[statistic] if corrected else None, (0.0, 1.0))
                row[f"{statistic}_diff"] = row[f"{statistic}_diff_low"] = row[f"{statistic}_diff_high"] = None
            row["paired_harmful" if kind else "paired_benign"] = None
            if run_id == reference:
                reference_fit[kind] = (run_prompts, weights, estimates, draws)
            if reference is None or run_id == reference:
                continue
            reference_prompts, reference_weights, reference_estimates, reference_draws = reference_fit[kind]
            same = run_prompts.same_prompts(reference_prompts)
            row["paired_harmful" if kind else "paired_benign"] = same
            # Paired: the run evaluated on the reference's resamples of the same prompts.
            run_draws = _statistics(reference_weights, run_prompts, kind) if same else draws
            for statistic in estimates:
                reference_value = _value(reference_estimates[statistic])
                if row[statistic] is None or reference_value is None:
                    continue
                corrected = statistic in OPENING_STATISTICS
                row[f"{statistic}_diff"] = row[statistic] - reference_value
                row[f"{statistic}_diff_low"], row[f"{statistic}_diff_high"] = _interval(
                    run_draws[statistic] - reference_draws[statistic], row[f"{statistic}_diff"] if corrected else None)
        if unsafe_from is None:
            for suffix in _SUFFIXES:
                row[f"unsafe_rate{suffix}"] = None
        row.update(capability[run_id])
        rows.append(row)
    metadata = {"labeler": labeler, "k": str(k), "bootstrap": str(bootstrap), "seed": str(seed),
                "split": split, "unsafe_labeler": unsafe_from or "", "reference": reference or "",
                "capability_suite": capability_suite, "mode": mode}
    return pa.Table.from_pylist(rows, schema=comparison_schema().with_metadata(metadata))


# What a comparison is: a corpus (imported runs, or runs generated without an adapter: every
# prompt counts, no run is a reference) or a study (adapters against a base: the held-out test
# split, the first run the reference of every difference).
CORPUS, STUDY = "corpus", "study"
MODE_SPLITS = {CORPUS: "all", STUDY: "test"}


def comparison_mode(run_rows) -> str:
    """STUDY when some run (a row of compare_runs.sql, with its adapter) was generated under an
    adapter, else CORPUS."""
    return STUDY if any(row.get("adapter") for row in run_rows) else CORPUS


def runs_mode(store: Store, run_ids: Sequence[str]) -> str:
    """`comparison_mode` of stored runs."""
    con = store.connect(["runs", "templates"])
    try:
        rows = _query(con, "compare_runs", {"runs": list(run_ids), "labeler": "rules", "k": 1}).to_pylist()
    finally:
        con.close()
    return comparison_mode(rows)


def _with_reference(store: Store, run_ids: list[str], reference: str | None) -> tuple[list[str], str | None]:
    """The runs with the named reference run first (added when not among them), and its id."""
    if reference is None:
        return run_ids, None
    reference_id = store.resolve_run(reference)
    return [reference_id, *(run_id for run_id in run_ids if run_id != reference_id)], reference_id


def _check_labelled(con, run_ids: list[str], run_rows: dict[str, dict], labeler: str) -> None:
    """A run with no label at all from `labeler` is an error (label it first); a run labelled but
    small, or with no prompt of the split, is not."""
    labelled = set(_query(con, "compare_labelled_runs", {"runs": run_ids, "labeler": labeler})
                   .column("run_id").to_pylist())
    for run_id in run_ids:
        if run_id not in labelled:
            name = run_rows.get(run_id, {}).get("name") or run_id
            raise NotFoundError(f"run '{name}' has no responses labelled by '{labeler}' (run `refusaldata label "
                                f"--run {name}` first)")


def top_openings(store: Store, runs: Sequence[str], *, labeler: str = "rules", k: int = 5,
                 split: str | None = None, top: int = 5) -> pa.Table:
    """The `top` most frequent refusal openings of each run (harmful prompts of `split`; default
    as `compare_runs` chooses it)."""
    run_ids = resolve_runs(store, runs)
    split = split or MODE_SPLITS[runs_mode(store, run_ids)]
    con = store.connect(["prompts", "responses", "labels"])
    prepare(con)
    try:
        opening_counts = _query(con, "compare_openings", {"runs": run_ids, "labeler": labeler, "split": split, "k": k})
        con.register("opening_counts", opening_counts)
        return _query(con, "compare_top_openings", {"top": top})
    finally:
        con.close()


def default_runs(store: Store, labeler: str = "rules") -> list[str]:
    """Every labelled run: the study's methods first in METHOD_ORDER, then the rest oldest first;
    a run without boundary rows (M-no-boundary) right after its method's."""
    con = store.connect(["runs", "labels"])
    try:
        found = _query(con, "compare_default_runs",
                       {"labeler": labeler, "order": list(METHOD_ORDER), "suffix": NO_BOUNDARY_SUFFIX})
    finally:
        con.close()
    return found.column("run_id").to_pylist()


@dataclass(frozen=True)
class Estimate:
    """A statistic as a table shows it: `0.750 [0.50,1.00]`; a difference signed, `+0.250 [+0.00,+0.75]`.

    Renderers take the parts (`value_text`, `interval_text`) rather than parse the text.
    """

    value: float | None
    low: float | None = None
    high: float | None = None
    signed: bool = False

    def value_text(self) -> str:
        """The value to three decimals; `—` when undefined."""
        return "—" if self.value is None else f"{self.value:{'+' if self.signed else ''}.3f}"

    def interval_text(self) -> str | None:
        """`[low,high]` to two decimals, or None without an interval (or without a value)."""
        if self.value is None or self.low is None or self.high is None:
            return None
        sign = "+" if self.signed else ""
        return f"[{self.low:{sign}.2f},{self.high:{sign}.2f}]"

    def __str__(self) -> str:
        interval = self.interval_text()
        return self.value_text() + (f" {interval}" if interval else "")


STATISTIC_LABELS = {
    "refusal_rate": "refusal rate", "over_refusal_rate": "over-refusal", "uniformity": "uniformity",
    "top1_share": "top-1 share", "unsafe_rate": "unsafe rate",
}


def comparison_settings(comparison: pa.Table) -> dict[str, str]:
    """The settings `compare_runs` stored with its table (labeler, split, mode, reference, ...)."""
    return {key.decode(): value.decode() for key, value in (comparison.schema.metadata or {}).items()}


def comparison_cells(comparison: pa.Table) -> dict[str, list]:
    """The comparison's columns as tables show them: counts, and an Estimate per statistic.

    With a reference run, each statistic gets its column and `Δ <statistic>` with the
    difference to it ("ref" on its own row); a corpus without one gets no Δ columns, and its
    runs are named `run` with their model beside. Over-refusal appears only when some run
    answered benign prompts, unsafe columns only when unsafe verdicts exist, capability and
    KL columns only when some run was evaluated.
    """
    rows = comparison.to_pylist()
    settings = comparison_settings(comparison)
    reference = settings.get("reference") or None
    corpus = settings.get("mode") == CORPUS
    show = {"unsafe_rate": any(row["unsafe_rate"] is not None for row in rows),
            "over_refusal_rate": any(row["benign_responses"] for row in rows)}
    show_capability = any(row["capability"] is not None for row in rows)

    def difference(statistic: str) -> list:
        return ["ref" if row["run_id"] == reference else Estimate(
            row[f"{statistic}_diff"], row[f"{statistic}_diff_low"], row[f"{statistic}_diff_high"], signed=True)
            for row in rows]

    columns: dict[str, list] = {"run" if corpus else "method": [row["method"] for row in rows]}
    if corpus:
        columns["model"] = [row["model"] for row in rows]
    columns["harmful n"] = [row["harmful_responses"] for row in rows]
    if corpus:
        columns["refusals"] = [row["refusals"] for row in rows]
    if show["over_refusal_rate"]:
        columns["benign n"] = [row["benign_responses"] for row in rows]
    for statistic in STATISTICS:
        if not show.get(statistic, True):
            continue
        label = STATISTIC_LABELS[statistic]
        columns[label] = [Estimate(row[statistic], row[f"{statistic}_low"], row[f"{statistic}_high"])
                          for row in rows]
        if reference:
            columns[f"Δ {label}"] = difference(statistic)
    if show_capability:
        columns["capability"] = [Estimate(row["capability"], row["capability_low"], row["capability_high"])
                                 for row in rows]
        if reference:
            columns["Δ capability"] = difference("capability")
        columns["KL to base"] = ["—" if row["kl_to_base"] is None else f"{row['kl_to_base']:.4f}" for row in rows]
    columns["templates"] = [row["templates"] for row in rows]
    return columns


def wilson(successes: int, trials: int, z: float = 1.959964) -> tuple[float | None, float | None]:
    """The Wilson score interval (95% by default) of successes / trials; (None, None) for no trials."""
    if trials == 0:
        return None, None
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def model_cells(comparison: pa.Table) -> dict[str, list]:
    """Each model's runs pooled, as tables show them: runs, responses to harmful prompts, refusals
    and the refusal rate with its Wilson interval (responses taken as independent), in the
    comparison's order of first appearance."""
    pooled: dict[str, list[int]] = {}
    for row in comparison.to_pylist():
        counts = pooled.setdefault(row["model"] or "(unknown)", [0, 0, 0])
        counts[0] += 1
        counts[1] += row["harmful_responses"]
        counts[2] += row["refusals"]
    rates = [Estimate(refusals / responses if responses else None, *wilson(refusals, responses))
             for _, responses, refusals in pooled.values()]
    return {"model": list(pooled), "runs": [counts[0] for counts in pooled.values()],
            "harmful n": [counts[1] for counts in pooled.values()],
            "refusals": [counts[2] for counts in pooled.values()], "refusal rate": rates}


def as_text(columns: dict[str, list]) -> pa.Table:
    """Table cells with every Estimate written out as `value [low,high]`, for terminals."""
    return pa.table({name: [str(cell) if isinstance(cell, Estimate) else cell for cell in cells]
                     for name, cells in columns.items()})


def format_comparison(comparison: pa.Table) -> pa.Table:
    """The comparison as text cells, `value [low,high]`, for terminals (see `comparison_cells`)."""
    return as_text(comparison_cells(comparison))


# -- boundary rows: each method with against without ----------------------------------------

# What boundary_effects compares, and the sides of each: with boundary rows, without, with − without.
BOUNDARY_STATISTICS = ("refusal_rate", "over_refusal_rate", "capability")
BOUNDARY_SIDES = ("with", "without", "diff")


def boundary_pairs(methods: Sequence[str]) -> list[tuple[int, int]]:
    """(index of M, index of M-no-boundary) for each method M of `methods` whose run without
    boundary rows is there too, in the order the M runs come."""
    position = {method: index for index, method in enumerate(methods)}
    return [(index, position[f"{method}{NO_BOUNDARY_SUFFIX}"]) for index, method in enumerate(methods)
            if f"{method}{NO_BOUNDARY_SUFFIX}" in position]


def boundary_schema() -> pa.Schema:
    fields = [pa.field("method", pa.string()), pa.field("run_id", pa.string()),
              pa.field("no_boundary_run_id", pa.string()), pa.field("harmful_prompts", pa.int64()),
              pa.field("benign_prompts", pa.int64()), pa.field("capability_prompts", pa.int64())]
    for statistic in BOUNDARY_STATISTICS:
        fields += [pa.field(f"{statistic}_{side}{suffix}", pa.float64())
                   for side in BOUNDARY_SIDES for suffix in ("", "_low", "_high")]
    return pa.schema(fields)


def _shared(keys: Sequence[np.ndarray], *values: tuple[np.ndarray, ...]) -> tuple[np.ndarray, list]:
    """The keys both runs have (sorted) and each run's value arrays restricted to them, in that order."""
    shared = np.intersect1d(keys[0], keys[1])
    return shared, [tuple(array[np.searchsorted(run_keys, shared)] for array in arrays)
                    for run_keys, arrays in zip(keys, values)]


def pair_rng(seed: int, with_run: str, without_run: str, statistic: str) -> np.random.Generator:
    """A generator per (seed, pair, statistic): no pair's intervals depend on the other runs compared."""
    return np.random.default_rng([seed, *(zlib.crc32(text.encode("utf-8")) for text in (with_run, without_run,
                                                                                          statistic))])


def _restrict(prompts: _Prompts, keep: np.ndarray) -> _Prompts:
    """`prompts` kept to the prompt ids `keep` (sorted, each present), with their refusal openings."""
    index = np.searchsorted(prompts.prompt_ids, keep)
    kept = _Prompts(keep, prompts.responses[index], prompts.refusals[index], prompts.judged[index],
                    prompts.unsafe[index])
    if len(prompts.opening_starts):
        position = np.full(prompts.size, -1)
        position[index] = np.arange(len(keep))
        moved = position[prompts.opening_prompt]
        opening = np.repeat(np.arange(len(prompts.opening_starts)),
                            np.diff(np.r_[prompts.opening_starts, len(prompts.opening_prompt)]))
        selected = moved >= 0
        kept.opening_prompt, kept.opening_refusals = moved[selected], prompts.opening_refusals[selected]
        opening = opening[selected]
        if len(opening):
            kept.opening_starts = np.flatnonzero(np.r_[True, opening[1:] != opening[:-1]])
    return kept


def paired_prompts(prompt_rows: Rows, opening_rows: Rows, first_run: str, second_run: str,
                   harmful: bool) -> tuple[_Prompts, _Prompts]:
    """Two runs' prompts of one kind (rows of compare_prompts / compare_openings) kept to the
    prompts both answered, in one order, refusal openings included: what a paired bootstrap resamples."""
    both = [_group_prompts(prompt_rows, opening_rows, run_id, harmful) for run_id in (first_run, second_run)]
    shared = np.intersect1d(both[0].prompt_ids, both[1].prompt_ids)
    return _restrict(both[0], shared), _restrict(both[1], shared)


Side = tuple[float | None, float | None, float | None]


def paired_bootstrap(size: int, first: Callable[[np.ndarray], np.ndarray], second: Callable[[np.ndarray], np.ndarray],
                     bootstrap: int, rng: np.random.Generator, *, corrected: bool = False) -> dict[str, Side]:
    """A statistic of two runs on the same `size` prompts, and first − second: each side
    ("first", "second", "diff") as (estimate, low, high) with its 95% interval, all None when
    undefined. `first` and `second` compute the statistic for each row of a (resamples x
    prompts) weight matrix. Every resample draws the same prompts for both runs, so the
    difference's interval holds only what the two disagree on. `corrected` shifts the
    intervals by the bootstrap's bias, as `compare_runs` does for the opening statistics."""
    one, weights = np.ones((1, size)), resample_weights(size, bootstrap, rng)
    estimates = {"first": _value(first(one)), "second": _value(second(one))}
    draws = {"first": first(weights), "second": second(weights)}
    draws["diff"] = draws["first"] - draws["second"]
    estimates["diff"] = (None if estimates["first"] is None or estimates["second"] is None
                         else estimates["first"] - estimates["second"])
    sides = {}
    for side, estimate in estimates.items():
        if estimate is None:
            sides[side] = (None, None, None)
        elif corrected:
            sides[side] = (estimate, *_interval(draws[side], estimate, (-1.0, 1.0) if side == "diff" else (0.0, 1.0)))
        else:
            sides[side] = (estimate, *_interval(draws[side]))
    return sides


def _paired_columns(statistic: str, with_counts: tuple[np.ndarray, np.ndarray],
                    without_counts: tuple[np.ndarray, np.ndarray], bootstrap: int,
                    rng: np.random.Generator) -> dict:
    """`statistic` (numerator / denominator summed over prompts) with, without and their
    difference, each with its paired 95% interval (see `paired_bootstrap`)."""
    sides = paired_bootstrap(len(with_counts[0]), lambda weights: _rate_draws(weights, *with_counts),
                             lambda weights: _rate_draws(weights, *without_counts), bootstrap, rng)
    row = {}
    for side, key in zip(BOUNDARY_SIDES, ("first", "second", "diff")):
        name = f"{statistic}_{side}"
        row[name], row[f"{name}_low"], row[f"{name}_high"] = sides[key]
    return row


def boundary_effects(store: Store, runs: Sequence[str], *, labeler: str = "rules", bootstrap: int = 1000,
                     seed: int = 0, split: str = "test", capability_suite: str = CAPABILITY_SUITE) -> pa.Table:
    """What boundary rows do: one row per method M among `runs` whose run without them
    (named M-no-boundary, see NO_BOUNDARY_SUFFIX) is among `runs` too, as `paired_effects`
    computes it. No pair: no rows."""
    run_ids = resolve_runs(store, runs)
    con = store.connect(["runs", "templates"])
    try:
        run_rows = {row["run_id"]: row for row in _query(
            con, "compare_runs", {"runs": run_ids, "labeler": labeler, "k": 1}).to_pylist()}
    finally:
        con.close()
    methods = _method_names(run_ids, run_rows)
    pairs = [(run_ids[with_index], run_ids[without_index])
             for with_index, without_index in boundary_pairs([methods[run_id] for run_id in run_ids])]
    return paired_effects(store, pairs, labeler=labeler, bootstrap=bootstrap, seed=seed, split=split,
                          capability_suite=capability_suite)


def paired_effects(store: Store, pairs: Sequence[tuple[str, str]], *, labeler: str = "rules",
                   bootstrap: int = 1000, seed: int = 0, split: str = "test",
                   capability_suite: str = CAPABILITY_SUITE) -> pa.Table:
    """One row per (with, without) pair of runs, the same training with and without boundary
    rows; `method` is the first run's.

    Each statistic is measured on the prompts both runs answered, so the two differ only in
    training: refusal_rate on the harmful prompts of `split`, over_refusal_rate on its
    benign prompts (both as `compare` defines them), capability on the `capability_suite`
    prompts both were scored on (NULL unless both were). Each comes with boundary rows
    (_with), without (_without) and as with − without (_diff), each with a 95% interval of a
    paired bootstrap: a resample draws the same prompts for both runs. harmful_prompts,
    benign_prompts and capability_prompts count the shared prompts.
    """
    check_resampling(bootstrap, seed)
    pairs = [(with_run, without_run) for with_run, without_run in
             (resolve_runs(store, pair) for pair in pairs)]
    paired = list(dict.fromkeys(run_id for pair in pairs for run_id in pair))
    con = store.connect(["prompts", "runs", "responses", "labels", "templates", "capability"])
    prepare(con)
    try:
        run_rows = {row["run_id"]: row for row in _query(
            con, "compare_runs", {"runs": paired, "labeler": labeler, "k": 1}).to_pylist()}
        _check_labelled(con, paired, run_rows, labeler)  # as compare does: no all-null row for a labeler typo
        prompt_rows = _query(con, "compare_prompts",
                             {"runs": paired, "labeler": labeler, "split": split, "unsafe_labeler": None})
        capability_rows = _query(con, "compare_capability", {"runs": paired, "suite": capability_suite})
    finally:
        con.close()
    methods = _method_names(paired, run_rows)
    no_openings = pa.table({})
    rows = []
    for with_run, without_run in pairs:
        row = {"method": methods[with_run], "run_id": with_run, "no_boundary_run_id": without_run}
        for statistic, harmful in (("refusal_rate", True), ("over_refusal_rate", False)):
            both = paired_prompts(prompt_rows, no_openings, with_run, without_run, harmful)
            row["harmful_prompts" if harmful else "benign_prompts"] = both[0].size
            rng = pair_rng(seed, with_run, without_run, statistic)
            row.update(_paired_columns(statistic, *[(run.refusals, run.responses) for run in both], bootstrap, rng))
        (with_keys, with_strict, _), (without_keys, without_strict, _) = (
            _capability(capability_rows, run_id) for run_id in (with_run, without_run))
        shared, counts = _shared([with_keys, without_keys], (with_strict, np.ones(len(with_keys))),
                                 (without_strict, np.ones(len(without_keys))))
        row["capability_prompts"] = len(shared) if len(with_keys) and len(without_keys) else None
        rng = pair_rng(seed, with_run, without_run, "capability")
        row.update(_paired_columns("capability", *counts, bootstrap, rng))
        rows.append(row)
    metadata = {"labeler": labeler, "bootstrap": str(bootstrap), "seed": str(seed), "split": split,
                "capability_suite": capability_suite}
    return pa.Table.from_pylist(rows, schema=boundary_schema().with_metadata(metadata))


BOUNDARY_LABELS = {"refusal_rate": "refusal", "over_refusal_rate": "over-refusal", "capability": "capability"}


def boundary_cells(effects: pa.Table) -> dict[str, list]:
    """The paired table as tables show it: per method, refusal and over-refusal with and without
    boundary rows and the paired difference, and the capability difference where both runs were
    scored (see `comparison_cells`)."""
    rows = effects.to_pylist()
    columns: dict[str, list] = {"method": [row["method"] for row in rows],
                                "harmful prompts": [row["harmful_prompts"] for row in rows],
                                "benign prompts": [row["benign_prompts"] for row in rows]}
    for statistic in ("refusal_rate", "over_refusal_rate"):
        label = BOUNDARY_LABELS[statistic]
        for side, title in (("with", f"{label} with"), ("without", f"{label} without"), ("diff", f"Δ {label}")):
            name = f"{statistic}_{side}"
            columns[title] = [Estimate(row[name], row[f"{name}_low"], row[f"{name}_high"], signed=side == "diff")
                              for row in rows]
    if any(row["capability_diff"] is not None for row in rows):
        columns["Δ capability"] = [Estimate(row["capability_diff"], row["capability_diff_low"],
                                            row["capability_diff_high"], signed=True) for row in rows]
    return columns


def boundary_sentence(effects: pa.Table) -> str:
    """One sentence on which paired differences' intervals exclude 0, read off the numbers."""
    excludes, includes = [], []
    for row in effects.to_pylist():
        for statistic, label in BOUNDARY_LABELS.items():
            diff, low, high = (row[f"{statistic}_diff{suffix}"] for suffix in ("", "_low", "_high"))
            if diff is None or low is None or high is None:
                continue
            text = f"{row['method']} {label} {Estimate(diff, low, high, signed=True)}"
            if low > 0 or high < 0:
                excludes.append(f"{text} ({'higher' if low > 0 else 'lower'} with boundary rows)")
            else:
                includes.append(text)
    if not excludes and not includes:
        return "No paired difference could be measured (the runs share no labelled prompt)."
    parts = []
    if excludes:
        parts.append("The 95% interval of the paired difference (with − without boundary rows) excludes 0 for "
                     + "; ".join(excludes))
    if includes:
        parts.append(("it includes 0 for " if excludes else
                      "No 95% interval of a paired difference (with − without boundary rows) excludes 0: ")
                     + "; ".join(includes))
    return ", and ".join(parts) + "."


# -- refusal under attack -------------------------------------------------------------------

# The `attack` of prompts no attack made, in tables and charts.
PLAIN = "(none)"

ATTACK_COLUMNS = [
    ("method", pa.string()), ("run_id", pa.string()), ("attack", pa.string()),
    ("prompts", pa.int64()), ("responses", pa.int64()), ("refusals", pa.int64()),
    ("refusal_rate", pa.float64()), ("refusal_rate_low", pa.float64()), ("refusal_rate_high", pa.float64()),
    ("pairs", pa.int64()), ("plain_refusal_rate", pa.float64()), ("refusal_rate_diff", pa.float64()),
    ("refusal_rate_diff_low", pa.float64()), ("refusal_rate_diff_high", pa.float64()),
]


def _attack_rng(seed: int, run_id: str, attack: str, paired: bool) -> np.random.Generator:
    """A generator per (seed, run, attack, statistic): no row's interval depends on the others."""
    return np.random.default_rng([seed, zlib.crc32(run_id.encode("utf-8")), zlib.crc32(attack.encode("utf-8")),
                                  int(paired)])


def _rate_draws(weights: np.ndarray, refusals: np.ndarray, responses: np.ndarray) -> np.ndarray:
    sums = weights @ np.stack([refusals, responses], axis=1)
    return _ratio(sums[:, 0], sums[:, 1])


def _attack_row(run_id: str, attack: str, group: dict[str, np.ndarray], bootstrap: int, seed: int) -> dict:
    """Refusal rate of one run under one attack, and the paired difference to the source prompts."""
    refusals, responses = group["refusals"], group["responses"]
    one = np.ones((1, len(refusals)))
    row = {"run_id": run_id, "attack": attack, "prompts": len(refusals), "responses": int(responses.sum()),
           "refusals": int(refusals.sum()), "refusal_rate": _value(_rate_draws(one, refusals, responses))}
    draws = _rate_draws(resample_weights(len(refusals), bootstrap, _attack_rng(seed, run_id, attack, False)),
                        refusals, responses)
    row["refusal_rate_low"], row["refusal_rate_high"] = _interval(draws)
    row.update(pairs=None, plain_refusal_rate=None, refusal_rate_diff=None, refusal_rate_diff_low=None,
               refusal_rate_diff_high=None)
    if attack == PLAIN:
        return row
    paired = ~np.isnan(group["source_responses"])
    row["pairs"] = int(paired.sum())
    if not paired.any():
        return row
    attacked = (refusals[paired], responses[paired])
    plain = (group["source_refusals"][paired], group["source_responses"][paired])
    one = np.ones((1, row["pairs"]))
    row["plain_refusal_rate"] = _value(_rate_draws(one, *plain))
    row["refusal_rate_diff"] = _value(_rate_draws(one, *attacked) - _rate_draws(one, *plain))
    # Paired: each resample draws pairs, so the attacked prompt and its source move together.
    weights = resample_weights(row["pairs"], bootstrap, _attack_rng(seed, run_id, attack, True))
    row["refusal_rate_diff_low"], row["refusal_rate_diff_high"] = _interval(
        _rate_draws(weights, *attacked) - _rate_draws(weights, *plain))
    return row


def compare_attacks(store: Store, runs: Sequence[str], *, labeler: str = "rules", bootstrap: int = 1000,
                    seed: int = 0, split: str | None = None) -> pa.Table:
    """One row per (run, attack): the refusal rate on harmful prompts of `split` under that attack
    (default: every split for a corpus, 'test' for a study; see `comparison_mode`).

    attack PLAIN: the run's unattacked harmful prompts. refusal_rate: refused / labelled
    responses, with a 95% bootstrap interval over the attack's prompts. pairs: the attacked
    prompts whose source prompt (source_ref) the run answered too; plain_refusal_rate: the
    run's refusal rate on those sources; refusal_rate_diff: its refusal rate on the paired
    attacked prompts minus plain_refusal_rate, with a paired bootstrap interval (pairs
    resampled). Negative: the attack breaks refusals. A run with no labelled response to a
    harmful prompt of `split` has no rows.
    """
    check_resampling(bootstrap, seed)
    run_ids = resolve_runs(store, runs)
    split = split or MODE_SPLITS[runs_mode(store, run_ids)]
    con = store.connect(["prompts", "runs", "responses", "labels", "templates"])
    try:
        con.execute(sql_text("attack_macros"))
        rows = _query(con, "compare_attacks", {"runs": run_ids, "labeler": labeler, "split": split})
        run_rows = {row["run_id"]: row for row in _query(
            con, "compare_runs", {"runs": run_ids, "labeler": labeler, "k": 1}).to_pylist()}
    finally:
        con.close()
    columns = {"run_id": np.asarray(rows.column("run_id").to_numpy(zero_copy_only=False)),
               "attack": np.asarray(rows.column("attack").fill_null(PLAIN).to_numpy(zero_copy_only=False))}
    counts = {name: np.asarray(rows.column(name).cast(pa.float64()).fill_null(np.nan).to_numpy(), dtype=np.float64)
              for name in ("refusals", "responses", "source_refusals", "source_responses")}
    methods = _method_names(run_ids, run_rows)
    table = []
    for run_id in run_ids:
        mine = columns["run_id"] == run_id
        attacks = sorted(set(columns["attack"][mine]) - {PLAIN})
        for attack in ([PLAIN] if PLAIN in columns["attack"][mine] else []) + attacks:
            selected = mine & (columns["attack"] == attack)
            group = {name: values[selected] for name, values in counts.items()}
            table.append({"method": methods[run_id], **_attack_row(run_id, attack, group, bootstrap, seed)})
    metadata = {"labeler": labeler, "bootstrap": str(bootstrap), "seed": str(seed), "split": split}
    return pa.Table.from_pylist(table, schema=pa.schema(ATTACK_COLUMNS).with_metadata(metadata))


def attack_cells(comparison: pa.Table) -> dict[str, list]:
    """The by-attack comparison's columns as tables show them (see `comparison_cells`)."""
    rows = comparison.to_pylist()
    return {
        "method": [row["method"] for row in rows],
        "attack": [row["attack"] for row in rows],
        "n": [row["responses"] for row in rows],
        "refusal rate": [Estimate(row["refusal_rate"], row["refusal_rate_low"], row["refusal_rate_high"])
                         for row in rows],
        "pairs": [row["pairs"] for row in rows],
        "plain": [Estimate(row["plain_refusal_rate"]) if row["pairs"] else None for row in rows],
        "Δ vs plain": [Estimate(row["refusal_rate_diff"], row["refusal_rate_diff_low"],
                                row["refusal_rate_diff_high"], signed=True) if row["pairs"] else None
                       for row in rows],
    }
