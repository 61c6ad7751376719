"""`refusaldata mine ...`: the mining queries (rates, openings, uniformity, templates, correlation)."""

from __future__ import annotations

import enum
import json
from typing import Annotated

import pyarrow as pa
import pyarrow.compute as pc
import typer

from refusaldata import mine as mining
from refusaldata.cli.common import (
    FormatOption, OutputFormat, OutputOption, StoreOption, emit, open_store, output_format, render_table, write_output,
)
from refusaldata.labelers.registry import BEST
from refusaldata.store import DEFAULT_STORE

mine_app = typer.Typer(help="Mine the labels: refusal rates, openings, uniformity, templates.", no_args_is_help=True)

RunOption = Annotated[list[str] | None, typer.Option(
    "--run", help="Run id, name or id prefix (repeatable; default every labelled run).")]
LabelerOption = Annotated[str, typer.Option(
    "--labeler", help="Which labels to read: best (a human verdict where one exists, else the default ngram's, "
                      "else hybrid's, else the rules'), or a labeler's name (labels.labeler).")]
KOption = Annotated[int, typer.Option("--k", help="Words per opening.")]
MinRefusalsOption = Annotated[int, typer.Option(
    "--min-refusals", help="Runs with fewer refusals to harmful prompts are listed apart: their uniformity rests on "
                           "too few refusals to trust, and the correlation leaves them out.")]


class Grouping(str, enum.Enum):
    dataset = "dataset"
    category = "category"
    attack = "attack"


@mine_app.command("rates")
def rates(
    by: Annotated[Grouping | None, typer.Option(
        "--by", help="Also split each run by prompt dataset, category or attack (with the paired difference "
                     "to the unattacked source prompts).")] = None,
    run: RunOption = None,
    labeler: LabelerOption = BEST,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Refusal rate on harmful prompts, over-refusal on benign ones (and unsafe rate from judges), Wilson 95% CIs."""
    emit(mining.rates(open_store(store), run, by.value if by else "run", labeler), fmt, output, title="refusal rates")


@mine_app.command("openings")
def openings(
    k: KOption = 5,
    top: Annotated[int, typer.Option("--top", help="Openings shown per run.")] = 10,
    run: RunOption = None,
    labeler: LabelerOption = BEST,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """The most frequent refusal openings (first k normalized words) per run, with shares."""
    emit(mining.openings(open_store(store), run, k, top, labeler), fmt, output, title="refusal openings")


@mine_app.command("uniformity")
def uniformity(
    k: KOption = 5,
    run: RunOption = None,
    labeler: LabelerOption = BEST,
    min_refusals: MinRefusalsOption = mining.MIN_REFUSALS,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """How uniform each run's refusals are: top shares, 1 - H/ln(n), distinct-n, mean similarity.

    Runs with fewer than --min-refusals refusals to harmful prompts are listed apart, after the
    others (csv, json and parquet mark them in enough_refusals).
    """
    table = mining.uniformity(open_store(store), run, k, labeler, min_refusals=min_refusals)
    if output_format(fmt, output) is not OutputFormat.table:
        emit(table, fmt, output)
        return
    enough = table.filter(table.column("enough_refusals")).drop_columns(["enough_refusals"])
    few = table.filter(pc.invert(table.column("enough_refusals"))).drop_columns(["enough_refusals"])
    parts = [render_table(enough, "refusal uniformity")]
    if few.num_rows:
        parts.append(render_table(few, f"runs with fewer than {min_refusals} refusals: uniformity not to be trusted "
                                     "(--min-refusals)"))
    write_output("\n".join(parts), output)


@mine_app.command("templates")
def templates(
    k: KOption = 5,
    threshold: Annotated[float, typer.Option("--threshold", help="rapidfuzz ratio (0-100) to join a template.")] = 80.0,
    run: RunOption = None,
    labeler: LabelerOption = BEST,
    show: Annotated[bool, typer.Option(
        "--show", help="Print every template, not one summary row per run (csv, json and parquet always do).")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Cluster refusal openings into templates (medoid, support) and store them in `templates`.

    The terminal gets one row per run (templates, refusals they cover, the largest
    template); --show, or any other format, gives every template.
    """
    found = mining.templates(open_store(store), run, k, threshold, labeler)
    if fmt is OutputFormat.table and not show:
        emit(template_summary(found), fmt, output,
             title=f"refusal templates stored (k {k}, labeler {labeler}; --show lists them all)")
    else:
        emit(found, fmt, output, title="refusal templates")


def template_summary(found: pa.Table) -> pa.Table:
    """One row per run: how many templates, the refusals they cover, and the largest one."""
    rows: dict[str, dict] = {}
    for template in found.sort_by([("run_id", "ascending"), ("support", "descending")]).to_pylist():
        row = rows.setdefault(template["run_id"], {
            "run_id": template["run_id"], "templates": 0, "covered_refusals": 0, "largest": template["medoid"],
            "largest_share": template["share"]})
        row["templates"] += 1
        row["covered_refusals"] += template["support"] or 0
    schema = pa.schema([("run_id", pa.string()), ("templates", pa.int64()), ("covered_refusals", pa.int64()),
                        ("largest", pa.string()), ("largest_share", pa.float64())])
    return pa.Table.from_pylist(list(rows.values()), schema=schema)


@mine_app.command("correlation")
def correlation(
    k: KOption = 5,
    run: RunOption = None,
    labeler: LabelerOption = BEST,
    min_refusals: MinRefusalsOption = mining.MIN_REFUSALS,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Spearman correlation across runs between refusal uniformity and refusal rate.

    Each measure's correlation comes with the runs it rests on and a two-sided permutation
    p-value (10,000 seeded permutations). Runs with fewer than --min-refusals refusals are left
    out, and named under the table.
    """
    table = mining.correlation(open_store(store), run, k, labeler, min_refusals=min_refusals)
    left_out = json.loads(table.schema.metadata[b"left_out"])
    if output_format(fmt, output) is not OutputFormat.table:
        emit(table, fmt, output)
        return
    text = render_table(table, f"uniformity vs refusal rate (runs with at least {min_refusals} refusals)")
    if left_out:
        few = pa.table({"run": [name for name, _ in left_out], "refusals": [count for _, count in left_out]})
        text += "\n" + render_table(few, f"left out: fewer than {min_refusals} refusals (--min-refusals)")
    write_output(text, output)


def register(app: typer.Typer) -> None:
    app.add_typer(mine_app, name="mine")
