"""`refusaldata responses import`: outputs of other tools become runs (backend 'import')."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from refusaldata import imports
from refusaldata.cli.common import StoreOption, echo, open_store, refuse
from refusaldata.store import DEFAULT_STORE

app = typer.Typer(help="Responses: import existing outputs of other tools as runs.", no_args_is_help=True)


class SourceFormat(str, enum.Enum):
    jbb = "jbb"
    harmbench = "harmbench"
    csv = "csv"
    jsonl = "jsonl"
    uncensorbench = "uncensorbench"
    inspect = "inspect"
    garak = "garak"
    hf = "hf"


def import_responses(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(
        help="A file; a JailbreakBench artifact folder (--input-format jbb), a folder of Inspect logs "
             "(--input-format inspect), a datasets save_to_disk folder or hub id (--input-format hf); or "
             "'uncensorbench'.", show_default=False)],
    fmt: Annotated[SourceFormat, typer.Option(
        "--input-format", "--format",
        help="What SOURCE holds. jbb: JailbreakBench artifacts; harmbench: completions JSON; csv/jsonl: one "
             "prompt and response per row; uncensorbench: the package's reference answers; inspect: Inspect eval "
             "logs (.eval, .json), one run per log; garak: a garak report.jsonl, one run per probe family; hf: a "
             "Hugging Face datasets folder or hub id, one prompt and response per row.")],
    model: Annotated[str | None, typer.Option(
        "--model", help="Model name for the run (default: from the source, else the file name).")] = None,
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="Data set for prompts not yet stored (default: named for the format).")] = None,
    prompt_column: Annotated[str, typer.Option(
        "--prompt-column", help="csv/jsonl/hf: the prompt column.")] = "prompt",
    response_column: Annotated[str, typer.Option(
        "--response-column", help="csv/jsonl/hf: the response column.")] = "response",
    split: Annotated[str | None, typer.Option(
        "--split", help="hf: the split to import, when the dataset has several (train, test, ...).",
        show_default=False)] = None,
    model_column: Annotated[str | None, typer.Option(
        "--model-column", help="csv/jsonl/hf: the column naming each record's model; one run per model, each "
                               "named import-MODEL (hf-MODEL).", show_default=False)] = None,
    harmful_column: Annotated[str | None, typer.Option(
        "--harmful-column", help="csv/jsonl/hf: the column saying whether each prompt is harmful (true/false, "
                                 "1/0, yes/no, harmful/benign); prompts not yet stored go in as harmful or "
                                 "benign (default: harmful).", show_default=False)] = None,
    category_column: Annotated[str | None, typer.Option(
        "--category-column", help="csv/jsonl/hf: the column holding each prompt's category.",
        show_default=False)] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="The run's name, for a source of one run (default: named for the format and model).",
        show_default=False)] = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Import responses as runs; prompts link by text, missing ones are added; re-imports add nothing."""
    if fmt not in (SourceFormat.csv, SourceFormat.jsonl, SourceFormat.hf):
        refuse(ctx, ("prompt_column", "response_column", "model_column", "harmful_column", "category_column"),
               "applies only to --input-format csv, jsonl or hf")
    if fmt != SourceFormat.hf:
        refuse(ctx, ("split",), "applies only to --input-format hf")
    summaries = imports.import_responses(open_store(store), source, fmt.value, model, dataset, prompt_column,
                                         response_column, split=split, model_column=model_column,
                                         harmful_column=harmful_column, category_column=category_column, name=name)
    for summary in summaries:
        skipped = f", {summary.skipped_empty} empty skipped" if summary.skipped_empty else ""
        skipped += f", {summary.skipped_failed} failed skipped" if summary.skipped_failed else ""
        benign = f" ({summary.new_benign} benign)" if summary.new_benign else ""
        echo(f"{summary.name} ({summary.run_id}): {summary.new_responses} new of {summary.responses} "
             f"responses{skipped}, {summary.new_prompts} new prompts{benign}")
    if len(summaries) > 1:
        echo(f"imported {len(summaries)} runs: {sum(s.new_responses for s in summaries)} new of "
             f"{sum(s.responses for s in summaries)} responses, "
             f"{sum(s.new_prompts for s in summaries)} new prompts")


app.command("import")(import_responses)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="responses")
