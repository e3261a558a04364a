"""The advisory project lock: written on open, seen by a second window, released, stale when dead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from workbench import lock as lockmod
from workbench.lock import LOCK_DIR, acquire, holders


def _write_lock(root: Path, *, pid: int, host: str, token: str = "t" * 32) -> Path:
    folder = root / LOCK_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"{host}-{pid}-{token[:12]}.lock"
    path.write_text(json.dumps({"pid": pid, "host": host, "time": 1.0e9, "token": token}))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lock_is_seen_by_others_and_removed_on_release(tmp_path: Path) -> None:
    first = acquire(tmp_path)
    assert first.held
    assert holders(tmp_path, ignore=first) == []  # its own lock is not a warning
    seen = holders(tmp_path)
    assert [(h.pid, h.token) for h in seen] == [(os.getpid(), first.token)]
    second = acquire(tmp_path)
    assert [h.token for h in holders(tmp_path, ignore=second)] == [first.token]
    first.release()
    first.release()  # idempotent
    assert holders(tmp_path, ignore=second) == []
    second.release()
    assert not (tmp_path / LOCK_DIR).exists()


def test_a_dead_pid_on_this_host_is_stale_and_removed(tmp_path: Path) -> None:
    path = _write_lock(tmp_path, pid=_dead_pid(), host=lockmod.this_host())
    assert holders(tmp_path) == []
    assert not path.exists()


def test_a_live_pid_or_another_host_counts_as_held(tmp_path: Path) -> None:
    parent = os.getppid()  # alive, and not this process
    live = _write_lock(tmp_path, pid=parent, host=lockmod.this_host(), token="a" * 32)
    remote = _write_lock(tmp_path, pid=_dead_pid(), host="other-machine", token="b" * 32)
    found = {h.path: h for h in holders(tmp_path)}
    assert set(found) == {live, remote}
    assert found[remote].describe().startswith(f"pid {found[remote].pid} on host other-machine")


def test_a_lock_of_this_process_no_window_holds_is_stale(tmp_path: Path) -> None:
    lock = acquire(tmp_path)
    path = lock.info.path
    del lock  # a window that vanished without closing its project
    assert holders(tmp_path) == []
    assert not path.exists()


def test_garbage_lock_files_are_ignored_and_read_only_projects_get_no_lock(tmp_path: Path) -> None:
    (tmp_path / LOCK_DIR).mkdir()
    (tmp_path / LOCK_DIR / "x.lock").write_text("not json")
    assert holders(tmp_path) == []
    missing = tmp_path / "no" / "such" / "project"
    lock = acquire(missing)
    assert not lock.held
    lock.release()
