"""File → Export report…: the shown run (or the runs checked in the Compare tab) as one
self-contained HTML file with CSV / JSON of its tables (:mod:`workbench.report`, the same
function as ``workbench report``), and a viewer that opens such a file in a ``QTextBrowser``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu, QTextBrowser

from workbench.report import write_report

__all__ = ["export_report", "install_report_action", "report_browser", "report_runs"]


def report_runs(window: Any) -> list[int]:
    """What File → Export report exports: the runs checked in the Compare tab when it is shown
    (a comparison), else the run shown in the Run tab (or selected in the runs list)."""
    compare = getattr(window, "compare_view", None)
    if compare is not None and window.tabs.currentWidget() is compare:
        checked = compare.checked_runs()
        if checked:
            return list(checked)
    run = window.selected_run()
    return [run] if run is not None else []


def export_report(window: Any, path: str | Path | None = None) -> Path | None:
    """Write the report of :func:`report_runs` (asks for the file when ``path`` is not given);
    the status bar says where it went, an error goes to the window's error banner."""
    runs = report_runs(window)
    if window.project is None or not runs:
        window.show_error("Export report: select a run first (or check runs in Compare).")
        return None
    if path is None:
        suggested = str(Path(window.dialog_folder()) / f"report-run{runs[0]}.html")
        chosen, _ = QFileDialog.getSaveFileName(
            window, "Export report", suggested, "HTML report (*.html)"
        )
        if not chosen:
            return None
        path = chosen
    try:
        written = write_report(window.project, runs, path)
    except (OSError, ValueError) as exc:
        window.show_error(f"Export report: could not write {path} ({exc})")
        return None
    window.statusBar().showMessage(
        f"Report written to {written[0]} (tables in {written[0].stem}_tables/)", 8000
    )
    return written[0]


def install_report_action(window: Any, menu: QMenu) -> QAction:
    """Add File → Export report… to ``menu`` (before its last separator, next to the exports)."""
    action = QAction("Export &report…", window)
    action.setToolTip("Save the shown run (or the runs checked in Compare) as one HTML file")
    action.triggered.connect(lambda _=False: export_report(window))
    separators = [a for a in menu.actions() if a.isSeparator()]
    if separators:
        menu.insertAction(separators[-1], action)
    else:
        menu.addAction(action)
    window.export_report_action = action
    return action


def report_browser(path: str | Path) -> QTextBrowser:
    """A ``QTextBrowser`` showing a report file (Qt's rich-text engine: the headless browser
    the tests load reports in); its links to the run sections stay inside the document."""
    browser = QTextBrowser()
    browser.setOpenExternalLinks(False)
    browser.setHtml(Path(path).read_text(encoding="utf-8"))
    return browser
