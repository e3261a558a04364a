"""File → Export figure… (PNG, SVG) and File → Export table… (CSV) for whatever view is shown.

A view can say how it exports by itself (``export_figure(path)`` / ``export_table(path)``: the
curves, bars, heatmap, metrics and compare views do); anything else is exported generically: its
first visible pyqtgraph view through pyqtgraph's exporters, or the widget itself rendered to PNG or
SVG; its first visible table (``QTableView`` / ``QTableWidget``) as CSV, rows in the order shown,
numbers at full precision.  :func:`install_actions` adds the two menu entries to a main window.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtGui import QAction, QPainter
from PySide6.QtWidgets import QFileDialog, QMenu, QScrollArea, QTableView, QTabWidget, QWidget

__all__ = [
    "ExportError",
    "current_view",
    "export_figure",
    "export_table",
    "install_actions",
    "render_widget",
    "table_rows",
    "write_csv",
]

FIGURE_FILTERS = "PNG image (*.png);;SVG image (*.svg)"
TABLE_FILTERS = "CSV table (*.csv)"


class ExportError(Exception):
    """The view has nothing of that kind to export, or the file cannot be written."""


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return "" if value is None else value


def write_csv(path: str | Path, header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV (UTF-8, floats at full precision, ``None`` as an empty cell)."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([_cell(h) for h in header])
        for row in rows:
            writer.writerow([_cell(v) for v in row])
    return path


def table_rows(view: QTableView) -> tuple[list[str], list[list[Any]]]:
    """The header and rows of ``view`` as shown: visible columns in their visual order, rows in
    the (sorted, filtered) order of the view.  A cell whose ``UserRole`` holds a finite number
    (what sorting uses) gives that number, else its displayed text."""
    model = view.model()
    header = view.horizontalHeader()
    cols = [
        header.logicalIndex(v)
        for v in range(header.count())
        if not view.isColumnHidden(header.logicalIndex(v))
    ]
    names = [
        str(model.headerData(c, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole) or "")
        for c in cols
    ]
    rows = []
    for r in range(model.rowCount()):
        if view.isRowHidden(r):
            continue
        row = []
        for c in cols:
            index = model.index(r, c)
            text = model.data(index, Qt.ItemDataRole.DisplayRole)
            raw = model.data(index, Qt.ItemDataRole.UserRole)
            number = isinstance(raw, (int, float)) and not isinstance(raw, bool)
            if text not in (None, "") and number and math.isfinite(raw):
                row.append(raw)
            else:
                row.append("" if text is None else str(text))
        rows.append(row)
    return names, rows


def _visible(widget: QWidget) -> bool:
    return widget.isVisibleTo(widget.window()) or not widget.window().isVisible()


def _find(widget: QWidget, kind: type) -> QWidget | None:
    """``widget`` itself or its first descendant of ``kind`` that is shown."""
    if isinstance(widget, kind):
        return widget
    for child in widget.findChildren(kind):
        if _visible(child):
            return child
    return None


def export_table(view: QWidget, path: str | Path) -> Path:
    """Write the table ``view`` shows as CSV (:class:`ExportError` when it shows none)."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise ExportError(f"cannot export a table as {path.name!r}: use .csv")
    try:
        if hasattr(view, "export_table"):
            return view.export_table(path)
        table = _find(view, QTableView)
        if table is None:
            raise ExportError("This view shows no table to export.")
        header, rows = table_rows(table)
        return write_csv(path, header, rows)
    except OSError as exc:
        raise ExportError(f"Cannot write {path}: {exc.strerror or exc}") from exc


def render_widget(widget: QWidget, path: Path) -> Path:
    """PNG or SVG of a widget that is not a plot (a gallery, a table, a text)."""
    if path.suffix.lower() == ".png":
        if not widget.grab().save(str(path)):
            raise ExportError(f"Cannot write {path}.")
        return path
    from PySide6.QtSvg import QSvgGenerator

    size = widget.size() if widget.width() > 0 else QSize(800, 600)
    gen = QSvgGenerator()
    gen.setFileName(str(path))
    gen.setSize(size)
    gen.setViewBox(QRect(0, 0, size.width(), size.height()))
    gen.setTitle(widget.windowTitle() or "Unlearning Workbench view")
    gen.setResolution(widget.logicalDpiY())
    painter = QPainter(gen)
    try:
        widget.render(painter, QPoint())
    finally:
        painter.end()
    return path


def export_figure(view: QWidget, path: str | Path) -> Path:
    """Write what ``view`` draws as PNG or SVG (by the suffix of ``path``)."""
    import pyqtgraph as pg

    from ui.views.plotting import export_graphics

    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise ExportError(f"cannot export a figure as {path.name!r}: use .png or .svg")
    try:
        if hasattr(view, "export_figure"):
            return view.export_figure(path)
        graphics = _find(view, pg.GraphicsView)
        if isinstance(graphics, pg.PlotWidget):
            return export_graphics(graphics.getPlotItem(), path)
        if isinstance(graphics, pg.GraphicsLayoutWidget):
            return export_graphics(graphics.ci, path)
        return render_widget(view, path)
    except OSError as exc:
        raise ExportError(f"Cannot write {path}: {exc.strerror or exc}") from exc


def current_view(window: Any) -> QWidget | None:
    """The innermost view the main window shows now: the Compare view, or the run view's current
    tab (for Artifacts, the artifact shown; for Details, the details page)."""
    tabs = getattr(window, "tabs", None)
    view = tabs.currentWidget() if isinstance(tabs, QTabWidget) else None
    if view is None or (window.isVisible() and not view.isVisibleTo(window)):
        return None  # no project open: the empty state is shown
    inner = getattr(view, "tabs", None)  # the run view's Metrics / Artifacts / Details / Log
    if isinstance(inner, QTabWidget):
        stack = getattr(view, "artifact_stack", None)
        view = inner.currentWidget()
        if view is getattr(window.run_view, "artifact_split", None) and stack is not None:
            view = stack.currentWidget()
    if isinstance(view, QScrollArea) and view.widget() is not None:
        view = view.widget()
    return view


def _ask(window: Any, title: str, filters: str, default: str) -> str:
    folder = getattr(getattr(window, "project", None), "root", None)
    start = str(Path(folder) / default) if folder else default
    path, chosen = QFileDialog.getSaveFileName(window, title, start, filters)
    if path and not Path(path).suffix:  # the filter the user picked says the format
        path += ".svg" if "svg" in chosen.lower() else (".csv" if "csv" in chosen else ".png")
    return path


def _default_name(window: Any, ext: str) -> str:
    run = getattr(getattr(window, "run_view", None), "run_id", None)
    tabs = getattr(window, "tabs", None)
    where = "compare" if tabs is not None and tabs.currentIndex() == 1 else f"run{run or ''}"
    return f"{where}.{ext}"


def _report(window: Any, message: str) -> None:
    if hasattr(window, "show_error"):
        window.show_error(message)


def _export_current(
    window: Any, path: str | Path | None, title: str, filters: str, suffix: str, write: Any
) -> Path | None:
    view = current_view(window)
    if view is None:
        _report(window, "Nothing to export: open a run or the Compare view first.")
        return None
    path = path or _ask(window, title, filters, _default_name(window, suffix))
    if not path:
        return None
    try:
        out = write(view, path)
    except (ExportError, ValueError) as exc:
        _report(window, f"{title}: {exc}")
        return None
    window.statusBar().showMessage(f"Saved {out}", 10_000)
    return out


def export_current_figure(window: Any, path: str | Path | None = None) -> Path | None:
    """Export the current view's figure (asks for the file when ``path`` is not given)."""
    return _export_current(window, path, "Export figure", FIGURE_FILTERS, "png", export_figure)


def export_current_table(window: Any, path: str | Path | None = None) -> Path | None:
    """Export the current view's table as CSV (asks for the file when ``path`` is not given)."""
    return _export_current(window, path, "Export table", TABLE_FILTERS, "csv", export_table)


def install_actions(window: Any, menu: QMenu) -> tuple[QAction, QAction]:
    """Add File → Export figure… and Export table… to ``menu`` (before its last separator)."""
    figure = QAction("Export &figure…", window)
    figure.setToolTip("Save the plot of the current view as PNG or SVG")
    figure.triggered.connect(lambda _=False: export_current_figure(window))
    table = QAction("Export &table…", window)
    table.setToolTip("Save the table of the current view as CSV")
    table.triggered.connect(lambda _=False: export_current_table(window))
    separators = [a for a in menu.actions() if a.isSeparator()]
    if separators:  # above the separator before Quit
        menu.insertActions(separators[-1], [figure, table])
    else:
        menu.addActions([figure, table])
    window.export_figure_action, window.export_table_action = figure, table
    return figure, table
