"""The Parquet store: every table write goes through here.

Layout (see DESIGN.md): ``<root>/<table>/<key>=<value>/.../part-<uuid>.parquet`` for
append tables and ``.../data.parquet`` for replace tables. Guarantees:

- atomic writes: a temp file (a dot-name no reader lists) in the same folder, fsync,
  then ``os.replace``; a crash loses at most the file in flight;
- idempotent appends: under an exclusive lock per partition, rows whose key is already
  stored are skipped (an anti-join in DuckDB), so two writers never store a key twice;
- checked reads: each file's schema is compared with the declared one before any query
  touches it, with a one-line error naming the file and the column.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from refusaldata import io
from refusaldata.errors import NotFoundError, SchemaError, StoreError
from refusaldata.schemas import TABLES, TableSpec

DEFAULT_STORE = Path("parquet_cache")
STORE_ENV = "REFUSALDATA_STORE"
_REPLACE_FILE = "data.parquet"


def default_store_path() -> Path:
    """`REFUSALDATA_STORE` if set, else ./parquet_cache."""
    return Path(os.environ.get(STORE_ENV) or DEFAULT_STORE)


def _equivalent(actual: pa.DataType, declared: pa.DataType) -> bool:
    """Types equal up to string/large_string and list/large_list (writers differ)."""
    if actual.equals(declared):
        return True
    if pa.types.is_string(declared) or pa.types.is_large_string(declared):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_list(declared) or pa.types.is_large_list(declared):
        return (pa.types.is_list(actual) or pa.types.is_large_list(actual)) and _equivalent(
            actual.value_type, declared.value_type)
    if pa.types.is_timestamp(declared):
        return pa.types.is_timestamp(actual) and actual.unit == declared.unit and bool(actual.tz) == bool(declared.tz)
    return False


def check_schema(spec: TableSpec, schema: pa.Schema, where: str) -> None:
    """Raise SchemaError naming `where` and the first column that does not match.

    A nullable column the file lacks is not an error: files written before the column was
    declared read it as NULL (schema evolution). A missing required column, an extra
    column or a column of another type is.
    """
    for field in spec.schema:
        index = schema.get_field_index(field.name)
        if index < 0:
            if field.nullable:
                continue
            raise SchemaError(f"{where}: missing column '{field.name}' of table '{spec.name}'")
        actual = schema.field(index).type
        if not _equivalent(actual, field.type):
            raise SchemaError(
                f"{where}: column '{field.name}' has type {actual}, table '{spec.name}' declares {field.type}")
    extra = [name for name in schema.names if spec.schema.get_field_index(name) < 0]
    if extra:
        raise SchemaError(f"{where}: unexpected column '{extra[0]}' for table '{spec.name}'")


def _present(spec: TableSpec, names: list[str], where: str) -> list[bool]:
    """Which declared columns `names` holds, in schema order; an extra column, or a missing
    required one, is a SchemaError naming it (an absent nullable column is filled with nulls)."""
    extra = [name for name in names if spec.schema.get_field_index(name) < 0]
    if extra:
        raise SchemaError(f"{where}: unexpected column '{extra[0]}' for table '{spec.name}'")
    for field in spec.schema:
        if field.name not in names and not field.nullable:
            raise SchemaError(f"{where}: missing column '{field.name}' of table '{spec.name}'")
    return [field.name in names for field in spec.schema]


def conform(spec: TableSpec, data: pa.Table, where: str = "input") -> pa.Table:
    """Cast `data` to the declared schema: order columns, add absent nullable ones as nulls.

    Missing required columns, extra columns, uncastable values and nulls in required
    columns are SchemaErrors naming the column.
    """
    columns = []
    for field, present in zip(spec.schema, _present(spec, data.column_names, where), strict=True):
        if present:
            try:
                column = data.column(field.name).cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(f"{where}: column '{field.name}' cannot be read as {field.type}: {exc}") from None
        else:
            column = pa.nulls(data.num_rows, field.type)
        if not field.nullable and column.null_count:
            raise SchemaError(f"{where}: column '{field.name}' has {column.null_count} null value(s)")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=spec.schema)


@functools.cache
def _sql_types(spec: TableSpec) -> tuple[duckdb.DuckDBPyType, ...]:
    """The DuckDB type of each declared column, as DuckDB itself maps the Arrow schema."""
    con = duckdb.connect()
    try:
        return tuple(con.from_arrow(spec.schema.empty_table()).types)
    finally:
        con.close()


def _check_written(spec: TableSpec, path: Path, partition: dict[str, str], where: str) -> int:
    """Rows of a file just written for `partition`: no null in a required column, none outside it."""
    required = [field.name for field in spec.schema if not field.nullable]
    rows = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1 << 17, columns=list(dict.fromkeys(
            [*required, *partition]))):
        for name in required:
            if batch.column(name).null_count:
                raise SchemaError(f"{where}: column '{name}' has {batch.column(name).null_count} null value(s)")
        for column, value in partition.items():
            if not pc.all(pc.equal(batch.column(column), value)).as_py():
                raise SchemaError(f"{where}: a row has {column} other than '{value}'")
        rows += batch.num_rows
    return rows


def _partition_folder(spec: TableSpec, values: dict[str, str]) -> Path:
    parts = [f"{folder}={quote(str(values[column]), safe='')}" for folder, column in spec.partitions]
    return Path(spec.name, *parts)


class Store:
    """A store rooted at a directory; cheap to create, opens nothing until used."""

    def __init__(self, root: str | os.PathLike[str] | None = None):
        self.root = Path(root) if root is not None else default_store_path()
        self._checked: dict[Path, tuple[tuple[int, int], frozenset[str]]] = {}

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- files -------------------------------------------------------------------------

    def files(self, table: str) -> list[Path]:
        """The table's visible Parquet files, each checked against the declared schema."""
        spec = TABLES[table]
        folder = self.root / table
        if not folder.is_dir():
            return []
        found = sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith("."))
        for path in found:
            self._check_file(spec, path)
        return found

    def _check_file(self, spec: TableSpec, path: Path) -> frozenset[str]:
        """Check one file against the declared schema (cached by size and mtime); its column names."""
        try:
            stat = path.stat()
        except OSError as exc:
            raise StoreError(f"{path}: cannot be read: {exc.strerror}") from None
        stamp = (stat.st_size, stat.st_mtime_ns)
        known = self._checked.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SchemaError(f"{path}: not a readable Parquet file (truncated or foreign?): {exc}") from None
        check_schema(spec, schema, str(path))
        self._checked[path] = (stamp, frozenset(schema.names))
        return self._checked[path][1]

    # -- reading -------------------------------------------------------------------------

    def connect(self, tables: list[str] | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per table over the store's files.

        Empty tables are typed empty views, so queries never fail for want of files.
        """
        con = duckdb.connect()
        for name in tables or list(TABLES):
            self.attach_view(con, name)
        return con

    def attach_view(self, con: duckdb.DuckDBPyConnection, table: str) -> None:
        """(Re)define the view `table` in `con` over the table's current files."""
        spec = TABLES[table]
        files = self.files(table)
        if files:
            # Files carry their partition columns, so the path is never read as data
            # (hive_partitioning = false); a nullable column no file has yet reads as NULL.
            present = frozenset().union(*(self._check_file(spec, path) for path in files))
            columns = ", ".join(f'"{name}"' if name in present else f'NULL::{sql_type} AS "{name}"'
                                for name, sql_type in zip(spec.columns, _sql_types(spec), strict=True))
            variable = f"refusaldata_files_{table}"
            con.execute(f"SET VARIABLE {variable} = ?", [[str(p) for p in files]])
            con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT {columns} FROM read_parquet("
                        f"getvariable('{variable}'), union_by_name = true, hive_partitioning = false)")
        else:
            columns = ", ".join(f'"{name}"' for name in spec.columns)
            con.register(f"refusaldata_empty_{table}", spec.schema.empty_table())
            con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT {columns} FROM refusaldata_empty_{table}")

    def read(self, table: str) -> pa.Table:
        """The whole table as Arrow (for small tables; query large ones with `connect`)."""
        con = self.connect([table])
        try:
            return con.sql(f"SELECT * FROM {table}").to_arrow_table()
        finally:
            con.close()

    def count(self, table: str) -> int:
        con = self.connect([table])
        try:
            return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        finally:
            con.close()

    def resolve_run(self, ref: str) -> str:
        """A run id from a run id, a run name, or a unique prefix of a run id."""
        con = self.connect(["runs"])
        try:
            rows = con.execute(
                "SELECT run_id FROM runs WHERE run_id = $ref OR name = $ref "
                "UNION SELECT run_id FROM runs WHERE starts_with(run_id, $ref) "
                "AND NOT EXISTS (SELECT 1 FROM runs WHERE run_id = $ref OR name = $ref)",
                {"ref": ref}).fetchall()
            if len(rows) == 1:
                return rows[0][0]
            known = [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 5").fetchall()]
        finally:
            con.close()
        if rows:
            raise NotFoundError(f"run '{ref}' is ambiguous: it matches {len(rows)} runs; give more of the id")
        hint = f" (recent: {', '.join(known)})" if known else " (the store has no runs yet)"
        raise NotFoundError(f"no run '{ref}' in {self.root}{hint}")

    # -- writing -------------------------------------------------------------------------

    def _ensure_dir(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot write to store {self.root}: {exc.strerror} ({folder})") from None
        if not os.access(folder, os.W_OK):
            raise StoreError(f"cannot write to store {self.root}: permission denied ({folder})")

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive inter-process lock (flock) on `<root>/.locks/<name>.lock`."""
        folder = self.root / ".locks"
        self._ensure_dir(folder)
        with open(folder / f"{quote(name, safe='')}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write_atomic(self, data: pa.Table, target: Path) -> None:
        with io.atomic_path(target) as temp:
            pq.write_table(data, temp, compression="zstd")

    def _partitions(self, spec: TableSpec, data: pa.Table) -> Iterator[tuple[Path, pa.Table]]:
        if not spec.partitions:
            yield Path(spec.name), data
            return
        columns = [column for _, column in spec.partitions]
        combos = data.select(columns).group_by(columns).aggregate([]).to_pylist()
        for combo in combos:
            mask = None
            for column in columns:
                condition = pc.equal(data.column(column), combo[column])
                mask = condition if mask is None else pc.and_(mask, condition)
            yield _partition_folder(spec, combo), data.filter(mask)

    def append(self, table: str, data: pa.Table, where: str = "input") -> int:
        """Append rows whose key is not yet stored; returns how many were written."""
        spec = TABLES[table]
        if spec.replace:
            raise ValueError(f"table '{table}' is replaced per partition; use Store.replace")
        data = conform(spec, data, where)
        written = 0
        for relative, part in self._partitions(spec, data):
            folder = self.root / relative
            self._ensure_dir(folder)
            with self.lock(str(relative)):
                fresh = self._new_rows(spec, part, folder)
                if fresh.num_rows:
                    self._write_atomic(fresh, folder / f"part-{uuid.uuid4().hex}.parquet")
                    written += fresh.num_rows
        return written

    def _new_rows(self, spec: TableSpec, part: pa.Table, folder: Path) -> pa.Table:
        """Rows of `part` whose key is neither stored in `folder` nor repeated earlier in `part`."""
        existing = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))
        for path in existing:
            self._check_file(spec, path)
        con = duckdb.connect()
        try:
            con.register("incoming", part.append_column("refusaldata_row", pa.array(range(part.num_rows), pa.int64())))
            keys = ", ".join(f'"{k}"' for k in spec.key)
            stored = "SELECT 1 WHERE false"
            if existing:
                con.execute("SET VARIABLE refusaldata_existing = ?", [[str(p) for p in existing]])
                matches = " AND ".join(f'e."{k}" = i."{k}"' for k in spec.key)
                stored = (f"SELECT 1 FROM read_parquet(getvariable('refusaldata_existing'), "
                          f"hive_partitioning = false) e WHERE {matches}")
            fresh = con.sql(
                f"SELECT * EXCLUDE (refusaldata_row) FROM incoming i WHERE NOT EXISTS ({stored}) "
                f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY refusaldata_row) = 1 "
                f"ORDER BY refusaldata_row").to_arrow_table()
        finally:
            con.close()
        return conform(spec, fresh)

    def replace(self, table: str, data: pa.Table, partition: dict[str, str] | None = None,
                where: str = "input") -> int:
        """Atomically replace the partition(s) `data` covers; `partition` empties one first.

        Each partition is one file swapped with os.replace, so readers see the old rows or
        the new rows, never a mix. Passing `partition` with an empty `data` removes it.
        """
        spec = TABLES[table]
        if not spec.replace:
            raise ValueError(f"table '{table}' is append-only; use Store.append")
        data = conform(spec, data, where)
        if data.num_rows == 0:
            if partition is not None:
                target = self.root / _partition_folder(spec, partition) / _REPLACE_FILE
                with self.lock(str(target.parent.relative_to(self.root))):
                    target.unlink(missing_ok=True)
            return 0
        for relative, part in self._partitions(spec, data):
            folder = self.root / relative
            self._ensure_dir(folder)
            with self.lock(str(relative)):
                self._write_atomic(part, folder / _REPLACE_FILE)
        return data.num_rows

    def replace_query(self, table: str, con: duckdb.DuckDBPyConnection, sql: str,
                      params: dict | list | None, partition: dict[str, str]) -> int:
        """Store the result of `sql` as partition `partition` of `table`, atomically.

        DuckDB's own Parquet writer runs the query and writes the file from all its threads
        (a pyarrow writer fed batch by batch was the slowest step of labelling), so memory
        stays flat however many rows the query yields. The result is cast to the declared
        column types on the way; the written file is then read back, a few columns at a
        time, for nulls in required columns and rows outside `partition` before it
        replaces the old one.
        """
        spec = TABLES[table]
        if not spec.replace:
            raise ValueError(f"table '{table}' is append-only; use Store.append")
        relative = _partition_folder(spec, partition)
        where = f"query for {relative}"
        folder = self.root / relative
        self._ensure_dir(folder)
        try:
            result = con.sql(sql, params=params or None)
        except duckdb.Error as exc:
            raise SchemaError(f"{where}: {str(exc).splitlines()[0]}") from None
        present = _present(spec, result.columns, where)
        columns = [(duckdb.ColumnExpression(field.name) if found else duckdb.ConstantExpression(None))
                   .cast(sql_type).alias(field.name)
                   for field, sql_type, found in zip(spec.schema, _sql_types(spec), present, strict=True)]
        with self.lock(str(relative)):
            with io.atomic_path(folder / _REPLACE_FILE) as temp:
                try:
                    result.select(*columns).write_parquet(str(temp), compression="zstd")
                except duckdb.ConversionException as exc:
                    raise SchemaError(f"{where}: a value cannot be stored: {str(exc).splitlines()[0]}") from None
                rows = _check_written(spec, temp, partition, where)
        return rows
