"""Light helpers for names and user files (no heavy imports): the one rule for paths.

- Names of things a project creates (models, runs, artifacts, checkpoints) are *plain names*:
  :func:`check_name` refuses separators, dots at the start and control characters, so a name joined
  to a project folder stays inside it.
- Files the user points at (split files, index lists, config files) may be anywhere, but are read
  through :func:`read_text_file` / :func:`read_json_file`: regular files only (never a device such as
  ``/dev/zero`` or a folder), at most ``max_bytes``, UTF-8, with one-line errors that say which.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_NAME_LENGTH",
    "FileCheckError",
    "check_name",
    "read_text_file",
    "read_json_file",
    "DEFAULT_MAX_BYTES",
]

MAX_NAME_LENGTH = 128
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
_FORBIDDEN_NAME_CHARS = frozenset('/\\:*?"<>|')


class FileCheckError(ValueError):
    """A user file is missing, not a regular file, too large, not UTF-8 or not the expected format."""


def check_name(name: object, what: str = "name") -> str:
    """``name`` if it is a plain name for something the project creates; else ``ValueError``.

    Plain means: text of 1..128 characters, no path separator (``/``, ``\\``), none of
    ``: * ? " < > |``, no control characters, no leading dot (so neither ``.`` nor ``..``) and no
    surrounding spaces.  Such a name joined to a project folder always stays inside it.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty name, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    bad = sorted({c for c in name if c in _FORBIDDEN_NAME_CHARS or ord(c) < 32 or ord(c) == 127})
    if bad:
        raise ValueError(
            f"{what} {name!r} contains {', '.join(repr(c) for c in bad)}; names of things the "
            "project creates are plain names (letters, digits, '-', '_', '.'), not paths"
        )
    if name.startswith(".") or name != name.strip():
        raise ValueError(
            f"{what} {name!r} may not start with a dot or a space, or end with a space; "
            "names of things the project creates are plain names, not paths"
        )
    return name


def shown(path: object) -> str:
    """A path for a one-line message (quoted when it holds control characters)."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _regular_file(path: Path, what: str) -> os.stat_result:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileCheckError(f"{what} {shown(path)} does not exist") from None
    except OSError as exc:
        raise FileCheckError(
            f"{what} {shown(path)} cannot be read ({exc.strerror or exc})"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise FileCheckError(f"{what} {shown(path)} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise FileCheckError(
            f"{what} {shown(path)} is not a regular file (a device, pipe or socket)"
        )
    return st


def read_bytes_file(path: str | os.PathLike[str], *, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (read with the cap enforced)."""
    path = Path(path)
    st = _regular_file(path, what)
    if st.st_size > max_bytes:
        raise FileCheckError(
            f"{what} {shown(path)} is {st.st_size} bytes; at most {max_bytes} bytes are read"
        )
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise FileCheckError(
            f"{what} {shown(path)} cannot be read ({exc.strerror or exc})"
        ) from None
    if len(data) > max_bytes:  # it grew since the stat
        raise FileCheckError(f"{what} {shown(path)} is larger than {max_bytes} bytes")
    return data


def read_text_file(
    path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES, what: str = "file"
) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes``; clear errors otherwise."""
    data = read_bytes_file(path, max_bytes=max_bytes, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileCheckError(
            f"{what} {shown(path)} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8"
        ) from None


def read_json_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    what: str = "file",
    expect: type | tuple[type, ...] | None = None,
) -> Any:
    """A JSON value from a capped UTF-8 file; ``expect`` checks the top-level type."""
    text = read_text_file(path, max_bytes=max_bytes, what=what)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FileCheckError(f"{what} {shown(path)} is not valid JSON ({exc})") from None
    if expect is not None and not isinstance(value, expect):
        names = " or ".join(
            {"dict": "an object", "list": "a list"}.get(t.__name__, t.__name__)
            for t in (expect if isinstance(expect, tuple) else (expect,))
        )
        raise FileCheckError(
            f"{what} {shown(path)} holds a JSON {type(value).__name__}; expected {names}"
        )
    return value
