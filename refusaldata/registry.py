"""The built-in prompt sets, declared as data in refusaldata/data/prompt_sets.json.

Each entry names a benchmark's upstream file format, which upstream column plays which
role in the prompts table, where its public copy lives and its licence. Adding a
benchmark is adding an entry; no loader code changes. `lookalike` marks sets whose benign
prompts are safe requests that look risky, made to teach where the line is: distillation
sets turn them into boundary rows (`distill`). `training_only` marks a set made to train
on, checked on import (`prompts.check_training_only`) so none of it is a test prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from refusaldata.errors import NotFoundError

REGISTRY_FILE = Path(__file__).resolve().parent / "data" / "prompt_sets.json"


@dataclass(frozen=True)
class HubDataset:
    """A data set on the Hugging Face hub, loaded with `datasets.load_dataset`."""

    dataset_id: str
    split: str
    config: str | None = None

    def describe(self) -> str:
        return f"hub dataset {self.dataset_id}" + (f" ({self.config})" if self.config else "")


@dataclass(frozen=True)
class RemoteFile:
    """A file at a public URL (a repository's raw file)."""

    url: str

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class PackageFile:
    """A data file shipped inside an installed Python package (found without importing it)."""

    package: str
    path: str

    def describe(self) -> str:
        return f"package {self.package}: {self.path}"


@dataclass(frozen=True)
class ColumnMap:
    """Which source column fills each prompts column; each role lists candidates, first present wins.

    Candidates cover the same data set's column names in its different public copies
    (e.g. the hub copy of Do-Not-Answer says `question`, the CSV copy `prompt`).
    harmful: a constant, unless `harmful_column` is given: then a row is harmful when
    that column's value is one of `harmful_values`.
    context_separator: a row with a context is asked as context, separator, text (the
    way HarmBench asks its contextual behaviours), so that is its text and its key.
    text_pattern: a regular expression whose first group is the request inside an upstream
    text that wraps it (ALERT's `### Instruction:` ... `### Response:`); a text it does
    not match is kept whole.
    attack: the column naming the attack an upstream prompt already carries.
    """

    text: tuple[str, ...]
    category: tuple[str, ...] = ()
    source_ref: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    attack: tuple[str, ...] = ()
    text_pattern: str | None = None
    harmful: bool = True
    harmful_column: str | None = None
    harmful_values: tuple[str, ...] = ()
    context_separator: str = "\n\n---\n\n"


@dataclass(frozen=True)
class Builtin:
    """A known prompt set: its upstream format, column roles and public location."""

    name: str
    description: str
    format: str
    columns: ColumnMap
    location: HubDataset | RemoteFile | PackageFile
    records_key: str | None = None
    license: str = ""
    lookalike: bool = False
    training_only: bool = False


def _location(entry: dict) -> HubDataset | RemoteFile | PackageFile:
    if "hub" in entry:
        return HubDataset(entry["hub"], split=entry["split"], config=entry.get("config"))
    if "url" in entry:
        return RemoteFile(entry["url"])
    return PackageFile(entry["package"], entry["path"])


def declared_columns(columns: ColumnMap) -> list[str]:
    """Every source column name the map can read, in role order."""
    names = [*columns.text, *columns.category, *columns.source_ref, *columns.context, *columns.attack]
    return names + ([columns.harmful_column] if columns.harmful_column else [])


def _columns(entry: dict) -> ColumnMap:
    lists = {role: tuple(entry[role]) for role in ("text", "category", "source_ref", "context", "attack",
                                                   "harmful_values") if role in entry}
    scalars = {role: entry[role] for role in ("harmful", "harmful_column", "text_pattern") if role in entry}
    return ColumnMap(**lists, **scalars)


def load_registry(path: Path = REGISTRY_FILE) -> dict[str, Builtin]:
    """The built-ins declared in `path`, by name, in file order."""
    entries = json.loads(path.read_text(encoding="utf-8"))
    return {entry["name"]: Builtin(
        name=entry["name"], description=entry["description"], format=entry["format"],
        columns=_columns(entry["columns"]), location=_location(entry["location"]),
        records_key=entry.get("records_key"), license=entry.get("license", ""),
        lookalike=bool(entry.get("lookalike", False)), training_only=bool(entry.get("training_only", False)))
        for entry in entries}


BUILTINS: dict[str, Builtin] = load_registry()


def lookalike_datasets() -> tuple[str, ...]:
    """The built-ins whose benign prompts are look-alikes (boundary rows of distillation sets)."""
    return tuple(name for name, known in BUILTINS.items() if known.lookalike)


def builtin(name: str) -> Builtin:
    """The built-in called `name`, or a NotFoundError listing the known ones."""
    try:
        return BUILTINS[name]
    except KeyError:
        raise NotFoundError(f"unknown dataset '{name}'; built-ins: {', '.join(BUILTINS)} "
                            f"(or give --path FILE --text-column COL --dataset NAME)") from None
