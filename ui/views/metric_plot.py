"""Live metric curves: one plot per metric, or all metrics overlaid on one plot."""

from __future__ import annotations

import time

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ui.views.plotting import color, setup_pyqtgraph

__all__ = ["MetricPlot"]

SEPARATE, OVERLAY = "One plot per metric", "Overlay"


class MetricPlot(QWidget):
    """Draws ``{name: (steps, values)}``; :meth:`append` adds points, :meth:`redraw` shows them.

    Live redraws are throttled to one per :attr:`min_interval_s` (painting plots is the costliest
    thing the GUI does while a job streams metrics); a pending redraw runs when the interval ends.
    """

    min_interval_s = 0.25

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._last_redraw = 0.0
        self._pending = QTimer(self)
        self._pending.setSingleShot(True)
        self._pending.timeout.connect(lambda: self.redraw(force=True))
        setup_pyqtgraph()
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._layout_key: tuple[str, tuple[str, ...]] | None = None
        self._dirty = False
        self.mode = QComboBox()
        self.mode.addItems([SEPARATE, OVERLAY])
        self.mode.currentIndexChanged.connect(lambda _i: self.redraw(force=True))
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setMinimumHeight(180)
        self.empty = QLabel("No metrics recorded yet.")
        self.empty.setStyleSheet("color: palette(mid);")
        top = QHBoxLayout()
        top.addWidget(QLabel("Metrics:"))
        top.addWidget(self.mode)
        top.addStretch(1)
        top.addWidget(self.empty)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.graphics, 1)

    def set_series(self, series: dict[str, tuple[list[float], list[float]]]) -> None:
        self.series = {k: (list(xs), list(ys)) for k, (xs, ys) in series.items()}
        self.redraw(force=True)

    def append(self, name: str, step: float, value: float) -> None:
        xs, ys = self.series.setdefault(name, ([], []))
        if xs and step <= xs[-1]:  # a resumed run rewrites steps after its checkpoint
            while xs and xs[-1] >= step:
                xs.pop()
                ys.pop()
        xs.append(step)
        ys.append(value)
        self._dirty = True

    def curve_data(self, name: str) -> tuple[list[float], list[float]]:
        """The points currently drawn for ``name`` (empty when not drawn)."""
        curve = self.curves.get(name)
        if curve is None or curve.xData is None:
            return [], []
        return list(curve.xData), list(curve.yData)

    def redraw(self, force: bool = False) -> None:
        if not (force or self._dirty):
            return
        wait = self.min_interval_s - (time.monotonic() - self._last_redraw)
        if not force and wait > 0:
            if not self._pending.isActive():
                self._pending.start(int(wait * 1000) + 1)
            return
        self._pending.stop()
        self._last_redraw = time.monotonic()
        self._dirty = False
        names = tuple(sorted(self.series))
        key = (self.mode.currentText(), names)
        if key != self._layout_key:
            self._build(names)
            self._layout_key = key
        for name, curve in self.curves.items():
            xs, ys = self.series.get(name, ([], []))
            few = len(xs) <= 2  # a lone point (a final metric) needs a marker to be seen
            curve.setData(xs, ys, symbol="o" if few else None, symbolSize=8)
        self.empty.setVisible(not names)

    def _build(self, names: tuple[str, ...]) -> None:
        self.graphics.clear()
        self.curves.clear()
        if not names:
            return
        overlay = self.mode.currentText() == OVERLAY
        if overlay:
            plot = self.graphics.addPlot(row=0, col=0)
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLabel("bottom", "step")
            plot.addLegend(offset=(-10, 10))
        cols = 1 if len(names) == 1 else 2
        for i, name in enumerate(names):
            if not overlay:
                plot = self.graphics.addPlot(row=i // cols, col=i % cols)
                plot.setTitle(name, size="9pt")
                plot.showGrid(x=True, y=True, alpha=0.2)
                plot.setLabel("bottom", "step")
            pen = pg.mkPen(color(i), width=2)
            curve = plot.plot([], [], pen=pen, name=name, antialias=False)
            curve.setClipToView(True)
            curve.setDownsampling(auto=True, method="peak")
            self.curves[name] = curve
