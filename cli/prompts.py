"""`refusaldata prompts import|augment|list`: load prompt sets, attack them, see what the store holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from refusaldata import attacks as prompt_attacks
from refusaldata import prompts as prompt_sets
from refusaldata.cli.common import (
    FormatOption, OutputFormat, OutputOption, StoreOption, echo, emit, open_store, refuse,
)
from refusaldata.errors import InputError
from refusaldata.registry import BUILTINS
from refusaldata.store import DEFAULT_STORE

app = typer.Typer(help="Prompt sets: import built-in benchmarks or your own files, attack them, list what is stored.",
                  no_args_is_help=True)


def import_prompts(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(
        help=f"A built-in set ({', '.join(BUILTINS)}); omit with --text-column.",
        show_default=False)] = None,
    path: Annotated[Path | None, typer.Option(
        "--path", help="A local copy: the built-in's upstream format, or any .csv/.jsonl/.json/.parquet.")] = None,
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="Data set name for a generic file (default: NAME).")] = None,
    text_column: Annotated[str | None, typer.Option(
        "--text-column", help="Generic file: the column holding the prompt text.")] = None,
    category_column: Annotated[str | None, typer.Option(
        "--category-column", help="Generic file: the column holding the category.")] = None,
    harmful: Annotated[bool, typer.Option(
        "--harmful/--benign", help="Generic file: harmful requests or benign controls.")] = True,
    test_fraction: Annotated[float, typer.Option(
        "--test-fraction", help="Share of prompts in the test split (decided by prompt_id).")] = (
        prompt_sets.DEFAULT_TEST_FRACTION),
    append: Annotated[bool, typer.Option(
        "--append", help="Add prompts to a data set that already holds others (refused otherwise).")] = False,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Import a prompt set; re-importing adds nothing that is already stored.

    Prompts the data set does not hold yet go into an existing data set only with --append.
    """
    store_ = open_store(store)
    if text_column is not None:
        if path is None:
            raise InputError("--text-column needs --path FILE")
        target = dataset if dataset is not None else name
        if target is None:
            raise InputError("a generic file needs --dataset NAME")
        summary = prompt_sets.import_file(store_, path, target, text_column, category_column, harmful,
                                          test_fraction, append=append)
    elif name is None:
        raise InputError(f"give a built-in NAME ({', '.join(BUILTINS)}) "
                         f"or --path FILE --text-column COL --dataset NAME")
    else:
        if dataset is not None or category_column is not None:
            raise InputError("--dataset and --category-column apply to generic files (with --text-column)")
        refuse(ctx, ("harmful",), f"applies to generic files (with --text-column); the built-in {name} says "
                                  "which of its prompts are harmful")
        summary = prompt_sets.import_builtin(store_, name, path, test_fraction, append=append)
    duplicates = summary.rows_read - summary.distinct
    note = f", {duplicates} duplicate text(s) merged" if duplicates else ""
    echo(f"imported {summary.distinct} prompts into {summary.dataset} ({summary.already_stored} already "
         f"stored{note}): {summary.train} train, {summary.test} test; "
         f"{summary.harmful} harmful, {summary.benign} benign")


def augment(
    source: Annotated[str, typer.Argument(help="The stored data set whose prompts are attacked.", show_default=False)],
    attack: Annotated[str, typer.Option(
        "--attack", help=f"Comma-separated attacks: {', '.join(prompt_attacks.builtin_attacks())}, those of "
                         f"--attack-file, or '{prompt_attacks.ALL}'.", show_default=False)],
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="The new data set of variants (default: SOURCE-attacked).")] = None,
    attack_file: Annotated[Path | None, typer.Option(
        "--attack-file", help="More attacks: a .csv/.jsonl/.json/.parquet file with columns name, template "
                              "(holding {prompt}), origin and optionally transform (base64, leetspeak, "
                              "split).")] = None,
    append: Annotated[bool, typer.Option(
        "--append", help="Add variants to a data set that already holds others (refused otherwise).")] = False,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Write the attacked variants of SOURCE's prompts as a new data set; re-running adds nothing.

    Each variant keeps its source prompt (source_ref), the attack's name (attack) and the
    source's split, so a test prompt's variants stay in test.
    """
    names = [name.strip() for name in attack.split(",") if name.strip()]
    summary = prompt_attacks.augment(open_store(store), source, names, dataset, attack_file, append=append)
    echo(f"attacked {summary.sources} prompts of {summary.source} with {len(summary.attacks)} attack(s) into "
         f"{summary.dataset}: {summary.variants} variants ({summary.already_stored} already stored): "
         f"{summary.train} train, {summary.test} test")


def list_prompts(
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="Show this data set's categories instead of one row per data set.")] = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Prompt sets in the store with counts by harmful/benign, split and category."""
    emit(prompt_sets.list_prompts(open_store(store), dataset), fmt, output,
         title=f"prompts in {dataset}" if dataset else "prompt sets")


app.command("import")(import_prompts)
app.command("augment")(augment)
app.command("list")(list_prompts)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="prompts")
