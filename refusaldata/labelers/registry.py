"""The labelers by name, and what every labeler shares: reading a run's (prompt, response)
rows and storing its verdicts as one labels partition (labeler, run)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pyarrow as pa

from refusaldata.errors import InputError, NotFoundError
from refusaldata.queries import sql_text
from refusaldata.runs import now
from refusaldata.schemas import LABELS
from refusaldata.store import Store

RULES = "rules"
DEFAULT_LABELER = "ngram"
"""The default of `refusaldata label`: the shipped learned model, reading prompt and response
(refusaldata/labelers/ngram.py)."""
HYBRID = "hybrid"
"""The earlier default, kept by name and meaning: the rules where they are sure, a cue model elsewhere."""
UNSAFE_LABELER = "unsafe"
"""The shipped unsafe-content judge (refusaldata/labelers/unsafe.py)."""
HUMAN = "human"
"""People's verdicts (`refusaldata review import`)."""
BEST = "best"
"""Not a labeler but a reading: the human verdict where one exists, else the default labeler's
(the best_labels view, sql/best_labels.sql)."""
VERDICTS = ("compliance", "refusal", "partial")
"""A partial refusal declines part of a request and answers part; refusal = verdict != compliance."""

Labeler = Callable[..., dict[str, int]]

# Labelers by name, or by family for names like "learned:NAME", imported on first use: (module, function).
PLUGINS: dict[str, tuple[str, str]] = {
    RULES: ("refusaldata.labelers.rules", "label_with_rules"),
    DEFAULT_LABELER: ("refusaldata.labelers.ngram", "label_with_ngram"),
    HYBRID: ("refusaldata.labelers.hybrid", "label_with_hybrid"),
    "judge": ("refusaldata.labelers.generative", "label_with_judge"),
    "learned": ("refusaldata.labelers.learned", "label_with_learned"),
    UNSAFE_LABELER: ("refusaldata.labelers.unsafe", "label_with_unsafe"),
}


def refuse_options(labeler: str, options: dict) -> None:
    """Labelers that take no options say so in one line, naming the ones given."""
    if options:
        raise InputError(f"the {labeler} labeler takes no options (got {', '.join(sorted(options))})")


def labeler_function(name: str) -> Labeler:
    """The function behind labeler `name` (exact name first, then its family before ':')."""
    if name == BEST:
        raise InputError(f"'{BEST}' is how to read labels (a human verdict where one exists, else "
                         f"{DEFAULT_LABELER}'s), not a labeler: label with {DEFAULT_LABELER}")
    if name == HUMAN:
        raise InputError(f"'{HUMAN}' labels come from people: `refusaldata review export` then `review import`")
    family = name if name in PLUGINS else name.split(":", 1)[0]
    if family in PLUGINS:
        module_name, function_name = PLUGINS[family]
        try:
            return getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError):
            raise NotFoundError(f"labeler '{name}' is not available ({module_name}.{function_name} "
                                "is missing)") from None
    known = ", ".join(sorted([*PLUGINS, "learned:NAME"]))
    raise NotFoundError(f"no labeler '{name}' (known: {known})")


_DESCRIPTIONS = {
    RULES: "the SQL lexicon alone, sql/refusal_lexicon.csv",
    DEFAULT_LABELER: "the shipped learned model over the prompt and the response's words; ~670 responses/s",
    HYBRID: "the rules where they are sure, the shipped cue model elsewhere; ~6,600 responses/s",
    "learned": "a labeler trained with `refusaldata judge train`",
    "judge": "a generative safety classifier",
    UNSAFE_LABELER: "the shipped unsafe-content judge: does the answer give what a harmful request asked for",
}


def describe_labeler(name: str) -> str:
    """`name` with what it is, as `refusaldata label` prints it."""
    what = _DESCRIPTIONS.get(name) or _DESCRIPTIONS.get(name.split(":", 1)[0])
    return f"{name} ({what})" if what else name


def run_inputs(store: Store, run_id: str) -> pa.Table:
    """Rows of run_id, prompt_id, sample_index, prompt, response: a run's answered responses."""
    con = store.connect(["responses", "prompts"])
    try:
        return con.sql(sql_text("judge_inputs"), params={"run_id": run_id}).to_arrow_table()
    finally:
        con.close()


def write_verdicts(store: Store, run_id: str, labeler: str, rows: pa.Table, *,
                   unsafe: list[bool | None] | None = None, score: list[float | None] | None = None,
                   categories: list[str | None] | None = None, raw: list[str | None] | None = None,
                   refusal: list[bool | None] | None = None, markers: list[str | None] | None = None,
                   openings: list[str | None] | None = None, verdicts: list[str | None] | None = None) -> int:
    """Replace the labels partition (labeler, run_id) with one verdict per input row.

    A run without answered responses gets its partition emptied (stale verdicts removed).
    Each column is one value per row, null where not given: unsafe-content labelers pass
    `unsafe`, a refusal labeler `refusal` with its verdicts, markers and openings.
    """
    count = rows.num_rows
    given = {"score": score, "refusal": refusal, "marker": markers, "opening": openings, "unsafe": unsafe,
             "categories": categories, "raw": raw, "verdict": verdicts}
    # Columns not given are left out: the store fills a table's absent nullable columns with nulls.
    labels = pa.table({
        "run_id": rows.column("run_id"),
        "prompt_id": rows.column("prompt_id"),
        "sample_index": rows.column("sample_index"),
        "labeler": pa.array([labeler] * count, pa.string()),
        **{name: pa.array(values, LABELS.schema.field(name).type) for name, values in given.items()
           if values is not None},
        "created_at": pa.array([now()] * count, LABELS.schema.field("created_at").type),
    })
    return store.replace("labels", labels, partition={"labeler": labeler, "run_id": run_id},
                         where=f"labels of {labeler} on {run_id}")
