"""Analyst access: ad-hoc SQL over the store and a summary of its tables."""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa

from refusaldata.errors import InputError, StoreError, shorten_quoted
from refusaldata.queries import sql_text
from refusaldata.schemas import TABLES
from refusaldata.store import Store

# Statement types that only read; anything else needs allow_write.
_READ_ONLY = {
    duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN, duckdb.StatementType.PRAGMA,
    duckdb.StatementType.SET, duckdb.StatementType.VARIABLE_SET,
}
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s*(?:\([^)]*\)\s*)?(?:ANALY[SZ]E\s+)?", re.IGNORECASE)
# PRAGMAs that run other statements or write files despite the statement type.
_WRITING_PRAGMA = re.compile(r"^\s*PRAGMA\s+(?:import_database|export_database)\b", re.IGNORECASE)


def _check_read_only(statement) -> None:
    """Refuse a statement that writes, looking inside EXPLAIN (EXPLAIN ANALYZE runs it)."""
    if statement.type == duckdb.StatementType.EXPLAIN:
        for inner in duckdb.extract_statements(_EXPLAIN.sub("", statement.query, count=1)):
            _check_read_only(inner)
        return
    if statement.type not in _READ_ONLY or (
            statement.type == duckdb.StatementType.PRAGMA and _WRITING_PRAGMA.match(statement.query)):
        raise InputError(f"SQL: {statement.type.name} statements need --write (the store opens read-only)")


def run_sql(store: Store, query: str, allow_write: bool = False) -> pa.Table:
    """Run one or more statements over the store's views; return the last one's result."""
    try:
        statements = duckdb.extract_statements(query)
        if not allow_write:
            for statement in statements:
                _check_read_only(statement)
    except duckdb.Error as exc:
        raise InputError(f"SQL: {shorten_quoted(str(exc).strip().splitlines()[0])}") from None
    if not statements:
        raise InputError("SQL: no statement given")
    con = store.connect()
    try:
        if not allow_write:
            # SET/PRAGMA could otherwise point profiling or logging output at any file.
            con.execute("SET lock_configuration = true")
        result = None
        for statement in statements:
            result = con.sql(statement.query)
        if result is None:
            return pa.table({"result": pa.array(["ok"])})
        return result.to_arrow_table()
    except duckdb.Error as exc:
        raise InputError(f"SQL: {shorten_quoted(str(exc).strip().splitlines()[0])}") from None
    finally:
        con.close()


def table_summary(store: Store) -> pa.Table:
    """One row per table: rows, files, bytes on disk, rows whose key is stored twice, folder."""
    con = store.connect()
    try:
        rows = []
        for name, spec in TABLES.items():
            files = store.files(name)
            rows.append({
                "table": name,
                "rows": con.execute(f"SELECT count(*) FROM {name}").fetchone()[0],
                "files": len(files),
                "bytes": sum(store.file_size(f) for f in files),
                "duplicate_keys": store.duplicate_keys(name, con),
                "location": str(store.root / name),
                "description": spec.description,
            })
    finally:
        con.close()
    return pa.Table.from_pylist(rows)


def _steps_text(steps: list[int], shown: int = 5) -> str:
    """Step numbers as ranges, `shown` at most: 3, 5-7, 9 (and 2 more ranges)."""
    ranges: list[list[int]] = []
    for step in steps:
        if ranges and step == ranges[-1][1] + 1:
            ranges[-1][1] = step
        else:
            ranges.append([step, step])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges[:shown])
    return text + (f" (and {len(ranges) - shown} more ranges)" if len(ranges) > shown else "")


def _metric_gaps(store: Store, con: duckdb.DuckDBPyConnection) -> list[dict]:
    """A row per adapter whose steps 1..N lack metrics rows (sql/doctor_metric_gaps.sql)."""
    found = []
    for adapter_id, finished, steps, missing in con.execute(sql_text("doctor_metric_gaps")).fetchall():
        state = f"finished, {steps} steps" if finished else f"not finished, highest stored step {steps}"
        found.append({"table": "train_metrics", "problem": "missing metrics", "path": str(store.root / "train_metrics"),
                      "detail": f"adapter {adapter_id} ({state}): {len(missing)} step(s) without a metrics row: "
                                f"{_steps_text(missing)}"})
    return found


def _orphan_human_labels(store: Store, con: duckdb.DuckDBPyConnection) -> list[dict]:
    """A row per run with human labels whose response is gone (sql/doctor_orphan_labels.sql)."""
    from refusaldata.label import HUMAN

    return [{"table": "labels", "problem": "labels without a response", "path": str(store.root / "labels"),
             "detail": f"run {run_id}: {count} {HUMAN} label(s) of responses no longer in responses "
                       f"(e.g. prompt {prompt})"}
            for run_id, count, prompt in con.execute(sql_text("doctor_orphan_labels"), {"labeler": HUMAN}).fetchall()]


def store_problems(store: Store) -> pa.Table:
    """What `refusaldata doctor` reports, one row each (none: a healthy store): every file in
    a table's folder that is not the store's, every file the schema check refuses (the
    store will not read such a table), every readable table with keys stored twice, and what
    the crash tests check: training steps without metrics (below a checkpoint, or of a finished
    adapter) and human labels whose response is gone."""
    rows, readable = [], []
    for name in TABLES:
        foreign = store.foreign_files(name)
        rows.extend({"table": name, "problem": "foreign file", "path": str(found.path), "detail": found.reason}
                    for found in foreign)
        if foreign:
            continue
        try:
            store.files(name)
        except StoreError as exc:
            rows.append({"table": name, "problem": "unreadable file", "path": str(store.root / name),
                         "detail": str(exc)})
            continue
        readable.append(name)
    con = store.connect(readable)
    try:
        for name in readable:
            duplicates = store.duplicate_keys(name, con)
            if duplicates:
                rows.append({"table": name, "problem": "duplicate keys", "path": str(store.root / name),
                             "detail": f"{duplicates} row(s) repeat the key ({', '.join(TABLES[name].key)}) of "
                                       "another; derived tables store each key once"})
        if {"adapters", "train_metrics"} <= set(readable):
            rows.extend(_metric_gaps(store, con))
        if {"labels", "responses"} <= set(readable):
            rows.extend(_orphan_human_labels(store, con))
    finally:
        con.close()
    return pa.Table.from_pylist(rows, schema=pa.schema([("table", pa.string()), ("problem", pa.string()),
                                                         ("path", pa.string()), ("detail", pa.string())]))
