"""Application entry point: ``main()`` for ``workbench gui`` and ``build_main_window()`` for tests.

``main`` refuses to start without a display (and no ``QT_QPA_PLATFORM``) with a clear message.
With ``WORKBENCH_STARTUP_PROBE=1`` it prints ``{"startup_probe_s": ..., "project": ...}`` (seconds
since the process started, and the folder of the project the window opened, or null) once the
window is shown, then ``{"loaded_probe_s": ...}`` once the run view has
loaded the selected run's data (if one was selected), and quits; ``benchmarks/bench_startup.py``
uses it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_main_window", "display_problem", "process_age", "reserve_gui_core"]

_IMPORTED_AT = time.time()


def process_age() -> float:
    """Seconds since this process started (from /proc when available)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time() - _IMPORTED_AT


def display_problem() -> str | None:
    """Why a window cannot be shown here, or ``None`` when it can (Linux without a display)."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return None
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return (
            "workbench gui: no display found (neither DISPLAY nor WAYLAND_DISPLAY is set).\n"
            "Run it on a desktop, under a virtual display (xvfb-run workbench gui ...), or "
            "headless with QT_QPA_PLATFORM=offscreen."
        )
    return None


def reserve_gui_core() -> None:
    """Leave one core to the GUI: cap torch/OpenMP threads of jobs unless the user chose a number.

    Must run before a job first imports torch (jobs import it on a worker thread when they run).
    Without it, on a small machine the job's OpenMP threads and the GUI thread oversubscribe the
    cores and both crawl.
    """
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) - 1))


def _application(argv: Sequence[str] | None = None):  # -> QApplication
    from PySide6.QtWidgets import QApplication

    reserve_gui_core()
    from ui.icons import app_icon
    from ui.main_window import APPLICATION, ORGANISATION

    app = QApplication.instance()
    if app is None:
        QApplication.setOrganizationName(ORGANISATION)
        QApplication.setApplicationName(APPLICATION)
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
        app.setWindowIcon(app_icon())
    return app


def build_main_window(
    project_path: str | os.PathLike[str] | None = None, **kwargs
):  # -> MainWindow
    """A :class:`~ui.main_window.MainWindow` on ``project_path`` (a QApplication is made if needed)."""
    _application()
    from ui.main_window import MainWindow

    return MainWindow(project_path, **kwargs)


def main(argv: Sequence[str] | None = None, project: str | None = None) -> int:
    """Run the desktop app; returns the exit code (2 when no display is available)."""
    problem = display_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    app = _application(argv)
    from PySide6.QtCore import QTimer

    from ui.main_window import MainWindow

    window = MainWindow(None)
    target = project
    if target is None:
        recent = [p for p in window.recent_projects() if (Path(p) / "workbench.sqlite").exists()]
        target = recent[0] if recent else None
    if target is not None:
        window.open_project(target)
    window.show()
    if os.environ.get("WORKBENCH_STARTUP_PROBE") == "1":
        done: list[bool] = []

        def finish(loaded: object = None) -> None:
            if done:
                return
            done.append(True)
            if loaded is not None:
                print(json.dumps({"loaded_probe_s": round(process_age(), 4)}), flush=True)
            window.ask_on_close = False
            window.close()
            app.quit()

        def probe() -> None:
            opened = str(window.project.root) if window.project is not None else None
            line = {"startup_probe_s": round(process_age(), 4), "project": opened}
            print(json.dumps(line), flush=True)
            view = window.run_view
            if view.run_id is not None and view.loaded_run != view.run_id:
                view.loaded.connect(finish)
                view.loader.failed.connect(lambda *_: finish())
                QTimer.singleShot(120_000, finish)
            else:
                finish(view.loaded_run)

        QTimer.singleShot(0, probe)
    return int(app.exec())


if __name__ == "__main__":
    raise SystemExit(main())
