"""Screenshots of issue 18: ``python -m ui.matrix_screens PROJECT [OUT_DIR]``.

Opens a copy of PROJECT (one with a finished ``attack_matrix`` run, e.g. two unlearned digits
classifiers x three attacks, or the demo project's matrix of
``resources/configs/attack-matrix-demo.yaml``), shows the matrix's heat-table in the main window
without the job builder and monitor docks (``screenshot-attack-matrix.png``), writes the matrix run's report and grabs it opened in a
``QTextBrowser`` (``screenshot-report.png``)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

MATRIX_SIZE = (1920, 640)  # the main window: room for 8 attack columns beside the project tree


def main(project: str, out_dir: str = "docs") -> int:
    from PySide6.QtCore import QSettings

    from ui.app import build_main_window
    from ui.report_action import export_report, report_browser
    from ui.screenshots import _settle, save_grab
    from workbench.store import Project

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="workbench-shots-"))
    shutil.copytree(project, tmp / "p", ignore=shutil.ignore_patterns("locks"))
    with Project.open(tmp / "p") as p:
        matrices = [r.id for r in p.runs() if r.job == "attack_matrix" and r.status == "completed"]
    if not matrices:
        print(f"{project} has no completed attack_matrix run", file=sys.stderr)
        return 1
    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    window = build_main_window(tmp / "p", settings=settings, ask_on_close=False)
    window.resize(MATRIX_SIZE[0], MATRIX_SIZE[1])
    for dock in (window.builder_dock, window.monitor_dock):
        dock.hide()  # the matrix needs the width: one column per attack
    window.show()
    window.select_run(matrices[-1])
    deadline = time.monotonic() + 60
    while window.run_view.loading and time.monotonic() < deadline:
        _settle(0.05)
    window.run_view.tabs.setCurrentIndex(1)
    window.run_view.show_artifact("leakage_matrix")
    _settle(0.8)
    save_grab(window, out / "screenshot-attack-matrix.png")
    report = export_report(window, tmp / "report.html")
    window.close()
    if report is None:
        return 1
    browser = report_browser(report)
    browser.resize(1000, 1100)
    browser.show()
    _settle(0.5)
    save_grab(browser, out / "screenshot-report.png")
    print(f"saved {out}/screenshot-attack-matrix.png and {out}/screenshot-report.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
