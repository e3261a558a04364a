"""Viewers for every artifact kind of :mod:`workbench.artifacts`.

:func:`make_viewer` loads an artifact from its files and returns a widget drawing it; an artifact
that cannot be read becomes a readable error label instead of an exception.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.views.gallery import GalleryViewer, pil_to_pixmap
from ui.views.graph_explorer import GraphViewer
from ui.views.plotting import color, plot_widget, setup_pyqtgraph
from workbench.artifacts import (
    Bars,
    Curves,
    FileRef,
    Heatmap,
    Table,
    Text,
    load_artifact,
)

__all__ = [
    "BarsViewer",
    "CurvesViewer",
    "FileViewer",
    "GalleryViewer",
    "GraphViewer",
    "HeatmapViewer",
    "ImageGridViewer",
    "TableViewer",
    "TextViewer",
    "ErrorViewer",
    "make_viewer",
    "pil_to_pixmap",
]


def _title(text: str) -> QLabel:
    label = QLabel(text)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    label.setWordWrap(True)
    return label


class _SortItem(QTableWidgetItem):
    """Sorts by the numeric value stored in UserRole when both cells have one."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a < b
        return self.text().lower() < other.text().lower()


def sort_item(value: Any) -> QTableWidgetItem:
    item = _SortItem()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        item.setText(f"{value:.4g}" if isinstance(value, float) else str(value))
        item.setData(Qt.ItemDataRole.UserRole, value)
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    else:
        item.setText("" if value is None else str(value))
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    return item


# -- viewers ---------------------------------------------------------------------------------


# The image-grid viewer is the gallery (verdict badges, per-column summaries, row filter, zoom
# dialog); the old name stays importable from here.
ImageGridViewer = GalleryViewer


class HeatmapViewer(QWidget):
    """A matrix as an image with labelled axes, a colour bar and (for small ones) cell values."""

    def __init__(self, artifact: Heatmap, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        setup_pyqtgraph()
        self.artifact = artifact
        m = np.asarray(artifact.matrix, dtype=float)
        h, w = m.shape
        self.graphics = pg.GraphicsLayoutWidget()
        item = self.graphics.addPlot(row=0, col=0)
        self.plot_item = item
        item.setLabel("bottom", artifact.x_title)
        item.setLabel("left", artifact.y_title)
        self.image = pg.ImageItem(m, axisOrder="row-major")
        self.image.setRect(QRectF(0, 0, w, h))
        item.addItem(self.image)
        item.invertY(True)
        item.setAspectLocked(False)
        finite = m[np.isfinite(m)]
        lo = artifact.vmin if artifact.vmin is not None else (finite.min() if finite.size else 0)
        hi = artifact.vmax if artifact.vmax is not None else (finite.max() if finite.size else 1)
        if artifact.diverging:
            bound = max(abs(lo), abs(hi)) or 1.0
            lo, hi, cmap = -bound, bound, pg.colormap.get("CET-D1")
        else:
            cmap = pg.colormap.get("viridis")
        if hi <= lo:
            hi = lo + 1.0
        self.colorbar = pg.ColorBarItem(values=(lo, hi), colorMap=cmap, interactive=False)
        self.colorbar.setImageItem(self.image)
        self.graphics.addItem(self.colorbar, row=0, col=1)
        if artifact.x_labels:
            item.getAxis("bottom").setTicks(
                [[(i + 0.5, str(t)) for i, t in enumerate(artifact.x_labels)]]
            )
        if artifact.y_labels:
            item.getAxis("left").setTicks(
                [[(i + 0.5, str(t)) for i, t in enumerate(artifact.y_labels)]]
            )
        self.texts: list[pg.TextItem] = []
        self._columns = w
        if h * w <= 400:
            mid = (lo + hi) / 2
            for r in range(h):
                for c in range(w):
                    v = m[r, c]
                    text = f"{v:.0f}" if float(v).is_integer() else f"{v:.2g}"
                    t = pg.TextItem(text, color="w" if v < mid else "k", anchor=(0.5, 0.5))
                    t.setPos(c + 0.5, r + 0.5)
                    item.addItem(t)
                    self.texts.append(t)
        item.setRange(xRange=(0, w), yRange=(0, h), padding=0)
        layout = QVBoxLayout(self)
        if artifact.title:
            layout.addWidget(_title(artifact.title))
        layout.addWidget(self.graphics, 1)
        item.vb.sigResized.connect(self._fit_texts)

    MIN_CELL_PX = 34  # narrower cells would make their values overlap

    def _fit_texts(self, *_: object) -> None:
        """Show cell values only while each cell is wide enough to hold one."""
        cell = self.plot_item.vb.width() / max(1, self._columns)
        for t in self.texts:
            t.setVisible(cell >= self.MIN_CELL_PX)


class CurvesViewer(QWidget):
    """Named x/y series on one plot with a legend."""

    def __init__(self, artifact: Curves, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        self.plot = plot_widget("", artifact.x_label, artifact.y_label)
        item = self.plot.getPlotItem()
        item.addLegend(offset=(-10, 10))
        item.setLogMode(x=artifact.log_x, y=artifact.log_y)
        self.curves = {}
        for i, (name, (xs, ys)) in enumerate(artifact.series.items()):
            if artifact.scatter:
                self.curves[name] = item.plot(
                    xs, ys, pen=None, symbol="o", symbolSize=7, symbolBrush=color(i),
                    symbolPen=None, name=name,
                )  # fmt: skip
            else:
                self.curves[name] = item.plot(xs, ys, pen=pg.mkPen(color(i), width=2), name=name)
        lay = QVBoxLayout(self)
        if artifact.title:
            lay.addWidget(_title(artifact.title))
        lay.addWidget(self.plot, 1)


class BarsViewer(QWidget):
    """Grouped bars, one colour per series, categories on the x axis, with a legend."""

    def __init__(self, artifact: Bars, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        self.plot = plot_widget("", artifact.x_label, artifact.y_label)
        item = self.plot.getPlotItem()
        item.addLegend(offset=(-10, 10))
        n_series = max(1, len(artifact.series))
        width = 0.8 / n_series
        xs = np.arange(len(artifact.categories), dtype=float)
        self.bars = {}
        for i, (name, values) in enumerate(artifact.series.items()):
            offset = (i - (n_series - 1) / 2) * width
            bar = pg.BarGraphItem(
                x=xs + offset, height=values, width=width * 0.95, brush=color(i), name=name
            )
            item.addItem(bar)  # named items join the legend by themselves
            self.bars[name] = bar
        axis = item.getAxis("bottom")
        labels = [
            (float(x), f"[{c}]" if c in artifact.highlight else c)
            for x, c in zip(xs, artifact.categories, strict=True)
        ]
        axis.setTicks([labels])
        item.showGrid(x=False, y=True, alpha=0.2)
        lay = QVBoxLayout(self)
        if artifact.title:
            lay.addWidget(_title(artifact.title))
        lay.addWidget(self.plot, 1)


class TableViewer(QWidget):
    """A sortable table."""

    def __init__(self, artifact: Table, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        self.table = QTableWidget(len(artifact.rows), len(artifact.columns))
        self.table.setHorizontalHeaderLabels([str(c) for c in artifact.columns])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        for r, row in enumerate(artifact.rows):
            for c, value in enumerate(row):
                self.table.setItem(r, c, sort_item(value))
        # keep the producer's row order until the user clicks a header
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        lay = QVBoxLayout(self)
        if artifact.title:
            lay.addWidget(_title(artifact.title))
        lay.addWidget(self.table)


class TextViewer(QWidget):
    def __init__(self, artifact: Text, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        self.text = QPlainTextEdit(artifact.text)
        self.text.setReadOnly(True)
        lay = QVBoxLayout(self)
        if artifact.title:
            lay.addWidget(_title(artifact.title))
        lay.addWidget(self.text)


class FileViewer(QWidget):
    """A file or folder a job wrote: its path and a button opening the folder."""

    def __init__(self, artifact: FileRef, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        path = Path(artifact.path)
        self.path_label = QLabel(str(path))
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.path_label.setWordWrap(True)
        exists = path.exists()
        state = QLabel("" if exists else "(missing on disk)")
        state.setStyleSheet("color: #a94442;")
        self.open_button = QPushButton("Open folder")
        self.open_button.setEnabled(exists)
        self.open_button.clicked.connect(self.open_folder)
        lay = QVBoxLayout(self)
        if artifact.description:
            lay.addWidget(QLabel(artifact.description))
        lay.addWidget(self.path_label)
        lay.addWidget(state)
        row = QHBoxLayout()
        row.addWidget(self.open_button)
        row.addStretch(1)
        lay.addLayout(row)
        lay.addStretch(1)

    def folder(self) -> Path:
        path = Path(self.artifact.path)
        return path if path.is_dir() else path.parent

    def open_folder(self) -> bool:
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.folder())))


class ErrorViewer(QWidget):
    """Shown in place of an artifact that could not be loaded."""

    def __init__(self, message: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = message
        label = QLabel(message)
        label.setWordWrap(True)
        label.setStyleSheet("color: #a94442;")
        lay = QVBoxLayout(self)
        lay.addWidget(label)
        lay.addStretch(1)


VIEWERS: dict[str, type[QWidget]] = {
    "image_grid": GalleryViewer,
    "heatmap": HeatmapViewer,
    "graph": GraphViewer,
    "curves": CurvesViewer,
    "bars": BarsViewer,
    "table": TableViewer,
    "text": TextViewer,
    "file": FileViewer,
}


def make_viewer(kind: str, path: Path, meta: dict[str, Any]) -> QWidget:
    """A viewer for the artifact stored at ``path``, or an :class:`ErrorViewer` saying why not."""
    try:
        artifact = load_artifact(kind, path, meta)
        return VIEWERS[kind](artifact)
    except Exception as exc:  # a broken artifact must not break the run view
        return ErrorViewer(
            f"Cannot show this {kind} artifact ({path}): {type(exc).__name__}: {exc}"
        )
