"""Where a store's files live: a local folder, or a prefix in an S3 bucket.

The Store (store.py) decides what to write and when; a location decides how a file is
listed, read, written and locked on its medium. Both keep the Store's guarantees, by
different means:

Local folder (`LocalFiles`): exactly the single-machine scheme. A file is written to a
hidden temp name beside its target, fsynced and renamed over it (refusaldata.io); a lock
is an flock on `<root>/.locks/<name>.lock`. Every write, lock, folder made and file removed
stays inside the store: a data, lock or staging file that is a link, or a folder that
resolves outside the store's real root, is refused (io.check_within), never followed.

S3 (`S3Files`, `s3://bucket/prefix`): an object store has no rename and no flock, so:

- each write is one PUT of a finished object. The Parquet file is built in memory first,
  then uploaded whole; S3 makes an object visible only when its upload completes, so a
  killed writer leaves no object (an unfinished multipart upload is never listed) and a
  reader sees a complete object or none. The size is checked after the upload.
- appends never overwrite: every part gets a fresh `part-<uuid4>` name, so concurrent
  writers (shards) cannot clobber each other's objects; which keys go into a part is
  decided under the partition's lease (below), so no key is stored twice.
- a replaced partition (`data.parquet`) and the format file are single-object PUTs that
  overwrite: a reader gets the old object or the new one, never a mix of the two writes;
  two writers replacing one partition leave the last one's, as the local lock does. A
  query that reads a partition while it is being replaced may fail and must be rerun.
- a lock is a lease: `<prefix>/.locks/<name>/claim-<uuid>.json`. A contender PUTs its
  claim, then LISTs the claims; it holds the lock only if no other live claim is listed,
  otherwise it deletes its claim and retries after a random pause. S3 lists strongly
  consistently after a PUT, so of two contenders the later PUT always lists the earlier
  claim: at most one holds the lock. A holder re-PUTs its claim every few seconds; a claim
  not refreshed for `LEASE_S` (by the server's clock), or whose process on this same host
  is gone, is stale and removed, so a killed holder blocks nobody for long. (As with any
  lease, this assumes a live holder never stalls for LEASE_S between refreshes.)

Credentials come from the AWS SDK's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
AWS_SESSION_TOKEN, AWS_PROFILE and ~/.aws, instance roles); the endpoint from
AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (an S3-compatible server), the region from
AWS_REGION or AWS_DEFAULT_REGION. None of them is written to the store, and every error
message passes through `errors.redact`, which removes their values. A store URI that
carries credentials itself (`s3://KEY:SECRET@bucket`) is refused, printed without them.

DuckDB reads S3 objects through an fsspec filesystem over the same pyarrow client,
registered on each connection: DuckDB's own httpfs extension is downloaded from DuckDB's
server at run time, which this project's machines cannot reach, and no PyPI package ships
it for the DuckDB release in use.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from refusaldata import io
from refusaldata.errors import StoreError, redact

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"
LEASE_S = 60.0
HEARTBEAT_S = 5.0


def is_remote(root: str | os.PathLike[str]) -> bool:
    return str(root).startswith(S3_SCHEME)


def open_location(root: str | os.PathLike[str]) -> LocalFiles | S3Files:
    """The location `root` names: `s3://bucket/prefix`, else a local folder."""
    return S3Files(str(root)) if is_remote(root) else LocalFiles(Path(root))


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


class S3Path(PurePosixPath):
    """A path in a bucket: `bucket/key` inside, `s3://bucket/key` when printed."""

    def __str__(self) -> str:
        return S3_SCHEME + super().__str__()

    @property
    def key(self) -> str:
        """The `bucket/key` form pyarrow's S3 filesystem takes."""
        return super().__str__()


class LocalFiles:
    """A store in a local folder: fsync + rename writes, flock locks (as before S3 existed)."""

    remote = False

    def __init__(self, root: Path):
        self.root = root

    def listing(self, folder: Path) -> LocalListing:
        return LocalListing()

    def exists(self, path: Path) -> bool:
        return path.exists()

    def is_dir(self, path: Path) -> bool:
        return path.is_dir()

    def is_file(self, path: Path) -> bool:
        return path.is_file()

    def stamp(self, path: Path) -> tuple[int, int]:
        """(size, mtime) to tell whether a file changed since its schema was checked."""
        try:
            stat = path.stat()
        except OSError as exc:
            raise StoreError(f"{path}: cannot be read: {exc.strerror}") from None
        return stat.st_size, stat.st_mtime_ns

    def read_text(self, path: Path) -> str:
        return path.read_text(encoding="utf-8")

    def read_schema(self, path: Path) -> pa.Schema:
        return pq.read_schema(path)

    def write_table(self, data: pa.Table, target: Path) -> None:
        with self.staged(target) as temp:
            pq.write_table(data, temp, compression="zstd")

    def write_json(self, target: Path, value: Any) -> None:
        with self.staged(target) as temp:
            temp.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")

    @contextlib.contextmanager
    def staged(self, target: Path) -> Iterator[Path]:
        """A local path to write `target`'s new content to; committed atomically on success.
        The one way a file of the store is written: never through a link (io.check_within)."""
        with io.atomic_path(target, within=self.root) as temp:
            yield temp

    def delete(self, path: Path) -> None:
        io.check_within(path.parent, self.root, folder=True)
        path.unlink(missing_ok=True)

    def ensure_dir(self, folder: Path) -> None:
        io.check_within(folder, self.root, folder=True)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot write to store {self.root}: {exc.strerror} ({folder})") from None
        if not os.access(folder, os.W_OK):
            raise StoreError(f"cannot write to store {self.root}: permission denied ({folder})")

    def writable(self) -> bool:
        return os.access(self.root, os.W_OK)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive inter-process lock on `<root>/.locks/<name>.lock` (io.file_lock: polled,
        the waiting process names the holder)."""
        folder = self.root / ".locks"
        self.ensure_dir(folder)
        with io.file_lock(folder / f"{quote(name, safe='')}.lock", f"{name} in store {self.root}", within=self.root):
            yield

    def attach(self, con) -> None:
        """Local files need nothing registered on a DuckDB connection."""


class LocalListing:
    """A folder's entries, read as they are asked for."""

    def names(self, folder: Path) -> list[str]:
        try:
            return sorted(os.listdir(folder))
        except OSError as exc:
            raise StoreError(f"{folder}: cannot be read: {exc.strerror}") from None

    def children(self, folder: Path) -> list[tuple[str, bool]]:
        return [(name, (folder / name).is_dir()) for name in self.names(folder)]

    def files_under(self, folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


class S3Listing:
    """One recursive LIST of a prefix, indexed by folder (a request per 1,000 objects)."""

    def __init__(self, entries: dict[S3Path, list[tuple[str, bool]]]):
        self._entries = entries

    def names(self, folder: S3Path) -> list[str]:
        return [name for name, _ in self.children(folder)]

    def children(self, folder: S3Path) -> list[tuple[str, bool]]:
        return sorted(self._entries.get(folder, []))

    def files_under(self, folder: S3Path) -> list[S3Path]:
        found = []
        for parent, entries in self._entries.items():
            if parent == folder or folder in parent.parents:
                found.extend(parent / name for name, is_dir in entries if not is_dir and not name.startswith("."))
        return sorted(found)


class S3Files:
    """A store under `s3://bucket/prefix`, written through pyarrow's S3 filesystem."""

    remote = True

    def __init__(self, uri: str):
        parts = urlsplit(uri)
        if "@" in parts.netloc:
            raise StoreError(f"{redact(uri)}: an S3 store URI carries no credentials; give them in "
                             "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")
        if parts.query or parts.fragment or not parts.netloc:
            raise StoreError(f"{uri}: an S3 store is s3://BUCKET/PREFIX (set AWS_ENDPOINT_URL for another "
                             "S3-compatible server)")
        self.root = S3Path(parts.netloc, *[p for p in parts.path.split("/") if p])
        self._fs = None
        self._stamps: dict[S3Path, tuple[int, int]] = {}

    # -- the client ---------------------------------------------------------------------

    @property
    def fs(self):
        if self._fs is None:
            from pyarrow import fs as pafs

            endpoint = _endpoint()
            options: dict[str, Any] = {
                "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                "connect_timeout": 5, "request_timeout": 30, "background_writes": False,
                "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
            }
            if endpoint:
                parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
                options.update(endpoint_override=parts.netloc.rsplit("@", 1)[-1] + parts.path.rstrip("/"),
                               scheme=parts.scheme)
            self._fs = pafs.S3FileSystem(**options)
        return self._fs

    def _failure(self, what: str, path: S3Path | None, exc: BaseException) -> StoreError:
        """A one-line StoreError with no credential in it."""
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = str(path) if path is not None else str(self.root)
        if any(cue in reason for cue in ("curlCode: 7", "curlCode: 28", "Couldn't connect", "NETWORK_CONNECTION",
                                         "Could not resolve host", "Timeout was reached")):
            server = urlsplit(_endpoint() or "https://s3.amazonaws.com")
            host = server.hostname or "?"
            port = f":{server.port}" if server.port else ""
            return StoreError(redact(f"{where}: cannot reach the object store at {host}{port} ({what}); "
                                     "check AWS_ENDPOINT_URL and the network"))
        if "ACCESS_DENIED" in reason or "AccessDenied" in reason or "InvalidAccessKeyId" in reason \
                or "SignatureDoesNotMatch" in reason:
            return StoreError(redact(f"{where}: the object store refused the credentials ({what}); "
                                     "check the AWS credentials of this environment"))
        if "NoSuchBucket" in reason or "NO_SUCH_BUCKET" in reason:
            return StoreError(f"{where}: bucket '{self.root.parts[0]}' does not exist")
        return StoreError(redact(f"{where}: {what} failed: {reason}"))

    @contextlib.contextmanager
    def _calls(self, what: str, path: S3Path | None = None) -> Iterator[None]:
        try:
            yield
        except (OSError, pa.ArrowException) as exc:
            raise self._failure(what, path, exc) from None

    # -- reading --------------------------------------------------------------------------

    def listing(self, folder: S3Path) -> S3Listing:
        from pyarrow import fs as pafs

        with self._calls("listing", folder):
            infos = self.fs.get_file_info(pafs.FileSelector(folder.key, recursive=True, allow_not_found=True))
        entries: dict[S3Path, list[tuple[str, bool]]] = {}
        for info in infos:
            path = S3Path(info.path)
            is_dir = info.type == pafs.FileType.Directory
            entries.setdefault(path.parent, []).append((path.name, is_dir))
            if not is_dir:
                self._stamps[path] = (info.size, info.mtime_ns or 0)
        return S3Listing(entries)

    def _info(self, path: S3Path):
        with self._calls("reading", path):
            return self.fs.get_file_info(path.key)

    def exists(self, path: S3Path) -> bool:
        from pyarrow import fs as pafs

        if path == self.root:
            return True  # a prefix exists as soon as it is written to; an empty one is a new store
        return self._info(path).type != pafs.FileType.NotFound

    def is_dir(self, path: S3Path) -> bool:
        from pyarrow import fs as pafs

        return path == self.root or self._info(path).type == pafs.FileType.Directory

    def is_file(self, path: S3Path) -> bool:
        from pyarrow import fs as pafs

        return self._info(path).type == pafs.FileType.File

    def stamp(self, path: S3Path) -> tuple[int, int]:
        known = self._stamps.get(path)
        if known is not None:
            return known
        info = self._info(path)
        if info.size is None:
            raise StoreError(f"{path}: cannot be read: no such object")
        return info.size, info.mtime_ns or 0

    def read_text(self, path: S3Path) -> str:
        with self._calls("reading", path), self.fs.open_input_stream(path.key) as stream:
            return stream.read().decode("utf-8")

    def read_schema(self, path: S3Path) -> pa.Schema:
        with self._calls("reading", path):
            return pq.read_schema(path.key, filesystem=self.fs)

    def read_columns(self, path: S3Path, columns: list[str]) -> pa.Table:
        with self._calls("reading", path):
            return pq.read_table(path.key, columns=columns, filesystem=self.fs)

    # -- writing --------------------------------------------------------------------------

    def _put(self, target: S3Path, data: bytes | pa.Buffer) -> None:
        """One PUT of the whole object; visible only once complete (see the module docstring)."""
        with self._calls("writing", target):
            stream = self.fs.open_output_stream(target.key)
            try:
                stream.write(data)
            finally:
                stream.close()
            stored = self.fs.get_file_info(target.key).size
        if stored != len(data):
            self.delete(target)
            raise StoreError(f"{target}: the upload stored {stored} of {len(data)} bytes; removed, write again")
        self._stamps.pop(target, None)

    def write_table(self, data: pa.Table, target: S3Path) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(data, sink, compression="zstd")
        self._put(target, sink.getvalue())

    def write_json(self, target: S3Path, value: Any) -> None:
        self._put(target, (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8"))

    @contextlib.contextmanager
    def staged(self, target: S3Path) -> Iterator[Path]:
        """A local temp file to write `target`'s content to; uploaded whole on success."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="refusaldata-s3-") as folder:
            temp = Path(folder) / target.name
            yield temp
            self._put(target, temp.read_bytes())

    def delete(self, path: S3Path) -> None:
        from pyarrow import fs as pafs

        with self._calls("deleting", path):
            if self.fs.get_file_info(path.key).type == pafs.FileType.File:
                self.fs.delete_file(path.key)
        self._stamps.pop(path, None)

    def ensure_dir(self, folder: S3Path) -> None:
        """Object stores have no folders: a key's prefix exists once an object is under it."""

    def writable(self) -> bool:
        return True

    # -- leases -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive lease among all processes on all hosts (see the module docstring)."""
        folder = self.root / ".locks" / quote(name, safe="")
        mine = folder / f"claim-{uuid.uuid4().hex}.json"
        claim = json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode("utf-8")
        pause = 0.02
        while True:
            self._put(mine, claim)
            listing = self.listing(folder)
            claims = {folder / name: self._stamps[folder / name] for name, is_dir in listing.children(folder)
                      if not is_dir and name.startswith("claim-")}
            own_time = claims.get(mine, (0, 0))[1]
            rivals = [path for path in claims if path != mine and not self._stale(path, claims[path][1], own_time)]
            if not rivals:
                break
            if pause == 0.02:
                log.warning("waiting for the lock on %s in store %s, held by %s (Ctrl-C to stop)",
                            name, self.root, rivals[0].name)
            self.delete(mine)
            time.sleep(pause * (1 + random.random()))
            pause = min(pause * 2, 1.0)
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(HEARTBEAT_S):
                with contextlib.suppress(StoreError):
                    self._put(mine, claim)

        beating = threading.Thread(target=heartbeat, name=f"lease {name}", daemon=True)
        beating.start()
        try:
            yield
        finally:
            stop.set()
            beating.join()
            self.delete(mine)

    def _stale(self, path: S3Path, written_ns: int, now_ns: int) -> bool:
        """Not refreshed for LEASE_S by the server's clock, or its process on this host is gone.
        A stale claim is removed so the next round does not meet it again."""
        stale = now_ns - written_ns > LEASE_S * 1e9
        if not stale:
            try:
                holder = json.loads(self.read_text(path))
            except (StoreError, ValueError):
                return False  # released meanwhile, or being written: not ours to judge yet
            if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
                stale = not _alive(holder["pid"])
        if stale:
            self.delete(path)
        return stale

    # -- DuckDB ----------------------------------------------------------------------------

    def attach(self, con) -> None:
        """Let DuckDB read `s3://` paths through this location's client (see the docstring)."""
        con.register_filesystem(_fsspec_class()(self.fs, self._listed))

    def _listed(self, key: str) -> tuple[int, int] | None:
        """(size, mtime) of an object as the last listing saw it: DuckDB asks for them several
        times per file and query, and a part never changes once written (a replaced
        data.parquet may, which is the documented read-during-replace case)."""
        return self._stamps.get(S3Path(key))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.cache
def _fsspec_class():
    """An fsspec view of the pyarrow S3 client that answers DuckDB's `s3://` paths, taking
    sizes and modification times from the store's listing instead of a HEAD request each."""
    import datetime as dt

    from fsspec.implementations.arrow import ArrowFSWrapper

    class S3ForDuckDB(ArrowFSWrapper):
        protocol = "s3"
        cachable = False  # one per connection; fsspec's instance cache would keep them all

        def __init__(self, client, listed, **kwargs):
            super().__init__(client, **kwargs)
            self._listed = listed

        def info(self, path, **kwargs):
            key = self._strip_protocol(path)
            stamp = self._listed(key)
            if stamp is None:
                return super().info(path, **kwargs)
            return {"name": key, "size": stamp[0], "type": "file"}

        def modified(self, path):
            stamp = self._listed(self._strip_protocol(path))
            if stamp is None:
                return super().modified(path)
            return dt.datetime.fromtimestamp(stamp[1] / 1e9, dt.timezone.utc)

    return S3ForDuckDB
