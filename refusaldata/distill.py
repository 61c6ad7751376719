"""Distillation sets: refusal targets for SFT (`build_sft`) and preference pairs (`build_pairs`).

The study's method (DESIGN.md, "Distillation sets"): harmful prompts a student run did
not refuse get a refusal target taken from

- self: the student's own refusals, within its dominant template(s);
- cross: a teacher run's own refusal of the same prompt, else the teacher's refusal of
  the most similar prompt within the teacher's dominant template(s);
- baseline: one fixed refusal sentence, the comparison the original study lacked.

Self targets can also come from a context run (context distillation): the same model
answering under a safety context (a system prompt, few-shot refusal turns or both). The
context run's own refusal of the prompt is the target, else its nearest refusal; the set
is then trained without the context, so a student that never refuses on its own can
still self-distill. `source_run` records the context run.

SFT sets mix in retention examples (benign prompts with the student's own compliant
answers) so a tuned model does not learn to refuse everything. Pairs put the refusal
target (chosen) against the student's compliant answer (rejected) for DPO-family losses.

Boundary rows (on by default) show where the line is: benign look-alikes (safe requests
with risky words, from the sets the registry marks `lookalike`: the shipped `boundary`
set, XSTest's safe prompts, CoCoNot-contrast) with a compliant answer, as SFT rows of kind
`boundary` and as pairs whose chosen side complies and whose rejected side refuses. A set
that only ever pairs risky words with refusals teaches "refuse anything that sounds risky".

Selection is SQL (sql/distill_*.sql) plus polars; prompt similarity is rapidfuzz's
vectorized `process.cdist`. Sets are stored in the `sft` and `pairs` tables, one
partition per set, replaced whole on rebuild; every row names where its target came from.
Test-split prompts never enter a set, neither as a prompt nor as a target's source.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from rapidfuzz import fuzz, process, utils

from refusaldata import io
from refusaldata.errors import InputError, NotFoundError
from refusaldata.queries import sql_text
from refusaldata.registry import lookalike_datasets
from refusaldata.runs import now
from refusaldata.schemas import PAIRS, SFT
from refusaldata.store import Store

MODES = ("self", "cross", "baseline")
BOUNDARY = "boundary"
DEFAULT_REFUSAL = "I'm sorry, but I can't help with that request."
DEFAULT_LABELER = "rules"
# Dominant templates: the most supported ones, until they cover this share of refusals.
DOMINANT_SHARE = 0.5
# Cells of one similarity block (queries x pool) kept in memory at a time.
_SIMILARITY_BLOCK_CELLS = 1 << 22

_TARGET_COLUMNS = ["prompt_id", "target", "source_run", "template_id", "source_prompt_id",
                   "source_sample_index"]
_TARGET_SCHEMA = {"prompt_id": pl.String, "target": pl.String, "source_run": pl.String,
                  "template_id": pl.String, "source_prompt_id": pl.String,
                  "source_sample_index": pl.Int32}
# A look-alike with its compliant answer (`_Selection.boundary_answers`); empty without boundary rows.
_EMPTY_ANSWERS = pl.DataFrame(schema={"prompt_id": pl.String, "prompt": pl.String, "dataset": pl.String,
                                      "target": pl.String, "source_run": pl.String,
                                      "source_sample_index": pl.Int32})


@dataclass(frozen=True)
class SetSummary:
    """What a build stored: counts by where the targets came from."""

    name: str
    table: str
    mode: str
    student_run: str
    source_run: str | None
    rows: int
    refusal_examples: int
    own_targets: int
    nearest_targets: int
    correct_refusals: int
    retention_examples: int = 0
    retention_available: int = 0
    boundary: bool = False
    boundary_examples: int = 0
    boundary_available: int = 0
    boundary_from_teacher: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


# -- building --------------------------------------------------------------------------


def build_sft(store: Store, name: str, student: str, mode: str, teacher: str | None = None,
              retention_ratio: float = 1.0, include_correct_refusals: bool = False,
              split: str = "train", max_examples: int | None = None, seed: int = 0,
              refusal_text: str | None = None, labeler: str = DEFAULT_LABELER,
              dominant_share: float = DOMINANT_SHARE, context_run: str | None = None,
              benign_datasets: tuple[str, ...] | list[str] | None = None, boundary: bool = True,
              boundary_ratio: float = 1.0, boundary_datasets: tuple[str, ...] | None = None,
              replace: bool = False) -> SetSummary:
    """Build (or rebuild) SFT set `name` for run `student` and store it in table `sft`.

    Refusal examples: harmful `split` prompts the student answered without refusing
    (plus those it refused, with `include_correct_refusals`), each with a target by
    `mode`; at most `max_examples`, sampled with `seed`. Retention examples: benign
    prompts with the student's compliant answers, round(retention_ratio x refusal
    examples) of them sampled with `seed` (all there are, when fewer), spread evenly over
    the benign datasets the student answered (only `benign_datasets`, when given; else
    every one but the look-alike sets and `boundary_datasets`, whose prompts are boundary
    rows or none, so --no-boundary measures a set without look-alikes).
    Boundary examples (with `boundary`): look-alike prompts of `boundary_datasets`
    (default: the registry's look-alike sets) with a compliant answer (`boundary_answers`),
    round(boundary_ratio x refusal examples) of them, drawn as retention is.
    `context_run` (mode self): take the targets from that run of the same model under a
    safety context. A set of that name built from another student, mode or source is
    refused unless `replace` (store_set).
    """
    _check_options(name, mode, teacher, refusal_text, split, max_examples, retention_ratio, dominant_share,
                   context_run, seed, boundary_ratio)
    with _Selection(store, "sft", student, teacher, split, labeler, dominant_share, context_run) as selection:
        answers = selection.student_answers()
        harmful = answers.filter(pl.col("harmful"))
        wanted = pl.col("compliant_sample_index").is_not_null()
        if include_correct_refusals:
            wanted = wanted | pl.col("refused")
        examples = _sample(harmful.filter(wanted), max_examples, seed, stream=0)
        targets, own, nearest = selection.targets(examples, mode, refusal_text)
        refusal_rows = (examples.select("prompt_id", "prompt").join(targets, on="prompt_id")
                        .with_columns(kind=pl.lit("refusal")))
        lookalikes = _lookalikes(boundary_datasets)
        boundary_pool = selection.boundary_answers(lookalikes) if boundary else _EMPTY_ANSWERS
        boundary_sample = _sample_spread(boundary_pool, _count(boundary_ratio, refusal_rows.height,
                                                               boundary_pool.height), seed, stream=2)
        boundary_rows = boundary_sample.select(
            "prompt_id", "prompt", "target", "source_run", template_id=pl.lit(None, pl.String),
            source_prompt_id=pl.col("prompt_id"), source_sample_index=pl.col("source_sample_index"),
            kind=pl.lit(BOUNDARY))
        retention_pool = answers.filter(~pl.col("harmful") & pl.col("compliant_sample_index").is_not_null())
        if benign_datasets is not None:
            retention_pool = retention_pool.filter(pl.col("dataset").is_in(list(benign_datasets)))
        else:
            retention_pool = retention_pool.filter(~pl.col("dataset").is_in([*lookalike_datasets(), *lookalikes]))
        retention_pool = retention_pool.join(boundary_rows.select("prompt_id"), on="prompt_id", how="anti")
        retention = _sample_spread(retention_pool, _count(retention_ratio, refusal_rows.height,
                                                          retention_pool.height), seed, stream=1)
        retention_rows = retention.select(
            "prompt_id", "prompt",
            target=pl.col("compliant_response"),
            source_run=pl.lit(selection.student),
            template_id=pl.lit(None, pl.String),
            source_prompt_id=pl.col("prompt_id"),
            source_sample_index=pl.col("compliant_sample_index").cast(pl.Int32),
            kind=pl.lit("retention"))
        rows = pl.concat([refusal_rows, retention_rows, boundary_rows], how="diagonal_relaxed").with_columns(
            set_name=pl.lit(name), mode=pl.lit(mode), split=pl.lit(split),
            student_run=pl.lit(selection.student), created_at=pl.lit(now()))
        if rows.is_empty():
            raise InputError(
                f"set '{name}' would be empty: run {selection.student} has no labelled answers to harmful "
                f"'{split}' prompts" + ("" if include_correct_refusals else
                                        " that comply (try --include-correct-refusals)"))
        selection.check_no_test_prompts(rows)
        table = rows.sort("kind", "prompt_id").select(SFT.columns).to_arrow()
    store_set(store, "sft", name, table, replace)
    return SetSummary(
        name=name, table="sft", mode=mode, student_run=selection.student,
        source_run=selection.source_run(mode), rows=table.num_rows,
        refusal_examples=refusal_rows.height, own_targets=own, nearest_targets=nearest,
        correct_refusals=refusal_rows.join(harmful.filter(pl.col("refused")), on="prompt_id").height,
        retention_examples=retention_rows.height, retention_available=retention_pool.height,
        **_boundary_counts(boundary, boundary_rows, boundary_pool, selection.student))


def _lineage(rows: pa.Table) -> tuple:
    """What makes a set the same set when rebuilt: its mode, student and the runs its refusal
    targets come from (rows of other kinds answer with the student's or a teacher's answers)."""
    frame = pl.from_arrow(rows.select(["mode", "student_run", "source_run", "kind"]))
    refusals = frame.filter(pl.col("kind").fill_null("refusal") == "refusal")
    return (tuple(sorted(set(frame["mode"].to_list()))), tuple(sorted(set(frame["student_run"].to_list()))),
            tuple(sorted(set(refusals["source_run"].drop_nulls().to_list()))))


def store_set(store: Store, table: str, name: str, rows: pa.Table, replace: bool) -> None:
    """Store set `name`, replacing the stored one: a rebuild of the same set (same mode, student
    and target source: new seed, sizes or boundary rows) silently, another set under the same
    name only with `replace`, so two studies never mix under one name. The check reads the
    stored set under the lock it is replaced under."""

    def check(stored: pa.Table) -> pa.Table:
        if stored.num_rows and not replace and _lineage(stored) != _lineage(rows):
            mode, student, source = _lineage(stored)
            raise InputError(f"{table} set '{name}' already holds a {'/'.join(mode)} set of run "
                             f"{'/'.join(student)}" + (f" from {'/'.join(source)}" if source else "")
                             + ": give another name, or --replace to rebuild it")
        return rows

    store.update(table, {"set_name": name}, check, where=f"{table} set {name}")


def pairs_mode(teacher: str | None, refusal_text: str | None) -> str:
    """build_pairs' mode: cross with a teacher, baseline with a refusal text, else self."""
    if teacher is not None and refusal_text is not None:
        raise InputError("give either --teacher or --refusal-text, not both")
    return "cross" if teacher is not None else "baseline" if refusal_text is not None else "self"


def build_pairs(store: Store, name: str, student: str, teacher: str | None = None,
                refusal_text: str | None = None, split: str = "train",
                max_examples: int | None = None, seed: int = 0, labeler: str = DEFAULT_LABELER,
                dominant_share: float = DOMINANT_SHARE, context_run: str | None = None, boundary: bool = True,
                boundary_ratio: float = 1.0, boundary_datasets: tuple[str, ...] | None = None,
                replace: bool = False) -> SetSummary:
    """Build (or rebuild) preference set `name` for run `student` in table `pairs`.

    One pair per harmful `split` prompt the student answered without refusing: chosen =
    the refusal target (from `teacher` when given: cross; `refusal_text`: baseline;
    neither: the student's own refusals, or those of `context_run`, self), rejected = the
    student's first compliant answer. At most `max_examples` pairs, sampled with `seed`.

    Boundary pairs (with `boundary`), drawn as build_sft draws boundary rows: chosen = a
    look-alike's compliant answer (`boundary_answers`), rejected = the refusal target this
    set's mode gives the look-alike as if it were harmful: the teacher's (or student's,
    context run's) refusal of the most similar harmful prompt within its dominant templates,
    or the fixed refusal sentence. That is the refusal the refusal pairs teach, in their
    source's pattern, on the prompt where it is wrong, so the loss learns both directions.
    Their source_* columns name the chosen answer; template_id the rejected refusal's template.
    A set of that name built from another student, mode or source is refused unless `replace`.
    """
    mode = pairs_mode(teacher, refusal_text)
    _check_options(name, mode, teacher, refusal_text, split, max_examples, 0.0, dominant_share, context_run, seed,
                   boundary_ratio)
    with _Selection(store, "pairs", student, teacher, split, labeler, dominant_share, context_run) as selection:
        answers = selection.student_answers()
        compliant = answers.filter(pl.col("harmful") & pl.col("compliant_sample_index").is_not_null())
        examples = _sample(compliant, max_examples, seed, stream=0)
        targets, own, nearest = selection.targets(examples, mode, refusal_text)
        refusal_pairs = examples.join(targets, on="prompt_id").select(
            "prompt_id", "prompt", "source_run", "template_id", "source_prompt_id", "source_sample_index",
            chosen=pl.col("target"),
            rejected=pl.col("compliant_response"),
            rejected_sample_index=pl.col("compliant_sample_index").cast(pl.Int32),
            kind=pl.lit("refusal"),
        )
        if refusal_pairs.is_empty():
            raise InputError(f"set '{name}' would be empty: run {selection.student} has no harmful "
                             f"'{split}' prompts with a labelled compliant answer")
        boundary_pool = selection.boundary_answers(_lookalikes(boundary_datasets)) if boundary else _EMPTY_ANSWERS
        boundary_sample = _sample_spread(boundary_pool, _count(boundary_ratio, refusal_pairs.height,
                                                               boundary_pool.height), seed, stream=2)
        refusals, _, _ = selection.targets(boundary_sample, mode, refusal_text)
        boundary_pairs = boundary_sample.join(refusals.rename(lambda column: f"refusal_{column}"),
                                              left_on="prompt_id", right_on="refusal_prompt_id").select(
            "prompt_id", "prompt", "source_run", template_id=pl.col("refusal_template_id"),
            source_prompt_id=pl.col("prompt_id"), source_sample_index=pl.col("source_sample_index"),
            chosen=pl.col("target"), rejected=pl.col("refusal_target"),
            rejected_sample_index=pl.lit(None, pl.Int32), kind=pl.lit(BOUNDARY),
            refusal_source=pl.col("refusal_source_prompt_id"))
        rows = pl.concat([refusal_pairs, boundary_pairs], how="diagonal_relaxed").with_columns(
            set_name=pl.lit(name), mode=pl.lit(mode), split=pl.lit(split),
            student_run=pl.lit(selection.student), created_at=pl.lit(now()))
        selection.check_no_test_prompts(pl.concat([
            rows.select("prompt_id", "source_prompt_id"),
            boundary_pairs.select("prompt_id", source_prompt_id=pl.col("refusal_source"))]))
        table = rows.sort("prompt_id").select(PAIRS.columns).to_arrow()
    store_set(store, "pairs", name, table, replace)
    return SetSummary(
        name=name, table="pairs", mode=mode, student_run=selection.student,
        source_run=selection.source_run(mode), rows=table.num_rows, refusal_examples=refusal_pairs.height,
        own_targets=own, nearest_targets=nearest, correct_refusals=0,
        **_boundary_counts(boundary, boundary_pairs, boundary_pool, selection.student))


def _check_options(name: str, mode: str, teacher: str | None, refusal_text: str | None, split: str,
                   max_examples: int | None, retention_ratio: float, dominant_share: float,
                   context_run: str | None = None, seed: int = 0, boundary_ratio: float = 1.0) -> None:
    if not name.strip():
        raise InputError("a set needs a non-empty NAME")
    if mode not in MODES:
        raise InputError(f"unknown mode '{mode}' (choose one of {', '.join(MODES)})")
    if mode == "cross" and teacher is None:
        raise InputError("--mode cross needs --teacher RUN")
    if mode != "cross" and teacher is not None:
        raise InputError(f"--teacher only applies to --mode cross (mode is {mode})")
    if refusal_text is not None and mode != "baseline":
        raise InputError(f"--refusal-text only applies to --mode baseline (mode is {mode})")
    if context_run is not None and mode != "self":
        raise InputError(f"--context-run only applies to self targets (mode is {mode})")
    if refusal_text is not None and not refusal_text.strip():
        raise InputError("--refusal-text is empty")
    if split == "test":
        raise InputError("--split test: test-split prompts never enter a training set")
    if max_examples is not None and max_examples < 1:
        raise InputError(f"--max-examples must be at least 1 (got {max_examples})")
    if seed < 0:
        raise InputError(f"--seed must not be negative (got {seed})")
    if not (retention_ratio >= 0 and math.isfinite(retention_ratio)):
        raise InputError(f"--retention-ratio must be a number >= 0 (got {retention_ratio})")
    if not (boundary_ratio >= 0 and math.isfinite(boundary_ratio)):
        raise InputError(f"--boundary-ratio must be a number >= 0 (got {boundary_ratio})")
    if not 0 < dominant_share <= 1:
        raise InputError(f"dominant_share must be in (0, 1] (got {dominant_share})")


def _count(ratio: float, examples: int, available: int) -> int:
    """round(ratio x examples), capped at what is available (so a ratio as large as 1e308 asks for all
    of it rather than overflowing)."""
    return math.floor(min(ratio * examples, available) + 0.5)


def _lookalikes(datasets: tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    return lookalike_datasets() if datasets is None else tuple(datasets)


def _boundary_counts(boundary: bool, rows: pl.DataFrame, pool: pl.DataFrame, student: str) -> dict:
    return {"boundary": boundary, "boundary_examples": rows.height, "boundary_available": pool.height,
            "boundary_from_teacher": rows.filter(pl.col("source_run") != student).height}


def _sample(frame: pl.DataFrame, count: int | None, seed: int, stream: int) -> pl.DataFrame:
    """`count` rows of `frame` (ordered by prompt_id) drawn without replacement under `seed`.

    numpy's seeded Generator keeps the draw stable across platforms; `stream` keeps the
    example and retention draws independent under one seed.
    """
    frame = frame.sort("prompt_id")
    if count is None or count >= frame.height:
        return frame
    chosen = np.sort(np.random.default_rng([seed, stream]).choice(frame.height, size=count, replace=False))
    return frame[chosen]


def _sample_spread(frame: pl.DataFrame, count: int, seed: int, stream: int) -> pl.DataFrame:
    """`count` rows of `frame` spread as evenly as they allow over its datasets, each sampled with `seed`.

    Retention draws benign prompts from several sources (benign-controls, XSTest's safe
    prompts, CoCoNot-contrast...); an even spread keeps one large source from crowding out
    the others. A source with fewer rows than its share gives the rest to the others.
    """
    sizes = frame.group_by("dataset").len().sort("dataset")
    names, available = sizes["dataset"].to_list(), sizes["len"].to_list()
    quotas = [0] * len(names)
    remaining = min(count, frame.height)
    while remaining > 0:
        open_sources = [i for i in range(len(names)) if quotas[i] < available[i]]
        share, extra = divmod(remaining, len(open_sources))
        for position, i in enumerate(open_sources):
            take = min(available[i] - quotas[i], share + (position < extra))
            quotas[i] += take
            remaining -= take
    parts = [_sample(frame.filter(pl.col("dataset") == name), quota, seed, stream)
             for name, quota in zip(names, quotas) if quota]
    return pl.concat(parts) if parts else frame.clear()


class _Selection:
    """One DuckDB connection over the store with the eligible prompts of `split` registered."""

    def __init__(self, store: Store, table: str, student: str, teacher: str | None, split: str, labeler: str,
                 dominant_share: float, context_run: str | None = None):
        self.store = store
        self.table = table
        self.student = store.resolve_run(student)
        self.teacher = store.resolve_run(teacher) if teacher is not None else None
        self.context = store.resolve_run(context_run) if context_run is not None else None
        self.labeler = labeler
        self.dominant_share = dominant_share
        self.con = store.connect(["prompts", "responses", "labels", "templates", "runs"])
        self.con.execute(sql_text("normalize"))
        eligible = self.con.sql(sql_text("distill_prompts"), params={"split": split}).to_arrow_table()
        self.con.register("distill_prompts", eligible)
        self.split = split
        if self.context is not None:
            self._check_context()

    def __enter__(self) -> _Selection:
        return self

    def __exit__(self, *exc) -> None:
        self.con.close()

    def source_run(self, mode: str) -> str | None:
        return {"self": self.context or self.student, "cross": self.teacher}.get(mode)

    def _check_context(self) -> None:
        """The context run must be the student's model and adapter answering under a context."""
        rows = {row[0]: row for row in self.con.sql(
            sql_text("distill_context_runs"), params={"student": self.student, "context": self.context}).fetchall()}
        if self.context == self.student:
            raise InputError(f"--context-run {self.context} is the student run itself; give the run made "
                             "under a safety context (--system-prompt and/or --few-shot)")
        student, context = rows.get(self.student), rows.get(self.context)
        if student is None or context is None:
            raise NotFoundError(f"run {self.student if student is None else self.context} has no row in runs")
        identity = [(row[1], row[2], _config(row).get("model_fingerprint")) for row in (student, context)]
        if identity[0] != identity[1]:
            raise InputError(f"context run {self.context} is not the student's model ({identity[1][0]}, adapter "
                             f"{identity[1][1]} vs {identity[0][0]}, adapter {identity[0][1]}): context "
                             "distillation takes targets from the same model under a context")
        if not context[3] and not _config(context).get("few_shot"):
            raise InputError(f"context run {self.context} has no system prompt and no few-shot turns: it is "
                             "no safety context")

    def _facts(self, run: str) -> dict:
        relation = self.con.sql(sql_text("distill_run_facts"), params={"run": run, "labeler": self.labeler})
        return dict(zip(relation.columns, relation.fetchall()[0]))

    def student_answers(self) -> pl.DataFrame:
        """The student's answer to each eligible prompt (distill_answers.sql)."""
        if self._facts(self.student)["labelled"] == 0:
            raise NotFoundError(f"run {self.student} has no labels from labeler '{self.labeler}'; "
                                f"run `refusaldata label --run {self.student}` first")
        return pl.from_arrow(self.con.sql(
            sql_text("distill_answers"), params={"run": self.student, "labeler": self.labeler}
        ).to_arrow_table())

    def _lookalike_answers(self, run: str, datasets: tuple[str, ...]) -> pl.DataFrame:
        """Run `run`'s compliant, on-topic answer to each look-alike of `datasets` (distill_lookalikes.sql)."""
        found = pl.from_arrow(self.con.sql(
            sql_text("distill_lookalikes"), params={"run": run, "labeler": self.labeler, "datasets": list(datasets)}
        ).to_arrow_table())
        return found.select("prompt_id", "prompt", "dataset", target=pl.col("response"), source_run=pl.lit(run),
                            source_sample_index=pl.col("sample_index").cast(pl.Int32))

    def boundary_answers(self, datasets: tuple[str, ...]) -> pl.DataFrame:
        """Each look-alike prompt of `datasets` with a compliant answer: the student's own where its
        labels call it compliance and it stays on topic, else the teacher's (a cross set's); a
        look-alike neither answered so is left out. The student's own answer comes first: it is
        what the student already says, so training on it moves the model least."""
        if not datasets:
            return _EMPTY_ANSWERS
        own = self._lookalike_answers(self.student, datasets)
        if self.teacher is None:
            return own
        taught = self._lookalike_answers(self.teacher, datasets).join(own, on="prompt_id", how="anti")
        return pl.concat([own, taught]).sort("prompt_id")

    def _refusals(self, run: str, role: str, mode: str) -> pl.DataFrame:
        """Every refusal of `run` on an eligible harmful prompt, with template and dominance."""
        facts = self._facts(run)
        if facts["labelled"] == 0:
            raise NotFoundError(f"{role} run {run} has no labels from labeler '{self.labeler}'; "
                                f"run `refusaldata label --run {run}` first")
        if facts["refusals"] == 0:
            advice = {("student", "sft"): "give --context-run RUN (the student under a safety context), "
                                          "use --mode cross --teacher RUN or --mode baseline",
                      ("student", "pairs"): "give --context-run RUN, --teacher RUN or --refusal-text TEXT",
                      ("context", "sft"): "try a stronger context (--few-shot refusal turns)",
                      ("context", "pairs"): "try a stronger context (--few-shot refusal turns)",
                      ("teacher", "sft"): "choose another teacher or use --mode baseline",
                      ("teacher", "pairs"): "choose another teacher or give --refusal-text TEXT"}[role, self.table]
            raise InputError(f"{role} run {run} has no refusals (labeler '{self.labeler}') to take "
                             f"{mode} targets from; {advice}")
        return pl.from_arrow(self.con.sql(
            sql_text("distill_refusals"),
            params={"run": run, "labeler": self.labeler, "dominant_share": self.dominant_share},
        ).to_arrow_table())

    def targets(self, examples: pl.DataFrame, mode: str, refusal_text: str | None
                ) -> tuple[pl.DataFrame, int, int]:
        """A refusal target per example prompt; also how many were own refusals and nearest ones."""
        if mode == "baseline":
            baseline = examples.select(
                "prompt_id", target=pl.lit(refusal_text or DEFAULT_REFUSAL),
                source_run=pl.lit(None, pl.String), template_id=pl.lit(None, pl.String),
                source_prompt_id=pl.lit(None, pl.String), source_sample_index=pl.lit(None, pl.Int32))
            return baseline, 0, 0
        run, role = ((self.teacher, "teacher") if mode == "cross" else (self.context, "context")
                     if self.context is not None else (self.student, "student"))
        refusals = self._refusals(run, role, mode)
        # Own refusal of the same prompt: any template for a teacher (cross) or a context run,
        # which answered the very prompt; for plain self, only one within the dominant
        # templates, the exact match the similarity search would find.
        own_candidates = refusals if role != "student" else refusals.filter(pl.col("dominant"))
        own = (examples.select("prompt_id")
               .join(own_candidates.unique("prompt_id", keep="first", maintain_order=True), on="prompt_id")
               .select("prompt_id", target=pl.col("response"), template_id=pl.col("template_id"),
                       source_prompt_id=pl.col("prompt_id"), source_sample_index=pl.col("sample_index")))
        rest = examples.join(own, on="prompt_id", how="anti")
        nearest = self._nearest(rest, refusals, run, role)
        targets = pl.concat([own, nearest], how="diagonal_relaxed").with_columns(
            source_run=pl.lit(run), source_sample_index=pl.col("source_sample_index").cast(pl.Int32))
        return targets.select(_TARGET_COLUMNS), own.height, nearest.height

    def _nearest(self, queries: pl.DataFrame, refusals: pl.DataFrame, run: str, role: str) -> pl.DataFrame:
        """For each query prompt, the dominant-template refusal whose prompt is most similar.

        Ties go to the pool's first entry (ordered by prompt_id), so results are stable.
        """
        if queries.is_empty():
            return pl.DataFrame(schema={k: v for k, v in _TARGET_SCHEMA.items() if k != "source_run"})
        pool = (refusals.filter(pl.col("dominant")).sort("prompt_id", "sample_index")
                .unique("prompt_id", keep="first", maintain_order=True))
        if pool.is_empty():
            hint = f"; run `refusaldata mine templates --run {run}` first" if self._facts(run)["templates"] == 0 else ""
            raise NotFoundError(f"{role} run {run} has no refusals in its dominant templates on harmful "
                                f"'{self.split}' prompts (labeler '{self.labeler}'){hint}")
        best = nearest_indices(queries["prompt"].to_list(), pool["prompt"].to_list())
        chosen = pool[best]
        return pl.DataFrame({
            "prompt_id": queries["prompt_id"],
            "target": chosen["response"],
            "template_id": chosen["template_id"],
            "source_prompt_id": chosen["prompt_id"],
            "source_sample_index": chosen["sample_index"].cast(pl.Int32),
        })

    def check_no_test_prompts(self, rows: pl.DataFrame) -> None:
        """Refuse to store a set that holds a test-split prompt or a target taken from one."""
        self.con.register("candidate_set", rows.select("prompt_id", "source_prompt_id").to_arrow())
        leaked = [row[0] for row in self.con.sql(sql_text("distill_leaks")).fetchall()]
        self.con.unregister("candidate_set")
        if leaked:
            raise AssertionError(f"test-split prompt(s) {', '.join(leaked[:5])} reached a training set")


def _config(row: tuple) -> dict:
    try:
        config = json.loads(row[4] or "{}")
    except ValueError:
        return {}
    return config if isinstance(config, dict) else {}


def nearest_indices(queries: list[str], choices: list[str]) -> np.ndarray:
    """Index into `choices` of the most similar text for each query (first one on ties).

    rapidfuzz token_sort_ratio (word order ignored, case and punctuation folded), computed
    by `process.cdist` in blocks so memory stays bounded for large sets.
    """
    block = max(1, _SIMILARITY_BLOCK_CELLS // max(1, len(choices)))
    best = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), block):
        scores = process.cdist(queries[start:start + block], choices, scorer=fuzz.token_sort_ratio,
                               processor=utils.default_process, dtype=np.float32, workers=-1)
        best[start:start + block] = scores.argmax(axis=1)
    return best


# -- reading and exporting -------------------------------------------------------------

SET_TABLES = ("sft", "pairs")


def list_sets(store: Store) -> pa.Table:
    """The built sets with row counts by table, mode, kind, student and source run, split."""
    con = store.connect(list(SET_TABLES))
    try:
        return con.sql(sql_text("distill_sets")).to_arrow_table()
    finally:
        con.close()


def load_set(store: Store, name: str, table: str = "sft") -> pa.Table:
    """Set `name` of table `sft` or `pairs` as stored, ordered by kind and prompt."""
    if table not in SET_TABLES:
        raise InputError(f"unknown set table '{table}' (choose sft or pairs)")
    con = store.connect([table])
    try:
        order = "kind, prompt_id" if table == "sft" else "prompt_id"
        data = con.sql(f"SELECT * FROM {table} WHERE set_name = $name ORDER BY {order}",
                       params={"name": name}).to_arrow_table()
    finally:
        con.close()
    if data.num_rows == 0:
        raise NotFoundError(f"no {table} set '{name}' in {store.root} (see `refusaldata sets`)")
    return data


def check_export_path(path: str | os.PathLike[str]) -> Path:
    """`path` as a Path when it names a .jsonl or .parquet file in an existing folder."""
    path = Path(path)
    if path.suffix.lower() not in (".jsonl", ".parquet"):
        raise InputError(f"{path}: export to a .jsonl or .parquet file")
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    return path


def export_set(store: Store, name: str, path: str | os.PathLike[str], table: str = "sft") -> int:
    """Write set `name` to `path` (.jsonl or .parquet) in TRL's conversational format.

    sft rows become {"messages": [user, assistant]}, pairs {"prompt": [user], "chosen":
    [assistant], "rejected": [assistant]}; both keep the provenance columns. The file is
    written atomically. Returns the number of rows.
    """
    path = check_export_path(path)
    load_set(store, name, table)
    suffix = path.suffix.lower()
    con = store.connect([table])
    try:
        frame = pl.from_arrow(con.sql(sql_text(f"distill_export_{table}"), params={"name": name}).to_arrow_table())
    finally:
        con.close()
    with io.atomic_path(path, InputError) as temp:
        if suffix == ".jsonl":
            frame.write_ndjson(temp)
        else:
            frame.write_parquet(temp)
    return frame.height
