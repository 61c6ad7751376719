"""`refusaldata compare`: runs side by side with bootstrap intervals and differences."""

from __future__ import annotations

import enum
import textwrap
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer

from refusaldata.cli.common import (
    FormatOption, OutputFormat, OutputOption, StoreOption, choice, emit, open_store, refuse, render_table,
    write_output,
)
from refusaldata.errors import NotFoundError
from refusaldata.evaluate import (
    NO_BOUNDARY_SUFFIX, PLAIN, STATISTIC_LABELS, STUDY, as_text, attack_cells, boundary_cells, boundary_effects,
    boundary_sentence, compare_attacks, compare_runs, comparison_settings, format_comparison,
)
from refusaldata.capability import SUITES
from refusaldata.generate import SPLITS
from refusaldata.labelers.registry import BEST
from refusaldata.store import DEFAULT_STORE

LabelerOption = Annotated[str, typer.Option(
    "--labeler", help="The refusal labeler whose verdicts count: best (a human verdict where one exists, "
                      "else the default ngram's, else hybrid's, else the rules'), or a labeler's name.")]
KOption = Annotated[int, typer.Option("--k", help="Opening length in words for uniformity.")]
BootstrapOption = Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the 95% intervals.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")]
Split = choice("Split", SPLITS)
SplitOption = Annotated[Split | None, typer.Option(
    "--split", help="Prompt split to evaluate on ('all' for every split). Default: all for a corpus (imported runs, "
                    "or runs generated without an adapter), test for a study (adapters against a base).",
    show_default=False)]
ReferenceOption = Annotated[str | None, typer.Option(
    "--reference", help="The run every other run's differences (Δ) are to. Default: the first run of a study; a "
                        "corpus has none.", show_default=False)]
UnsafeLabelerOption = Annotated[
    str | None, typer.Option("--unsafe-labeler", help="Judge whose unsafe verdicts count (default: the only one).")]
CapabilitySuite = choice("CapabilitySuite", SUITES)
CapabilitySuiteOption = Annotated[CapabilitySuite, typer.Option(
    "--capability-suite", help="Whose `evaluate capability` results fill the capability columns.")]


# Terminal tables of comparisons fit this many columns.
TERMINAL_WIDTH = 100
# The comparison's estimate columns, each shown beside its Δ column when there is one.
STATISTIC_NAMES = (*STATISTIC_LABELS.values(), "capability")


class CompareGrouping(str, enum.Enum):
    attack = "attack"


def compare(
    ctx: typer.Context,
    runs: Annotated[list[str], typer.Argument(
        help="Runs: names, ids, unique prefixes or globs in quotes ('import-*'); in a study the first is the "
             "reference.")],
    labeler: LabelerOption = BEST,
    k: KOption = 5,
    bootstrap: BootstrapOption = 1000,
    seed: SeedOption = 0,
    split: SplitOption = None,
    reference: ReferenceOption = None,
    unsafe_labeler: UnsafeLabelerOption = None,
    by: Annotated[CompareGrouping | None, typer.Option(
        "--by", help="attack: refusal rate per run and attack, with the paired difference to the unattacked "
                     "source prompts (the --k and --unsafe-labeler statistics are not computed).")] = None,
    capability_suite: CapabilitySuiteOption = "embedded",
    boundary_effect: Annotated[bool, typer.Option(
        "--boundary-effect", help=f"What boundary rows do: for each method M whose run without them (named "
                                  f"M{NO_BOUNDARY_SUFFIX}) is given too, refusal, over-refusal and capability "
                                  "with and without, and the difference with a paired bootstrap interval over "
                                  "the prompts both runs answered.")] = False,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Refusal rate, over-refusal, uniformity, top-1 share, templates (unsafe rate, capability) per run.

    Each with a seeded 95% bootstrap interval over prompts. Runs with an adapter make a study:
    the test split counts and each run gets its difference to the first (paired where both
    runs answered the same prompts). Imported runs, or runs without an adapter, make a corpus:
    every prompt counts, and differences appear only against a --reference run. A run too
    small for a statistic shows its n and —. Capability is the share of
    `evaluate capability` prompts whose every instruction was followed; KL to base the
    adapter's mean per-token divergence from its base there. With --boundary-effect: one
    row per method M given beside its run without boundary rows (M-no-boundary) instead.
    The table format prints each value with its interval in one cell; csv, json and parquet
    give every number its column.
    """
    split = split.value if split is not None else None
    if boundary_effect or by is CompareGrouping.attack:
        refuse(ctx, ("reference",), "applies to the comparison table only")
    if boundary_effect:
        refuse(ctx, ("by", "unsafe_labeler", "k"), "does not apply to --boundary-effect")
        _compare_boundary(runs, labeler, bootstrap, seed, split or "test", capability_suite.value, fmt, output, store)
        return
    if by is CompareGrouping.attack:
        refuse(ctx, ("unsafe_labeler", "k", "capability_suite"),
               "does not apply to --by attack (it compares refusal rates)")
        _compare_attacks(runs, labeler, bootstrap, seed, split, fmt, output, store)
        return
    comparison = compare_runs(open_store(store), runs, labeler=labeler, k=k, bootstrap=bootstrap, seed=seed,
                              split=split, unsafe_labeler=unsafe_labeler, capability_suite=capability_suite.value,
                              reference=reference)
    if fmt is OutputFormat.table:
        write_output(comparison_text(comparison, comparison_title(comparison)), output)
    else:
        emit(comparison, fmt, output)


def comparison_title(comparison: pa.Table) -> str:
    """What the table compares, and how: corpus or study, split, labeler, intervals, reference."""
    settings = comparison_settings(comparison)
    split = "every prompt" if settings["split"] == "all" else f"{settings['split']} split"
    reference = settings.get("reference")
    against = ""
    if reference:
        name = comparison.column("method")[comparison.column("run_id").to_pylist().index(reference)].as_py()
        against = f"; Δ: minus {name}"
    return (f"{settings.get('mode', STUDY)} of {comparison.num_rows} run(s): {split}, labeler {settings['labeler']}, "
            f"95% bootstrap CIs (B={settings['bootstrap']}, seed {settings['seed']}){against}")


def comparison_text(comparison: pa.Table, title: str) -> str:
    """The comparison for a terminal of TERMINAL_WIDTH columns: one table per two statistics,
    each estimate beside its difference to the reference run (when there is one), then the
    counts; csv and json give every column in one row per run."""
    cells = format_comparison(comparison)
    names = cells.column_names
    statistics = [name for name in names if name in STATISTIC_NAMES]
    shown = {*statistics, *(f"Δ {name}" for name in statistics)}
    groups = [[c for name in statistics[start:start + 2] for c in (name, f"Δ {name}") if c in names]
              for start in range(0, len(statistics), 2)]
    groups.append([name for name in names[1:] if name not in shown])  # model, counts, templates
    return "\n".join(render_table(cells.select([names[0], *group]), title if index == 0 else None, TERMINAL_WIDTH)
                     for index, group in enumerate(groups))


def _compare_attacks(runs: list[str], labeler: str, bootstrap: int, seed: int, split: str | None,
                     fmt: OutputFormat, output: Path | None, store: Path) -> None:
    comparison = compare_attacks(open_store(store), runs, labeler=labeler, bootstrap=bootstrap, seed=seed,
                                 split=split)
    split = comparison_settings(comparison)["split"]
    shown = "every prompt" if split == "all" else f"{split} split"
    if all(attack == PLAIN for attack in comparison.column("attack").to_pylist()):
        raise NotFoundError(f"no response of these runs to an attacked harmful prompt of split '{split}' is "
                            f"labelled by '{labeler}'; make attacked prompts with `refusaldata prompts augment "
                            "SOURCE --attack NAME`, generate on them and label the answers")
    if fmt is OutputFormat.table:
        emit(as_text(attack_cells(comparison)), fmt, output, width=TERMINAL_WIDTH,
             title=f"refusal under attack: {shown}, labeler {labeler}, 95% bootstrap CIs (B={bootstrap}, "
                   f"seed {seed}); Δ: attacked minus its unattacked source, paired")
    else:
        emit(comparison, fmt, output)


def _compare_boundary(runs: list[str], labeler: str, bootstrap: int, seed: int, split: str, suite: str,
                      fmt: OutputFormat, output: Path | None, store: Path) -> None:
    effects = boundary_effects(open_store(store), runs, labeler=labeler, bootstrap=bootstrap, seed=seed, split=split,
                               capability_suite=suite)
    if not effects.num_rows:
        raise NotFoundError(f"no run named M{NO_BOUNDARY_SUFFIX} is given beside its method M; give both, e.g. "
                            f"`refusaldata compare dpo dpo{NO_BOUNDARY_SUFFIX} --boundary-effect`")
    if fmt is not OutputFormat.table:
        emit(effects, fmt, output)
        return
    cells = as_text(boundary_cells(effects))
    groups = [["harmful prompts", "refusal with", "refusal without", "Δ refusal"],
              ["benign prompts", "over-refusal with", "over-refusal without", "Δ over-refusal"],
              [name for name in cells.column_names if name == "Δ capability"]]
    title = (f"boundary rows: {split} split, labeler {labeler}, 95% paired bootstrap CIs (B={bootstrap}, seed "
             f"{seed}) over the prompts both runs answered; Δ: with minus without")
    tables = [render_table(cells.select(["method", *group]), title if index == 0 else None, TERMINAL_WIDTH)
              for index, group in enumerate(groups) if group]
    sentence = textwrap.fill(boundary_sentence(effects), TERMINAL_WIDTH, break_on_hyphens=False)
    write_output("\n".join(tables) + sentence + "\n", output)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
