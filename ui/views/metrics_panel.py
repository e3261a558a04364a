"""The Metrics tab: a sortable, filterable table of final values above the curves of real series.

Unlearning, attack and erasure runs record mostly final values (one step); a comparison records
``method/metric`` for every method, so the table splits the name into a Method and a Metric column
(``trw/apollo_auc`` -> method ``trw``, metric ``apollo_auc``) and sorts by method first.  The
filter (every word must occur in ``method/metric``) narrows the table and the curves alike.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ui.views.metric_plot import MetricPlot, matches, unit_of

__all__ = ["MetricsModel", "MetricsPanel", "split_name"]

COLUMNS = ("Method", "Metric", "Final value", "Steps", "Min", "Max", "Unit", "Mean")
NUMBERS = (2, 4, 5, 7)  # value columns; Min, Max and Mean are blank for a single-step metric
SORT_ROLE = Qt.ItemDataRole.UserRole
_Index = QModelIndex | QPersistentModelIndex


def split_name(name: str) -> tuple[str, str]:
    """``"trw/apollo_auc"`` -> ``("trw", "apollo_auc")``; a plain name has no method (``""``)."""
    method, sep, metric = name.rpartition("/")
    return (method, metric) if sep else ("", name)


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4f}".rstrip("0").rstrip(".") if not float(value).is_integer() else f"{value:g}"


class MetricsModel(QAbstractTableModel):
    """One row per metric: method, metric, value at the last step, steps, min, max, unit, mean.

    A comparison records per-seed values at steps 0, 1, 2...: their Mean is the mean over seeds.
    """

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[tuple[str, str, float, int, float, float, str, float, str]] = []

    def set_series(self, series: dict[str, tuple[list[float], list[float]]]) -> None:
        rows = []
        for name, (xs, ys) in series.items():
            if not ys:
                continue
            finite = [v for v in ys if math.isfinite(v)] or [math.nan]
            method, metric = split_name(name)
            rows.append(
                (
                    method,
                    metric,
                    ys[-1],
                    len(set(xs)),
                    min(finite),
                    max(finite),
                    unit_of(name, ys),
                    sum(finite) / len(finite),
                    name,
                )
            )
        if [r[-1] for r in rows] == [r[-1] for r in self.rows]:  # same metrics: values only
            self.rows = rows
            if rows:
                self.dataChanged.emit(self.index(0, 2), self.index(len(rows) - 1, 7))
            return
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def name(self, row: int) -> str:
        return self.rows[row][-1]

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008, N802 (Qt)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008, N802 (Qt)
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = self.rows[index.row()], index.column()
        value = row[col]
        if role == SORT_ROLE:  # compared by Qt itself (a Python lessThan costs ~50 ms per sort)
            if col in NUMBERS:
                return float(value) if math.isfinite(value) else -math.inf
            if col in (0, 1):  # ties sort by the full name, so a method's metrics stay together
                return f"{value.lower()}\x00{row[-1].lower()}"
            return value
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return value or "—"
            if col in NUMBERS:
                return _fmt(value) if col == 2 or row[3] > 1 else ""
            return str(value)
        if role == Qt.ItemDataRole.ToolTipRole:
            return row[-1]
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (*NUMBERS, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class _FilterProxy(QSortFilterProxyModel):
    """Keeps rows whose ``method/metric`` contains every word of the filter; sorts by value."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.text = ""
        self.setSortRole(SORT_ROLE)

    def set_text(self, text: str) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9 deprecates invalidateFilter()
            self.beginFilterChange()
            self.text = text
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.text = text
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, row: int, parent: _Index) -> bool:  # noqa: N802 (Qt)
        model = self.sourceModel()
        return matches(model.name(row), self.text)  # type: ignore[attr-defined]


class MetricsPanel(QWidget):
    """Filter line, table of final values, and the curves (:class:`MetricPlot`) below."""

    table_interval_s = 0.5

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = MetricsModel(self)
        self.proxy = _FilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for col, width in enumerate((110, 190, 90, 50, 80, 80, 120, 90)):
            self.table.setColumnWidth(col, width)
        header.moveSection(
            7, 3
        )  # shown as Method, Metric, Final value, Mean, Steps, Min, Max, Unit
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter metrics, e.g. 'trw auc' or 'forget_acc'")
        self.filter.setClearButtonEnabled(True)
        self.count = QLabel("")
        self.count.setStyleSheet("color: palette(mid);")
        self.plot = MetricPlot()
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(150)
        self._filter_timer.timeout.connect(self._apply_filter)
        self.filter.textChanged.connect(lambda _t: self._filter_timer.start())
        self._table_dirty = False
        self._last_table = 0.0

        top = QHBoxLayout()
        top.addWidget(QLabel("Filter:"))
        top.addWidget(self.filter, 1)
        top.addWidget(self.count)
        table_box = QWidget()
        tlay = QVBoxLayout(table_box)
        tlay.setContentsMargins(0, 0, 0, 0)
        tlay.addLayout(top)
        tlay.addWidget(self.table, 1)
        self.split = QSplitter(Qt.Orientation.Vertical)
        self.split.addWidget(table_box)
        self.split.addWidget(self.plot)
        self.split.setSizes([300, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.split, 1)

    # -- data ----------------------------------------------------------------------------------
    def set_loading(self, text: str = "Loading metrics…") -> None:
        self.model.set_series({})
        self.plot.set_series({})
        self.plot.empty.setText(text)
        self.count.setText(text)

    def set_series(self, series: dict[str, tuple[list[float], list[float]]]) -> None:
        self.model.set_series(series)
        self.plot.set_series(series)
        self._table_dirty = False
        self._last_table = time.monotonic()
        self._update_layout()

    def append(self, name: str, step: float, value: float) -> None:
        self.plot.append(name, step, value)
        self._table_dirty = True

    def redraw(self) -> None:
        self.plot.redraw()
        if self._table_dirty and time.monotonic() - self._last_table >= self.table_interval_s:
            self.model.set_series(self.plot.series)
            self._table_dirty = False
            self._last_table = time.monotonic()
            self._update_layout()

    def _apply_filter(self) -> None:
        text = self.filter.text()
        self.proxy.set_text(text)
        self.plot.set_filter(text)
        self._update_count()

    def _update_count(self) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        self.count.setText(f"{shown} of {total} metrics" if shown != total else f"{total} metrics")

    def _update_layout(self) -> None:
        self._update_count()

    def export_table(self, path: str | Path) -> Path:
        """The table of final values as shown (filtered, sorted) as CSV."""
        from ui.export import table_rows, write_csv

        header, rows = table_rows(self.table)
        return write_csv(path, header, rows)

    def export_figure(self, path: str | Path) -> Path:
        """The curves drawn; when there are none (only final values), the panel as it looks."""
        if self.plot.shown:
            return self.plot.export_figure(path)
        from ui.export import render_widget

        return render_widget(self, Path(path))

    def visible_names(self) -> list[str]:
        """The metric names of the table's rows, in the order shown."""
        return [
            self.model.name(self.proxy.mapToSource(self.proxy.index(r, 0)).row())
            for r in range(self.proxy.rowCount())
        ]
