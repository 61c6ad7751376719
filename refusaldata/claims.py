"""The seed papers' claims as a study's runs bear them out, read off 95% intervals.

arXiv 2406.11285: after self- and cross-distillation the student's refusals take the
teacher's pattern. arXiv 2409.07772: a preference loss (DPO, NCA) raises refusal over the
base at a capability cost, and NCA balances safety and capability best. Each claim is a
few checks, each a difference on the prompts both runs answered, with a 95% interval of a
paired bootstrap (`evaluate.paired_bootstrap`), read in the direction the claim gives it: a
check is reproduced when its interval lies wholly that way, not reproduced when it rules
out an effect of MARGIN that way, inconclusive otherwise. A claim is reproduced when every
check is, not reproduced when one is not, inconclusive otherwise; a claim whose runs the
store lacks is not judged, and says what it needs. A refusal pattern (uniformity, top-template
share) of fewer than mine.MIN_REFUSALS refusals is noise, so its checks are inconclusive.

The methods are the study's runs by name, as the quickstart names them
(`evaluate.STUDY_METHODS`); the teacher is the run a cross set took its refusal targets
from (sql/claims_teacher.sql). Each method's refusal − over-refusal is also set against
the separability ceiling, with Newcombe's interval from Wilson intervals, as the probe's
own separation is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from refusaldata.evaluate import (
    CONFIDENCE, Estimate, comparison_settings, opening_statistics, pair_rng, paired_bootstrap, paired_effects,
    paired_prompts, rate_statistics, resample_weights, wilson,
)
from refusaldata.labelers.rules import prepare
from refusaldata.mine import MIN_REFUSALS
from refusaldata.queries import sql_text
from refusaldata.separability import newcombe
from refusaldata.store import Store

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
# The smallest effect a claim is about: an interval that stays under it in the claimed
# direction rules the claim out (the quickstart's capability tolerance too).
MARGIN = 0.05
DISTILLED = ("self-distill", "cross-distill")
PREFERENCE = ("dpo", "nca")
PATTERN_RUNS = ("base", "baseline-sft", *DISTILLED)
PATTERN_LABELS = {"uniformity": "uniformity", "top_template_share": "top-template share"}
PATTERN_TEXT = "after self- and cross-distillation the student's refusals take the teacher's pattern"
PREFERENCE_TEXT = "a preference loss (DPO, NCA) raises refusal over the base at a capability cost"
BALANCE_TEXT = "NCA balances safety and capability best"


@dataclass(frozen=True)
class Check:
    """One difference a claim rests on; `sign` is +1 where the claim says it is positive, −1
    negative, 0 where the claim gives it no direction. A `caveat` (too few refusals to read a
    pattern) or no direction makes it inconclusive whatever its interval."""

    label: str
    diff: Estimate
    sign: int = 1
    caveat: str = ""

    @property
    def verdict(self) -> str:
        if (self.caveat or not self.sign or self.diff.value is None or self.diff.low is None
                or self.diff.high is None):
            return INCONCLUSIVE
        low, high = sorted((self.sign * self.diff.low, self.sign * self.diff.high))
        if low > 0:
            return REPRODUCED
        return NOT_REPRODUCED if high < MARGIN else INCONCLUSIVE

    def __str__(self) -> str:
        return f"{self.label} {self.diff} ({self.verdict}{': ' + self.caveat if self.caveat else ''})"


@dataclass(frozen=True)
class Claim:
    """A seed paper's claim: its checks and the levels they are read against, or what it needs."""

    paper: str
    statement: str
    checks: tuple[Check, ...] = ()
    levels: str = ""
    needs: str = ""

    @property
    def verdict(self) -> str | None:
        """None when not judged; else every check reproduced, one not, or neither."""
        if self.needs:
            return None
        verdicts = {check.verdict for check in self.checks}
        if NOT_REPRODUCED in verdicts:
            return NOT_REPRODUCED
        return REPRODUCED if verdicts == {REPRODUCED} else INCONCLUSIVE

    def sentence(self) -> str:
        head = f"arXiv {self.paper}, {self.statement}"
        if self.needs:
            return f"{head}: not judged; it needs {self.needs}."
        return f"{head}: {self.verdict}. {self.levels}: " + "; ".join(map(str, self.checks)) + "."


@dataclass
class Claims:
    """The claims in the order the report states them, and the pattern table behind the first."""

    claims: list[Claim]
    pattern: dict[str, list] | None = None


def _listing(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _query(con, name: str, params: dict) -> pa.Table:
    return con.sql(sql_text(name), params=params).to_arrow_table()


def _opening_statistic(statistic: str):
    """For a run's prompts, `statistic` of its refusal openings (or templates) per resample."""
    return lambda prompts: lambda weights: opening_statistics(weights, prompts)[statistic]


def _refusal(prompts):
    """The refusal rate of `prompts` per resample."""
    return lambda weights: rate_statistics(weights, prompts)["refusal"]


def _paired(rows: pa.Table, groups: pa.Table, first: str, second: str, harmful: bool, statistic,
            bootstrap: int, seed: int, name: str, corrected: bool = False) -> dict:
    """first − second on the prompts both answered: each side and the difference as (value, low, high)."""
    both = paired_prompts(rows, groups, first, second, harmful)
    return paired_bootstrap(both[0].size, statistic(both[0]), statistic(both[1]), bootstrap,
                            pair_rng(seed, first, second, name), corrected=corrected)


def _estimate(side: tuple, signed: bool = False) -> Estimate:
    return Estimate(*side, signed=signed)


def _pattern(con, runs: dict[str, str], teacher: str, settings: dict, bootstrap: int, seed: int
             ) -> tuple[dict[str, dict], dict[str, dict[str, tuple]]]:
    """Per run (the study's and the teacher): its refusals to harmful prompts, uniformity and
    top-template share as (value, low, high) on its own prompts (a run paired with itself), and
    the difference to the base on the prompts both answered."""
    ids = [*runs.values(), teacher]
    params = {"runs": ids, "labeler": settings["labeler"], "split": settings["split"]}
    rows = _query(con, "compare_prompts", {**params, "unsafe_labeler": None})
    groups = {statistic: _query(con, name, {**params, "k": int(settings["k"])}) for statistic, name in
              (("uniformity", "compare_openings"), ("top_template_share", "claims_template_counts"))}
    named = {**runs, "teacher": teacher}
    totals = rows.filter(pc.field("harmful")).group_by("run_id").aggregate([("refusals", "sum")])
    refusals = dict(zip(totals.column("run_id").to_pylist(), totals.column("refusals_sum").to_pylist()))
    own: dict[str, dict] = {name: {"refusals": refusals.get(run_id, 0)} for name, run_id in named.items()}
    to_base: dict[str, dict[str, tuple]] = {name: {} for name in named if name != "base"}
    for statistic, group_rows in groups.items():
        key = "top1_share" if statistic == "top_template_share" else "uniformity"
        for name, run_id in named.items():
            own[name][statistic] = _paired(rows, group_rows, run_id, run_id, True, _opening_statistic(key),
                                           bootstrap, seed, statistic, corrected=True)["first"]
            if name != "base":
                to_base[name][statistic] = _paired(rows, group_rows, run_id, runs["base"], True,
                                                   _opening_statistic(key), bootstrap, seed, statistic,
                                                   corrected=True)["diff"]
    return own, to_base


def _pattern_claim(con, methods: dict[str, str], settings: dict, bootstrap: int, seed: int
                   ) -> tuple[Claim, dict[str, list] | None]:
    teacher_rows = _query(con, "claims_teacher", {"runs": list(methods.values())}).to_pylist()
    teacher = teacher_rows[0]["run_id"] if teacher_rows else None
    missing = [name for name in ("base", *DISTILLED) if name not in methods]
    needs = [f"the run{'s' if len(missing) > 1 else ''} {_listing(missing)}"] if missing else []
    if teacher is None:
        needs.append("a teacher (the run a cross set took its refusal targets from)")
    runs = {name: methods[name] for name in PATTERN_RUNS if name in methods}
    if needs:
        return Claim("2406.11285", PATTERN_TEXT, needs=_listing(needs)), None
    own, to_base = _pattern(con, runs, teacher, settings, bootstrap, seed)
    # A run with refusals but no top-template share has no templates mined at k.
    unmined = [name for name, values in own.items()
               if values["uniformity"][0] is not None and values["top_template_share"][0] is None]
    if unmined:
        needs = f"refusal templates of {_listing(unmined)} (`refusaldata mine templates`)"
        return Claim("2406.11285", PATTERN_TEXT, needs=needs), None
    # A pattern of fewer than MIN_REFUSALS refusals is noise (`mine uniformity` marks such runs).
    few = {name for name, values in own.items() if values["refusals"] < MIN_REFUSALS}
    checks, directions = [], []
    for statistic, label in PATTERN_LABELS.items():
        teacher_value, base_value = own["teacher"][statistic][0], own["base"][statistic][0]
        # Toward the teacher; no direction where either is undefined or the two are equal.
        sign = 0 if teacher_value is None or base_value is None else int(np.sign(teacher_value - base_value))
        directions.append(f"{({1: 'higher', -1: 'lower'}).get(sign, 'no change in')} {label}")
        for name in DISTILLED:
            short = [who for who in ("base", name, "teacher") if who in few]
            caveat = f"fewer than {MIN_REFUSALS} refusals in {_listing(short)}" if short else ""
            checks.append(Check(f"{name} {label}", _estimate(to_base[name][statistic], True), sign, caveat))
    checks.sort(key=lambda check: DISTILLED.index(check.label.split(" ")[0]))
    teacher_name = teacher_rows[0]["name"] or teacher
    levels = "; ".join(f"{who}: {own[name]['refusals']} refusals, " + ", ".join(
        f"{label} {_estimate(own[name][statistic])}" for statistic, label in PATTERN_LABELS.items())
                       for name, who in (("teacher", f"The teacher, {teacher_name}"), ("base", "base")))
    levels += f"; change from the base (toward the teacher: {', '.join(directions)})"
    names = [*runs, "teacher"]
    table: dict[str, list] = {"run": [*runs, teacher_name], "role": [
        {"base": "before", "baseline-sft": "baseline", "teacher": "teacher"}.get(name, "after") for name in names],
        "refusals": [own[name]["refusals"] for name in names]}
    for statistic, label in PATTERN_LABELS.items():
        table[label] = [_estimate(own[name][statistic]) for name in names]
        table[f"Δ {label} vs base"] = ["ref" if name == "base" else _estimate(to_base[name][statistic], True)
                                       for name in names]
    return Claim("2406.11285", PATTERN_TEXT, tuple(checks), levels), table


def _capability_arrays(rows: pa.Table, run_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted prompt keys, strict 0/1) of one run's capability rows."""
    mask = np.asarray(rows.column("run_id").to_numpy(zero_copy_only=False)) == run_id
    keys = np.asarray(rows.column("key").to_numpy(zero_copy_only=False))[mask]
    strict = np.asarray(rows.column("strict").to_numpy(zero_copy_only=False), dtype=np.float64)[mask]
    order = np.argsort(keys, kind="stable")
    return keys[order], strict[order]


def _balance(rows: pa.Table, capability_rows: pa.Table, first: str, second: str, bootstrap: int,
             seed: int) -> Estimate:
    """first − second in refusal − over-refusal + capability, each term on the prompts both
    answered; one resample draws each term's prompts, so the interval is of the sum."""
    no_groups = pa.table({})
    value, draws = 0.0, np.zeros(bootstrap)
    for harmful, sign in ((True, 1), (False, -1)):
        both = paired_prompts(rows, no_groups, first, second, harmful)
        if not both[0].size:
            return Estimate(None, signed=True)
        weights = resample_weights(both[0].size, bootstrap, pair_rng(seed, first, second, f"balance-{harmful}"))
        one = np.ones((1, both[0].size))
        value += sign * float(_refusal(both[0])(one)[0] - _refusal(both[1])(one)[0])
        draws += sign * (_refusal(both[0])(weights) - _refusal(both[1])(weights))
    (first_keys, first_strict), (second_keys, second_strict) = (_capability_arrays(capability_rows, run_id)
                                                                for run_id in (first, second))
    shared = np.intersect1d(first_keys, second_keys)
    if not shared.size:
        return Estimate(None, signed=True)
    change = first_strict[np.searchsorted(first_keys, shared)] - second_strict[np.searchsorted(second_keys, shared)]
    weights = resample_weights(shared.size, bootstrap, pair_rng(seed, first, second, "balance-capability"))
    value += float(change.mean())
    draws += weights @ change / shared.size
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(draws[np.isfinite(draws)], [tail, 100 - tail])
    return Estimate(value, float(low), float(high), signed=True)


def _preference_claims(store: Store, con, methods: dict[str, str], settings: dict, bootstrap: int,
                       seed: int) -> list[Claim]:
    suite = settings.get("capability_suite") or "embedded"
    runs = [name for name in ("base", *PREFERENCE) if name in methods]
    capability_rows = _query(con, "compare_capability", {"runs": [methods[name] for name in runs], "suite": suite})
    scored = set(capability_rows.column("run_id").to_pylist())
    missing = [name for name in ("base", *PREFERENCE) if name not in methods]
    unscored = [name for name in runs if methods[name] not in scored]
    needs = ([f"the run{'s' if len(missing) > 1 else ''} {_listing(missing)}"] if missing else []) + (
        [f"capability of {_listing(unscored)} (`refusaldata evaluate capability`)"] if unscored else [])
    if needs:
        return [Claim("2409.07772", PREFERENCE_TEXT, needs=_listing(needs)),
                Claim("2409.07772", BALANCE_TEXT, needs=_listing(needs))]
    effects = paired_effects(store, [(methods[name], methods["base"]) for name in PREFERENCE],
                             labeler=settings["labeler"], bootstrap=bootstrap, seed=seed, split=settings["split"],
                             capability_suite=suite).to_pylist()
    checks = []
    for name, row in zip(PREFERENCE, effects):
        for statistic, label, sign in (("refusal_rate", "refusal", 1), ("capability", "capability", -1)):
            checks.append(Check(f"{name} {label}", Estimate(*(row[f"{statistic}_diff{suffix}"]
                                                              for suffix in ("", "_low", "_high")), signed=True), sign))
    base = effects[0]
    refusal, capability = (Estimate(*(base[f"{statistic}_without{suffix}"] for suffix in ("", "_low", "_high")))
                           for statistic in ("refusal_rate", "capability"))
    levels = f"Base refusal {refusal}, capability {capability}; change from the base (a capability cost is a fall)"
    rows = _query(con, "compare_prompts", {"runs": [methods[name] for name in PREFERENCE],
                                           "labeler": settings["labeler"], "split": settings["split"],
                                           "unsafe_labeler": None})
    balance = Check("nca − dpo", _balance(rows, capability_rows, methods["nca"], methods["dpo"], bootstrap, seed))
    return [Claim("2409.07772", PREFERENCE_TEXT, tuple(checks), levels),
            Claim("2409.07772", BALANCE_TEXT, (balance,),
                  "Balance (refusal − over-refusal + capability) on the prompts both answered")]


def seed_claims(store: Store, comparison: pa.Table) -> Claims:
    """The seed papers' claims on a study's comparison (`evaluate.compare_runs`), at its
    labeler, split, bootstrap and seed; methods found by the runs' names."""
    settings = comparison_settings(comparison)
    bootstrap, seed = int(settings["bootstrap"]), int(settings["seed"])
    methods = {name: run_id for name, run_id in zip(comparison.column("method").to_pylist(),
                                                    comparison.column("run_id").to_pylist())}
    con = store.connect(["prompts", "runs", "responses", "labels", "templates", "capability", "adapters", "sft",
                         "pairs"])
    prepare(con)
    try:
        pattern, table = _pattern_claim(con, methods, settings, bootstrap, seed)
        preference = _preference_claims(store, con, methods, settings, bootstrap, seed)
    finally:
        con.close()
    return Claims([pattern, *preference], table)


def ceiling_sentences(comparison: pa.Table, ceiling: dict) -> list[str]:
    """Per run with both rates: its refusal − over-refusal against the probe's separation,
    each with Newcombe's 95% interval, and where it stands: below the ceiling (its interval
    under the probe's), above it (over it), or not distinguishable from it (they overlap)."""
    probe = Estimate(ceiling["separation"], ceiling.get("separation_low"), ceiling.get("separation_high"))
    # A probe stored without its interval is read at its estimate.
    probe_low, probe_high = (probe.value if bound is None else bound for bound in (probe.low, probe.high))
    sentences = []
    for row in comparison.to_pylist():
        refusal, over = row["refusal_rate"], row["over_refusal_rate"]
        if refusal is None or over is None:
            continue
        refused = round(over * row["benign_responses"])
        low, high = newcombe(refusal, wilson(row["refusals"], row["harmful_responses"]),
                             over, wilson(refused, row["benign_responses"]))
        reached = Estimate(refusal - over, low, high)
        where = ("below the ceiling" if high < probe_low else "above the ceiling" if low > probe_high
                 else "not distinguishable from the ceiling")
        sentences.append(f"{row['method']} reaches {reached} of the probe's {probe}: {where}.")
    return sentences
