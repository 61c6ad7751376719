"""Getting a built-in prompt set's upstream rows: a local copy, a package file, a URL or the hub.

A package file is read in place; a remote file is downloaded (urllib) once into the cache;
a hub data set is loaded with `datasets.load_dataset`. The last two need the network,
which this project's test machines lack: they are tested for their clean one-line failure
offline (also forced by HF_HUB_OFFLINE=1 or HF_DATASETS_OFFLINE=1).
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl

from refusaldata.errors import InputError
from refusaldata.io import TABULAR_FORMATS, read_records, write_bytes
from refusaldata.models import cache_dir, package_file
from refusaldata.registry import Builtin, HubDataset, PackageFile, RemoteFile

_DOWNLOAD_TIMEOUT_S = 30
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def offline() -> bool:
    """Whether the environment puts the Hugging Face hub offline (HF_HUB_OFFLINE and friends)."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes") for name in _OFFLINE_ENV)


def _offline_error(builtin: Builtin, reason: str) -> InputError:
    return InputError(f"cannot load {builtin.name} from {builtin.location.describe()} ({reason}); "
                      f"pass --path FILE with a local copy in its upstream format ({builtin.format})")


def package_data(location: PackageFile) -> Path:
    """The data file inside an installed package, located without importing the package."""
    return package_file(location.package, location.path, f"pip install {location.package}")


def _download(builtin: Builtin, location: RemoteFile) -> Path:
    """Fetch a remote file once into our cache (not exercised offline; see `fetch_builtin`)."""
    target = cache_dir() / "prompts" / builtin.name / location.url.rsplit("/", 1)[-1]
    if target.is_file():
        return target
    if offline():
        raise _offline_error(builtin, "offline mode is set")
    try:
        with urllib.request.urlopen(location.url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise _offline_error(builtin, f"download failed: {getattr(exc, 'reason', exc)}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(target, data, InputError)
    return target


def _load_hub(builtin: Builtin, location: HubDataset) -> pl.DataFrame:
    """`datasets.load_dataset` of the hub copy (not exercised offline; see `fetch_builtin`).

    A quick reachability check comes first: offline, `load_dataset` retries for half a
    minute before failing with a multi-line error.
    """
    if offline():
        raise _offline_error(builtin, "offline mode is set")
    try:
        socket.getaddrinfo("huggingface.co", 443)
    except OSError as exc:
        raise _offline_error(builtin, f"the hub is unreachable: {exc.strerror or exc}") from None
    try:
        import datasets
    except ImportError:
        raise _offline_error(builtin, "loading from the hub needs the `datasets` package") from None
    try:
        loaded = datasets.load_dataset(location.dataset_id, location.config, split=location.split)
    except Exception as exc:  # the hub client raises many unrelated types; all mean "not loaded"
        raise _offline_error(builtin, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return pl.from_arrow(loaded.data.table)


def fetch_builtin(builtin: Builtin, path: Path | None = None) -> tuple[pl.DataFrame, str]:
    """The built-in's rows and a description of where they came from.

    With `path`, a local copy in the upstream format (or, by its suffix, the format the
    hub serves it in, e.g. Parquet). Without it, the upstream copy.
    """
    if path is not None:
        fmt = TABULAR_FORMATS.get(Path(path).suffix.lower(), builtin.format)
        return read_records(path, fmt, builtin.records_key), str(path)
    location = builtin.location
    if isinstance(location, PackageFile):
        found = package_data(location)
        return read_records(found, builtin.format, builtin.records_key), str(found)
    if isinstance(location, RemoteFile):
        return read_records(_download(builtin, location), builtin.format, builtin.records_key), location.url
    return _load_hub(builtin, location), location.describe()
