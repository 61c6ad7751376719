"""The Parquet store: every table write goes through here.

Layout (see DESIGN.md): ``<root>/<table>/<key>=<value>/.../part-<uuid>.parquet`` for
append tables and ``.../data.parquet`` for replace tables, with ``<root>/store.json``
holding the format version. Guarantees:

- versioned: a store of an older format is upgraded in place, once, under the store-wide
  lock (refusaldata.migrations); a newer one is refused untouched; a path that is a file,
  or a folder that holds something else, is refused;
- only its own files: a table's files are found by the naming rules above, at the depth
  its partitions say; anything else in a table folder (a sync-conflict copy, a backup
  folder) is refused with an error naming it, never read: ignoring it would change the
  numbers without a word, reading it would count rows twice; the path above the store is
  never data;

- atomic writes: a temp file (a dot-name no reader lists) in the same folder, fsync,
  then ``os.replace``; a crash loses at most the file in flight;
- idempotent appends: under an exclusive lock per partition, rows whose key is already
  stored are skipped (an anti-join in DuckDB), so two writers never store a key twice;
- no lost updates: a partition rewritten from its own rows (a merge) is read under the
  same lock it is replaced under (`Store.update`), so a concurrent writer's rows are kept;
- checked reads: each file's schema is compared with the declared one before any query
  touches it, with a one-line error naming the file and the column.

The root may also be ``s3://bucket/prefix``: the same layout and rules, with writes,
listings and locks done the object store's way (refusaldata.storage says how each of the
guarantees above holds there without rename or flock).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import uuid
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from refusaldata import migrations, runs, storage
from refusaldata.errors import SchemaError, StoreError
from refusaldata.queries import sql_text
from refusaldata.schemas import TABLES, TableSpec

DEFAULT_STORE = Path("parquet_cache")
STORE_ENV = "REFUSALDATA_STORE"
FORMAT_FILE = "store.json"
FORMAT_VERSION = migrations.FORMAT_VERSION
_REPLACE_FILE = "data.parquet"
_PART_FILE = re.compile(r"part-[0-9a-f]{32}\.parquet")
_STORE_LOCK = "store"
log = logging.getLogger("refusaldata")


@dataclass(frozen=True)
class ForeignFile:
    """A path inside a table's folder that the store's naming rules do not name: never read."""

    table: str
    path: Path
    reason: str


def default_store_path() -> Path | str:
    """`REFUSALDATA_STORE` if set (a folder, or an s3:// URI kept as text), else ./parquet_cache."""
    value = os.environ.get(STORE_ENV)
    if value and storage.is_remote(value):
        return value
    return Path(value or DEFAULT_STORE)


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


_SQL_TYPES = {pa.string(): "VARCHAR", pa.large_string(): "VARCHAR", pa.bool_(): "BOOLEAN", pa.int8(): "TINYINT",
              pa.int16(): "SMALLINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT", pa.float32(): "FLOAT",
              pa.float64(): "DOUBLE", pa.date32(): "DATE", pa.binary(): "BLOB"}


def _sql_type(arrow_type: pa.DataType) -> str | None:
    """The DuckDB type name of an Arrow type, as DuckDB maps it (None: not one mapped here)."""
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        inner = _sql_type(arrow_type.value_type)
        return None if inner is None else f"{inner}[]"
    if pa.types.is_timestamp(arrow_type) and arrow_type.unit == "us":
        return "TIMESTAMP WITH TIME ZONE" if arrow_type.tz else "TIMESTAMP"
    return _SQL_TYPES.get(arrow_type)


@functools.cache
def _sql_types(spec: TableSpec) -> tuple[duckdb.DuckDBPyType, ...]:
    """The DuckDB type of each declared column, as DuckDB itself maps the Arrow schema.

    Named here rather than asked of DuckDB: handing DuckDB an Arrow table makes it import
    pandas, a quarter of a second on every command line that opens a store with an empty table.
    """
    names = [_sql_type(field.type) for field in spec.schema]
    if None not in names:
        return tuple(duckdb.type(name) for name in names)
    con = duckdb.connect()
    try:
        return tuple(con.from_arrow(spec.schema.empty_table()).types)
    finally:
        con.close()


def _check_written(spec: TableSpec, path: Path, partition: dict[str, object], where: str) -> int:
    """Rows of a file just written for `partition`: no null in a required column, none outside it."""
    import pyarrow.compute as pc  # here: only writes need it, and it is slow to import

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


def _partition_folder(spec: TableSpec, values: dict[str, object]) -> Path:
    parts = [f"{folder}={quote(str(values[column]), safe='')}" for folder, column in spec.partitions]
    return Path(spec.name, *parts)


def empty_view_sql(spec: TableSpec) -> str:
    """The statement defining `spec`'s view over no file: its declared columns, typed, no row
    (DuckDB refuses a view over a file pattern that matches nothing)."""
    table = spec.name
    columns = ", ".join(f'NULL::{sql_type} AS "{name}"'
                        for name, sql_type in zip(spec.columns, _sql_types(spec), strict=True))
    return f"CREATE OR REPLACE VIEW {table} AS SELECT {columns} WHERE false"


class Store:
    """A store rooted at a directory or an ``s3://bucket/prefix``; cheap to create, opens
    nothing until used. `root` is a Path, or a storage.S3Path (printed as its URI)."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *, read_only: bool = False):
        self._files = storage.open_location(root if root is not None else default_store_path())
        self.root = self._files.root
        # Read-only: the store must exist at the current format, and every write is refused
        # (a test fixture checked into a repository stays as it was committed).
        self.read_only = read_only
        self._checked: dict[Path, tuple[tuple[int, int], frozenset[str]]] = {}
        self._keys: dict[Path, tuple[tuple[int, int], pa.Table]] = {}
        self._ready = False

    @property
    def remote(self) -> bool:
        """True for a store on object storage (s3://)."""
        return self._files.remote

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- format ------------------------------------------------------------------------

    def format_version(self) -> int | None:
        """The store's format: store.json's, 1 for a store written before store.json existed,
        None where there is no store yet (no folder, or one holding only a README or hidden
        files). A file, or a folder holding something else, is a StoreError."""
        root, files = self.root, self._files
        if files.exists(root) and not files.is_dir(root):
            raise StoreError(f"{root}: is a file, not a store folder (--store takes a folder)")
        marker = root / FORMAT_FILE
        if files.is_file(marker):
            try:
                version = json.loads(files.read_text(marker))["format_version"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise StoreError(f"{marker}: not a readable store format file ({type(exc).__name__})") from None
            if not isinstance(version, int) or version < 1:
                raise StoreError(f"{marker}: format_version must be a positive integer, got {version!r}")
            return version
        if not files.is_dir(root):
            return None
        listed = files.listing(root).children(root)
        entries = [name for name, _ in listed if not name.startswith(".") and not name.lower().startswith("readme")]
        if not entries:
            return None
        if FORMAT_FILE in entries:
            # Another process created the store between the two looks (store.json lands by one
            # rename, so it is whole once listed): read it.
            return self.format_version()
        if any(name in TABLES and is_dir for name, is_dir in listed):
            return 1
        shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
        raise StoreError(f"{root}: not a refusaldata store (no {FORMAT_FILE} and no table folders; "
                         f"it holds {shown}); give an empty or new folder, or the store's own")

    def _open(self, write: bool = False) -> None:
        """Check the format once per Store; upgrade an older store; on the first write to a
        new store, create it with its format file. A newer store is refused untouched."""
        if write and self.read_only:
            raise StoreError(f"{self.root}: the store is open read-only; nothing can be written to it")
        if self._ready:
            return
        found = self.format_version()
        if self.read_only and found is None:
            raise StoreError(f"{self.root}: not a refusaldata store (no {FORMAT_FILE} and no table folders)")
        if self.read_only and found < FORMAT_VERSION:
            raise StoreError(f"{self.root}: store format {found} needs an upgrade to {FORMAT_VERSION}, and the "
                             "store is open read-only; open it once for writing (any command on it upgrades it)")
        if found is None:
            if write:
                self._files.ensure_dir(self.root)
                with self.lock(_STORE_LOCK):
                    if self.format_version() is None:
                        self._write_format()
                self._ready = True
            return
        if found > FORMAT_VERSION:
            raise StoreError(f"{self.root}: store format {found} was written by a newer refusaldata "
                             f"(this one reads formats up to {FORMAT_VERSION}); upgrade refusaldata")
        if found < FORMAT_VERSION:
            self._upgrade()
        self._ready = True

    def create(self) -> None:
        """Make the store (its folder and format file) if it does not exist yet, as the first table
        write would: for what lives beside the tables, such as learned judges (labelers/cards.py)."""
        self._open(write=True)

    def _write_format(self) -> None:
        from refusaldata import __version__

        # On S3 one PUT: concurrent first writers write the same content, the last one stays.
        self._files.write_json(self.root / FORMAT_FILE, {"format_version": FORMAT_VERSION,
                                                         "written_by": f"refusaldata {__version__}"})

    def _upgrade(self) -> None:
        """Run the pending migrations under the store-wide lock, then write the new version."""
        if self.remote:
            raise StoreError(f"{self.root}: store format {self.format_version()} needs an upgrade to "
                             f"{FORMAT_VERSION}; upgrade a local copy (any command on it upgrades it), "
                             "then copy it back")
        if not self._files.writable():
            raise StoreError(f"{self.root}: store format {self.format_version()} needs an upgrade to "
                             f"{FORMAT_VERSION}, but the folder is not writable")
        with self.lock(_STORE_LOCK):
            found = self.format_version()  # another process may have upgraded it meanwhile
            if found is None or found >= FORMAT_VERSION:
                return
            self._ready = True  # the migrations write through this store
            try:
                done = [migrations.MIGRATIONS[version](self) for version in migrations.pending(found)]
            except BaseException:
                self._ready = False
                raise
            self._write_format()
        log.info(f"upgraded store {self.root} from format {found} to {FORMAT_VERSION}: {'; '.join(done)}")

    # -- files -------------------------------------------------------------------------

    def files(self, table: str) -> list[Path]:
        """The table's Parquet files by the naming rules, each checked against the declared
        schema. Anything else in the table's folder is a StoreError naming it."""
        self._open()
        spec = TABLES[table]
        found, foreign = self._scan(spec)
        if foreign:
            first = foreign[0]
            more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
            raise StoreError(f"{first.path}: not a file of table '{table}' ({first.reason}"
                             f"{self._schema_hint(spec, first.path)}){more}; move it out of the store "
                             "(`refusaldata doctor` lists every such file)")
        for path in found:
            self._check_file(spec, path)
        return found

    def _schema_hint(self, spec: TableSpec, path: Path) -> str:
        """For a foreign Parquet file: whether its columns are the table's (a copy?) or not."""
        if not (path.suffix == ".parquet" and self._files.is_file(path)):
            return ""
        try:
            check_schema(spec, self._files.read_schema(path), "it")
        except SchemaError as exc:  # before StoreError, its base class
            return f"; {str(exc).removeprefix('it: ')}"
        except (pa.ArrowInvalid, OSError, StoreError):
            return "; not a readable Parquet file"
        return "; its columns are the table's: a copy?"

    def foreign_files(self, table: str) -> list[ForeignFile]:
        """Entries of the table's folder that its naming rules do not name (for `doctor`)."""
        self._open()
        return self._scan(TABLES[table])[1]

    def _scan(self, spec: TableSpec) -> tuple[list[Path], list[ForeignFile]]:
        """Walk the table's folder: `key=value` folders at each partition level, then the
        table's file name (data.parquet, or part-<32 hex>.parquet); hidden names (temp files
        in flight) are skipped; everything else is foreign."""
        found: list[Path] = []
        foreign: list[ForeignFile] = []
        leaf = "data.parquet" if spec.replace else "part-<32 hex digits>.parquet"
        folder = self.root / spec.name
        listing = self._files.listing(folder)

        def walk(folder: Path, depth: int) -> None:
            for name, is_dir in listing.children(folder):
                if name.startswith("."):
                    continue
                path = folder / name
                if depth < len(spec.partitions):
                    key = spec.partitions[depth][0]
                    if is_dir and name.startswith(f"{key}=") and len(name) > len(key) + 1:
                        walk(path, depth + 1)
                    elif is_dir:
                        reject_folder(path, f"folders {key}=<value>")
                    else:
                        foreign.append(ForeignFile(spec.name, path, f"expected a folder {key}=<value>"))
                elif not is_dir and (name == _REPLACE_FILE if spec.replace else _PART_FILE.fullmatch(name)):
                    found.append(path)
                elif is_dir:
                    reject_folder(path, f"only files named {leaf}")
                else:
                    foreign.append(ForeignFile(spec.name, path, f"expected a file named {leaf}"))

        def reject_folder(folder: Path, belongs: str) -> None:
            """Name the files inside a foreign folder (the folder itself when it has none)."""
            reason = f"in folder {folder.name}, where {belongs} belong"
            foreign.extend(ForeignFile(spec.name, p, reason) for p in listing.files_under(folder) or [folder])

        if self._files.is_dir(folder):
            walk(folder, 0)
        return found, foreign

    def _check_file(self, spec: TableSpec, path: Path) -> frozenset[str]:
        """Check one file against the declared schema (cached by size and mtime); its column names."""
        stamp = self._files.stamp(path)
        known = self._checked.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        try:
            schema = self._files.read_schema(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SchemaError(f"{path}: not a readable Parquet file (truncated or foreign?): {exc}") from None
        check_schema(spec, schema, str(path))
        self._checked[path] = (stamp, frozenset(schema.names))
        return self._checked[path][1]

    # -- reading -------------------------------------------------------------------------

    def connect(self, tables: list[str] | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per table over the store's files.

        Empty tables are typed empty views, so queries never fail for want of files.
        With `labels` come the `best_labels` view and the `labels_of(labeler)` macro
        (sql/best_labels.sql), through which queries read one labeler's verdicts; with
        `templates`, `templates_of(labeler)` (sql/best_templates.sql).
        """
        con = duckdb.connect()
        self._files.attach(con)
        names = list(TABLES) if tables is None else tables
        for name in names:
            self.attach_view(con, name)
        if "labels" in names:
            con.execute(sql_text("best_labels"))
        if "templates" in names:
            con.execute(sql_text("best_templates"))
        return con

    def file_size(self, path: Path) -> int:
        """Bytes of one of the store's files."""
        return self._files.stamp(path)[0]

    def local_folder(self, name: str) -> Path:
        """A local folder for files kept beside the tables that programs open as files (learned
        judges, quickstart's adapters and report): `<root>/<name>` for a local store; for an
        S3 store, a folder under the cache named for its bucket and prefix, on this host."""
        if not self.remote:
            from refusaldata.io import check_within

            check_within(self.root / name, self.root, folder=True)
            return self.root / name
        from refusaldata.models import cache_dir

        return cache_dir() / "s3" / self.root.key / name

    def attach_view(self, con: duckdb.DuckDBPyConnection, table: str) -> None:
        """(Re)define the view `table` in `con` over the table's current files."""
        self._define_view(con, TABLES[table], self.files(table))

    def _define_view(self, con: duckdb.DuckDBPyConnection, spec: TableSpec, files: list[Path]) -> None:
        """(Re)define the view `spec.name` in `con` over `files` (all of the table's, or one partition's)."""
        table = spec.name
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
            con.execute(empty_view_sql(spec))

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

    def duplicate_keys(self, table: str, con: duckdb.DuckDBPyConnection | None = None) -> int:
        """Rows beyond the first of each key in `table` (0 in a healthy store: appends skip
        stored keys and replaces write one row per key; a copied file can still double them)."""
        spec = TABLES[table]
        keys = ", ".join(f'"{k}"' for k in spec.key)
        own = con is None
        con = con or self.connect([table])
        try:
            # fetchall, not fetchone: a result left unfinished blocks the caller's next relation on `con`.
            return con.execute(f"SELECT coalesce(sum(n - 1), 0)::BIGINT FROM (SELECT count(*) AS n FROM {table} "
                               f"GROUP BY {keys} HAVING count(*) > 1)").fetchall()[0][0]
        finally:
            if own:
                con.close()

    def resolve_run(self, ref: str) -> str:
        """The one run id `ref` names: a run id, a run name, a unique prefix of either, or a
        glob matching one run (`refusaldata.runs.resolve_run`). An empty reference is refused:
        as a prefix it would match every run, so a store of one run would silently resolve it."""
        return runs.resolve_run(self, ref)

    # -- writing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive inter-process lock: an flock on `<root>/.locks/<name>.lock` locally,
        a lease under `<prefix>/.locks/<name>/` on S3 (refusaldata.storage)."""
        with self._files.lock(name):
            yield

    def _partitions(self, spec: TableSpec, data: pa.Table) -> Iterator[tuple[Path, pa.Table]]:
        import pyarrow.compute as pc  # here: only writes need it, and it is slow to import

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
        self._open(write=True)
        written = 0
        for relative, part in self._partitions(spec, data):
            folder = self.root / relative
            self._files.ensure_dir(folder)
            with self.lock(str(relative)):
                fresh = self._new_rows(spec, part, self._scan_folder(spec, folder))
                if fresh.num_rows:
                    self._files.write_table(fresh, folder / f"part-{uuid.uuid4().hex}.parquet")
                    written += fresh.num_rows
        return written

    def _scan_folder(self, spec: TableSpec, folder: Path) -> list[Path]:
        """The store files of one leaf partition folder, by the naming rules."""
        return [folder / name for name in self._files.listing(folder).names(folder)
                if (name == _REPLACE_FILE if spec.replace else _PART_FILE.fullmatch(name))]

    def _new_rows(self, spec: TableSpec, part: pa.Table, existing: list[Path]) -> pa.Table:
        """Rows of `part` whose key is neither stored in `existing` nor repeated earlier in `part`."""
        for path in existing:
            self._check_file(spec, path)
        con = duckdb.connect()
        try:
            con.register("incoming", part.append_column("refusaldata_row", pa.array(range(part.num_rows), pa.int64())))
            keys = ", ".join(f'"{k}"' for k in spec.key)
            matches = " AND ".join(f'e."{k}" = i."{k}"' for k in spec.key)
            stored = "SELECT 1 WHERE false"
            if existing and self.remote:
                con.register("refusaldata_existing", self._stored_keys(spec, existing))
                stored = f"SELECT 1 FROM refusaldata_existing e WHERE {matches}"
            elif existing:
                con.execute("SET VARIABLE refusaldata_existing = ?", [[str(p) for p in existing]])
                stored = (f"SELECT 1 FROM read_parquet(getvariable('refusaldata_existing'), "
                          f"hive_partitioning = false) e WHERE {matches}")
            fresh = con.sql(
                f"SELECT * EXCLUDE (refusaldata_row) FROM incoming i WHERE NOT EXISTS ({stored}) "
                f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY refusaldata_row) = 1 "
                f"ORDER BY refusaldata_row").to_arrow_table()
        finally:
            con.close()
        return conform(spec, fresh)

    def _stored_keys(self, spec: TableSpec, parts: list[Path]) -> pa.Table:
        """The key columns of `parts`, each part fetched once per Store: on object storage a
        part is never rewritten (a fresh name per append), so an append reads only the parts
        new since the last one instead of the whole partition again."""
        tables = []
        for path in parts:
            stamp = self._files.stamp(path)
            cached = self._keys.get(path)
            if cached is None or cached[0] != stamp:
                cached = (stamp, self._files.read_columns(path, list(spec.key)))
                self._keys[path] = cached
            tables.append(cached[1])
        return pa.concat_tables(tables, promote_options="permissive")

    def replace(self, table: str, data: pa.Table, partition: dict[str, str] | None = None,
                where: str = "input") -> int:
        """Atomically replace the partition(s) `data` covers; `partition` empties one first.

        Each partition is one file swapped with os.replace, so readers see the old rows or
        the new rows, never a mix. Passing `partition` with an empty `data` removes it.
        """
        spec = TABLES[table]
        if not spec.replace:
            raise ValueError(f"table '{table}' is append-only; use Store.append")
        # A key repeated in `data` (its input held a duplicate) is stored once, never doubled.
        data = self._new_rows(spec, conform(spec, data, where), [])
        self._open(write=True)
        if data.num_rows == 0:
            if partition is not None:
                relative = _partition_folder(spec, partition)
                with self.lock(str(relative)):
                    self._files.delete(self.root / relative / _REPLACE_FILE)
            return 0
        for relative, part in self._partitions(spec, data):
            folder = self.root / relative
            self._files.ensure_dir(folder)
            with self.lock(str(relative)):
                self._files.write_table(part, folder / _REPLACE_FILE)
        return data.num_rows

    def update(self, table: str, partition: dict[str, str], change: Callable[[pa.Table], pa.Table],
               where: str = "input") -> pa.Table:
        """Replace partition `partition` of `table` with `change(its stored rows)`; returns the rows stored.

        The stored rows are read under the partition's lock and the result is written before
        it is released: a merge of rows read before the lock (then written under it) would
        drop whatever another writer stored in between, a lost update. An empty result
        removes the partition. `change` must not take this partition's lock (it is held).
        """
        import pyarrow.compute as pc  # here: only writes need it, and it is slow to import

        spec = TABLES[table]
        if not spec.replace:
            raise ValueError(f"table '{table}' is append-only; use Store.append")
        relative = _partition_folder(spec, partition)
        folder = self.root / relative
        self._open(write=True)
        with self.lock(str(relative)):
            stored = self._read_partition(spec, folder)
            data = self._new_rows(spec, conform(spec, change(stored), where), [])
            for column, value in partition.items():
                if data.num_rows and not pc.all(pc.equal(data.column(column), value)).as_py():
                    raise SchemaError(f"{where}: a row has {column} other than '{value}'")
            if data.num_rows:
                self._files.ensure_dir(folder)
                self._files.write_table(data, folder / _REPLACE_FILE)
            else:
                self._files.delete(folder / _REPLACE_FILE)
        return data

    def _read_partition(self, spec: TableSpec, folder: Path) -> pa.Table:
        """The rows of one leaf partition folder of a replace table, in the declared schema."""
        files = self._scan_folder(spec, folder) if self._files.is_dir(folder) else []
        con = duckdb.connect()
        try:
            self._files.attach(con)
            self._define_view(con, spec, files)
            table = spec.name
            return conform(spec, con.sql(f"SELECT * FROM {table}").to_arrow_table(), str(folder))
        finally:
            con.close()

    def replace_query(self, table: str, con: duckdb.DuckDBPyConnection, sql: str,
                      params: dict | list | None, partition: dict[str, str], keys_unique: bool = False) -> int:
        """Store the result of `sql` as partition `partition` of `table`, atomically.

        DuckDB's own Parquet writer runs the query and writes the file from all its threads
        (a pyarrow writer fed batch by batch was the slowest step of labelling), so memory
        stays flat however many rows the query yields. The result is cast to the declared
        column types on the way; the written file is then read back, a few columns at a
        time, for nulls in required columns and rows outside `partition` before it
        replaces the old one. A key the result holds twice is stored once, unless the caller
        has checked that its inputs hold each key once (`keys_unique`): that window costs as
        much as writing the file.
        """
        spec = TABLES[table]
        if not spec.replace:
            raise ValueError(f"table '{table}' is append-only; use Store.append")
        relative = _partition_folder(spec, partition)
        where = f"query for {relative}"
        folder = self.root / relative
        self._open(write=True)
        self._files.ensure_dir(folder)
        try:
            result = con.sql(sql, params=params or None)
        except duckdb.Error as exc:
            raise SchemaError(f"{where}: {str(exc).splitlines()[0]}") from None
        present = _present(spec, result.columns, where)
        columns = [(duckdb.ColumnExpression(field.name) if found else duckdb.ConstantExpression(None))
                   .cast(sql_type).alias(field.name)
                   for field, sql_type, found in zip(spec.schema, _sql_types(spec), present, strict=True)]
        distinct = result.select(*columns)
        if not keys_unique:  # one row per key even when the query's input held a key twice: never doubled
            keys = ", ".join(f'"{k}"' for k in spec.key)
            distinct = distinct.query(
                "refusaldata_result",
                f"SELECT * FROM refusaldata_result QUALIFY row_number() OVER (PARTITION BY {keys}) = 1")
        with self.lock(str(relative)):
            with self._files.staged(folder / _REPLACE_FILE) as temp:
                try:
                    distinct.write_parquet(str(temp), compression="zstd")
                except duckdb.ConversionException as exc:
                    raise SchemaError(f"{where}: a value cannot be stored: {str(exc).splitlines()[0]}") from None
                rows = _check_written(spec, temp, partition, where)
        return rows
