"""The attention-sink view: every layer's and head's attention map of one prompt.

It draws an :class:`~workbench.artifacts.AttentionStack` (the ``llm.attention`` job's "attention
maps" artifact):

- a **grid overview**: one thumbnail per (layer, head), rows = layers, columns = heads, with the
  head's sink mass under it; a click opens that head in the map tab;
- a **map** of one head, picked with the layer and head boxes: square cells, the key tokens written
  vertically under the columns and the query tokens left of the rows, each label elided to a fixed
  width and thinned to every k-th token when the cells are smaller than a line of text, so labels
  never overlap; hovering a cell shows both tokens in full with the value;
- a **difference** with another ``llm.attention`` run of the project ("Compare with"): the map
  and the grid then show ``A - B`` (this run minus the other) on a diverging scale. Runs whose
  prompt has other tokens are refused with a note naming the first position that differs.

The other runs are listed, and their maps loaded, in a :class:`~ui.workers.Loader` worker.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QIcon, QImage, QMouseEvent, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QTabWidget,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from ui.workers import Loader
from workbench.artifacts import AttentionStack, load_artifact

__all__ = ["AttentionMapWidget", "HeadGrid", "SinkView", "display_token"]

ATTENTION_JOB = "llm.attention"
LABEL_PX = 96  # a token label is elided to this width
THUMB_PX = (40, 120)  # grid thumbnails: the smallest and largest side in pixels
GRID_PX = 560  # the grid's thumbnails fill about this many pixels along its longer side
NOTE_STYLE = "color: #a94442;"


def display_token(token: str) -> str:
    """A token with its spaces, newlines and tabs made visible."""
    return token.replace(" ", "\u2423").replace("\n", "\u23ce").replace("\t", "\u21e5")


def _lut(diverging: bool) -> np.ndarray:
    cmap = pg.colormap.get("CET-D1" if diverging else "viridis")
    return np.asarray(cmap.getLookupTable(0.0, 1.0, 256, alpha=False), dtype=np.uint8)


def matrix_image(matrix: np.ndarray, lo: float, hi: float, diverging: bool) -> QImage:
    """The matrix as an RGB image, one pixel per cell, coloured on [lo, hi]."""
    m = np.nan_to_num(np.asarray(matrix, dtype=np.float64), nan=lo)
    scaled = np.clip((m - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
    rgb = np.ascontiguousarray(_lut(diverging)[(scaled * 255).round().astype(np.int64)])
    h, w = m.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def _scale(matrix: np.ndarray, diverging: bool) -> tuple[float, float]:
    if not diverging:
        return 0.0, 1.0  # attention probabilities
    bound = float(np.nanmax(np.abs(matrix))) if matrix.size else 0.0
    bound = bound if bound > 0 else 1.0  # identical maps: white on the widest scale
    return -bound, bound


class AttentionMapWidget(QWidget):
    """One head's map with readable token labels and a colour bar; hover a cell for its tokens."""

    hovered = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.matrix = np.zeros((0, 0))
        self.tokens: list[str] = []
        self.lo, self.hi, self.diverging = 0.0, 1.0, False
        self.title = ""
        self._image = QImage()
        self.setMouseTracking(True)
        self.setMinimumSize(320, 320)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.label_font = QFont(self.font())
        self.label_font.setPointSize(9)

    def set_map(
        self, matrix: np.ndarray, tokens: list[str], *, diverging: bool = False, title: str = ""
    ) -> None:
        self.matrix = np.asarray(matrix, dtype=np.float64)
        self.tokens = list(tokens)
        self.diverging = diverging
        self.lo, self.hi = _scale(self.matrix, diverging)
        self.title = title
        self._image = matrix_image(self.matrix, self.lo, self.hi, diverging)
        self.update()

    # -- geometry ----------------------------------------------------------------------------
    def _label_width(self) -> int:
        fm = QFontMetrics(self.label_font)
        widest = max(
            (fm.horizontalAdvance(self.label(i)) for i in range(len(self.tokens))), default=0
        )
        return min(LABEL_PX, widest) + 8

    def plot_rect(self) -> QRect:
        """Where the cells are drawn (square cells)."""
        n = max(1, self.matrix.shape[0])
        lab = self._label_width()
        top, bar = QFontMetrics(self.font()).height() + 8, 64
        side = min(self.width() - lab - bar - 8, self.height() - lab - top - 4)
        cell = max(1, side // n)
        return QRect(lab, top, cell * n, cell * n)

    def label(self, i: int) -> str:
        return f"{i}:{display_token(self.tokens[i])}" if i < len(self.tokens) else str(i)

    def label_stride(self) -> int:
        """Every k-th token is labelled so that neighbouring labels never overlap."""
        n = max(1, self.matrix.shape[0])
        cell = self.plot_rect().width() / n
        line = QFontMetrics(self.label_font).height()
        return max(1, math.ceil(line / max(cell, 1e-9)))

    def cell_at(self, pos: QPoint) -> tuple[int, int] | None:
        rect = self.plot_rect()
        n = self.matrix.shape[0]
        if not n or not rect.contains(pos):
            return None
        cell = rect.width() / n
        return int((pos.y() - rect.top()) // cell), int((pos.x() - rect.left()) // cell)

    def describe(self, q: int, k: int) -> str:
        tq = display_token(self.tokens[q]) if q < len(self.tokens) else "?"
        tk = display_token(self.tokens[k]) if k < len(self.tokens) else "?"
        what = "A - B" if self.diverging else "attention"
        return f"query {q} '{tq}' → key {k} '{tk}': {what} = {self.matrix[q, k]:.4g}"

    # -- painting ----------------------------------------------------------------------------
    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().base())
        n = self.matrix.shape[0]
        if not n:
            p.end()
            return
        rect = self.plot_rect()
        p.setPen(self.palette().text().color())
        p.drawText(QRect(0, 0, self.width(), rect.top()), Qt.AlignmentFlag.AlignCenter, self.title)
        p.drawImage(rect, self._image)
        cell = rect.width() / n
        stride = self.label_stride()
        p.setFont(self.label_font)
        fm = QFontMetrics(self.label_font)
        lab = rect.left() - 6
        for i in range(0, n, stride):
            text = fm.elidedText(self.label(i), Qt.TextElideMode.ElideRight, LABEL_PX)
            y = rect.top() + (i + 0.5) * cell
            p.drawText(
                QRect(0, int(y - fm.height() / 2), lab, fm.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                text,
            )
            # key labels: written bottom-up under their column
            x = rect.left() + (i + 0.5) * cell
            p.save()
            p.translate(x, rect.bottom() + 6)
            p.rotate(-90)
            p.drawText(
                QRect(-lab, -fm.height() // 2, lab, fm.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                text,
            )
            p.restore()
        # colour bar
        bar = QRect(rect.right() + 14, rect.top(), 14, rect.height())
        for j in range(bar.height()):
            frac = 1.0 - j / max(1, bar.height() - 1)
            idx = int(round(frac * 255))
            r, g, b = (int(v) for v in _lut(self.diverging)[idx])
            p.setPen(QColor(r, g, b))
            p.drawLine(bar.left(), bar.top() + j, bar.right(), bar.top() + j)
        p.setPen(self.palette().text().color())
        for frac, value in ((0.0, self.hi), (0.5, (self.lo + self.hi) / 2), (1.0, self.lo)):
            y = int(bar.top() + frac * bar.height())
            p.drawText(
                QRect(bar.right() + 3, y - fm.height() // 2, 60, fm.height()),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                f"{value:.3g}",
            )
        p.end()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt name)
        hit = self.cell_at(event.position().toPoint())
        if hit is None:
            self.setToolTip("")
            return
        text = self.describe(*hit)
        self.setToolTip(text)
        QToolTip.showText(event.globalPosition().toPoint(), text, self)
        self.hovered.emit(text)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(640, 640)


class HeadGrid(QWidget):
    """Thumbnails of every (layer, head): rows = layers, columns = heads; a click picks one."""

    picked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setSpacing(4)
        self.cells: dict[tuple[int, int], QToolButton] = {}

    def set_maps(
        self, maps: np.ndarray, sink: np.ndarray | None, *, diverging: bool = False
    ) -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.cells.clear()
        layers, heads = maps.shape[:2]
        lo, hi = _scale(np.asarray(maps, dtype=np.float64), diverging)
        side = int(min(max(GRID_PX // max(layers, heads, 1), THUMB_PX[0]), THUMB_PX[1]))
        for h in range(heads):
            head = QLabel(f"head {h}")
            head.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.grid.addWidget(head, 0, h + 1)
        for layer in range(layers):
            name = QLabel(f"layer {layer}")
            self.grid.addWidget(name, layer + 1, 0)
            for h in range(heads):
                button = QToolButton()
                button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
                image = matrix_image(maps[layer, h], lo, hi, diverging)
                pix = QPixmap.fromImage(image).scaled(
                    side,
                    side,
                    Qt.AspectRatioMode.IgnoreAspectRatio,
                    Qt.TransformationMode.FastTransformation,
                )
                button.setIcon(QIcon(pix))
                button.setIconSize(QSize(side, side))
                tip = f"layer {layer}, head {h}"
                if diverging:
                    delta = float(np.abs(maps[layer, h]).max())
                    button.setText(f"max|Δ| {delta:.2g}")
                    tip += f": largest |A - B| {delta:.3g}"
                elif sink is not None:
                    button.setText(f"sink {sink[layer, h]:.2f}")
                    tip += f": sink mass {sink[layer, h]:.3f}"
                button.setToolTip(tip + " (click to open)")
                button.setAutoRaise(True)
                button.clicked.connect(lambda _=False, a=layer, b=h: self.picked.emit(a, b))
                self.grid.addWidget(button, layer + 1, h + 1)
                self.cells[(layer, h)] = button
        self.grid.setRowStretch(layers + 1, 1)
        self.grid.setColumnStretch(heads + 1, 1)


class SinkView(QWidget):
    """Browse an attention stack: layer / head picker, grid overview, difference to another run.

    ``compared`` fires when a comparison was applied or refused (its note is in :attr:`note`),
    ``candidates_loaded`` when the list of other runs is ready.
    """

    compared = Signal()
    candidates_loaded = Signal()

    def __init__(self, artifact: AttentionStack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        self.maps = np.asarray(artifact.maps, dtype=np.float32)
        self.other: AttentionStack | None = None
        self.other_name = ""
        self.project: Any = None
        self.run_id: int | None = None
        self._request = 0
        self.loader = Loader(self)
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(self._on_failed)

        title = QLabel(artifact.title or "Attention maps")
        title.setStyleSheet("font-weight: bold;")
        title.setWordWrap(True)
        shown = " ".join(f"[{display_token(t)}]" for t in artifact.tokens)
        self.prompt_label = QLabel(f"{len(artifact.tokens)} tokens: {shown}")
        self.prompt_label.setWordWrap(True)
        self.prompt_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.prompt_label.setToolTip(artifact.prompt)

        self.layer_box = QComboBox()
        self.layer_box.addItems([f"layer {i}" for i in range(artifact.num_layers)])
        self.head_box = QComboBox()
        self.head_box.addItems([f"head {i}" for i in range(artifact.num_heads)])
        self.compare_box = QComboBox()
        self.compare_box.addItem("(none: this run's maps)", None)
        self.compare_box.setToolTip(
            "Show this run minus another llm.attention run of the project on the same prompt"
        )
        self.compare_box.setMinimumContentsLength(24)
        controls = QHBoxLayout()
        for text, widget in (
            ("Layer", self.layer_box),
            ("Head", self.head_box),
            ("Compare with", self.compare_box),
        ):
            controls.addWidget(QLabel(text))
            controls.addWidget(widget)
        controls.addStretch(1)

        self.map = AttentionMapWidget()
        self.grid = HeadGrid()
        grid_scroll = QScrollArea()
        grid_scroll.setWidgetResizable(True)
        grid_scroll.setWidget(self.grid)
        grid_tab = QWidget()
        grid_lay = QVBoxLayout(grid_tab)
        grid_lay.setContentsMargins(0, 4, 0, 0)
        self.grid_hint = QLabel()
        self.grid_hint.setWordWrap(True)
        self.grid_hint.setStyleSheet("color: palette(dark);")
        grid_lay.addWidget(self.grid_hint)
        grid_lay.addWidget(grid_scroll, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(grid_tab, f"Grid ({artifact.num_layers} x {artifact.num_heads})")
        self.tabs.addTab(self.map, "Map")
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet(NOTE_STYLE)
        self.note.hide()
        self.hover = QLabel(
            "Rows: query tokens (the one attending); columns: key tokens (attended to). "
            "Hover over a cell to read both tokens in full."
        )
        self.hover.setStyleSheet("color: palette(dark);")
        self.map.hovered.connect(self.hover.setText)

        lay = QVBoxLayout(self)
        lay.addWidget(title)
        lay.addWidget(self.prompt_label)
        lay.addLayout(controls)
        lay.addWidget(self.note)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self.hover)

        self.layer_box.setCurrentIndex(artifact.layer)
        self.head_box.setCurrentIndex(artifact.head)
        self.layer_box.currentIndexChanged.connect(self._redraw_map)
        self.head_box.currentIndexChanged.connect(self._redraw_map)
        self.compare_box.currentIndexChanged.connect(self._pick_comparison)
        self.grid.picked.connect(self.open_head)
        self._redraw()

    # -- what is shown -----------------------------------------------------------------------
    @property
    def layer(self) -> int:
        return self.layer_box.currentIndex()

    @property
    def head(self) -> int:
        return self.head_box.currentIndex()

    def shown_maps(self) -> np.ndarray:
        """This run's maps, or ``A - B`` while a comparison is applied."""
        if self.other is None:
            return self.maps
        return self.maps - np.asarray(self.other.maps, dtype=np.float32)

    def current_matrix(self) -> np.ndarray:
        return self.shown_maps()[self.layer, self.head]

    def open_head(self, layer: int, head: int) -> None:
        """Show one head's map (the grid's click)."""
        self.layer_box.setCurrentIndex(layer)
        self.head_box.setCurrentIndex(head)
        self.tabs.setCurrentWidget(self.map)

    GRID_HINT = (
        "Every layer (rows) and head (columns): query tokens run down, key tokens across; "
        "colour 0 (dark) to 1 (yellow); 'sink' is the head's attention mass on the first "
        "token(s). Click a thumbnail to open it."
    )
    DIFF_HINT = (
        "This run minus {other} for every layer (rows) and head (columns), on one symmetric "
        "scale: red where this run attends more, blue where it attends less; 'max|Δ|' is the "
        "head's largest change. Click a thumbnail to open it."
    )

    def _redraw(self) -> None:
        diverging = self.other is not None
        self.grid_hint.setText(
            self.DIFF_HINT.format(other=self.other_name) if diverging else self.GRID_HINT
        )
        self.grid.set_maps(self.shown_maps(), self.artifact.sink_mass, diverging=diverging)
        self._redraw_map()

    def _redraw_map(self, *_: object) -> None:
        diverging = self.other is not None
        what = f"this run - {self.other_name}" if diverging else "attention"
        sink = self.artifact.sink_mass
        extra = (
            f", sink mass {sink[self.layer, self.head]:.3f}"
            if sink is not None and not diverging
            else ""
        )
        if diverging and not self.current_matrix().any():
            extra = " (identical: every entry is 0)"
        self.map.set_map(
            self.current_matrix(),
            self.artifact.tokens,
            diverging=diverging,
            title=f"Layer {self.layer}, head {self.head}: {what}{extra}",
        )

    # -- other runs --------------------------------------------------------------------------
    def set_project(self, project: Any, run_id: int | None) -> None:
        """List the project's llm.attention runs with maps (in a worker) for "Compare with"."""
        self.project, self.run_id = project, run_id
        if project is None:
            return
        self._request += 1
        self.loader.load(("list", self._request), lambda: _attention_runs(project))

    def _set_candidates(self, rows: list[tuple[int, dict]]) -> None:
        self.compare_box.blockSignals(True)
        while self.compare_box.count() > 1:
            self.compare_box.removeItem(1)
        for run_id, row in rows:
            mine = " (this run)" if run_id == self.run_id else ""
            self.compare_box.addItem(f"run #{run_id}: {row['name']}{mine}", (run_id, row))
        self.compare_box.blockSignals(False)
        self.candidates_loaded.emit()

    def _pick_comparison(self, index: int) -> None:
        data = self.compare_box.itemData(index)
        self._request += 1
        if data is None:
            self.other, self.other_name = None, ""
            self.note.hide()
            self._redraw()
            self.compared.emit()
            return
        run_id, row = data
        try:
            path = self.project.artifact_path(row)
        except ValueError as exc:  # a crafted catalogue row: files outside the project are not read
            self._refuse(f"Not compared with run #{run_id}: {exc}")
            return
        self.loader.load(
            ("compare", self._request, run_id),
            lambda: load_artifact(row["kind"], path, row["meta"]),
        )

    def _on_loaded(self, token: tuple, result: object) -> None:
        if token[1] != self._request:
            return  # a later request superseded this one
        if token[0] == "list":
            self._set_candidates(result)  # type: ignore[arg-type]
            return
        run_id = token[2]
        problem = self.mismatch(result)  # type: ignore[arg-type]
        if problem:
            self._refuse(f"Not compared with run #{run_id}: {problem}")
            return
        self.other, self.other_name = result, f"run #{run_id}"  # type: ignore[assignment]
        self.note.setText(
            f"Showing this run minus run #{run_id} (A - B) on a diverging scale: red where this "
            "run attends more, blue where it attends less."
        )
        self.note.setStyleSheet("color: palette(text);")
        self.note.show()
        self._redraw()
        self.compared.emit()

    def _on_failed(self, token: tuple, exc: object) -> None:
        if token[1] != self._request:
            return
        if token[0] == "list":
            self.compare_box.setToolTip(f"Other runs could not be listed: {exc}")
            self.candidates_loaded.emit()
            return
        self._refuse(f"Not compared: run #{token[2]}'s maps could not be read ({exc})")

    def _refuse(self, message: str) -> None:
        self.other, self.other_name = None, ""
        self.compare_box.blockSignals(True)
        self.compare_box.setCurrentIndex(0)
        self.compare_box.blockSignals(False)
        self.note.setText(message)
        self.note.setStyleSheet(NOTE_STYLE)
        self.note.show()
        self._redraw()
        self.compared.emit()

    def mismatch(self, other: AttentionStack) -> str:
        """Why ``other`` cannot be subtracted from this run's maps ('' if it can)."""
        if not isinstance(other, AttentionStack):
            return "that artifact holds no attention maps"
        mine, theirs = self.artifact, other
        a = mine.input_ids or mine.tokens
        b = theirs.input_ids or theirs.tokens
        if list(a) != list(b):
            first = next(
                (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)),
            )
            tok = theirs.tokens[first] if first < len(theirs.tokens) else "(end)"
            own = mine.tokens[first] if first < len(mine.tokens) else "(end)"
            return (
                f"its prompt has other tokens ({len(b)} against {len(a)}; first difference at "
                f"position {first}: '{display_token(tok)}' instead of '{display_token(own)}'). "
                "A difference map needs the same token sequence."
            )
        if other.maps.shape != mine.maps.shape:
            return (
                f"its model has {other.num_layers} layers x {other.num_heads} heads, this one "
                f"{mine.num_layers} x {mine.num_heads}"
            )
        return ""


def _attention_runs(project: Any) -> list[tuple[int, dict]]:
    """(run id, artifact row) of every attention-map artifact of the project's attention runs."""
    out = []
    for record in project.runs():
        if record.job != ATTENTION_JOB:
            continue
        for row in project.artifacts(record.id):
            if row["kind"] == AttentionStack.kind:
                out.append((record.id, row))
    return out
