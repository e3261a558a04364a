"""The attack matrix's heat-table (issue 18 part 1): one row per unlearned run, one column per
attack, each cell the attack's headline number with its 95% interval (and the reference's value).

Colour is the signed distance from the reference (retrained / never-learned model), oriented so
that red always means "leaks more than the reference" and blue "leaks less", whatever the
attack's direction; each column is scaled by its largest distance (attacks have different units),
pale enough that the black text stays readable. Grey: the attack does not apply to the run's
model (no child run); white with a dashed note: no reference recorded. A bold cell is one whose
95% interval excludes the reference. Clicking a cell opens its child run in the main window
(``select_run``) and emits :attr:`LeakageMatrixView.run_clicked`.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.leakage_matrix import NO_REFERENCE_RGB, LeakageMatrix, distance_rgb

__all__ = ["LeakageMatrixView", "distance_colour"]

NOT_APPLICABLE = QColor(225, 225, 225)
HEADER_WIDTH = 20  # characters per line of a column title
NO_REFERENCE = QColor(*NO_REFERENCE_RGB)


def distance_colour(distance: float, scale: float) -> QColor:
    """:func:`workbench.leakage_matrix.distance_rgb` as a ``QColor`` (white at the reference,
    red: leaks more, blue: leaks less)."""
    return QColor(*distance_rgb(distance, scale))


def _swatch(colour: QColor, text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet(
        f"background: {colour.name()}; color: black; border: 1px solid #999; padding: 2px 6px;"
    )
    return label


class LeakageMatrixView(QWidget):
    """The matrix as a table of coloured cells, with its legend; a click opens the child run."""

    run_clicked = Signal(int)

    def __init__(self, artifact: LeakageMatrix, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = m = artifact
        title = QLabel(f"<b>{m.title}</b>" if m.title else "")
        title.setWordWrap(True)
        self.table = QTableWidget(len(m.rows), len(m.columns))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setVerticalHeaderLabels(list(m.rows))
        arrows = ["↑ leaks" if up else "↓ leaks" for up in m.higher_leaks]
        # titles wrapped so that a column is as narrow as its cells, not as its title
        self.table.setHorizontalHeaderLabels(
            [
                "\n".join(
                    [*textwrap.wrap(t, HEADER_WIDTH, break_on_hyphens=False), m.short_metric(c), a]
                )
                for c, (t, a) in enumerate(zip(m.column_titles, arrows, strict=True))
            ]
        )
        self.table.setWordWrap(True)
        self.scales = [self._column_scale(c) for c in range(len(m.columns))]
        bold = QFont()
        bold.setBold(True)
        for r in range(len(m.rows)):
            for c in range(len(m.columns)):
                item = QTableWidgetItem(m.cell_text(r, c))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                item.setForeground(QColor("black"))
                child = m.child_run(r, c)
                if child is None:
                    item.setBackground(NOT_APPLICABLE)
                    item.setToolTip(f"{m.columns[c]} does not apply to {m.rows[r]}'s model")
                else:
                    item.setBackground(distance_colour(m.distance(r, c), self.scales[c]))
                    if self._apart(r, c):
                        item.setFont(bold)
                    item.setToolTip(
                        f"{m.rows[r]} · {m.columns[c]}\n{m.cell_text(r, c)}\n"
                        f"child run {child}: click to open it"
                    )
                self.table.setItem(r, c, item)
        self.table.setStyleSheet("QTableWidget::item { padding: 6px; }")
        header = self.table.horizontalHeader()
        # every column as wide as its widest cell or title line (a stretched column narrower
        # than "0.556 [0.333, 0.778]" in bold wrapped it and cut its reference line off)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.resizeRowsToContents()
        self.table.setSizeAdjustPolicy(QAbstractItemView.SizeAdjustPolicy.AdjustToContents)
        self.table.cellClicked.connect(self.open_cell)

        legend = QHBoxLayout()
        legend.addWidget(QLabel("Distance from the reference:"))
        legend.addWidget(_swatch(distance_colour(-1, 1), "leaks less"))
        legend.addWidget(_swatch(distance_colour(0, 1), "same"))
        legend.addWidget(_swatch(distance_colour(1, 1), "leaks more"))
        legend.addWidget(_swatch(NO_REFERENCE, "no reference"))
        legend.addWidget(_swatch(NOT_APPLICABLE, "n/a: does not apply"))
        legend.addStretch(1)
        self.legend_text = QLabel(
            "Each cell: headline value [95% interval], then the reference (retrained / "
            "never-learned model) measured by the same child run. Colour: value minus "
            "reference, signed so that red leaks more; each column scaled by its largest "
            "distance. Bold: the interval excludes the reference. Click a cell to open its "
            "child run." + ("\n" + "\n".join(m.shown_notes()) if m.notes else "")
        )
        self.legend_text.setWordWrap(True)
        self.legend_text.setStyleSheet("color: #444;")
        lay = QVBoxLayout(self)
        lay.addWidget(title)
        lay.addWidget(self.table)
        lay.addLayout(legend)
        lay.addWidget(self.legend_text)
        lay.addStretch(1)

    def _column_scale(self, c: int) -> float:
        d = [abs(self.artifact.distance(r, c)) for r in range(len(self.artifact.rows))]
        finite = [x for x in d if math.isfinite(x)]
        return max(finite) if finite else 1.0

    def _apart(self, r: int, c: int) -> bool:
        m = self.artifact
        lo, hi, ref = (float(g[r, c]) for g in (m.lows, m.highs, m.references))
        return all(math.isfinite(x) for x in (lo, hi, ref)) and not lo <= ref <= hi

    def cell_background(self, r: int, c: int) -> QColor:
        return self.table.item(r, c).background().color()

    def open_cell(self, r: int, c: int) -> int | None:
        """Open cell (r, c)'s child run: emit :attr:`run_clicked` and select it in the main
        window's runs list (which shows its artifacts); ``None`` for a cell with no child."""
        child = self.artifact.child_run(r, c)
        if child is None:
            return None
        self.run_clicked.emit(child)
        window = self.window()
        if hasattr(window, "select_run"):
            window.select_run(child)
        return child

    def export_figure(self, path: str | Path) -> Path:
        path = Path(path)
        self.grab().save(str(path))
        return path

    def export_table(self, path: str | Path) -> Path:
        """The long form: one CSV line per cell (run, attack, metric, value, low, high, ...)."""
        from ui.export import write_csv

        header, rows = self.artifact.table()
        return write_csv(path, header, rows)
