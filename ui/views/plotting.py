"""pyqtgraph set-up shared by every plot: light theme, row-major images, a colour palette."""

from __future__ import annotations

import pyqtgraph as pg

__all__ = ["PALETTE", "color", "setup_pyqtgraph", "plot_widget"]

PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)
_done = False


def setup_pyqtgraph() -> None:
    global _done
    if not _done:
        pg.setConfigOptions(
            background="w", foreground="k", antialias=True, imageAxisOrder="row-major"
        )
        _done = True


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def plot_widget(title: str = "", x_label: str = "", y_label: str = "") -> pg.PlotWidget:
    setup_pyqtgraph()
    w = pg.PlotWidget()
    item = w.getPlotItem()
    if title:
        item.setTitle(title, size="10pt")
    if x_label:
        item.setLabel("bottom", x_label)
    if y_label:
        item.setLabel("left", y_label)
    item.showGrid(x=True, y=True, alpha=0.2)
    for side in ("left", "bottom"):  # probabilities read 0.9, not "900 (x0.001)"
        item.getAxis(side).enableAutoSIPrefix(False)
    w.setMinimumHeight(120)
    return w
