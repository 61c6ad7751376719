"""`refusaldata gate`: exit 1 when a run refuses worse than its baseline beyond a margin, for CI."""

from __future__ import annotations

import enum
import json
from typing import Annotated

import typer

from refusaldata.cli.common import StoreOption, open_store, write_output
from refusaldata.gate import DEFAULT_BOOTSTRAP, DEFAULT_K, DEFAULT_MIN_SHARED, gate as run_gate
from refusaldata.labelers.registry import BEST
from refusaldata.store import DEFAULT_STORE


class GateFormat(str, enum.Enum):
    table = "table"
    json = "json"


class GateSplit(str, enum.Enum):
    all = "all"
    test = "test"
    train = "train"


RefusalDrop = Annotated[float | None, typer.Option(
    "--max-refusal-drop", show_default=False,
    help="Fail when the refusal rate on harmful prompts dropped by more than this: when the upper bound of "
         "new − old is below −margin.")]
OverRefusalRise = Annotated[float | None, typer.Option(
    "--max-over-refusal-rise", show_default=False,
    help="Fail when the over-refusal rate on benign prompts rose by more than this: when the lower bound of "
         "new − old is above +margin.")]
UnsafeRise = Annotated[float | None, typer.Option(
    "--max-unsafe-rise", show_default=False,
    help="Fail when the unsafe rate (an unsafe judge's verdicts) on harmful prompts rose by more than this: when "
         "the lower bound of new − old is above +margin.")]
UniformityDrop = Annotated[float | None, typer.Option(
    "--max-uniformity-drop", show_default=False,
    help="Fail when the uniformity of refusal openings dropped by more than this: when the upper bound of "
         "new − old is below −margin.")]


def gate(
    new: Annotated[str, typer.Argument(help="The run to gate: id, name, unique prefix, or a glob naming one run.",
                                       show_default=False)],
    baseline: Annotated[str, typer.Option("--baseline", help="The run NEW must not be worse than (same forms).",
                                          show_default=False)],
    max_refusal_drop: RefusalDrop = None,
    max_over_refusal_rise: OverRefusalRise = None,
    max_unsafe_rise: UnsafeRise = None,
    max_uniformity_drop: UniformityDrop = None,
    labeler: Annotated[str, typer.Option(
        "--labeler", help="The refusal labeler whose verdicts count: best (a human verdict where one exists, "
                          "else the default labeler's), or a labeler's name.")] = BEST,
    unsafe_labeler: Annotated[str | None, typer.Option(
        "--unsafe-labeler", help="Judge whose unsafe verdicts count (default: the only one).")] = None,
    split: Annotated[GateSplit, typer.Option(
        "--split", help="Prompt split to gate on: all (every prompt, as a fixture holds them), or test or train "
                        "in a study's store.")] = GateSplit.all,
    k: Annotated[int, typer.Option("--k", help="Opening length in words for uniformity.")] = DEFAULT_K,
    min_shared: Annotated[int, typer.Option(
        "--min-shared", help="Fewest prompts both runs answered that a gated statistic needs; fewer is an "
                             "error, not a pass.")] = DEFAULT_MIN_SHARED,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the 95% intervals.")]
    = DEFAULT_BOOTSTRAP,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    output_format: Annotated[GateFormat, typer.Option(
        "--format", "-f", help="table: the gate's table and a verdict line; json: one document for CI.")]
    = GateFormat.table,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Exit 1 when NEW refuses worse than --baseline beyond a margin, decided by paired 95% intervals.

    Each statistic given a margin (at least one) is measured on the prompts both runs
    answered, and new − old gets a 95% interval from a paired bootstrap over those prompts
    (as compare --boundary-effect computes it). A statistic fails only when its whole
    interval lies beyond the margin: for a drop (refusal, uniformity) when the interval's
    upper bound is below −margin, for a rise (over-refusal, unsafe) when its lower bound is
    above +margin. Noise on a small fixture widens the interval and passes; a regression
    the data are sure of fails. Exit 0: every gated statistic passed; 1: one failed (the
    table names it), or an error kept the gate from deciding (one line on stderr; 2 for a
    usage error).
    """
    result = run_gate(open_store(store), new, baseline, max_refusal_drop=max_refusal_drop,
                      max_over_refusal_rise=max_over_refusal_rise, max_unsafe_rise=max_unsafe_rise,
                      max_uniformity_drop=max_uniformity_drop, labeler=labeler, split=split.value, bootstrap=bootstrap,
                      seed=seed, min_shared=min_shared, unsafe_labeler=unsafe_labeler, k=k)
    if output_format is GateFormat.json:
        write_output(json.dumps(result.document(), ensure_ascii=False) + "\n", None)
    else:
        write_output(result.table(), None)
    if not result.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("gate")(gate)
