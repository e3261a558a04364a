"""Metric curves: only real series (two or more steps), one axis per unit, never an empty plot.

A metric recorded at a single step is a final value: it belongs in the table of final values
(:mod:`ui.views.metrics_panel`), not in a collapsed plot.  A run can hold hundreds of series (a
comparison records every metric of every method per seed), so at most :attr:`MetricPlot.max_plots`
plots or :attr:`MetricPlot.max_curves` overlaid curves are drawn; a name filter picks which.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ui.views.plotting import (
    DecadeAxis,
    SideLegend,
    Style,
    export_graphics,
    finite_points,
    series_styles,
    setup_pyqtgraph,
    style_of,
)

__all__ = ["MetricPlot", "unit_of", "is_series", "matches"]

SEPARATE, OVERLAY = "One plot per metric", "Overlay (one axis per unit)"
RATE, LOSS, SECONDS, OTHER = "rate / AUC [0, 1]", "loss", "seconds", "count / value"


def is_series(xs: list[float]) -> bool:
    """A real series: values at two or more distinct steps."""
    return len(set(xs)) >= 2


def has_finite(ys: list[float]) -> bool:
    """Whether a series has a value that can be drawn (not NaN, not inf)."""
    return any(math.isfinite(y) for y in ys)


def unit_of(name: str, values: list[float]) -> str:
    """The axis a metric is drawn on: losses, durations, values in [0, 1], anything else."""
    base = name.rsplit("/", 1)[-1].lower()
    if "loss" in base:
        return LOSS
    if base.endswith(("seconds", "_s", "_time")):
        return SECONDS
    finite = [v for v in values if math.isfinite(v)]
    if finite and all(0.0 <= v <= 1.0 for v in finite):
        return RATE
    return OTHER


def matches(name: str, text: str) -> bool:
    """Whether ``name`` contains every whitespace-separated word of ``text`` (any case)."""
    low = name.lower()
    return all(word in low for word in text.lower().split())


class MetricPlot(QWidget):
    """Draws ``{name: (steps, values)}``; :meth:`append` adds points, :meth:`redraw` shows them.

    Live redraws are throttled to one per :attr:`min_interval_s`; a hidden plot only marks itself
    stale and draws when it is shown (plots are built lazily, for the visible tab only).
    """

    min_interval_s = 0.25
    max_plots = 4
    max_curves = 8

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._last_redraw = 0.0
        self._pending = QTimer(self)
        self._pending.setSingleShot(True)
        self._pending.timeout.connect(lambda: self.redraw(force=True))
        setup_pyqtgraph()
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.plots: list[pg.PlotItem] = []
        self.styles: dict[str, Style] = {}
        self.legends: dict[int, SideLegend] = {}  # id(plot) -> its legend, beside the plot
        self._legend_on: set[int] = set()
        self._pool: list[pg.PlotItem] = []  # plot items are reused, never torn down per redraw
        self._warm = QTimer(self)  # grows the pool one plot per event-loop turn while idle
        self._warm.setInterval(0)
        self._warm.timeout.connect(self._warm_one)
        self._queue: list[tuple] = []
        self._builder = QTimer(self)
        self._builder.setInterval(0)
        self._builder.timeout.connect(self._build_step)
        self.name_filter = ""
        self.shown: list[str] = []
        self._layout_key: tuple | None = None
        self._dirty = False
        self._stale = False
        self.mode = QComboBox()
        self.mode.addItems([SEPARATE, OVERLAY])
        self.mode.currentIndexChanged.connect(lambda _i: self.redraw_soon())
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setMinimumHeight(180)
        self.empty = QLabel("No metrics recorded yet.")
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: palette(mid);")
        top = QHBoxLayout()
        top.addWidget(QLabel("Curves:"))
        top.addWidget(self.mode)
        top.addWidget(self.empty, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.graphics, 1)

    def set_series(self, series: dict[str, tuple[list[float], list[float]]]) -> None:
        """Replace every series; drawn in the next event-loop turn (see :meth:`redraw_soon`)."""
        self.series = {k: (list(xs), list(ys)) for k, (xs, ys) in series.items()}
        self.redraw_soon()

    def set_filter(self, text: str) -> None:
        self.name_filter = text
        self.redraw_soon()

    def redraw_soon(self) -> None:
        """Redraw in the next event-loop turn: whoever changed the data (a table reset, a new
        selection) paints first, and the GUI never does both in one stall."""
        self._dirty = True
        self._pending.start(0)

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

    def plotted_names(self) -> list[str]:
        """Every series that passes the filter (drawn or not, see :attr:`shown`)."""
        return [
            n
            for n in sorted(self.series)
            if is_series(self.series[n][0])
            and has_finite(self.series[n][1])
            and matches(n, self.name_filter)
        ]

    def blank_names(self) -> list[str]:
        """Series with two or more steps but no finite value (listed in the note, not drawn)."""
        return [
            n
            for n in sorted(self.series)
            if is_series(self.series[n][0])
            and not has_finite(self.series[n][1])
            and matches(n, self.name_filter)
        ]

    def showEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().showEvent(event)
        if len(self._pool) < self.max_plots:
            self._warm.start()
        if self._stale:
            self.redraw(force=True)

    def _warm_one(self) -> None:
        if self._queue:  # building a layout comes first
            return
        if len(self._pool) >= self.max_plots:
            self._warm.stop()
            return
        self._plot_item(len(self._pool))

    def redraw(self, force: bool = False) -> None:
        if not (force or self._dirty):
            return
        if not self.isVisible():  # built when shown: a hidden tab costs nothing
            self._stale = True
            return
        wait = self.min_interval_s - (time.monotonic() - self._last_redraw)
        if not force and wait > 0:
            if not self._pending.isActive():
                self._pending.start(int(wait * 1000) + 1)
            return
        self._pending.stop()
        self._last_redraw = time.monotonic()
        self._dirty = self._stale = False
        overlay = self.mode.currentText() == OVERLAY
        names = self.plotted_names()
        self.shown = names[: self.max_curves if overlay else self.max_plots]
        units = {n: unit_of(n, self.series[n][1]) for n in self.shown}
        key = (overlay, tuple(units.items()))
        if key != self._layout_key:
            self._build(overlay, units)  # new curves get their data as they are made
            self._layout_key = key
        else:
            for name, curve in self.curves.items():
                curve.setData(*self._points(name), **self._symbol(name))
        self.graphics.setVisible(bool(self.shown))
        self.empty.setText(self._note(names))

    @property
    def building(self) -> bool:
        """Whether plots of the current layout are still being added (one per event-loop turn)."""
        return bool(self._queue)

    def _build_step(self) -> None:
        """Add the next queued plot and its curves: one plot per turn keeps each stall short."""
        if not self._queue:
            self._builder.stop()
            return
        row, col, title, unit, legend, names = self._queue.pop(0)
        if title is None:  # another curve of the last plot (an overlay adds one per turn)
            self._curve(self.plots[-1], names[0], len(self.curves))
        else:
            plot = self._new_plot(row, col, title, unit, legend)
            for name in names:
                self._curve(plot, name, len(self.curves))
        if not self._queue:
            self._builder.stop()

    def _points(self, name: str) -> tuple[list[float], list[float]]:
        """The finite points of a series (NaN and inf never reach pyqtgraph, whose bounds take
        ``np.nanmin`` and warn on an all-NaN array)."""
        xs, ys = self.series.get(name, ([], []))
        if all(math.isfinite(y) for y in ys) and all(math.isfinite(x) for x in xs):
            return xs, ys
        x, y = finite_points(xs, ys)
        return x.tolist(), y.tolist()

    def _symbol(self, name: str) -> dict:
        n = len(self._points(name)[0])  # few points (or one): markers show each value
        style = self.styles.get(name) or style_of(name)
        return {"symbol": style.symbol if n <= 8 else None, "symbolSize": 6}

    def _note(self, names: list[str]) -> str:
        singles = sum(1 for xs, _ys in self.series.values() if not is_series(xs))
        if not self.series:
            return "No metrics recorded yet."
        parts = []
        if not names:
            parts.append(
                "No curves: no metric"
                + (" matching the filter" if self.name_filter else "")
                + " has values at two or more steps."
            )
        elif len(self.shown) < len(names):
            parts.append(
                f"Curves of {len(self.shown)} of {len(names)} series; filter to see others."
            )
        if singles:
            parts.append(f"{singles} single-step values are in the table.")
        blank = self.blank_names()
        if blank:
            shown = ", ".join(blank[:4]) + (" …" if len(blank) > 4 else "")
            parts.append(f"No finite values, not drawn: {shown}.")
        return " ".join(parts)

    def _plot_item(self, k: int) -> pg.PlotItem:
        """The ``k``-th plot of the pool (created once, then reused with new curves and titles)."""
        while len(self._pool) <= k:
            plot = pg.PlotItem(
                axisItems={"bottom": DecadeAxis("bottom", integer=True), "left": DecadeAxis("left")}
            )
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLabel("bottom", "step")
            self.legends[id(plot)] = SideLegend()  # placed beside the plot, never over the data
            self._pool.append(plot)
        return self._pool[k]

    def _new_plot(self, row: int, col: int, title: str, unit: str, legend: bool) -> pg.PlotItem:
        plot = self._plot_item(len(self.plots))
        plot.clear()
        side = self.legends[id(plot)]
        side.clear()
        side.updateSize()
        plot.setTitle(title or None, size="9pt")
        plot.setLabel("left", unit)
        plot.enableAutoRange()
        self.graphics.addItem(plot, row=row, col=2 * col)
        if legend:
            self._legend_on.add(id(plot))
            side.place(self.graphics.ci, row, 2 * col + 1)
        self.plots.append(plot)
        return plot

    def _build(self, overlay: bool, units: dict[str, str]) -> None:
        """Queue the plots of a new layout; :meth:`_build_step` adds them one per turn."""
        self.graphics.ci.clear()  # takes the plots out of the layout; they stay in the pool
        self.curves.clear()
        self.plots.clear()
        # overlaid curves share a plot and need distinct styles; a plot per metric draws each
        # in its method's own colour (trw/forget_acc in TRW's colour)
        self.styles = series_styles(units) if overlay else {n: style_of(n) for n in units}
        self._legend_on: set[int] = set()
        self._queue = []
        if overlay:
            groups: dict[str, list[str]] = {}
            for name, unit in units.items():
                groups.setdefault(unit, []).append(name)
            cols = 1 if len(groups) == 1 else 2
            for g, (unit, names) in enumerate(sorted(groups.items())):
                self._queue.append((g // cols, g % cols, "", unit, True, names[:1]))
                self._queue.extend((0, 0, None, unit, True, [n]) for n in names[1:])
        else:
            cols = 1 if len(units) == 1 else 2
            for i, (name, unit) in enumerate(units.items()):
                self._queue.append((i // cols, i % cols, name, unit, False, [name]))
        if self._queue:
            self._builder.start()

    def _curve(self, plot: pg.PlotItem, name: str, i: int) -> None:
        style = self.styles.get(name) or style_of(name)
        xs, ys = self._points(name)
        curve = plot.plot(
            xs,
            ys,
            pen=style.pen(2),
            name=name,
            antialias=False,
            symbolBrush=style.color,
            symbolPen=None,
            **self._symbol(name),
        )
        curve.setClipToView(True)
        curve.setDownsampling(auto=True, method="peak")
        side = self.legends[id(plot)]
        if id(plot) in self._legend_on:  # overlay mode: the legend beside the plot names curves
            side.addItem(curve, name)
        self.curves[name] = curve

    def export_figure(self, path: str | Path) -> Path:
        """The curves shown (PNG or SVG); ``ValueError`` when none are."""
        if not self.shown:
            raise ValueError("no curves are drawn (single-step values are in the table)")
        return export_graphics(self.graphics.ci, path)
