"""The sweep chart: a :class:`~workbench.artifacts.SweepTable` (the ``llm.backdoor_sweep`` job's
"sweep" artifact, spec section 6) drawn as grouped bars with their 95% intervals, one panel per
training setting (the plain-unlearned control, then backdoored training with each value-norm
penalty), the sweep's x setting (trigger position) along each panel and one colour per measured
series (clean forget, triggered forget, retain). A "Measure" box switches between the series
families the table carries (multiple-choice accuracy or exact-match recall). A second tab shows
the artifact's difference maps (triggered minus clean attention, per layer and head, with token
labels) with the sink view's grid and map widgets on a diverging scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ui.views.plotting import Figure, Style, series_styles
from ui.views.sink_view import AttentionMapWidget, HeadGrid
from workbench.artifacts import SweepTable

__all__ = ["SweepView", "series_families"]

PANEL_MIN_WIDTH = 300
# clean / triggered / retain keep one colour whatever the measure (blue, orange, green)
ROLE_COLOURS = (("triggered_retain", "#8c8c8c"), ("triggered", "#dd8452"), ("clean", "#4c72b0"))
ROLE_COLOURS += (("retain", "#55a868"),)


def _styles(series: list[str]) -> dict[str, Style]:
    styles = series_styles(series)
    for name in series:
        for prefix, colour in ROLE_COLOURS:
            if name.startswith(prefix):
                styles[name] = Style(colour)
                break
    return styles


def series_families(artifact: SweepTable) -> dict[str, list[str]]:
    """The measure families to offer: the artifact's own ``series`` first, then the same series
    with another suffix when the table has them (``_mc_acc`` <-> ``_recall``)."""
    families = {artifact.y_label or "measured": list(artifact.series)}
    swaps = (("_mc_acc", "_recall", "exact-match recall"), ("_recall", "_mc_acc", "accuracy"))
    for old, new, label in swaps:
        if all(s.endswith(old) for s in artifact.series):
            other = [s[: -len(old)] + new for s in artifact.series]
            if all(c in artifact.columns for c in other):
                families[label] = other
    return families


def _pretty(name: str) -> str:
    for suffix in ("_mc_acc", "_recall", "_rouge_l"):
        name = name.removesuffix(suffix)
    return name.replace("_", " ")


class SweepView(QWidget):
    """Grouped bars with error bars per training setting, and the difference maps."""

    def __init__(self, artifact: SweepTable, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        self.col = {c: i for i, c in enumerate(artifact.columns)}
        self.families = series_families(artifact)
        self.groups = list(dict.fromkeys(str(r[self.col[artifact.group]]) for r in artifact.rows))
        self.xs = list(dict.fromkeys(str(r[self.col[artifact.x]]) for r in artifact.rows))

        title = QLabel(artifact.title or "Sweep")
        title.setStyleSheet("font-weight: bold;")
        title.setWordWrap(True)
        self.measure_box = QComboBox()
        self.measure_box.addItems(list(self.families))
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Measure"))
        controls.addWidget(self.measure_box)
        controls.addStretch(1)
        self.panels_host = QWidget()
        self.panels = QHBoxLayout(self.panels_host)
        self.panels.setContentsMargins(0, 0, 0, 0)
        self.figures: list[Figure] = []
        chart = QWidget()
        chart_lay = QVBoxLayout(chart)
        chart_lay.addLayout(controls)
        chart_lay.addWidget(self.panels_host, 1)
        hint = QLabel(
            "Bars: pooled rate over seeds; whiskers: its 95% interval. A working backdoor has low "
            "clean forget, high triggered forget and high retain."
        )
        hint.setWordWrap(True)
        hint.setStyleSheet("color: palette(dark);")
        chart_lay.addWidget(hint)

        self.tabs = QTabWidget()
        self.tabs.addTab(chart, "Chart")
        self.map_box = QComboBox()
        self.grid = HeadGrid()
        self.map = AttentionMapWidget()
        if artifact.maps:
            self.map_box.addItems(list(artifact.maps))
            maps_tab = QWidget()
            maps_lay = QVBoxLayout(maps_tab)
            row = QHBoxLayout()
            row.addWidget(QLabel("Triggered minus clean attention, trigger at"))
            row.addWidget(self.map_box)
            row.addStretch(1)
            maps_lay.addLayout(row)
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setWidget(self.grid)
            split = QHBoxLayout()
            split.addWidget(scroll, 1)
            split.addWidget(self.map, 1)
            maps_lay.addLayout(split, 1)
            self.tabs.addTab(maps_tab, "Difference maps")
            self.map_box.currentIndexChanged.connect(self._draw_maps)
            self.grid.picked.connect(self._open_head)
            self._draw_maps()

        lay = QVBoxLayout(self)
        lay.addWidget(title)
        lay.addWidget(self.tabs, 1)
        self.measure_box.currentIndexChanged.connect(self._draw_chart)
        self._draw_chart()

    # -- chart ---------------------------------------------------------------------------------
    def value(self, row: list[Any], column: str) -> float:
        i = self.col.get(column)
        return float(row[i]) if i is not None and row[i] is not None else float("nan")

    def _draw_chart(self, *_: object) -> None:
        series = self.families[self.measure_box.currentText()]
        while self.panels.count():
            item = self.panels.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.figures = []
        styles = _styles(series)
        width = 0.8 / max(1, len(series))
        for group in self.groups:
            rows = {
                str(r[self.col[self.artifact.x]]): r
                for r in self.artifact.rows
                if str(r[self.col[self.artifact.group]]) == group
            }
            labels = [x for x in self.xs if x in rows]  # a panel shows the settings it has
            xs = np.arange(len(labels), dtype=float)
            fig = Figure(group, self.artifact.x, self.measure_box.currentText())
            fig.setMinimumWidth(PANEL_MIN_WIDTH)
            for j, name in enumerate(series):
                offset = (j - (len(series) - 1) / 2) * width
                heights = [self.value(rows[x], name) for x in labels]
                fig.add_bars(_pretty(name), xs + offset, heights, width * 0.95, styles[name])
                low = [self.value(rows[x], f"{name}_low") for x in labels]
                high = [self.value(rows[x], f"{name}_high") for x in labels]
                h, lo, hi = (np.asarray(v, dtype=float) for v in (heights, low, high))
                ok = np.isfinite(h) & np.isfinite(lo) & np.isfinite(hi)
                if ok.any():
                    fig.plot_item.addItem(
                        pg.ErrorBarItem(
                            x=(xs + offset)[ok],
                            y=h[ok],
                            top=(hi - h)[ok],
                            bottom=(h - lo)[ok],
                            beam=width * 0.4,
                            pen=pg.mkPen("#333333", width=1.2),
                        )
                    )
            fig.plot_item.getAxis("bottom").setTicks([list(zip(xs.tolist(), labels, strict=True))])
            fig.plot_item.setXRange(-0.6, max(len(labels), 2) - 0.4, padding=0)
            fig.plot_item.setYRange(0.0, 1.05, padding=0)
            fig.plot_item.showGrid(x=False, y=True, alpha=0.2)
            self.panels.addWidget(fig, max(len(labels), 2))
            self.figures.append(fig)

    # -- difference maps -----------------------------------------------------------------------
    def shown_maps(self) -> np.ndarray:
        return np.asarray(self.artifact.maps[self.map_box.currentText()], dtype=np.float32)

    def _draw_maps(self, *_: object) -> None:
        self.grid.set_maps(self.shown_maps(), None, diverging=True)
        self._open_head(0, 0, switch=False)

    def _open_head(self, layer: int, head: int, *, switch: bool = True) -> None:
        label = self.map_box.currentText()
        self.map.set_map(
            self.shown_maps()[layer, head],
            self.artifact.map_tokens[label],
            diverging=True,
            title=f"Trigger at {label}, layer {layer}, head {head}: triggered - clean",
        )
