"""The compare view: line up runs of different jobs on one metric namespace.

A comparison records each method's metrics as ``<method>/<name>`` (``trw/apollo_auc``), a
standalone run records ``<name>`` (``apollo_auc``).  The view turns both into rows of (run,
method) whose columns are the plain names: a comparison contributes one row per method
(``run 5 · trw``), a standalone run one row named after its method (``run 6 · trw``), and the two
TRW rows share the ``apollo_auc`` column.  The metric picker offers the plain names; the plot
overlays that metric for every row that has it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from ui.icons import status_icon
from ui.views.artifact_views import sort_item
from ui.views.plotting import Figure, series_styles
from workbench.store import FINAL_STATUSES, Project, ProjectError

__all__ = ["CompareRow", "CompareView", "compare_rows"]

RUN_ROLE = Qt.ItemDataRole.UserRole + 1
LAST, MEAN = "value at the last step", "mean over steps (seeds)"


@dataclass
class CompareRow:
    """One line of the comparison: a run, one of its methods, that method's metrics by plain
    name (``apollo_auc``), each as ``(steps, values)``."""

    run_id: int
    method: str
    series: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"run {self.run_id}" + (f" · {self.method}" if self.method else "")

    def value(self, name: str, how: str = LAST) -> float | None:
        """The metric's value at the last step, or the mean of its finite values."""
        if name not in self.series:
            return None
        _xs, ys = self.series[name]
        if how == MEAN:
            finite = [y for y in ys if math.isfinite(y)]
            return sum(finite) / len(finite) if finite else math.nan
        return ys[-1] if ys else None


def compare_rows(project: Project, run_ids: list[int]) -> list[CompareRow]:
    """The (run, method) rows of ``run_ids``: ``method/name`` metrics become ``name`` in the
    method's row, plain metrics go to the run's own row, named after the run's method."""
    rows: list[CompareRow] = []
    for rid in run_ids:
        try:
            own = project.run(rid).method or ""
        except ProjectError:
            continue
        by_method: dict[str, CompareRow] = {}
        for full, (xs, ys) in project.metric_series(rid).items():
            method, sep, name = full.rpartition("/")
            key = method if sep else own
            row = by_method.setdefault(key, CompareRow(rid, key))
            row.series[name if sep else full] = (xs, ys)
        rows.extend(by_method[m] for m in sorted(by_method, key=lambda m: (m != own, m)))
    return rows


class CompareView(QWidget):
    """Check runs in the list; pick a metric; see the overlay and the final-metrics table."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.runs = QListWidget()
        self.runs.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.runs.itemChanged.connect(lambda _i: self.update_view())
        self.metric_box = QComboBox()
        self.metric_box.currentIndexChanged.connect(lambda _i: self._draw())
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.value_mode = QComboBox()
        self.value_mode.addItems([LAST, MEAN])
        self.value_mode.setToolTip(
            "A comparison records one value per seed (steps 0, 1, ...): show the last one or "
            "their mean"
        )
        self.value_mode.currentIndexChanged.connect(lambda _i: self._fill_table())
        self.plot = Figure("", "step (seed index for a comparison)", "", integer_x=True)
        self.curves: dict[str, pg.PlotDataItem] = {}  # row label -> curve
        self.table = QTableWidget()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.rows: list[CompareRow] = []
        self._cache: dict[int, list[CompareRow]] = {}  # finished runs' rows, read once
        self._status: dict[int, str] = {}
        self._drawn: tuple | None = None  # what the plot and the table show now
        self._filled: tuple | None = None

        left = QWidget()
        llay = QVBoxLayout(left)
        llay.setContentsMargins(0, 0, 0, 0)
        llay.addWidget(QLabel("Runs to compare:"))
        llay.addWidget(self.runs, 1)
        llay.addWidget(refresh)
        right = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        tlay = QVBoxLayout(top)
        tlay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Metric:"))
        row.addWidget(self.metric_box, 1)
        tlay.addLayout(row)
        tlay.addWidget(self.plot, 1)
        right.addWidget(top)
        bottom = QWidget()
        blay = QVBoxLayout(bottom)
        blay.setContentsMargins(0, 0, 0, 0)
        vrow = QHBoxLayout()
        vrow.addWidget(QLabel("Table shows each metric's"))
        vrow.addWidget(self.value_mode)
        vrow.addStretch(1)
        blay.addLayout(vrow)
        blay.addWidget(self.table, 1)
        right.addWidget(bottom)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([170, 700])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split)

    def set_project(self, project: Project | None) -> None:
        self.project = project
        self._cache.clear()
        self.runs.clear()
        self.refresh()

    def refresh(self) -> None:
        """Re-list the project's runs, keeping the checked ones."""
        checked = set(self.checked_runs())
        records = self.project.runs() if self.project else []
        self._status = {r.id: r.status for r in records}
        for rid in [rid for rid in self._cache if self._status.get(rid) not in FINAL_STATUSES]:
            del self._cache[rid]  # resumed or deleted: read it again
        self.runs.blockSignals(True)
        self.runs.clear()
        for r in records:
            item = QListWidgetItem(status_icon(r.status), f"#{r.id} {r.job} ({r.status})")
            item.setData(RUN_ROLE, r.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(
                Qt.CheckState.Checked if r.id in checked else Qt.CheckState.Unchecked
            )
            self.runs.addItem(item)
        self.runs.blockSignals(False)
        self.update_view()

    def checked_runs(self) -> list[int]:
        out = []
        for i in range(self.runs.count()):
            item = self.runs.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(int(item.data(RUN_ROLE)))
        return out

    def set_checked(self, run_ids: list[int]) -> None:
        self.runs.blockSignals(True)
        for i in range(self.runs.count()):
            item = self.runs.item(i)
            on = int(item.data(RUN_ROLE)) in run_ids
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self.runs.blockSignals(False)
        self.update_view()

    def update_view(self) -> None:
        ids = self.checked_runs()
        self.rows = [row for rid in ids for row in self._rows_of(rid)] if self.project else []
        names = sorted({n for row in self.rows for n in row.series})
        current = self.metric_box.currentText()
        self.metric_box.blockSignals(True)
        self.metric_box.clear()
        self.metric_box.addItems(names)
        if current in names:
            self.metric_box.setCurrentText(current)
        self.metric_box.blockSignals(False)
        self._draw()
        self._fill_table()

    def _rows_of(self, run_id: int) -> list[CompareRow]:
        """A run's rows; a finished run's are read once (its metrics no longer change)."""
        if run_id in self._cache:
            return self._cache[run_id]
        assert self.project is not None
        rows = compare_rows(self.project, [run_id])
        if self._status.get(run_id) in FINAL_STATUSES:
            self._cache[run_id] = rows
        return rows

    def _draw(self) -> None:
        name = self.metric_box.currentText()
        key = (tuple(id(row) for row in self.rows), name)
        if key == self._drawn:  # same rows (finished runs are read once) and metric
            return
        self._drawn = key
        self.plot.clear()
        self.curves.clear()
        self.plot.getPlotItem().setLabel("left", name)
        rows = [row for row in self.rows if name in row.series]
        methods = {row.label: row.method or row.label for row in rows}
        styles = series_styles(methods, key=lambda label: methods[label])
        for row in rows:
            xs, ys = row.series[name]
            curve = self.plot.add_series(row.label, xs, ys, styles[row.label])
            if curve is not None:
                self.curves[row.label] = curve

    def _fill_table(self) -> None:
        names = sorted({n for row in self.rows for n in row.series})
        how = self.value_mode.currentText()
        key = (tuple(id(row) for row in self.rows), how)
        if key == self._filled:
            return
        self._filled = key
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(2 + len(names))
        self.table.setRowCount(len(self.rows))
        self.table.setHorizontalHeaderLabels(["run", "method", *names])
        for r, row in enumerate(self.rows):
            self.table.setItem(r, 0, sort_item(row.run_id))
            self.table.setItem(r, 1, sort_item(row.method))
            for c, name in enumerate(names):
                self.table.setItem(r, c + 2, sort_item(row.value(name, how)))
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()

    def export_figure(self, path: str | Path) -> Path:
        if not self.curves:
            raise ValueError("no curves are drawn: check runs and pick a metric")
        return self.plot.export_figure(path)

    def export_table(self, path: str | Path) -> Path:
        from ui.export import table_rows, write_csv

        header, rows = table_rows(self.table)
        return write_csv(path, header, rows)
