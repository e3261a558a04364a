"""Icons and colours: the application icon and small status dots drawn at runtime."""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from workbench.paths import ICON

__all__ = ["STATUS_COLORS", "app_icon", "status_color", "status_icon"]

STATUS_COLORS = {
    "queued": "#8a8f98",
    "running": "#2f80ed",
    "completed": "#27ae60",
    "failed": "#d9534f",
    "cancelled": "#f2994a",
    "interrupted": "#9b51e0",
}


def status_color(status: str) -> QColor:
    return QColor(STATUS_COLORS.get(status, "#8a8f98"))


@lru_cache(maxsize=16)
def status_icon(status: str) -> QIcon:
    """A filled dot in the status colour (a ring for queued runs)."""
    pix = QPixmap(14, 14)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    color = status_color(status)
    painter.setPen(color.darker(130))
    if status == "queued":
        painter.setBrush(Qt.BrushStyle.NoBrush)
    else:
        painter.setBrush(color)
    painter.drawEllipse(2, 2, 10, 10)
    painter.end()
    return QIcon(pix)


def app_icon() -> QIcon:
    return QIcon(str(ICON)) if ICON.exists() else QIcon()
