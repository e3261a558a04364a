"""The gallery: the viewer of :class:`~workbench.artifacts.ImageGrid` artifacts.

A grid row is one sample (e.g. one prompt and seed of a concept-erasure run) and its columns are
stages (original | erased | attacked | recovered). Where the grid carries a detector's scores, every
image gets a verdict badge ("present" above the threshold, "absent" otherwise, "—" without a score)
and every column header says in how many of its scored images the detector found the concept: the
erasure result at a glance. A text box filters rows by their label; clicking an image opens it
large, with its labels, caption and score. Grids without scores look as they always did: images,
captions, row/column labels and a zoom slider.

Images are scaled by whole factors with nearest-neighbour sampling so that 32x32 images stay crisp.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QMouseEvent, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from workbench.artifacts import ImageGrid

__all__ = [
    "GalleryViewer",
    "ImageZoomDialog",
    "badge_style",
    "badge_text",
    "column_summary",
    "format_score",
    "pil_to_pixmap",
    "verdict",
]

DEFAULT_IMAGE_PX = 96  # the default zoom shows images about this wide (32 px images at 3x)
MAX_ZOOM = 32
DIALOG_ZOOM = 8  # the zoom dialog enlarges by this much ...
DIALOG_MAX_PX = 768  # ... unless that would make the image wider than this
MIN_CELL_PX = 150  # a scored cell is at least this wide (and as wide as its widest badge)

PRESENT, ABSENT = "present", "absent"
_BADGE_COLOURS = {  # verdict -> (background, text, border)
    PRESENT: ("#f8d7da", "#842029", "#e4a5ab"),
    ABSENT: ("#d1e7dd", "#0f5132", "#9fcdb5"),
    None: ("#e9ecef", "#495057", "#ced4da"),
}


def pil_to_pixmap(image: Any) -> QPixmap:
    """A PIL image as a pixmap (any mode; converted through RGBA)."""
    rgba = image.convert("RGBA")
    data = rgba.tobytes("raw", "RGBA")
    qimage = QImage(data, rgba.width, rgba.height, 4 * rgba.width, QImage.Format.Format_RGBA8888)
    return QPixmap.fromImage(qimage.copy())


def scaled(pix: QPixmap, factor: int) -> QPixmap:
    """``pix`` enlarged ``factor`` times with nearest-neighbour sampling (crisp pixels)."""
    return pix.scaled(
        pix.width() * factor,
        pix.height() * factor,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.FastTransformation,
    )


# -- verdicts --------------------------------------------------------------------------------


def verdict(score: float | None, threshold: float | None) -> str | None:
    """``"present"`` when ``score > threshold``, ``"absent"`` otherwise, ``None`` when either is
    missing (no score for this image, or a grid without a threshold)."""
    if score is None or threshold is None:
        return None
    return PRESENT if score > threshold else ABSENT


def format_score(score: float) -> str:
    """Two decimals (0.93, 0.00) up to 1000, three significant digits above (the zoom dialog
    shows the exact value)."""
    return f"{score:.2f}" if abs(score) < 1000 else f"{score:.3g}"


def badge_text(score: float | None, name: str = "", threshold: float | None = None) -> str:
    """The text of an image's badge: ``"stripe p 0.93 ▲ present"``, ``"stripe p 0.04 absent"``,
    ``"—"`` for an image without a score, only the score for a grid without a threshold."""
    if score is None:
        return "—"
    parts = [name] if name else []
    parts.append(format_score(score))
    v = verdict(score, threshold)
    if v == PRESENT:
        parts.append("▲ present")
    elif v == ABSENT:
        parts.append(ABSENT)
    return " ".join(parts)


def badge_style(verdict_: str | None) -> str:
    """Style sheet of a badge: red-ish for present, green-ish for absent, grey otherwise."""
    background, text, border = _BADGE_COLOURS.get(verdict_, _BADGE_COLOURS[None])
    return (
        f"background: {background}; color: {text}; border: 1px solid {border};"
        " border-radius: 4px; padding: 1px 6px; font-size: 11px;"
    )


def column_summary(grid: ImageGrid, rows: list[int] | None = None) -> list[tuple[int, int]]:
    """Per column, ``(k, n)``: the detector says "present" in ``k`` of the column's ``n`` scored
    images (images whose score is ``None`` are not counted), over ``rows`` (default: all)."""
    cols = grid.cols or 1
    counts = [[0, 0] for _ in range(cols)]
    if not grid.scores or grid.threshold is None:
        return [(0, 0)] * cols
    wanted = set(range(grid.rows)) if rows is None else set(rows)
    for i, score in enumerate(grid.scores):
        r, c = divmod(i, cols)
        if r not in wanted or score is None:
            continue
        counts[c][1] += 1
        counts[c][0] += int(verdict(score, grid.threshold) == PRESENT)
    return [(k, n) for k, n in counts]


# -- widgets ---------------------------------------------------------------------------------


class ClickableImage(QLabel):
    """An image that emits :attr:`clicked` when pressed and released with the left button."""

    clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._pressed = False

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt's name)
        self._pressed = event.button() == Qt.MouseButton.LeftButton
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt's name)
        was_pressed, self._pressed = self._pressed, False
        super().mouseReleaseEvent(event)
        if (
            was_pressed
            and event.button() == Qt.MouseButton.LeftButton
            and self.rect().contains(event.position().toPoint())
        ):
            self.clicked.emit()


class ImageZoomDialog(QDialog):
    """One gallery image shown large (nearest neighbour), with its labels, caption and score."""

    def __init__(
        self, pixmap: QPixmap, info: dict[str, Any], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.info = info
        side = max(pixmap.width(), pixmap.height(), 1)
        self.factor = max(1, min(DIALOG_ZOOM, DIALOG_MAX_PX // side))
        where = " · ".join(t for t in (info.get("row_label"), info.get("col_label")) if t)
        self.setWindowTitle(where or f"Image {info.get('index', 0) + 1}")
        self.heading = QLabel(where)
        self.heading.setStyleSheet("font-weight: bold; font-size: 13px;")
        self.heading.setVisible(bool(where))
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setPixmap(scaled(pixmap, self.factor))
        self.size_label = QLabel(f"{pixmap.width()}×{pixmap.height()} px, shown at {self.factor}×")
        self.size_label.setStyleSheet("color: #6c757d; font-size: 11px;")
        self.caption = QLabel(info.get("caption", ""))
        self.caption.setWordWrap(True)
        self.caption.setVisible(bool(info.get("caption")))
        score, threshold = info.get("score"), info.get("threshold")
        self.badge = QLabel(badge_text(score, info.get("score_name", ""), threshold))
        self.badge.setStyleSheet(badge_style(verdict(score, threshold)))
        self.badge.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.badge.setVisible(bool(info.get("scored")))
        self.score_detail = QLabel(self._score_detail(info))
        self.score_detail.setStyleSheet("color: #495057; font-size: 11px;")
        self.score_detail.setVisible(bool(info.get("scored")))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.image, 1)
        layout.addWidget(self.size_label, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.caption)
        badge_row = QHBoxLayout()
        badge_row.addWidget(self.badge, 0)
        badge_row.addWidget(self.score_detail, 1)
        layout.addLayout(badge_row)
        layout.addWidget(buttons)

    @staticmethod
    def _score_detail(info: dict[str, Any]) -> str:
        score, threshold = info.get("score"), info.get("threshold")
        name = info.get("score_name") or "score"
        if score is None:
            return f"no {name} for this image"
        if threshold is None:
            return f"{name} = {score:.4g}"
        op = ">" if score > threshold else "≤"
        return f"{name} = {score:.4g} {op} threshold {threshold:g}"


class GalleryViewer(QWidget):
    """Images in rows and columns with captions, row/column labels, a zoom slider and, when the
    grid has scores, verdict badges, per-column "present in k / n" and a row filter."""

    def __init__(self, artifact: ImageGrid, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        self.pixmaps = [pil_to_pixmap(im) for im in artifact.images]
        self.n_cols = artifact.cols or len(self.pixmaps) or 1
        self.n_rows = -(-len(self.pixmaps) // self.n_cols)
        self.scored = bool(artifact.scores)
        self.cells: list[ClickableImage] = []  # the images, row-major
        self.frames: list[QFrame] = []  # one per image: image, caption, badge
        self.captions: list[QLabel] = []
        self.badges: list[QLabel] = []  # one per image when the grid has scores, else none
        self.row_labels: list[QLabel] = []
        self.col_labels: list[QLabel] = []
        self.summaries: list[QLabel] = []  # per column, when the grid has scores and a threshold
        self.zoom_dialog: ImageZoomDialog | None = None

        # toolbar: title, row filter, zoom
        self.zoom = QSlider(Qt.Orientation.Horizontal)
        self.zoom.setRange(1, MAX_ZOOM)
        self.zoom.setMaximumWidth(200)
        base = max((max(p.width(), p.height()) for p in self.pixmaps), default=32)
        self.zoom.setValue(max(1, min(MAX_ZOOM, DEFAULT_IMAGE_PX // max(base, 1))))
        self.zoom.valueChanged.connect(self._rescale)
        self.zoom_label = QLabel()
        self.zoom_label.setMinimumWidth(30)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter rows…")
        self.filter.setClearButtonEnabled(True)
        self.filter.setMaximumWidth(220)
        self.filter.textChanged.connect(self.set_filter)
        self.filter.setVisible(bool(artifact.row_labels))
        self.status = QLabel()
        self.status.setStyleSheet("color: #6c757d;")
        title = QLabel(artifact.title or "Images")
        title.setStyleSheet("font-weight: bold;")
        title.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(title, 1)
        top.addWidget(self.filter)
        top.addWidget(QLabel("Zoom"))
        top.addWidget(self.zoom)
        top.addWidget(self.zoom_label)
        self.legend = QLabel(self._legend_text())
        self.legend.setStyleSheet("color: #495057;")
        self.legend.setWordWrap(True)
        self.legend.setVisible(bool(self.legend.text()))
        info_row = QHBoxLayout()
        info_row.addWidget(self.legend, 1)
        info_row.addWidget(self.status)

        # the grid: header row(s), then one grid row per image row
        holder = QWidget()
        self.grid = QGridLayout(holder)
        self.grid.setHorizontalSpacing(10)
        self.grid.setVerticalSpacing(8)
        first = 1 if artifact.row_labels else 0
        for c in range(self.n_cols):
            header = QVBoxLayout()
            header.setSpacing(2)
            text = artifact.col_labels[c] if c < len(artifact.col_labels) else ""
            label = QLabel(text)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setStyleSheet("font-weight: bold;")
            label.setVisible(bool(text))
            self.col_labels.append(label)
            header.addWidget(label)
            if self.scored and artifact.threshold is not None:
                summary = QLabel()
                summary.setAlignment(Qt.AlignmentFlag.AlignCenter)
                summary.setStyleSheet("font-size: 11px; color: #495057;")
                self.summaries.append(summary)
                header.addWidget(summary)
            if text or self.summaries:
                self.grid.addLayout(header, 0, c + first, Qt.AlignmentFlag.AlignBottom)
        for r, text in enumerate(artifact.row_labels[: self.n_rows]):
            label = QLabel(text)
            label.setStyleSheet("font-weight: bold;")
            label.setWordWrap(True)
            label.setMaximumWidth(180)
            label.setMinimumWidth(120)
            label.setToolTip(text)
            self.row_labels.append(label)
            self.grid.addWidget(label, 1 + r, 0, Qt.AlignmentFlag.AlignVCenter)
        for i in range(len(self.pixmaps)):
            r, c = divmod(i, self.n_cols)
            self.grid.addWidget(self._cell(i), 1 + r, c + first, Qt.AlignmentFlag.AlignTop)
        self.grid.setRowStretch(self.grid.rowCount(), 1)
        self.grid.setColumnStretch(self.grid.columnCount(), 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(holder)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(info_row)
        layout.addWidget(scroll, 1)
        self._rescale()
        self.set_filter("")

    # -- building ----------------------------------------------------------------------------

    def _legend_text(self) -> str:
        art = self.artifact
        if not self.scored:
            return ""
        name = art.score_name or "score"
        if art.threshold is None:
            return f"Badges: {name} per image (no threshold, no verdict)."
        return (
            f"Badges: {name}; present when {name} > {art.threshold:g}. Click an image to enlarge."
        )

    def _cell(self, i: int) -> QFrame:
        art = self.artifact
        frame = QFrame()
        lay = QVBoxLayout(frame)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        image = ClickableImage()
        image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        image.setStyleSheet("border: 1px solid #ccc; background: #fafafa;")
        image.clicked.connect(lambda i=i: self.open_image(i))
        info = self.image_info(i)
        image.setToolTip(
            " · ".join(t for t in (info["row_label"], info["col_label"], info["caption"]) if t)
            or f"Image {i + 1}"
        )
        self.cells.append(image)
        lay.addWidget(image, 0, Qt.AlignmentFlag.AlignHCenter)
        if self.scored:
            score = info["score"]
            badge = QLabel(badge_text(score, art.score_name, art.threshold))
            badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
            badge.setStyleSheet(badge_style(verdict(score, art.threshold)))
            badge.setProperty("verdict", verdict(score, art.threshold) or "")
            self.badges.append(badge)
            lay.addWidget(badge, 0, Qt.AlignmentFlag.AlignHCenter)
        if i < len(art.captions):
            caption = QLabel(art.captions[i])
            caption.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            caption.setStyleSheet("font-size: 11px; color: #343a40;")
            caption.setWordWrap(True)
            self.captions.append(caption)
            lay.addWidget(caption)
        self.frames.append(frame)
        return frame

    def image_info(self, i: int) -> dict[str, Any]:
        """What the gallery knows about image ``i``: labels, caption, score and verdict."""
        art = self.artifact
        r, c = divmod(i, self.n_cols)
        score = art.scores[i] if i < len(art.scores) else None
        return {
            "index": i,
            "row": r,
            "col": c,
            "row_label": art.row_labels[r] if r < len(art.row_labels) else "",
            "col_label": art.col_labels[c] if c < len(art.col_labels) else "",
            "caption": art.captions[i] if i < len(art.captions) else "",
            "scored": self.scored,
            "score": score,
            "score_name": art.score_name,
            "threshold": art.threshold,
            "verdict": verdict(score, art.threshold),
        }

    # -- behaviour ---------------------------------------------------------------------------

    def _rescale(self) -> None:
        z = self.zoom.value()
        self.zoom_label.setText(f"{z}×")
        width = max((p.width() for p in self.pixmaps), default=8) * z
        cell_width = max(width, MIN_CELL_PX if self.scored else 56)
        if self.badges:  # a long score name widens every cell to its widest badge
            margins = self.frames[0].contentsMargins() if self.frames else None
            pad = margins.left() + margins.right() if margins is not None else 0
            cell_width = max(cell_width, max(b.sizeHint().width() for b in self.badges) + pad)
        for caption in self.captions:  # captions wrap to the cell width instead of widening it
            caption.setMaximumWidth(cell_width)
        for frame in self.frames:
            frame.setMinimumWidth(cell_width if self.scored else 0)
        for cell, pix in zip(self.cells, self.pixmaps, strict=False):
            cell.setPixmap(scaled(pix, z))

    def visible_rows(self) -> list[int]:
        """Indices of the rows the filter lets through."""
        text = self.filter.text().strip().lower()
        labels = self.artifact.row_labels
        return [
            r
            for r in range(self.n_rows)
            if not text or (r < len(labels) and text in labels[r].lower())
        ]

    def set_filter(self, text: str) -> None:
        """Show only rows whose label contains ``text`` (any case); update the column summaries."""
        if self.filter.text() != text:
            self.filter.setText(text)  # re-enters through textChanged
            return
        shown = set(self.visible_rows())
        for r, label in enumerate(self.row_labels):
            label.setVisible(r in shown)
        for i, frame in enumerate(self.frames):
            frame.setVisible(i // self.n_cols in shown)
        for summary, (k, n) in zip(
            self.summaries, column_summary(self.artifact, sorted(shown)), strict=False
        ):
            summary.setText(f"present in {k} / {n}" if n else "no scores")
            colour = _BADGE_COLOURS[PRESENT if k else ABSENT][1] if n else "#6c757d"
            summary.setStyleSheet(f"font-size: 11px; font-weight: bold; color: {colour};")
        if self.artifact.row_labels:
            self.status.setText(f"{len(shown)} of {self.n_rows} rows")
        self.status.setVisible(bool(self.artifact.row_labels))

    def summary_texts(self) -> list[str]:
        """The per-column summaries as shown ("present in k / n")."""
        return [s.text() for s in self.summaries]

    def open_image(self, i: int) -> ImageZoomDialog:
        """Open (or replace) the zoom dialog on image ``i``; clicking an image calls this."""
        if self.zoom_dialog is not None:
            self.zoom_dialog.close()
            self.zoom_dialog.deleteLater()
        self.zoom_dialog = ImageZoomDialog(self.pixmaps[i], self.image_info(i), self)
        self.zoom_dialog.show()
        return self.zoom_dialog
