"""Typed errors the library raises; the CLI turns each into a one-line message and exit 1.

Messages name the file, row or column at fault and never echo more than a short excerpt
of prompt or response text (it can be harmful), see `excerpt`.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

EXCERPT_CHARS = 80
REDACTED = "***"
# `scheme://userinfo@`: the user and password of any URL (s3://KEY:SECRET@bucket too).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s'\"]+@")
# Environment variables whose value is a credential, by the names tools give them.
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_SECRET_MIN_CHARS = 8  # shorter values (true, 1, a port) would blank ordinary words


class RefusalDataError(Exception):
    """Base class: an expected failure with a message fit for a user."""


class StoreError(RefusalDataError):
    """The store cannot be read or written (unwritable directory, torn file)."""


class SchemaError(StoreError):
    """A Parquet file or an input does not match the declared schema."""


class InputError(RefusalDataError):
    """A user-supplied file, option or value is unusable."""


class NameTakenError(InputError):
    """A run name another stored run holds: a name names one run."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


class NotFoundError(RefusalDataError):
    """A named thing (run, dataset, set, model) does not exist."""


class BackendError(RefusalDataError):
    """A generation or training backend is unavailable or failed."""


def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str:
    """A single-line excerpt of at most `limit` characters, safe to put in an error."""
    if text is None:
        return "<null>"
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def shorten_quoted(message: str, limit: int = EXCERPT_CHARS) -> str:
    """`message` with the span between its first and last quote cut to an excerpt when longer than `limit`.

    For messages of other libraries (DuckDB's conversion errors quote the offending value,
    which can be a whole response).
    """
    for quote in ("'", '"'):
        first, last = message.find(quote), message.rfind(quote)
        if first != -1 and last - first - 1 > limit:
            message = message[:first + 1] + excerpt(message[first + 1:last], limit) + message[last:]
    return message


def _environment_secrets() -> list[str]:
    """Values of the environment that are credentials: variables named as secrets (OPENAI_API_KEY,
    AWS_SECRET_ACCESS_KEY, HF_TOKEN, ...) and the password of any URL a variable holds."""
    found = []
    for name, value in os.environ.items():
        if _SECRET_NAME.search(name) and len(value) >= _SECRET_MIN_CHARS:
            found.append(value)
        if "://" in value and "@" in value:
            try:
                parts = urlsplit(value)
            except ValueError:
                continue
            if parts.password and len(parts.password) >= 4:
                found.append(parts.password)
    return sorted(set(found), key=len, reverse=True)


def redact(text: str, environment: bool = True) -> str:
    """`text` with every credential removed: the userinfo of any URL in it (`scheme://user:pass@`)
    and any value of an environment variable that is a credential. Every error line, notice,
    stored config and report passes through here, so a secret never reaches a screen or a file.
    A stored config takes only the URL part (`environment=False`): its text must not depend on
    the environment it was written in, as a rerun compares it with the stored one."""
    text = _USERINFO.sub(rf"\1{REDACTED}@", str(text))
    for secret in _environment_secrets() if environment else ():
        text = text.replace(secret, REDACTED)
    return text


def without_userinfo(url: str) -> str:
    """`url` without its `user:password@` part (the form a URL is stored and printed in)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if not (parts.username or parts.password):
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


# Lines of a DuckDB error after its first that help the reader: the name it guesses, the
# columns a reference could mean. The query excerpt (LINE 1: ...) and long candidate lists are left out.
_SQL_HINT = re.compile(r"^(Did you mean|Candidate bindings:|HINT:)")


def sql_error_text(message: str) -> str:
    """A DuckDB error message as one line: its first line, then its hints ("Did you mean "labels"?")."""
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    if not lines:
        return ""
    kept = [lines[0], *(line for line in lines[1:] if _SQL_HINT.match(line))]
    return shorten_quoted(" ".join(kept))
