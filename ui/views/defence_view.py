"""The defence-matrix view: rates with their intervals on a rows x columns grid.

It draws a :class:`~workbench.artifacts.IntervalMatrix` (the ``diffusion.defence_matrix`` job's
"defence matrix": erased models as rows, guidance x negative concept as columns, defence success
rate and prompt preservation in every cell). Each cell shows every quantity as
``value [low, high]``; the cell's colour follows the quantity picked in "Colour by" (green where
it is good, red where it is bad, by ``higher_is_better``); a cell's tooltip gives the image count.
The view knows nothing of diffusion: names, legend and directions come with the artifact.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.artifacts import IntervalMatrix

__all__ = ["IntervalMatrixView", "cell_colour", "cell_text"]

GOOD = np.array([120, 200, 130])  # green
MIDDLE = np.array([250, 236, 170])  # pale yellow
BAD = np.array([235, 120, 110])  # red
EMPTY = QColor(235, 235, 235)


def cell_text(m: IntervalMatrix, r: int, c: int) -> str:
    """``"DSR 0.94 [0.85, 0.98]"`` per quantity, one a line; ``—`` where not measured."""
    lines = []
    for q, values in m.values.items():
        v = values[r, c]
        if not np.isfinite(v):
            lines.append(f"{q} —")
            continue
        lo, hi = m.lows.get(q), m.highs.get(q)
        interval = (
            f" [{lo[r, c]:.2f}, {hi[r, c]:.2f}]"
            if lo is not None and hi is not None and np.isfinite(lo[r, c])
            else ""
        )
        lines.append(f"{q} {v:.2f}{interval}")
    return "\n".join(lines)


def cell_colour(value: float, higher_is_better: bool = True) -> QColor:
    """Red (bad) to green (good) for a rate in [0, 1]; grey when not measured."""
    if not np.isfinite(value):
        return EMPTY
    good = float(np.clip(value if higher_is_better else 1.0 - value, 0.0, 1.0))
    if good < 0.5:
        rgb = BAD + (MIDDLE - BAD) * (good / 0.5)
    else:
        rgb = MIDDLE + (GOOD - MIDDLE) * ((good - 0.5) / 0.5)
    return QColor(*(int(x) for x in rgb))


class IntervalMatrixView(QWidget):
    """The matrix as a table of cells, coloured by one quantity, with the legend below."""

    def __init__(self, artifact: IntervalMatrix, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = m = artifact
        title = QLabel(f"<b>{m.title}</b>" if m.title else "")
        title.setWordWrap(True)
        self.colour_by = QComboBox()
        self.colour_by.addItems(list(m.values))
        self.colour_by.currentTextChanged.connect(self._recolour)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Colour by:"))
        bar.addWidget(self.colour_by)
        bar.addStretch(1)

        self.table = QTableWidget(len(m.rows), len(m.columns))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setVerticalHeaderLabels(list(m.rows))
        self.table.setHorizontalHeaderLabels([c.replace(" · ", "\n") for c in m.columns])
        self.table.setWordWrap(True)
        for r in range(len(m.rows)):
            for c in range(len(m.columns)):
                item = QTableWidgetItem(cell_text(m, r, c))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                counts = [
                    f"{q}: n = {int(n[r, c])}" for q, n in m.counts.items() if np.isfinite(n[r, c])
                ]
                item.setToolTip(
                    f"{m.rows[r]} · {m.columns[c]}\n{cell_text(m, r, c)}"
                    + (f"\n{', '.join(counts)}" if counts else "")
                )
                self.table.setItem(r, c, item)
        self.table.setStyleSheet("QTableWidget::item { padding: 6px; }")
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setMinimumSectionSize(150)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSizeAdjustPolicy(QAbstractItemView.SizeAdjustPolicy.AdjustToContents)
        self.legend = QLabel(m.legend)
        self.legend.setWordWrap(True)
        self.legend.setStyleSheet("color: #555;")

        lay = QVBoxLayout(self)
        lay.addWidget(title)
        lay.addLayout(bar)
        lay.addWidget(self.table)
        lay.addWidget(self.legend)
        lay.addStretch(1)
        self._recolour(self.colour_by.currentText())

    def _recolour(self, quantity: str) -> None:
        m = self.artifact
        values = m.values.get(quantity)
        if values is None:
            return
        better = m.higher_is_better.get(quantity, True)
        for r in range(len(m.rows)):
            for c in range(len(m.columns)):
                self.table.item(r, c).setBackground(cell_colour(values[r, c], better))

    def cell_background(self, r: int, c: int) -> QColor:
        return self.table.item(r, c).background().color()

    def export_figure(self, path: str | Path) -> Path:
        path = Path(path)
        self.grab().save(str(path))
        return path

    def export_table(self, path: str | Path) -> Path:
        """One CSV line per cell and quantity: row, column, quantity, value, low, high, n."""
        m, path = self.artifact, Path(path)
        with path.open("w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(["row", "column", "quantity", "value", "low", "high", "n"])
            for r, row in enumerate(m.rows):
                for c, col in enumerate(m.columns):
                    for q, v in m.values.items():
                        extra = [
                            float(t[q][r, c]) if q in t else "" for t in (m.lows, m.highs, m.counts)
                        ]
                        out.writerow([row, col, q, float(v[r, c]), *extra])
        return path
