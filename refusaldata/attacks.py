"""Adversarial prompt variants: attacks declared as data, applied to a stored prompt set.

An attack is one row of refusaldata/data/attacks.jsonl, or of a user's attack file in any
tabular format: a `name`, a `template` that holds `{prompt}`, its `origin`, and optionally
a `transform` (one of TRANSFORMS) that rewrites the request before it fills the template:
base64, leetspeak or a payload split across two variables. Every transform is exactly
invertible, so an attacked text always carries its request (`Attack.recover`).

`augment` writes one variant per (source prompt, attack) as a new data set. A variant is
keyed by its own text, remembers its unattacked prompt in `source_ref` and the attack in
`attack`, and keeps its source's split: a test prompt's variants stay in test.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from refusaldata.errors import InputError, NotFoundError
from refusaldata.io import check_plain_column, read_records
from refusaldata.keys import prompt_id
from refusaldata.prompts import check_dataset_name, check_merge
from refusaldata.queries import sql_text
from refusaldata.runs import now
from refusaldata.store import Store

ATTACKS_FILE = Path(__file__).resolve().parent / "data" / "attacks.jsonl"
PLACEHOLDER = "{prompt}"
# Every attack known, for `--attack all`; never a name itself.
ALL = "all"
# Attacks applied to an attacked prompt are named by joining their names with this.
COMPOSE = "+"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


# -- transforms ---------------------------------------------------------------------------


def _base64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _unbase64(text: str) -> str:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InputError(f"not a base64-encoded request: {exc}") from None


# Swapping each letter with its digit makes leetspeak its own inverse: digits already in
# the request become letters and come back as digits, so nothing is lost.
_LEET = str.maketrans({**dict(zip("aeiost", "431057")), **dict(zip("431057", "aeiost"))})


def _leetspeak(text: str) -> str:
    return text.translate(_LEET)


def _split_payload(text: str) -> str:
    """`a = "<first half>"` and `b = "<second half>"` (JSON strings), cut at the space nearest the middle."""
    middle = len(text) // 2
    spaces = [index for index, char in enumerate(text) if char.isspace()]
    cut = min(spaces, key=lambda index: abs(index - middle)) if spaces else middle
    return f"a = {json.dumps(text[:cut], ensure_ascii=False)}\nb = {json.dumps(text[cut:], ensure_ascii=False)}"


_PARTS = re.compile(r'\Aa = ("(?:[^"\\]|\\.)*")\nb = ("(?:[^"\\]|\\.)*")\Z', re.DOTALL)


def _join_payload(text: str) -> str:
    found = _PARTS.match(text)
    if found is None:
        raise InputError("not a payload split into `a = \"...\"` and `b = \"...\"`")
    return json.loads(found.group(1)) + json.loads(found.group(2))


@dataclass(frozen=True)
class Transform:
    """A rewrite of the request before it fills a template, with its exact inverse."""

    apply: Callable[[str], str]
    invert: Callable[[str], str]


TRANSFORMS: dict[str, Transform] = {
    "base64": Transform(_base64, _unbase64),  # the request's UTF-8 bytes in base64
    "leetspeak": Transform(_leetspeak, _leetspeak),  # a<->4, e<->3, i<->1, o<->0, s<->5, t<->7
    "split": Transform(_split_payload, _join_payload),  # the request cut in two, as strings a and b
}


# -- attacks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    """A named attack: `template` with `{prompt}`, an optional transform of the request, its origin."""

    name: str
    template: str
    origin: str = ""
    transform: str | None = None

    def apply(self, request: str) -> str:
        """The attacked prompt: the template with `{prompt}` filled by the (transformed) request."""
        payload = TRANSFORMS[self.transform].apply(request) if self.transform else request
        return self.template.replace(PLACEHOLDER, payload)

    def recover(self, attacked: str) -> str:
        """The request an attacked prompt carries: the template taken off, the transform undone."""
        parts = [re.escape(part) for part in self.template.split(PLACEHOLDER)]
        # A template may hold {prompt} more than once: later copies must repeat the first.
        pattern = parts[0] + "(?P<payload>.*)" + "".join(f"{part}(?P=payload)" for part in parts[1:-1]) + parts[-1]
        found = re.fullmatch(pattern, attacked, re.DOTALL)
        if found is None:
            raise InputError(f"the text is not an attack '{self.name}' of any request")
        payload = found.group("payload")
        return TRANSFORMS[self.transform].invert(payload) if self.transform else payload


def _field(row: dict, name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def load_attacks(path: Path, fmt: str | None = None) -> dict[str, Attack]:
    """The attacks of a tabular file (columns name, template, origin, transform), checked row by row."""
    frame = read_records(path, fmt)
    missing = [column for column in ("name", "template") if column not in frame.columns]
    if missing:
        raise InputError(f"{path}: no column {', '.join(repr(c) for c in missing)} "
                         f"(an attack file has name, template, origin and optionally transform)")
    for column in ("name", "template", "origin", "transform"):
        if column in frame.columns:
            check_plain_column(frame, column, path)
    attacks: dict[str, Attack] = {}
    for number, row in enumerate(frame.iter_rows(named=True), start=1):
        where = f"{path}: row {number}"
        name, template, transform = _field(row, "name"), _field(row, "template"), _field(row, "transform")
        if name is None or not _NAME.fullmatch(name) or name == ALL:
            raise InputError(f"{where}: attack name {name!r} must be letters, digits, '-', '_' or '.' "
                             f"(and not '{ALL}')")
        if name in attacks:
            raise InputError(f"{where}: attack '{name}' is declared twice")
        if template is None or PLACEHOLDER not in template:
            raise InputError(f"{where}: the template of attack '{name}' has no {PLACEHOLDER}")
        if transform is not None and transform not in TRANSFORMS:
            raise InputError(f"{where}: attack '{name}' has unknown transform '{transform}' "
                             f"(one of {', '.join(TRANSFORMS)})")
        attacks[name] = Attack(name, template, _field(row, "origin") or "", transform)
    return attacks


@cache
def builtin_attacks() -> dict[str, Attack]:
    """The attacks refusaldata ships (refusaldata/data/attacks.jsonl)."""
    return load_attacks(ATTACKS_FILE, "jsonl")


def known_attacks(attack_file: Path | None = None) -> dict[str, Attack]:
    """The built-in attacks, plus those of `attack_file` (which may not reuse a built-in name)."""
    known = dict(builtin_attacks())
    if attack_file is not None:
        for name, attack in load_attacks(attack_file).items():
            if name in known:
                raise InputError(f"{attack_file}: attack '{name}' is a built-in attack; give yours another name")
            known[name] = attack
    return known


def select_attacks(names: Sequence[str], known: dict[str, Attack]) -> list[Attack]:
    """The attacks named (`all`: every known one), in the order given, each once."""
    if not names:
        raise InputError(f"name at least one attack ({', '.join(known)}, or {ALL})")
    if ALL in names:
        return list(known.values())
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InputError(f"unknown attack '{unknown[0]}'; known: {', '.join(known)} "
                         "(or add yours with --attack-file FILE)")
    return [known[name] for name in dict.fromkeys(names)]


# -- augment ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentSummary:
    """What one augment did: source prompts, attacks, variants written and how many were new."""

    dataset: str
    source: str
    attacks: tuple[str, ...]
    sources: int
    variants: int
    new: int
    train: int
    test: int

    @property
    def already_stored(self) -> int:
        return self.variants - self.new


def _source_prompts(store: Store, source: str) -> pl.DataFrame:
    con = store.connect(["prompts"])
    try:
        stored = con.sql(sql_text("generate_datasets"), params={"datasets": [source]}).fetchall()
        if not stored[0][1]:
            known = stored[0][2]
            raise NotFoundError(f"data set '{source}' has no prompts in {store.root} to attack"
                                + (f" (data sets: {known})" if known else "; import it first"))
        return pl.from_arrow(con.sql(sql_text("augment_sources"), params={"source": source}).to_arrow_table())
    finally:
        con.close()


def variants(sources: pl.DataFrame, attacks: Sequence[Attack], dataset: str) -> pa.Table:
    """Rows for the prompts table: every source prompt under every attack, keyed by its own text."""
    texts = sources["text"].to_list()
    frames = []
    for attack in attacks:
        attacked = [attack.apply(text) for text in texts]
        frames.append(sources.select(
            prompt_id=pl.Series([prompt_id(text) for text in attacked], dtype=pl.String),
            dataset=pl.lit(dataset),
            category=pl.col("category"),
            text=pl.Series(attacked, dtype=pl.String),
            harmful=pl.col("harmful"),
            split=pl.col("split"),
            source_ref=pl.col("root"),
            context=pl.lit(None, dtype=pl.String),
            imported_at=pl.lit(now()),
            attack=pl.when(pl.col("attack").is_null()).then(pl.lit(attack.name))
            .otherwise(pl.concat_str(pl.col("attack"), pl.lit(COMPOSE + attack.name))),
        ))
    rows = pl.concat(frames).unique("prompt_id", keep="first", maintain_order=True)
    return rows.to_arrow()


def augment(store: Store, source: str, attack_names: Sequence[str], dataset: str | None = None,
            attack_file: Path | None = None, append: bool = False) -> AugmentSummary:
    """Store the attacked variants of data set `source` as data set `dataset` (default SOURCE-attacked).

    Idempotent: a variant's key is its text, so re-running adds nothing. Variants of other
    attacks go into an existing data set only with `append` (`prompts.check_merge`).
    """
    attacks = select_attacks(attack_names, known_attacks(attack_file))
    dataset = f"{source}-attacked" if dataset is None else dataset
    check_dataset_name(dataset)
    if dataset == source:
        raise InputError(f"--dataset {dataset}: the variants need a data set of their own, not the source")
    sources = _source_prompts(store, source)
    table = variants(sources, attacks, dataset)
    check_merge(store, table, dataset, append, "write them to a new --dataset NAME, or ")
    new = store.append("prompts", table, where=f"variants of {source}")
    test = pc.sum(pc.equal(table.column("split"), "test")).as_py() or 0
    return AugmentSummary(dataset=dataset, source=source, attacks=tuple(a.name for a in attacks),
                          sources=sources.height, variants=table.num_rows, new=new,
                          train=table.num_rows - test, test=test)
