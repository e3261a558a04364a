"""``ui.app.main``: no-display message, the startup probe, recent projects, the throttled bridge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from ui.app import display_problem
from ui.workers import EngineBridge, QtExecutor
from workbench.jobs import Event
from workbench.store import Project

REPO = Path(__file__).resolve().parents[2]


def _run_main(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from ui.app import main; sys.exit(main(project=sys.argv[1] if len(sys.argv) > 1 else None))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")  # keep QSettings away from the user's
    env["HOME"] = str(tmp_path)
    env["HF_HUB_OFFLINE"] = "1"
    return env


def test_no_display_gives_a_clear_message(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        return
    out = _run_main(_clean_env(tmp_path))
    assert out.returncode == 2
    assert "QT_QPA_PLATFORM=offscreen" in out.stderr and "xvfb-run" in out.stderr


def test_display_problem_respects_the_platform_variable(monkeypatch) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert display_problem() is None


def test_startup_probe_opens_the_project_and_quits(tmp_path: Path) -> None:
    Project.create(tmp_path / "project").close()
    env = _clean_env(tmp_path) | {"QT_QPA_PLATFORM": "offscreen", "WORKBENCH_STARTUP_PROBE": "1"}
    out = _run_main(env, str(tmp_path / "project"))
    assert out.returncode == 0, out.stderr
    probe = json.loads([ln for ln in out.stdout.splitlines() if "startup_probe_s" in ln][-1])
    assert 0 < probe["startup_probe_s"] < 60
    assert probe["project"] == str((tmp_path / "project").resolve())
    # the project became the most recent one: a second start without --project reopens it
    out = _run_main(env)
    assert out.returncode == 0, out.stderr
    settings = list((tmp_path / "config").rglob("*.conf"))
    assert settings and str((tmp_path / "project").resolve()) in settings[0].read_text()


def test_the_desktop_entrys_command_opens_the_project_folder_handed_to_it(tmp_path: Path) -> None:
    """Issue 18: ``Exec=workbench gui %f`` with a project folder opens that project (the real CLI
    and window, through the startup probe)."""
    project = tmp_path / "my project"
    Project.create(project).close()
    entry = (REPO / "packaging" / "unlearning-workbench.desktop").read_text().splitlines()
    argv = next(x for x in entry if x.startswith("Exec=")).removeprefix("Exec=").split()
    assert argv[0] == "workbench"
    command = [
        sys.executable,
        "-m",
        "workbench.cli",
        *(str(project) if a == "%f" else a for a in argv[1:]),
    ]
    env = _clean_env(tmp_path) | {"QT_QPA_PLATFORM": "offscreen", "WORKBENCH_STARTUP_PROBE": "1"}
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    probe = json.loads([ln for ln in out.stdout.splitlines() if "startup_probe_s" in ln][-1])
    assert probe["project"] == str(project.resolve())


def test_bridge_throttles_a_flood_of_events(qtbot) -> None:
    bridge = EngineBridge(interval_ms=50)
    batches: list[list[Event]] = []
    bridge.batch.connect(batches.append)
    total = 20_000

    def flood() -> None:
        for i in range(total):
            bridge.post(Event(1, "metric", {"name": "loss", "value": float(i), "step": i}))
            bridge.post(Event(1, "progress", {"progress": i / total, "text": None}))

    thread = threading.Thread(target=flood)
    thread.start()
    metrics = lambda: sum(1 for b in batches for e in b if e.type == "metric")  # noqa: E731
    qtbot.waitUntil(lambda: not thread.is_alive() and metrics() == total, timeout=30_000)
    thread.join()
    events = [e for b in batches for e in b]
    assert [e.data["step"] for e in events if e.type == "metric"] == list(range(total))
    assert len(batches) < total / 100  # batched, not one GUI update per event
    for b in batches:  # at most one progress event per run per batch
        assert sum(1 for e in b if e.type == "progress") <= 1
    bridge.stop()


def test_qt_executor_runs_functions_on_pool_threads(qtbot) -> None:
    executor = QtExecutor(max_threads=2)
    seen: list[str] = []
    done = threading.Event()

    def work() -> None:
        seen.append(threading.current_thread().name)
        done.set()

    executor.submit(work)
    qtbot.waitUntil(done.is_set, timeout=5000)
    assert executor.shutdown(5000)
    assert seen and seen[0] != threading.main_thread().name


def test_many_emits_do_not_exhaust_true(qtbot) -> None:
    """PySide6 6.12 leaks a reference to True per emit; importing ui guards against it."""
    from PySide6.QtCore import QObject, Signal

    class Pinger(QObject):
        ping = Signal(object)

    pinger = Pinger()
    got: list[int] = []
    pinger.ping.connect(got.append)
    for i in range(50_000):  # more than True's natural reference count on CPython 3.11
        pinger.ping.emit(i)
    assert len(got) == 50_000 and sys.getrefcount(True) > 1000
