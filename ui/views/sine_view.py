"""The sine-poisoning view (MinNorm-OG, spec section 3): the functions after unlearning.

One plot per budget, chosen in a combo box: ``sin x`` (black, dashed), the original (poisoned)
model, Retrain and every method's function at that budget, the retain points as small markers and
the forget (poisoned) points as large crosses.  Methods can be hidden from the checklist; the
y range is clipped to the data's scale so one diverging method does not flatten the rest.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.views.plotting import Figure, Style, series_styles
from workbench.artifacts import SineFunctions

__all__ = ["SineView"]

_BUDGET = re.compile(r"^(?P<method>.+) @(?P<epochs>\d+)$")
REFERENCE = "sin x"
FORGET, RETAIN = "forget points", "retain points"
Y_LIMIT = 3.0  # the y range shown: the targets are in [-1, 1.5]


class SineView(QWidget):
    """Functions against ``sin x`` for one budget at a time, forget points marked."""

    def __init__(self, artifact: SineFunctions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        self.by_budget: dict[int, list[str]] = {}
        for name in artifact.series:
            m = _BUDGET.match(name)
            if m:
                self.by_budget.setdefault(int(m["epochs"]), []).append(name)
        methods = sorted({_BUDGET.match(n)["method"] for v in self.by_budget.values() for n in v})
        self.styles = series_styles(["original", *methods])
        self.budget = QComboBox()
        for b in sorted(self.by_budget):
            self.budget.addItem(f"{b} epochs", b)
        self.methods = QListWidget()
        self.methods.setMaximumWidth(170)
        for m in methods:
            item = QListWidgetItem(m)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.methods.addItem(item)
        self.plot = Figure("", artifact.x_label or "x", artifact.y_label or "f(x)")
        top = QHBoxLayout()
        top.addWidget(QLabel("Budget:"))
        top.addWidget(self.budget)
        top.addStretch(1)
        body = QHBoxLayout()
        body.addWidget(self.plot, 1)
        body.addWidget(self.methods)
        lay = QVBoxLayout(self)
        if artifact.title:
            title = QLabel(artifact.title)
            title.setWordWrap(True)
            lay.addWidget(title)
        lay.addLayout(top)
        lay.addLayout(body, 1)
        self.budget.currentIndexChanged.connect(self.redraw)
        self.methods.itemChanged.connect(self.redraw)
        self.redraw()

    def shown_methods(self) -> list[str]:
        return [
            self.methods.item(i).text()
            for i in range(self.methods.count())
            if self.methods.item(i).checkState() == Qt.CheckState.Checked
        ]

    def current_names(self) -> list[str]:
        """The series drawn now, in drawing order."""
        budget = self.budget.currentData()
        shown = set(self.shown_methods())
        names = [n for n in (REFERENCE, "original") if n in self.artifact.series]
        for name in self.by_budget.get(budget, []):
            if _BUDGET.match(name)["method"] in shown:
                names.append(name)
        return names + [n for n in (RETAIN, FORGET) if n in self.artifact.series]

    def redraw(self) -> None:
        self.plot.clear()
        for name in self.current_names():
            xs, ys = self.artifact.series[name]
            if name == REFERENCE:
                style = Style("#000000", Qt.PenStyle.DashLine)
                self.plot.add_series(name, xs, ys, style)
            elif name in (RETAIN, FORGET):
                style = Style(
                    "#000000" if name == RETAIN else "#d62728",
                    symbol="o" if name == RETAIN else "x",
                )
                curve = self.plot.add_series(name, xs, ys, style, scatter=True)
                if curve is not None:
                    curve.setSymbolSize(6 if name == RETAIN else 14)
            else:
                method = name if name == "original" else _BUDGET.match(name)["method"]
                self.plot.add_series(name, xs, ys, self.styles[method])
        y = [v for n in self.current_names() for v in self.artifact.series[n][1]]
        finite = np.asarray([v for v in y if np.isfinite(v)])
        if finite.size:
            lo, hi = max(finite.min(), -Y_LIMIT), min(finite.max(), Y_LIMIT)
            self.plot.getPlotItem().setYRange(lo - 0.1, hi + 0.1, padding=0)
        if REFERENCE in self.artifact.series:
            xs = self.artifact.series[REFERENCE][0]
            self.plot.getPlotItem().setXRange(min(xs), max(xs), padding=0.01)

    def export_figure(self, path: str | Path) -> Path:
        return self.plot.export_figure(path)
