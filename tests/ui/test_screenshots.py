"""ui.screenshots.save_grab: a path without an extension still gets a PNG (it used to print
"saved" and write nothing), and an unwritable path is an error, not a silent no-op."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel

from ui.screenshots import save_grab


def test_save_grab_adds_png_and_refuses_unwritable(qtbot, tmp_path):
    label = QLabel("hello")
    qtbot.addWidget(label)
    label.resize(120, 40)
    saved = save_grab(label, tmp_path / "shot")
    assert saved == tmp_path / "shot.png"
    assert QImage(str(saved)).width() == 120
    with pytest.raises(OSError, match="could not write"):
        save_grab(label, tmp_path / "missing-folder" / "shot.png")
