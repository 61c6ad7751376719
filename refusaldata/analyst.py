"""Analyst access: ad-hoc SQL over the store and a summary of its tables."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from refusaldata.errors import InputError, StoreError, sql_error_text
from refusaldata.queries import sql_text
from refusaldata.schemas import TABLES
from refusaldata.store import Store, empty_view_sql

# Statement types that only read, as DuckDB classes each parsed statement; any other
# (COPY, CREATE, INSERT, ATTACH, EXPORT, INSTALL, LOAD, CALL, a type this release does not
# name) needs allow_write. DuckDB classes IMPORT DATABASE and COPY FROM DATABASE as PRAGMA,
# so a PRAGMA is kept from writing by the connection itself (`_read_only`), not by its type.
_READ_ONLY = {
    duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN, duckdb.StatementType.PRAGMA,
    duckdb.StatementType.SET, duckdb.StatementType.VARIABLE_SET,
}
_READ_ONLY_HINT = "without --write, sql reads only the store's own files"


def _type_name(statement) -> str:
    try:
        return statement.type.name
    except ValueError:  # a statement type the Python binding does not name (UPDATE EXTENSIONS)
        return "unknown"


def _check_read_only(statement, depth: int = 0) -> None:
    """Refuse a statement whose type writes; an EXPLAIN is judged by the statement it wraps
    (EXPLAIN ANALYZE runs it), as DuckDB parses that one."""
    name = _type_name(statement)
    if name == "EXPLAIN" and depth < 4:
        for inner in _explained(statement.query):
            _check_read_only(inner, depth + 1)
        return
    if name == "EXPLAIN" or name not in {kind.name for kind in _READ_ONLY}:
        raise InputError(f"SQL: {name} statements need --write (the store opens read-only)")


def _explained(query: str) -> list:
    """The statement after `EXPLAIN [ANALYZE] [(options)]`, found by DuckDB's tokenizer (so a
    comment anywhere is skipped) and parsed by DuckDB. A parenthesis after EXPLAIN may open
    options or the statement itself: every reading that parses is returned, to be checked."""
    tokens = [position for position, kind in duckdb.tokenize(query) if kind != duckdb.token_type.comment]

    def word(index: int) -> str:
        return query[tokens[index]:].split(None, 1)[0].split("(", 1)[0].upper() if index < len(tokens) else ""

    index = 1 if word(0) == "EXPLAIN" else len(tokens)
    if word(index) in ("ANALYZE", "ANALYSE"):
        index += 1
    starts = [index]
    if index < len(tokens) and query[tokens[index]] == "(":
        depth = 0
        while index < len(tokens):
            char = query[tokens[index]]
            depth += (char == "(") - (char == ")")
            index += 1
            if depth == 0:
                break
        starts.append(index)
    found = []
    for start in starts:
        if start < len(tokens):
            try:
                inner = duckdb.extract_statements(query[tokens[start]:])
            except duckdb.Error:
                continue
            if len(inner) == 1:
                found.extend(inner)
    if not found:
        raise InputError("SQL: cannot tell which statement this EXPLAIN runs; run it with --write")
    return found


def _read_only(con: duckdb.DuckDBPyConnection) -> None:
    """Make `con` unable to touch any file but the store's own, for reading, then lock it.

    With external access off, DuckDB refuses every file (COPY TO, EXPORT, ATTACH, IMPORT
    DATABASE's schema.sql, INSTALL/LOAD, profiling output) except the exact files the
    store's views read (`allowed_paths`), and the locked configuration cannot be changed
    back. A statement that would write one of those files is refused by its type first.
    """
    allowed = []
    for name in TABLES:
        files = con.execute("SELECT getvariable(?)", [f"refusaldata_files_{name}"]).fetchone()[0]
        allowed.extend(files or [])
    con.execute("SET allowed_paths = ?", [allowed])
    con.execute("SET autoinstall_known_extensions = false; SET autoload_known_extensions = false; "
                "SET enable_external_access = false; SET lock_configuration = true")


def _sql_error(exc: duckdb.Error, allow_write: bool) -> InputError:
    message = sql_error_text(str(exc))
    if isinstance(exc, duckdb.PermissionException) and not allow_write:
        message += f" ({_READ_ONLY_HINT})"
    return InputError(f"SQL: {message}")


def run_sql(store: Store, query: str, allow_write: bool = False) -> pa.Table:
    """Run one or more statements over the store's views; return the last one's result.

    Without `allow_write`, every statement must be of a type that only reads, and they run
    on a connection that can read the store's files and nothing else (`_read_only`).
    """
    try:
        statements = duckdb.extract_statements(query)
        if not allow_write:
            for statement in statements:
                _check_read_only(statement)
    except duckdb.Error as exc:
        raise _sql_error(exc, allow_write) from None
    if not statements:
        raise InputError("SQL: no statement given")
    con = analyst_connection(store)
    try:
        if not allow_write:
            _read_only(con)
        result = None
        for statement in statements:
            result = con.sql(statement.query)
        if result is None:
            return pa.table({"result": pa.array(["ok"])})
        return result.to_arrow_table()
    except duckdb.Error as exc:
        raise _sql_error(exc, allow_write) from None
    finally:
        con.close()


# The macro files `refusaldata sql` and the DuckDB CLI set-up define beside the views (the
# store's own connection brings best_labels.sql and best_templates.sql).
ANALYST_MACROS = ("normalize", "mine_macros", "attack_macros")


def analyst_connection(store: Store) -> duckdb.DuckDBPyConnection:
    """The store's views with every macro the SQL reference lists: what `refusaldata sql` queries."""
    con = store.connect()
    try:
        for name in ANALYST_MACROS:
            con.execute(sql_text(name))
    except BaseException:
        con.close()
        raise
    return con


def macro_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The macros defined on `con` (scalar and table), by name."""
    return [name for (name,) in con.execute(
        "SELECT DISTINCT function_name FROM duckdb_functions() "
        "WHERE function_type IN ('macro', 'table_macro') AND NOT internal ORDER BY 1").fetchall()]


def duckdb_setup(store: Store) -> str:
    """SQL that gives the plain DuckDB CLI the store's views and macros, as `refusaldata sql` has them.

    Views are sql/views.sql's, reading the store's files by its naming rules as they are when
    queried; a table with no file yet is a typed empty view instead (DuckDB refuses a view
    over a pattern that matches no file), so run the set-up again once it has some.
    """
    views = {}
    for statement in duckdb.extract_statements(sql_text("views")):
        query = "\n".join(line for line in statement.query.strip().splitlines() if not line.startswith("--"))
        if query.upper().startswith("CREATE OR REPLACE VIEW"):
            views[query.split()[4]] = query
    literal = "'" + str(store.root).replace("'", "''") + "'"  # the path as an SQL string literal
    shown = " ".join(str(store.root).splitlines())  # a line break in the path cannot end the comment
    lines = [f"-- refusaldata: the store {shown} as DuckDB views and macros "
             "(refusaldata sql --print-setup).",
             "-- Tables empty now are typed empty views: print the set-up again once they hold files.",
             f"SET VARIABLE store = {literal};"]
    for name, spec in TABLES.items():
        lines.append((views[name] if store.files(name) else empty_view_sql(spec)) + ";")
    for name in ("best_labels", "best_templates", *ANALYST_MACROS):
        lines.append(sql_text(name).strip())
    return "\n".join(lines) + "\n"


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
    from refusaldata.labelers.registry import HUMAN

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
