"""The compare view: overlay one metric of several runs and tabulate their final metrics."""

from __future__ import annotations

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
from ui.views.plotting import color, plot_widget
from workbench.store import Project

__all__ = ["CompareView"]

RUN_ROLE = Qt.ItemDataRole.UserRole + 1


class CompareView(QWidget):
    """Check runs in the list; pick a metric; see the overlay and the final-metrics table."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.runs = QListWidget()
        self.runs.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.runs.itemChanged.connect(lambda _i: self.update_view())
        self.metric = QComboBox()
        self.metric.currentIndexChanged.connect(lambda _i: self._draw())
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.plot = plot_widget("", "step", "")
        self.legend = self.plot.getPlotItem().addLegend(offset=(-10, 10))
        self.curves: dict[int, pg.PlotDataItem] = {}
        self.table = QTableWidget()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self._series: dict[int, dict[str, tuple[list[int], list[float]]]] = {}

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
        row.addWidget(self.metric, 1)
        tlay.addLayout(row)
        tlay.addWidget(self.plot, 1)
        right.addWidget(top)
        right.addWidget(self.table)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([220, 600])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split)

    def set_project(self, project: Project | None) -> None:
        self.project = project
        self.runs.clear()
        self.refresh()

    def refresh(self) -> None:
        """Re-list the project's runs, keeping the checked ones."""
        checked = set(self.checked_runs())
        self.runs.blockSignals(True)
        self.runs.clear()
        for r in self.project.runs() if self.project else []:
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
        self._series = {rid: self.project.metric_series(rid) for rid in ids} if self.project else {}
        names = sorted({n for s in self._series.values() for n in s})
        current = self.metric.currentText()
        self.metric.blockSignals(True)
        self.metric.clear()
        self.metric.addItems(names)
        if current in names:
            self.metric.setCurrentText(current)
        self.metric.blockSignals(False)
        self._draw()
        self._fill_table(ids)

    def _draw(self) -> None:
        item = self.plot.getPlotItem()
        for curve in self.curves.values():
            item.removeItem(curve)
        self.curves.clear()
        self.legend.clear()
        name = self.metric.currentText()
        item.setLabel("left", name)
        for i, (rid, series) in enumerate(self._series.items()):
            if name in series:
                xs, ys = series[name]
                self.curves[rid] = item.plot(
                    xs, ys, pen=pg.mkPen(color(i), width=2), name=f"run {rid}"
                )

    def _fill_table(self, ids: list[int]) -> None:
        finals = {rid: self.project.final_metrics(rid) for rid in ids} if self.project else {}
        names = sorted({n for f in finals.values() for n in f})
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(1 + len(names))
        self.table.setRowCount(len(ids))
        self.table.setHorizontalHeaderLabels(["run", *names])
        for r, rid in enumerate(ids):
            self.table.setItem(r, 0, sort_item(rid))
            for c, name in enumerate(names):
                self.table.setItem(r, c + 1, sort_item(finals[rid].get(name)))
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
