"""The one I/O layer: atomic writes of files and folders, content hashes, tabular files.

Every module that writes a file outside the store's tables, hashes content or reads a
user's CSV / JSONL / JSON / Parquet file goes through here, so each of those is done one
way: the same fsync discipline, the same accepted extensions, the same one-line errors.

Atomic writes: the new content goes to a hidden temp name beside the target (same folder,
so same file system), is fsynced, renamed over the target, and the folder is fsynced, so
a crash leaves the old file or the new one, never a torn one. A target that is a link, or
exists and is not a regular file (a device, a pipe, /dev/stdout), is written through: the
content is staged elsewhere and copied in on success; the target is never replaced or
removed. A multi-file artefact is built in a hidden staging folder and committed by one
folder rename.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io as _stdio
import json
import logging
import os
import select
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from refusaldata.errors import InputError, StoreError, excerpt

log = logging.getLogger(__name__)

# -- atomic writes --------------------------------------------------------------------------


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_special(path: Path) -> bool:
    """True when `path` exists and is not a regular file or folder (a device, pipe, socket)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def under_root(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether `path`, as written (no link followed), names something under the folder `root`."""
    return _under(os.path.abspath(path), os.path.abspath(root))


def check_within(path: str | os.PathLike[str], root: str | os.PathLike[str], error: type[Exception] = StoreError,
                 folder: bool = False) -> None:
    """Refuse a write to `path` that would leave `root` through a link.

    The store's files may come from someone else: a partition file, lock file or table
    folder that is a link to a file outside would have a write land there. So the folder
    of `path` (or `path` itself, when `folder`) must resolve, links followed, under the
    real path of `root`, and a file `path` must not itself be a link (the store never
    writes through one). `root` may itself be a link: its real path is the store.
    """
    path, real_root = Path(path), os.path.realpath(root)
    real = os.path.realpath(path if folder else path.parent)
    if not _under(real, real_root):
        raise error(f"cannot write {path}: a link leads it out of the store {root} (to {real}); "
                    "the store writes only inside itself")
    if not folder and os.path.islink(path):
        raise error(f"cannot write {path}: it is a link (to {os.readlink(path)}); the store never writes "
                    "through a link, remove it")
    if not folder and is_special(path):
        raise error(f"cannot write {path}: it is not a regular file; the store writes only its own files")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], error: type[Exception] = StoreError,
                within: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Yield a path to write the new content of `target` to; commit it only on success.

    The yielded path is a hidden temp file beside `target` (its suffix kept, for writers
    that look at it); on success it is fsynced and renamed over `target`, then the folder
    is fsynced; on any failure it is removed and `target` is left exactly as it was.
    A target that is a symbolic link, or exists and is not a regular file (a device, a
    pipe, /dev/stdout), is never replaced or removed: the content is staged in a temp
    file elsewhere and copied into the target only on success (see `_write_through`).
    With `within` (the store's root) no link is followed: a target that is a link, or
    whose folder leads out of `within`, is refused (`check_within`); the rename replaces
    the entry itself, so a link made after the check is replaced, never followed.
    An OSError becomes `error` naming the target.
    """
    target = Path(target)
    if target.is_dir():
        raise error(f"cannot write {target}: it is a folder")
    if within is not None:
        check_within(target, within, error)
    elif target.is_symlink() or is_special(target):
        with _write_through(target, error) as path:
            yield path
        return
    if not target.parent.is_dir():
        raise error(f"cannot write {target}: folder {target.parent} does not exist")
    temp = target.parent / f".tmp-{uuid.uuid4().hex}{target.suffix}"
    try:
        yield temp
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, target)
        _fsync_folder(target.parent)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise error(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _write_through(target: Path, error: type[Exception]) -> Iterator[Path]:
    """Stage in the system temp folder, then copy into `target` (followed, never replaced).

    Replacing a link or a device would destroy it (as root, `-o /dev/stdout` would delete
    /dev/stdout), and no temp file can be made beside it in /dev. Staging first keeps a
    failed writer from truncating the target or sending half a file down a pipe. A FIFO
    that no one reads yet is waited for with a warning naming it, never silently.
    """
    handle, name = tempfile.mkstemp(prefix=".tmp-", suffix=target.suffix)
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
        with open(temp, "rb") as source, _open_for_writing(target) as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
    except OSError as exc:
        raise error(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        temp.unlink(missing_ok=True)


def _open_for_writing(target: Path):
    """`target` opened for writing; a FIFO without a reader logs what it waits for first.

    The process's own stdout or stderr (/dev/stdout, /proc/self/fd/1, or the file either
    is redirected to) is written through its open descriptor, at its offset: reopening it
    would truncate a redirected file, losing what was written before (or appended to).
    """
    try:
        status = os.stat(target)
    except OSError:
        return open(target, "wb")
    for fd in (1, 2):
        try:
            own = os.fstat(fd)
        except OSError:
            continue
        if (own.st_dev, own.st_ino) == (status.st_dev, status.st_ino):
            return os.fdopen(os.dup(fd), "wb")
    if not stat.S_ISFIFO(status.st_mode):
        return open(target, "wb")
    waited = False
    while True:  # polled, so a Ctrl-C delivered to another thread still ends the wait
        try:
            fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            if not waited:
                log.warning("waiting for a reader of the pipe %s (Ctrl-C to stop)", target)
                waited = True
            time.sleep(0.2)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "wb")


def write_bytes(target: str | os.PathLike[str], data: bytes, error: type[Exception] = StoreError,
                within: str | os.PathLike[str] | None = None) -> None:
    """Write `data` to `target` atomically (in place for a special file; never through a link with `within`)."""
    with atomic_path(target, error, within) as path:
        with open(path, "wb") as handle:
            handle.write(data)


def write_text(target: str | os.PathLike[str], text: str, error: type[Exception] = StoreError,
               within: str | os.PathLike[str] | None = None) -> None:
    """Write UTF-8 `text` to `target` atomically (see `write_bytes`)."""
    write_bytes(target, text.encode("utf-8"), error, within)


def write_json(target: str | os.PathLike[str], value: Any, error: type[Exception] = StoreError,
               within: str | os.PathLike[str] | None = None) -> None:
    """Write `value` as indented, key-sorted JSON to `target` atomically (see `write_bytes`)."""
    write_text(target, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n", error, within)


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike[str], error: type[Exception] = StoreError) -> Iterator[Path]:
    """Yield a hidden staging folder beside `target`; on success it replaces `target` whole.

    A multi-file artefact (a model folder, a judge's weights and card) is committed by one
    rename: readers see the old folder or the new one, never a mix. An existing target is
    first renamed aside and removed only after the new folder is in place, so a crash in
    between leaves the new or the old folder under a hidden name, never neither.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot write {target}: {exc.strerror or exc}") from None
    staging = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name}"
    old = target.parent / f".old-{uuid.uuid4().hex}-{target.name}"
    try:
        staging.mkdir()
        yield staging
        for path in staging.rglob("*"):
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        _fsync_folder(staging)
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        _fsync_folder(target.parent)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and not target.exists():
            os.replace(old, target)
        raise error(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and not target.exists():
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def move_files_into(staging: str | os.PathLike[str], folder: str | os.PathLike[str]) -> None:
    """Move every file of `staging` into `folder` (fsynced, each by an atomic rename), then
    fsync `folder`. For artefacts that must live in a folder holding other files too (a PEFT
    adapter beside its checkpoints): the caller writes a manifest last to mark them whole."""
    staging, folder = Path(staging), Path(folder)
    for path in sorted(staging.iterdir()):
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(path, folder / path.name)
    _fsync_folder(folder)


# -- content hashes ---------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    """Hex SHA-256 of the UTF-8 text."""
    return sha256_bytes(text.encode("utf-8"))


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_files(paths: Iterable[str | os.PathLike[str]]) -> str:
    """One digest over the names and bytes of `paths`, in name order (adapters, templates)."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode("utf-8") + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def sha256_parts(parts: Iterable[str | bytes]) -> str:
    """One digest over a sequence of parts, each length-prefixed (no two sequences collide)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


# -- tabular files ------------------------------------------------------------------------------

# Every tabular file a user gives is read by its extension, from this one list.
TABULAR_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
                   ".parquet": "parquet"}
FORMATS = ("csv", "tsv", "jsonl", "json", "parquet")


def format_of(path: str | os.PathLike[str]) -> str:
    """The tabular format named by the file's extension; any other is a one-line InputError."""
    path = Path(path)
    fmt = TABULAR_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(TABULAR_FORMATS)
        raise InputError(f"{path}: cannot tell the format from the extension '{path.suffix}' (use {known})")
    return fmt


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; a pipe that no one writes to yet is waited for with a warning naming it."""
    try:
        fifo = stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        fifo = False
    if not fifo:
        return path.read_bytes()
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(500):
            log.warning("waiting for a writer of the pipe %s (Ctrl-C to stop)", path)
            while not poller.poll(200):  # polled, so a Ctrl-C delivered to another thread still ends the wait
                pass
        os.set_blocking(fd, True)
        blocks = []
        while block := os.read(fd, 1 << 20):
            blocks.append(block)
    finally:
        os.close(fd)
    return b"".join(blocks)


def read_text(path: str | os.PathLike[str]) -> str:
    """The file's text; missing, empty, unreadable and non-UTF-8 files are one-line InputErrors."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file")
    try:
        data = _read_bytes(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read: {exc.strerror}") from None
    if not data.strip():
        raise InputError(f"{path}: empty file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}: not UTF-8 text (line {line}, byte {exc.start}); convert it to UTF-8") from None


def read_json(path: str | os.PathLike[str]) -> Any:
    """A JSON file's value; a missing or malformed file is a one-line InputError."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None


def records_frame(records: list[dict], path: str | os.PathLike[str]):
    """JSON records as a polars DataFrame; records that do not form a table are an InputError."""
    import polars as pl

    try:
        return pl.from_dicts(records, infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: records do not form a table: {str(exc).splitlines()[0]}") from None


def _jsonl_records(path: Path, text: str) -> list[dict]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}: line {number} is not a JSON object")
        records.append(record)
    return records


def _json_records(path: Path, text: str, records_key: str | None) -> list[dict]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if records_key is not None and isinstance(value, dict):
        value = value.get(records_key)
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        where = f"its '{records_key}' entry" if records_key else "the file"
        raise InputError(f"{path}: expected a list of JSON objects in {where}")
    return value


def read_records(path: str | os.PathLike[str], fmt: str | None = None, records_key: str | None = None,
                 allow_empty: bool = False):
    """A tabular file as a polars DataFrame (CSV/TSV columns all strings).

    The format defaults to the extension (`TABULAR_FORMATS`); `records_key` picks the list
    of records inside a JSON object. A file with no rows is an InputError unless
    `allow_empty`.
    """
    import polars as pl

    path = Path(path)
    fmt = fmt or format_of(path)
    if fmt not in FORMATS:
        raise InputError(f"{path}: unknown format '{fmt}' (one of {', '.join(FORMATS)})")
    if fmt == "parquet":
        if path.is_dir() or not path.exists():
            raise InputError(f"{path}: no such file")
        try:
            frame = pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InputError(f"{path}: not a readable Parquet file: {str(exc).splitlines()[0]}") from None
    else:
        text = read_text(path)
        if fmt in ("csv", "tsv"):
            body = _after_leading_comments(text)
            try:
                frame = pl.read_csv(_stdio.StringIO(body), infer_schema=False,
                                    separator="\t" if fmt == "tsv" else ",") if body.strip() else pl.DataFrame()
            except pl.exceptions.PolarsError as exc:
                raise InputError(f"{path}: not a readable {fmt.upper()} file: {str(exc).splitlines()[0]}") from None
        elif fmt == "jsonl":
            frame = records_frame(_jsonl_records(path, text), path)
        else:
            frame = records_frame(_json_records(path, text, records_key), path)
    if frame.height == 0 and not allow_empty:
        raise InputError(f"{path}: empty file (no rows)")
    return frame


def _after_leading_comments(text: str) -> str:
    """Delimited text from its header on: `#` lines above the header are a comment (PyRIT's
    datasets open with `# dataset_version=1.2`). A `#` line after the header is data."""
    start = 0
    while text.startswith("#", start):
        newline = text.find("\n", start)
        start = len(text) if newline < 0 else newline + 1
    return text[start:]


_NESTED = {"Struct": "structs", "List": "lists", "Array": "arrays", "Map": "maps", "Object": "objects"}


def check_plain_column(frame, column: str, where: str | os.PathLike[str], expected: str = "text") -> None:
    """Refuse a column of structs, lists, arrays, maps or objects where `expected` (text, a number) is.

    Cast to text, a struct would be stored as its printed form (`{"a": "How do I...", "b": 1}`)
    and only look like a prompt."""
    dtype = frame.schema[column]
    kind = _NESTED.get(dtype.base_type().__name__)
    if kind is not None:
        shown = excerpt(str(dtype), 60)
        raise InputError(f"{where}: column '{column}' holds {kind} ({shown}), not {expected}; "
                         "give a column of plain values")


def read_table(path: str | os.PathLike[str], fmt: str | None = None, records_key: str | None = None):
    """A tabular file as an Arrow table (through `read_records`)."""
    return read_records(path, fmt, records_key).to_arrow()


@contextlib.contextmanager
def file_lock(path: Path, what: str, within: str | os.PathLike[str] | None = None,
              error: type[Exception] = StoreError) -> Iterator[None]:
    """An exclusive inter-process lock (flock) on the file `path`; `what` names it in the notice.

    The holder writes its pid into the file; a process that has to wait says so, with that
    pid, as a warning (a holder that is stopped would otherwise look like a hang). The wait
    is polled, not a blocking flock: a Ctrl-C that the kernel hands to another thread
    (DuckDB's, Arrow's) would never interrupt a blocked call. The file is opened without
    following a link (O_NOFOLLOW): a lock file that is a link would have the pid written
    into the file it points to. With `within`, its folder must also resolve inside it.
    """
    if within is not None:
        check_within(path, within, error)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        reason = "it is a link; locks are never taken through one" if exc.errno == errno.ELOOP else exc.strerror
        raise error(f"cannot lock {path}: {reason}") from None
    with os.fdopen(fd, "r+") as handle:
        waited = 0
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    log.warning("waiting for the lock on %s, held by process %s (Ctrl-C to stop)", what, holder)
                time.sleep(min(0.05 * 2 ** waited, 0.5))
                waited += 1
        handle.truncate(0)
        handle.seek(0)
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
