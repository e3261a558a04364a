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
from PySide6.QtGui import QDesktopServices, QFontMetrics
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

from ui.export import write_csv
from ui.views.gallery import GalleryViewer, pil_to_pixmap
from ui.views.graph_explorer import GraphViewer
from ui.views.plotting import Figure, export_graphics, series_styles, setup_pyqtgraph
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
        # levels given: pyqtgraph's own auto-levels take np.nanmin, which warns on all-NaN cells
        self.image = pg.ImageItem(m, axisOrder="row-major", levels=(lo, hi))
        self.image.setRect(QRectF(0, 0, w, h))
        item.addItem(self.image)
        item.invertY(True)
        item.setAspectLocked(False)
        self.missing = QLabel(
            ""
            if finite.size == m.size
            else f"{m.size - finite.size} of {m.size} cells have no finite value (drawn blank)."
        )
        self.missing.setStyleSheet("color: #8a6d3b;")
        self.missing.setVisible(finite.size != m.size)
        self.colorbar = pg.ColorBarItem(values=(lo, hi), colorMap=cmap, interactive=False)
        self.colorbar.setImageItem(self.image)
        self.graphics.addItem(self.colorbar, row=0, col=1)
        if artifact.x_labels:
            item.getAxis("bottom").setTicks(
                [[(i + 0.5, str(t)) for i, t in enumerate(artifact.x_labels)]]
            )
        if artifact.y_labels:
            left = item.getAxis("left")
            left.setTicks([[(i + 0.5, str(t)) for i, t in enumerate(artifact.y_labels)]])
            # wide enough for the longest row label (pyqtgraph drops labels that do not fit)
            metrics = QFontMetrics(
                left.font() if left.style.get("tickFont") is None else left.style["tickFont"]
            )
            longest = max(metrics.horizontalAdvance(str(t)) for t in artifact.y_labels)
            left.setWidth(longest + 40)
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
        layout.addWidget(self.missing)
        layout.addWidget(self.graphics, 1)
        item.vb.sigResized.connect(self._fit_texts)

    def export_figure(self, path: str | Path) -> Path:
        return export_graphics(self.graphics.ci, path)

    def export_table(self, path: str | Path) -> Path:
        """The matrix with its row and column labels."""
        m = np.asarray(self.artifact.matrix, dtype=float)
        cols = [str(c) for c in self.artifact.x_labels] or [str(c) for c in range(m.shape[1])]
        rows_ = [str(r) for r in self.artifact.y_labels] or [str(r) for r in range(m.shape[0])]
        corner = self.artifact.y_title or ""
        return write_csv(path, [corner, *cols], [(r, *m[i]) for i, r in enumerate(rows_)])

    MIN_CELL_PX = 34  # narrower cells would make their values overlap

    def _fit_texts(self, *_: object) -> None:
        """Show cell values only while each cell is wide enough to hold one."""
        cell = self.plot_item.vb.width() / max(1, self._columns)
        for t in self.texts:
            t.setVisible(cell >= self.MIN_CELL_PX)


class CurvesViewer(QWidget):
    """Named x/y series on one plot, the legend beside it; one style per series (see
    :func:`~ui.views.plotting.series_styles`), decade ticks on log axes, markers for short series."""

    def __init__(self, artifact: Curves, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        self.plot = Figure("", artifact.x_label, artifact.y_label)
        self.plot.set_log(artifact.log_x, artifact.log_y)
        self.styles = series_styles(artifact.series)
        self.curves = {}
        for name, (xs, ys) in artifact.series.items():
            curve = self.plot.add_series(name, xs, ys, self.styles[name], scatter=artifact.scatter)
            if curve is not None:
                self.curves[name] = curve
        lay = QVBoxLayout(self)
        if artifact.title:
            lay.addWidget(_title(artifact.title))
        lay.addWidget(self.plot, 1)

    def export_figure(self, path: str | Path) -> Path:
        return self.plot.export_figure(path)

    def export_table(self, path: str | Path) -> Path:
        """The points as long-format CSV: series, x, y."""
        rows = [
            (n, x, y)
            for n, (xs, ys) in self.artifact.series.items()
            for x, y in zip(xs, ys, strict=False)
        ]
        return write_csv(
            path, ["series", self.artifact.x_label or "x", self.artifact.y_label or "y"], rows
        )


class BarsViewer(QWidget):
    """Grouped bars, one colour per series, categories on the x axis, the legend beside it."""

    def __init__(self, artifact: Bars, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        self.plot = Figure("", artifact.x_label, artifact.y_label)
        item = self.plot.getPlotItem()
        n_series = max(1, len(artifact.series))
        width = 0.8 / n_series
        xs = np.arange(len(artifact.categories), dtype=float)
        self.styles = series_styles(artifact.series)
        self.bars = {}
        self.error_bars: dict[str, Any] = {}
        for i, (name, values) in enumerate(artifact.series.items()):
            offset = (i - (n_series - 1) / 2) * width
            self.bars[name] = self.plot.add_bars(
                name, xs + offset, values, width * 0.95, self.styles[name]
            )
            if name in artifact.lower:
                self._error_bars(xs + offset, values, name, width)
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

    def _error_bars(self, x: np.ndarray, values: list[float], name: str, width: float) -> None:
        """The series' interval ends as dark error bars (non-finite ends are left out)."""
        import pyqtgraph as pg

        y = np.asarray(values, dtype=float)
        lo = np.asarray(self.artifact.lower[name], dtype=float)
        hi = np.asarray(self.artifact.upper[name], dtype=float)
        ok = np.isfinite(y) & np.isfinite(lo) & np.isfinite(hi)
        if not ok.any():
            return
        item = pg.ErrorBarItem(
            x=x[ok],
            y=y[ok],
            top=np.maximum(hi[ok] - y[ok], 0.0),
            bottom=np.maximum(y[ok] - lo[ok], 0.0),
            beam=width * 0.4,
            pen=pg.mkPen((40, 40, 40), width=1.5),
        )
        self.plot.getPlotItem().addItem(item)
        self.error_bars[name] = item

    def export_figure(self, path: str | Path) -> Path:
        return self.plot.export_figure(path)

    def export_table(self, path: str | Path) -> Path:
        """One row per category, one column per series (and its interval ends, if any)."""
        art = self.artifact
        names = list(art.series)
        header = [art.x_label or "category"]
        for n in names:
            header += [n, f"{n} low", f"{n} high"] if n in art.lower else [n]
        rows = []
        for i, c in enumerate(art.categories):
            row: list[Any] = [c]
            for n in names:
                row.append(art.series[n][i])
                if n in art.lower:
                    row += [art.lower[n][i], art.upper[n][i]]
            rows.append(tuple(row))
        return write_csv(path, header, rows)


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
