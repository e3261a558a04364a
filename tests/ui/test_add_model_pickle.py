"""File > Add model folder… with the *Allow pickle weights* box (issue 17 part 6), driven through
its widgets: off by default, a warning shows while it is ticked, a pickle-only folder is refused
without it (the banner names the file and the switch) and added with it (stored with the model).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from backends.classifier.models import MLP
from workbench.store import Project


def _pickled_mlp(folder: Path) -> Path:
    torch.manual_seed(0)
    model = MLP(64, [8], 10)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(model.arch_config()))
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def test_add_model_dialog_pickle_checkbox(make_window, qtbot, tmp_path: Path) -> None:
    Project.create(tmp_path / "p").close()
    window = make_window(tmp_path / "p")
    folder = _pickled_mlp(tmp_path / "resnet-from-a-colleague")

    def fill_and_accept(tick: bool) -> None:
        dialog = window.model_dialog()
        dialog.show()
        qtbot.waitExposed(dialog)
        ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert not ok.isEnabled()  # no folder yet
        qtbot.keyClicks(dialog.folder_edit, str(folder))
        assert ok.isEnabled() and dialog.name_edit.placeholderText() == folder.name
        assert not dialog.allow_pickle.isChecked() and not dialog.warning.isVisible()
        if tick:
            qtbot.mouseClick(dialog.allow_pickle, Qt.MouseButton.LeftButton)
            assert dialog.allow_pickle.isChecked()
            assert dialog.warning.isVisible() and "arbitrary code" in dialog.warning.text()
            assert "weights_only=True" in dialog.warning.text()
        with qtbot.waitSignal(dialog.accepted):
            qtbot.mouseClick(ok, Qt.MouseButton.LeftButton)

    fill_and_accept(tick=False)
    message = window.banner.label.text()
    assert "pytorch_model.bin" in message and "Allow pickle weights" in message
    assert window.project.model(folder.name) is None
    fill_and_accept(tick=True)
    row = window.project.model(folder.name)
    assert row is not None and row["kind"] == "classifier.mlp"
    assert row["meta"] == {"allow_pickle": True}
