"""`refusaldata judge train|list`: learned unsafe-content or refusal labelers kept in the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer

from refusaldata.cli.common import FormatOption, OutputFormat, OutputOption, StoreOption, choice, echo, emit, open_store
from refusaldata.labelers.features import FEATURE_SETS
from refusaldata.labelers.learned_refusal import TARGETS
from refusaldata.store import DEFAULT_STORE

Target = choice("Target", TARGETS)
FeatureSet = choice("FeatureSet", FEATURE_SETS)

judge_app = typer.Typer(help="Learned unsafe-content or refusal labelers (MiniLM embeddings + a small classifier).",
                        no_args_is_help=True)


@judge_app.command("train")
def train(
    name: Annotated[str, typer.Argument(help="Name to save the labeler under (used as --labeler learned:NAME).")],
    data: Annotated[Path | None, typer.Option("--data", help="Labelled CSV, JSONL or Parquet file.")] = None,
    from_store: Annotated[str | None, typer.Option(
        "--from-store", help="Train on the store's labels instead of a file: human (the verdicts people stored "
                             "with `refusaldata review import`; --target refusal).")] = None,
    text_columns: Annotated[str | None, typer.Option(
        "--text-columns", help="With --data: RESPONSE or PROMPT,RESPONSE, the column(s) holding the texts.")] = None,
    label_column: Annotated[str | None, typer.Option(
        "--label-column", help="With --data: the column with 1/0 (true/false) = the target (unsafe, or refusal).")
    ] = None,
    target: Annotated[Target, typer.Option(
        "--target", help="What the labels say: unsafe (content) or refusal; `label` writes that column.")
    ] = "unsafe",
    features: Annotated[FeatureSet | None, typer.Option(
        "--features", help="Feature set of an unsafe labeler (default minilm; minilm-head adds the opening, "
                           "for data that includes the target domain).")
    ] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Train anew a judge of this name that has another target or source of labels "
                          "(else refused).")] = False,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Train a learned labeler and save its weights and card under <store>/judges/NAME/."""
    from refusaldata.errors import InputError
    from refusaldata.labelers.classifier import TrainSettings
    from refusaldata.labelers.features import DEFAULT_FEATURE_SET
    from refusaldata.labelers.learned import file_data, store_data
    from refusaldata.labelers.learned import train as train_learned

    if features is not None and target.value != "unsafe":
        raise InputError(f"--features applies to --target unsafe, not '{target.value}'")
    opened = open_store(store)
    if (data is None) == (from_store is None):
        raise InputError("give the training data with --data FILE or --from-store human (one of the two)")
    if from_store is not None:
        if target.value != "refusal":
            raise InputError(f"--from-store {from_store} holds refusal verdicts: use --target refusal")
        if text_columns or label_column:
            raise InputError("--text-columns and --label-column go with --data, not --from-store")
        rows = store_data(opened, from_store)
    else:
        if not text_columns or not label_column:
            raise InputError("--data needs --text-columns and --label-column")
        rows = file_data(data, [c.strip() for c in text_columns.split(",") if c.strip()], label_column)
    settings = TrainSettings(feature_set=features.value if features else DEFAULT_FEATURE_SET)
    card = train_learned(opened, name, rows, settings, target=target.value, replace=replace)
    validation = card["metrics"]["validation"]
    echo(f"trained '{name}' on {card['data']['rows']} rows (target {card['target']}); "
         f"threshold {card['threshold']:.3f}; "
         f"validation ({validation['n']} rows) accuracy {validation['accuracy']:.3f} "
         f"precision {validation['precision']:.3f} recall {validation['recall']:.3f}")


@judge_app.command("list")
def list_judges(
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """The learned labelers in the store, with their validation metrics."""
    from refusaldata.labelers.cards import CARD_FILE, judges_dir, known_judges

    opened = open_store(store)
    rows = []
    for name in known_judges(opened):
        card = json.loads((judges_dir(opened) / name / CARD_FILE).read_text(encoding="utf-8"))
        validation = card["metrics"]["validation"]
        rows.append({"name": name, "target": card.get("target", "unsafe"), "features": card["features"],
                     "rows": card["data"]["rows"],
                     "threshold": card["threshold"], "val_accuracy": validation["accuracy"],
                     "val_precision": validation["precision"], "val_recall": validation["recall"],
                     "data": card["data"].get("path")
                     or f"{card['data']['labeler']} labels of {card['data']['store']}"})
    schema = pa.schema([("name", pa.string()), ("target", pa.string()), ("features", pa.string()),
                        ("rows", pa.int64()),
                        ("threshold", pa.float64()), ("val_accuracy", pa.float64()),
                        ("val_precision", pa.float64()), ("val_recall", pa.float64()), ("data", pa.string())])
    emit(pa.Table.from_pylist(rows, schema=schema), fmt, output, title="learned judges")


def register(app: typer.Typer) -> None:
    app.add_typer(judge_app, name="judge")
