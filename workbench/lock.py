"""Advisory lock files: which windows have a project open (headless, no Qt).

Each window that opens a project writes one small JSON file, ``<project>/locks/<host>-<pid>-<token>
.lock``, holding its pid, host and start time; it removes the file when it closes the project.  A
second window finds the others with :func:`holders` and warns before opening the project twice
(two engines on one catalogue can mix up runs).  Nothing is refused: the lock is advisory, the CLI
ignores it, and a read-only project simply goes without one.

A lock is *stale*, and removed when seen, when its host is this machine and its pid is no longer a
running process (the window crashed), or when it names this very process but no live
:class:`ProjectLock` of this process holds it (a window that was never closed cleanly).  A lock
written on another host cannot be checked and counts as live (a project on a shared drive).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LOCK_DIR", "LockInfo", "ProjectLock", "acquire", "holders", "pid_alive"]

LOCK_DIR = "locks"
LOCK_SUFFIX = ".lock"
MAX_LOCK_BYTES = 4096

# tokens of the locks this process holds now (a lock object that is gone no longer holds one)
_held: weakref.WeakValueDictionary[str, ProjectLock] = weakref.WeakValueDictionary()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def this_host() -> str:
    return socket.gethostname()


@dataclass(frozen=True)
class LockInfo:
    """One window's hold on a project."""

    pid: int
    host: str
    time: float
    token: str
    path: Path

    def describe(self) -> str:
        """``pid 123 on host h since 2026-11-30 01:02``."""
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.time))
        return f"pid {self.pid} on host {self.host} since {since}"

    def stale(self) -> bool:
        """True when this lock provably belongs to no running window (see the module doc)."""
        if self.host != this_host():
            return False
        if not pid_alive(self.pid):
            return True
        return self.pid == os.getpid() and self.token not in _held


def _read(path: Path) -> LockInfo | None:
    """The lock in ``path``, or None when it is not a readable lock file."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_LOCK_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockInfo(
            pid=int(data["pid"]),
            host=str(data["host"]),
            time=float(data["time"]),
            token=str(data["token"]),
            path=path,
        )
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError):
        return None


def holders(root: str | os.PathLike[str], *, ignore: ProjectLock | None = None) -> list[LockInfo]:
    """The live locks on project ``root``, oldest first (stale ones are removed on the way).

    ``ignore`` is the caller's own lock, left out of the list.
    """
    folder = Path(root) / LOCK_DIR
    try:
        files = sorted(folder.glob("*" + LOCK_SUFFIX))
    except OSError:
        return []
    found = []
    for file in files:
        info = _read(file)
        if info is None:
            continue
        if ignore is not None and info.token == ignore.token:
            continue
        if info.stale():
            with contextlib.suppress(OSError):
                file.unlink()
            continue
        found.append(info)
    return sorted(found, key=lambda i: i.time)


class ProjectLock:
    """This window's lock on a project; :meth:`release` removes its file (idempotent)."""

    def __init__(self, root: Path, info: LockInfo | None) -> None:
        self.root = root
        self.info = info
        self.token = info.token if info else uuid.uuid4().hex

    @property
    def held(self) -> bool:
        return self.info is not None

    def release(self) -> None:
        if self.info is None:
            return
        with contextlib.suppress(OSError):
            self.info.path.unlink()
        with contextlib.suppress(OSError):
            self.info.path.parent.rmdir()  # only when no other lock is left
        _held.pop(self.token, None)
        self.info = None


def acquire(root: str | os.PathLike[str]) -> ProjectLock:
    """Write this window's lock in project ``root``.  A project that cannot be written (read-only
    folder or drive) gets a lock that holds nothing: the lock is advisory and never stops a user."""
    root = Path(root)
    token = uuid.uuid4().hex
    pid, host, started = os.getpid(), this_host(), time.time()
    safe_host = "".join(c if c.isalnum() or c in "-_." else "_" for c in host)[:64]
    path = root / LOCK_DIR / f"{safe_host}-{pid}-{token[:12]}{LOCK_SUFFIX}"
    payload = {"pid": pid, "host": host, "time": started, "token": token, "app": "workbench"}
    try:
        path.parent.mkdir(exist_ok=True)
        with open(path, "x", encoding="utf-8") as fh:
            json.dump(payload, fh)
    except OSError:
        return ProjectLock(root, None)
    lock = ProjectLock(root, LockInfo(pid, host, started, token, path))
    _held[token] = lock
    return lock
