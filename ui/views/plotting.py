"""pyqtgraph set-up shared by every plot: light theme, one palette, legends beside the data.

- :func:`series_styles` gives every series of a plot its own (colour, line style, marker): 20
  qualitative colours first, then the same colours dashed, dotted and dash-dotted.  Method names
  (``original``, ``retrain``, ``trw`` ...) have fixed colours, so a method looks the same in
  every view; other names prefer a colour derived from their name.
- :class:`DecadeAxis` labels log axes at decades only (``1e-3, 0.01, 0.1, 1``), never the minor
  ticks between them, and thins the labels when the axis is short.
- :class:`Figure` is one plot with its legend in a column to the right of the data, a note for
  what could not be drawn (a series with no finite value), markers for series of few points, and
  :meth:`Figure.export_figure` (PNG or SVG).
- :func:`finite_points` drops NaN and inf (and values a log axis cannot show) before anything
  reaches pyqtgraph, whose bounds use ``np.nanmin`` and warn on an all-NaN array.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFontMetricsF, QPen
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

__all__ = [
    "PALETTE",
    "DecadeAxis",
    "Figure",
    "SideLegend",
    "Style",
    "color",
    "export_graphics",
    "finite_points",
    "plot_widget",
    "series_styles",
    "setup_pyqtgraph",
    "style_of",
]

# 20 qualitative colours that stay apart on white (no yellow or pastel that vanishes).
PALETTE = (
    "#1f77b4",  # 0 blue
    "#d62728",  # 1 red
    "#2ca02c",  # 2 green
    "#ff7f0e",  # 3 orange
    "#9467bd",  # 4 purple
    "#8c564b",  # 5 brown
    "#e377c2",  # 6 pink
    "#17becf",  # 7 cyan
    "#bcbd22",  # 8 olive
    "#7f7f7f",  # 9 grey
    "#636efa",  # 10 periwinkle
    "#800000",  # 11 maroon
    "#469990",  # 12 teal
    "#f032e6",  # 13 magenta
    "#e6ab02",  # 14 mustard
    "#b15928",  # 15 rust
    "#a6cee3",  # 16 light blue
    "#fb9a99",  # 17 salmon
    "#6a3d9a",  # 18 violet
    "#000000",  # 19 black
)
DASHES = (
    Qt.PenStyle.SolidLine,
    Qt.PenStyle.DashLine,
    Qt.PenStyle.DotLine,
    Qt.PenStyle.DashDotLine,
)
SYMBOLS = ("o", "s", "t", "d")

# Fixed (colour, line style) slots of the methods every family records, so that a method has the
# same colour in the ROC chart, the bars, the metric curves and the compare view.
KNOWN: dict[str, tuple[int, int]] = {
    "original": (19, 0),
    "before": (19, 0),
    "retrain": (1, 0),
    "retrained": (1, 0),
    "trw": (0, 0),
    "rwft": (3, 0),
    "ft": (2, 0),
    "ga": (4, 0),
    "neggrad_plus": (5, 0),
    "rl": (6, 0),
    "scrub": (7, 0),
    "salun": (8, 0),
    "l1_sparse": (12, 0),
    "boundary_shrink": (11, 0),
    "graddiff": (12, 0),
    "npo": (13, 0),
    "simnpo": (14, 0),
    "rmu": (15, 0),
    "esd": (12, 0),
    "uce": (13, 0),
    "ca": (14, 0),
    "unlearned": (0, 0),
    "erased": (0, 0),
    "relearn": (15, 0),
    "chance": (9, 1),
}

_done = False


def setup_pyqtgraph() -> None:
    global _done
    if not _done:
        pg.setConfigOptions(
            background="w", foreground="k", antialias=True, imageAxisOrder="row-major"
        )
        _done = True


@dataclass(frozen=True)
class Style:
    """How one series is drawn: colour, line style and marker shape."""

    color: str
    dash: Qt.PenStyle = Qt.PenStyle.SolidLine
    symbol: str = "o"

    def pen(self, width: float = 2.0) -> QPen:
        return pg.mkPen(self.color, width=width, style=self.dash)


def _slot_style(c: int, tier: int) -> Style:
    return Style(PALETTE[c % len(PALETTE)], DASHES[tier % len(DASHES)], SYMBOLS[tier % 4])


def color(i: int) -> str:
    """The ``i``-th palette colour (for code that numbers its series itself)."""
    return PALETTE[i % len(PALETTE)]


def _known(key: str) -> tuple[int, int] | None:
    """The fixed slot of a method name, also inside ``trw/forget_acc`` or ``run 5 · trw``."""
    low = key.strip().lower()
    if low in KNOWN:
        return KNOWN[low]
    for part in low.replace(" · ", "/").split("/"):
        if part.strip() in KNOWN:
            return KNOWN[part.strip()]
    return None


def _preferred(key: str) -> tuple[int, int]:
    known = _known(key)
    if known is not None:
        return known
    return zlib.crc32(key.encode("utf-8")) % len(PALETTE), 0


def label_plot(item: pg.PlotItem, title: str = "", x_label: str = "", y_label: str = "") -> None:
    """Title, axis labels and a light grid on a pyqtgraph PlotItem (every plot's look)."""
    if title:
        item.setTitle(title, size="10pt")
    if x_label:
        item.setLabel("bottom", x_label)
    if y_label:
        item.setLabel("left", y_label)
    item.showGrid(x=True, y=True, alpha=0.2)


def series_styles(
    names: Iterable[str], key: Callable[[str], str] | None = None
) -> dict[str, Style]:
    """A distinct :class:`Style` for each name: up to 20 solid colours, then dashed, dotted...

    ``key(name)`` (default: the name) picks the preferred colour: a known method's fixed one, or
    one derived from the text.  Known names claim their slot first; a name whose slot is taken
    gets the next free colour of the same line style, then of the next style.
    """
    names = list(dict.fromkeys(names))
    prefs = {n: _preferred(key(n) if key else n) for n in names}
    n_slots = len(PALETTE) * len(DASHES)
    used: set[tuple[int, int]] = set()
    out: dict[str, Style] = {}
    order = [n for n in names if _known(key(n) if key else n)] + [
        n for n in names if not _known(key(n) if key else n)
    ]
    for name in order:
        c, tier = prefs[name]
        slot = None
        if len(used) < n_slots:
            for t in range(len(DASHES)):
                for j in range(len(PALETTE)):
                    cand = ((c + j) % len(PALETTE), (tier + t) % len(DASHES))
                    if cand not in used:
                        slot = cand
                        break
                if slot is not None:
                    break
        if slot is None:  # more than 80 series: styles repeat
            slot = (c, tier)
        used.add(slot)
        out[name] = _slot_style(*slot)
    return {n: out[n] for n in names}


def style_of(name: str) -> Style:
    """The style ``name`` gets when it is drawn alone (its preferred slot)."""
    return series_styles([name])[name]


def finite_points(
    xs: Sequence[float], ys: Sequence[float], *, log_x: bool = False, log_y: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The points of a series pyqtgraph can draw: both coordinates finite (and > 0 on a log
    axis).  Never warns, whatever the input."""
    x = np.asarray(xs, dtype=float).ravel()
    y = np.asarray(ys, dtype=float).ravel()
    n = min(x.size, y.size)
    x, y = x[:n], y[:n]
    keep = np.isfinite(x) & np.isfinite(y)
    if log_x:
        keep &= x > 0
    if log_y:
        keep &= y > 0
    return x[keep], y[keep]


class DecadeAxis(pg.AxisItem):
    """An axis whose log mode labels decades only (``1e-3``, ``0.01``, ``0.1``, ``1``).

    Minor ticks (2..9 times a decade) are drawn without labels; when the axis is too short for
    every decade, every second (third...) one is labelled.  Linear mode is pyqtgraph's own.
    """

    min_label_px = 48

    def __init__(self, orientation: str, *, integer: bool = False, **kwargs: object) -> None:
        super().__init__(orientation, **kwargs)
        self.integer = integer  # steps and seeds: ticks at whole numbers only
        self.enableAutoSIPrefix(False)  # probabilities read 0.9, not "900 (x0.001)"

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803 (pyqtgraph)
        levels = super().tickValues(minVal, maxVal, size)
        if not self.integer or self.logMode:
            return levels
        out = [
            (spacing, [v for v in values if float(v).is_integer()])
            for spacing, values in levels
            if spacing is not None and spacing >= 1
        ]
        if not out:  # zoomed in below one step: the whole numbers in view
            lo, hi = sorted((minVal, maxVal))
            out = [(1.0, [float(v) for v in range(math.ceil(lo), math.floor(hi) + 1)])]
        return out

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # noqa: N802, N803 (pyqtgraph)
        lo, hi = sorted((minVal, maxVal))
        first, last = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
        decades = list(range(first, last + 1))
        if len(decades) < 2:  # less than a decade in view: pyqtgraph's ticks, labels decided below
            return super().logTickValues(minVal, maxVal, size, stdTicks)
        step = max(1, math.ceil(len(decades) * self.min_label_px / max(size, 1.0)))
        major = [float(d) for d in decades if d % step == 0] or [float(decades[0])]
        minor = [
            d + math.log10(k)
            for d in range(first - 1, last + 1)
            for k in range(1, 10)
            if lo < d + math.log10(k) < hi and float(d + math.log10(k)) not in major
        ]
        return [(float(step), major), (None, minor)]

    def logTickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph)
        if spacing is None:  # minor ticks: no labels (they ran together)
            return ["" for _v in values]
        return decade_labels(values)


def decade_labels(log_values: Sequence[float]) -> list[str]:
    """Labels of decades in one notation: ``0.001, 0.01, 0.1, 1`` while every decade lies in
    1e-3..1e3, else ``1e-5, 1e-4, ..., 1``; a value between decades gets ``%.2g``."""
    decades = [round(v) for v in log_values]
    plain = all(-3 <= d <= 3 for d in decades)
    out = []
    for v, d in zip(log_values, decades, strict=True):
        if abs(v - d) > 1e-6:
            out.append(f"{10**v:.2g}")
        elif d == 0 or plain:
            out.append(f"{10.0**d:g}")
        else:
            out.append(f"1e{d}")
    return out


class SideLegend(pg.LegendItem):
    """A legend that lives in a layout cell (to the right of its plot), never over the data."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(offset=None, labelTextSize="9pt", verSpacing=-4, **kwargs)
        self.measuring = False

    def updateSize(self) -> None:  # noqa: N802 (pyqtgraph)
        width = height = 0.0
        for row in range(self.layout.rowCount()):
            row_height = col_width = 0.0
            for col in range(self.layout.columnCount()):
                item = self.layout.itemAt(row, col)
                if item:
                    col_width += item.preferredWidth() + 6
                    row_height = max(row_height, item.preferredHeight())
            width, height = max(width, col_width), height + row_height
        self.setMinimumWidth(width + 8 if self.items else 0)
        self.setMaximumWidth(width + 8 if self.items else 0)
        self.setPreferredHeight(height)
        # never squeezed into overlapping rows (the Figure keeps it short), and together at the
        # top of a tall plot; while the Figure measures its entries it sets no minimum
        self.setMinimumHeight(0 if self.measuring else height)
        self.setMaximumHeight(height)
        self.updateGeometry()

    def place(self, layout: pg.GraphicsLayout, row: int, col: int) -> None:
        """Put the legend in ``layout``'s cell, top-aligned (to the right of the plot)."""
        layout.addItem(self, row=row, col=col)
        layout.layout.setAlignment(self, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

    _metrics: tuple[QFontMetricsF, float, float] | None = None  # font, extra width, row height

    def measure(self, names: Sequence[str]) -> tuple[float, float]:
        """Width of the widest entry and height of a row, for these names, without building
        the entries (a label item costs about a millisecond; font metrics nothing)."""
        if SideLegend._metrics is None:  # calibrated once against a real label
            probe = pg.LabelItem("Mg" * 8, size=self.opts["labelTextSize"])
            font = probe.item.font()
            metrics = QFontMetricsF(font)
            extra = probe.preferredWidth() - metrics.horizontalAdvance("Mg" * 8)
            row = max(probe.preferredHeight(), 20.0)  # the line sample is 20 px high
            SideLegend._metrics = (metrics, extra, row)
        metrics, extra, row = SideLegend._metrics
        widest = max((metrics.horizontalAdvance(n) for n in names), default=0.0)
        return widest + extra + 20 + 14, row

    def entry_size(self) -> tuple[float, float]:
        """Width and height of the widest entry (sample and label)."""
        width = height = 0.0
        for sample, label in self.items:
            width = max(width, sample.preferredWidth() + label.preferredWidth() + 8)
            height = max(height, sample.preferredHeight(), label.preferredHeight())
        return width, height

    def boundingRect(self):  # noqa: N802 (Qt)
        return pg.QtCore.QRectF(0, 0, self.width(), self.height())


def export_graphics(item: pg.GraphicsObject | pg.GraphicsWidget, path: str | Path) -> Path:
    """Write ``item`` (a plot, a layout of plots and legends) as PNG or SVG, by the suffix."""
    import pyqtgraph.exporters as exporters

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".svg":
        # Qt's own SVG generator: pyqtgraph 0.14's SVGExporter fails on the path data Qt 6
        # writes ("not enough values to unpack"); text stays text, curves stay vectors
        return _svg_of_scene_rect(item, path)
    if suffix == ".png":
        exporter = exporters.ImageExporter(item)
        width = int(item.boundingRect().width())
        if width > 0:  # at least 1200 px wide, so that a small view still exports legibly
            exporter.parameters()["width"] = max(1200, width)
    else:
        raise ValueError(f"cannot export a figure as {path.name!r}: use .png or .svg")
    exporter.export(str(path))
    return path


def _svg_of_scene_rect(item: pg.GraphicsObject | pg.GraphicsWidget, path: Path) -> Path:
    from PySide6.QtCore import QRect, QRectF, QSize
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    scene = item.scene()
    if scene is None:
        raise ValueError("the figure is not shown, so there is nothing to export")
    source = item.sceneBoundingRect()
    w, h = max(1, round(source.width())), max(1, round(source.height()))
    gen = QSvgGenerator()
    gen.setFileName(str(path))
    gen.setSize(QSize(w, h))
    gen.setViewBox(QRect(0, 0, w, h))
    gen.setTitle(path.stem)
    views = scene.views()  # the screen's resolution: at the generator's default 72 dpi, items
    if views:  # that size themselves in device pixels (axes, text) are drawn at 3/4 scale
        gen.setResolution(views[0].logicalDpiY())
    painter = QPainter(gen)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        scene.render(painter, QRectF(0, 0, w, h), source)
    finally:
        painter.end()
    if not path.exists():
        raise OSError(f"could not write {path}")
    return path


class Figure(QWidget):
    """One plot, its legend in the column to the right, and a note about what was not drawn.

    :meth:`add_series` drops non-finite points, draws a series of few points with markers (a
    single point is visible), and lists a series with no finite point in :attr:`note` instead of
    drawing an empty curve; when nothing at all can be drawn the plot hides behind the note.
    """

    few_points = 8

    def __init__(
        self,
        title: str = "",
        x_label: str = "",
        y_label: str = "",
        parent: QWidget | None = None,
        *,
        integer_x: bool = False,
    ) -> None:
        super().__init__(parent)
        setup_pyqtgraph()
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setMinimumHeight(120)
        self.plot_item = pg.PlotItem(
            axisItems={
                "bottom": DecadeAxis("bottom", integer=integer_x),
                "left": DecadeAxis("left"),
            }
        )
        self.graphics.addItem(self.plot_item, row=0, col=0)
        self.legend = SideLegend()
        self.legend.place(self.graphics.ci, 0, 1)
        self.legend_at = (0, 1)  # (row, col) of the legend: right of the plot, or below it
        self._arrange = QTimer(self)
        self._arrange.setSingleShot(True)
        self._arrange.timeout.connect(self.arrange_legend)
        self.graphics.ci.layout.setColumnStretchFactor(0, 1)
        label_plot(self.plot_item, title, x_label, y_label)
        self.log_x = self.log_y = False
        self.items: dict[str, pg.GraphicsObject] = {}
        self._pool: list[pg.PlotDataItem] = []  # curves in the plot, reused after clear()
        self._used = 0
        self.entries: list[tuple[pg.GraphicsObject, str]] = []  # what the legend names, in order
        self.legend_hidden = 0  # entries left out of a legend too long for the figure
        self._legend_key: tuple | None = None  # what the legend shows now
        self._more = pg.PlotDataItem(pen=None)  # the sample (nothing) of the "… N more" line
        self.skipped: list[str] = []
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #8a6d3b;")
        self.note.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.note)
        layout.addWidget(self.graphics, 1)

    # pyqtgraph's PlotWidget API, for callers that treat this as one
    def getPlotItem(self) -> pg.PlotItem:  # noqa: N802
        return self.plot_item

    def set_log(self, x: bool = False, y: bool = False) -> None:
        self.log_x, self.log_y = x, y
        self.plot_item.setLogMode(x=x, y=y)

    def clear(self) -> None:
        """Remove every series; curves are hidden and kept for reuse (creating a pyqtgraph
        curve costs about 10 ms, redrawing one a fraction of that)."""
        for item in self.items.values():
            if item in self._pool:
                item.hide()
            else:
                self.plot_item.removeItem(item)
        self._used = 0
        self.entries.clear()  # the legend keeps its entries until arrange_legend sees new ones
        self._arrange.start(0)
        self.items.clear()
        self.skipped.clear()
        self._update_note()

    def add_series(
        self,
        name: str,
        xs: Sequence[float],
        ys: Sequence[float],
        style: Style,
        *,
        scatter: bool = False,
        legend: bool = True,
    ) -> pg.PlotDataItem | None:
        """Draw a curve (or points); ``None`` and a note when the series has no finite point."""
        x, y = finite_points(xs, ys, log_x=self.log_x, log_y=self.log_y)
        if x.size == 0:
            self.skipped.append(name)
            self._update_note()
            return None
        markers = scatter or x.size <= self.few_points
        opts = {  # named, but the legend is ours (beside the plot)
            "name": name,
            "pen": None if scatter else style.pen(2),
            "symbol": style.symbol if markers else None,
            "symbolSize": 7,
            "symbolBrush": style.color,
            "symbolPen": None,
        }
        if self._used < len(self._pool):
            curve = self._pool[self._used]
            curve.setData(x, y, **opts)
            curve.show()
        else:
            curve = self.plot_item.plot(x, y, **opts)
            self._pool.append(curve)
        self._used += 1
        self.items[name] = curve
        if legend:  # the legend is filled by arrange_legend, in the next event-loop turn
            self.entries.append((curve, name))
            self._arrange.start(0)
        self._update_note()
        return curve

    def add_bars(
        self, name: str, x: np.ndarray, heights: Sequence[float], width: float, style: Style
    ) -> pg.BarGraphItem:
        """Bars at ``x`` (non-finite heights are drawn as 0 and named in the note)."""
        h = np.asarray(heights, dtype=float)
        if not np.isfinite(h).all():
            self.skipped.append(f"{name} ({int((~np.isfinite(h)).sum())} missing)")
            h = np.where(np.isfinite(h), h, 0.0)
        bar = pg.BarGraphItem(x=x, height=h, width=width, brush=style.color, pen=None)
        self.plot_item.addItem(bar)
        self.entries.append((bar, name))
        self._arrange.start(0)
        self.items[name] = bar
        self._update_note()
        return bar

    def _update_note(self) -> None:
        parts = []
        if self.skipped:
            shown = ", ".join(self.skipped[:6]) + (" …" if len(self.skipped) > 6 else "")
            parts.append(f"Not drawn, no finite values: {shown}.")
        if not self.items:
            parts.insert(0, "Nothing to plot.")
        self.note.setText(" ".join(parts))
        self.note.setVisible(bool(parts))
        self.graphics.setVisible(bool(self.items))
        self.legend.updateSize()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().resizeEvent(event)
        self._arrange.start(0)

    def arrange_legend(self) -> None:
        """Legend right of the plot while it fits there (tall enough, at most a third of the
        width); otherwise below the plot in as many columns as the width holds, taking at most
        35% of the height: entries beyond that are summed up as "… N more"."""
        self._arrange.stop()
        n = len(self.entries)
        if not n:
            self._fill_legend(0, 1)
            return
        width, height = self.graphics.width(), self.graphics.height()
        entry_w, entry_h = self.legend.measure([name for _item, name in self.entries])
        if n * entry_h <= 0.9 * height and entry_w + 20 <= width / 3:
            at, cols, shown = (0, 1), 1, n
        else:
            at = (1, 0)
            cols = max(1, min(n, int((width - 20) // (entry_w + 12))))
            rows = max(1, int(0.35 * height // entry_h))
            shown = n if n <= cols * rows else max(0, cols * rows - 1)
        self._fill_legend(shown, cols)
        if at != self.legend_at:
            self.graphics.ci.removeItem(self.legend)
            self.legend.place(self.graphics.ci, *at)
            self.legend_at = at
        self.legend.updateSize()
        self.graphics.ci.setGeometry(self.graphics.range)  # back to the view's size

    def _fill_legend(self, shown: int, cols: int) -> None:
        key = (
            tuple((id(item), name) for item, name in self.entries[:shown]),
            len(self.entries),
            cols,
        )
        if key == self._legend_key:
            return
        self._legend_key = key
        self.legend.setColumnCount(1)
        self.legend.clear()
        for item, name in self.entries[:shown]:
            self.legend.addItem(item, name)
        self.legend_hidden = len(self.entries) - shown
        if self.legend_hidden:
            self.legend.addItem(self._more, f"… {self.legend_hidden} more (enlarge to see)")
        self.legend.setColumnCount(cols)

    def export_figure(self, path: str | Path) -> Path:
        if self._arrange.isActive():
            self.arrange_legend()
        return export_graphics(self.graphics.ci, path)


def plot_widget(title: str = "", x_label: str = "", y_label: str = "") -> pg.PlotWidget:
    """A bare plot (no legend) for views that draw something other than named series."""
    setup_pyqtgraph()
    w = pg.PlotWidget(axisItems={"bottom": DecadeAxis("bottom"), "left": DecadeAxis("left")})
    item = w.getPlotItem()
    label_plot(item, title, x_label, y_label)
    w.setMinimumHeight(120)
    return w
