"""Viewer of :class:`~workbench.artifacts.IntervalCurves`: one line per series with its 95%
interval as a shaded band (issue 13 part 7: concept rate against downstream fine-tuning steps, one
line per unlearning method, with intervals).

The before/after gallery and the ablation table of ``diffusion.resalign_compare`` are an
``ImageGrid`` and a ``Table`` and use the generic viewers.
"""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ui.export import write_csv
from ui.views.plotting import Figure, series_styles
from workbench.artifacts import IntervalCurves

__all__ = ["IntervalCurvesViewer"]

BAND_ALPHA = 50
"""Opacity (0-255) of an interval band."""


class IntervalCurvesViewer(QWidget):
    """Lines with markers at the measured steps and a translucent band between each series'
    interval ends; the legend names the series; the table export carries the intervals."""

    def __init__(self, artifact: IntervalCurves, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        self.plot = Figure("", artifact.x_label, artifact.y_label)
        self.plot.set_log(artifact.log_x, artifact.log_y)
        self.styles = series_styles(artifact.series)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.bands: dict[str, pg.FillBetweenItem] = {}
        item = self.plot.getPlotItem()
        for name, (xs, ys) in artifact.series.items():
            style = self.styles[name]
            band = artifact.bands.get(name)
            if band is not None and xs:
                lo = pg.PlotCurveItem(xs, band[0], pen=None)
                hi = pg.PlotCurveItem(xs, band[1], pen=None)
                colour = QColor(style.color)
                colour.setAlpha(BAND_ALPHA)
                fill = pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(colour))
                item.addItem(fill)
                self.bands[name] = fill
            curve = self.plot.add_series(name, xs, ys, style)
            if curve is not None:
                self.curves[name] = curve
        lay = QVBoxLayout(self)
        if artifact.title:
            label = QLabel(artifact.title)
            label.setWordWrap(True)
            font = label.font()
            font.setBold(True)
            label.setFont(font)
            lay.addWidget(label)
        lay.addWidget(self.plot, 1)

    def export_figure(self, path: str | Path) -> Path:
        return self.plot.export_figure(path)

    def export_table(self, path: str | Path) -> Path:
        """Long-format CSV: series, x, y, low, high."""
        rows = []
        for name, (xs, ys) in self.artifact.series.items():
            lows, highs = self.artifact.bands.get(name, ([None] * len(xs), [None] * len(xs)))
            rows += list(zip([name] * len(xs), xs, ys, lows, highs, strict=True))
        x_label = self.artifact.x_label or "x"
        return write_csv(
            path, ["series", x_label, self.artifact.y_label or "y", "low", "high"], rows
        )


def screenshots(folder: str | Path, out_dir: str | Path = "docs", curve: str = "") -> list[Path]:
    """Screenshots of a comparison's views written by ``python -m backends.diffusion.resilience
    artifacts <json> <folder>``: the main scenario's rate curves (``curve``: an artifact name;
    empty: the first explicit-rate curve) and the before/after gallery."""
    import json

    from PySide6.QtWidgets import QApplication

    import ui.views.run_view  # noqa: F401  (registers this viewer in the view table)
    from ui.screenshots import save_grab
    from ui.views.artifact_views import make_viewer

    app = QApplication.instance() or QApplication([])
    index = {row["name"]: row for row in json.loads((Path(folder) / "index.json").read_text())}
    if not curve:
        curve = next(n for n, r in index.items() if r["kind"] == "interval_curves")
    saved = []
    for name, file, size in (
        (curve, "screenshot-resalign-curves.png", (900, 520)),
        ("gallery", "screenshot-resalign-gallery.png", (1500, 860)),
    ):
        row = index[name]
        viewer = make_viewer(row["kind"], Path(row["path"]), row["meta"])
        viewer.resize(*size)
        viewer.show()
        for _ in range(20):
            app.processEvents()
        saved.append(save_grab(viewer, Path(out_dir) / file))
        viewer.close()
    return saved


if __name__ == "__main__":
    import sys

    for path in screenshots(*sys.argv[1:4]):
        print(path)
