"""The living project pane: run management, details, menus, remembered layout, the project lock.

Modal dialogs are answered through their widgets by a zero-delay timer that fires inside their
event loop (never sleeps); menus are built by ``ProjectPane.menu_for`` and their actions triggered.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QMenu, QMessageBox, QWidget

from ui import dialogs
from ui.dialogs import TextDialog
from ui.main_window import MainWindow
from workbench.lock import LOCK_DIR
from workbench.store import Project


def answer(fn: Callable[[QWidget], None], tries: int = 200) -> None:
    """Call ``fn`` on the next modal dialog once it is up (from inside its event loop)."""

    def go(left: int = tries) -> None:
        widget = QApplication.activeModalWidget()
        if widget is None and left:
            QTimer.singleShot(5, lambda: go(left - 1))
            return
        fn(widget)

    QTimer.singleShot(0, go)


def fill_text(value: str) -> Callable[[QWidget], None]:
    def fill(dialog: QWidget) -> None:
        assert isinstance(dialog, TextDialog)
        dialog.set_value(value)
        dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()

    return fill


def click(object_name: str, tick: bool = False) -> Callable[[QWidget], None]:
    def press(box: QWidget) -> None:
        assert isinstance(box, QMessageBox)
        if tick:
            box.checkBox().setChecked(True)
        box.findChild(QWidget, object_name).click()

    return press


def cancel(box: QWidget) -> None:
    assert isinstance(box, QMessageBox)
    box.button(QMessageBox.StandardButton.Cancel).click()


def action(menu: QMenu, text: str):
    found = [a for a in menu.actions() if a.text() == text]
    assert found, f"{text!r} not in {[a.text() for a in menu.actions()]}"
    return found[0]


def _runs_project(root: Path) -> dict[str, int]:
    """A project with a completed, two failed and one running run (no training)."""
    project = Project.create(root)
    ids = {}
    for name, status in (("done", "completed"), ("bad1", "failed"), ("bad2", "failed")):
        ids[name] = project.create_run(
            job="classifier.train_mlp",
            kind="train",
            family="classifier",
            method="mlp",
            config={},
            seed=0,
            status=status,
        )
        project.run_dir(ids[name])
    ids["live"] = project.create_run(
        job="classifier.train_mlp",
        kind="train",
        family="classifier",
        method="mlp",
        config={},
        seed=0,
        status="running",
    )
    project.update_run(ids["live"], pid=os.getpid(), host=socket.gethostname())
    project.close()
    return ids


def _image_folder(root: Path, counts: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_runs_are_tagged_noted_archived_and_deleted_from_the_menu(
    qtbot, make_window, tmp_path
) -> None:
    ids = _runs_project(tmp_path / "p")
    window = make_window(tmp_path / "p")
    pane, project = window.project_pane, window.project
    assert pane.run_ids() == sorted(ids.values())

    menu = pane.menu_for(pane.run_item(ids["done"]))
    answer(fill_text("baseline, v2 , baseline"))
    action(menu, "Edit tags…").trigger()
    assert project.run(ids["done"]).tags == ["baseline", "v2"]
    assert "#baseline" in pane.run_item(ids["done"]).text(1)
    answer(fill_text("the reference run"))
    action(menu, "Edit note…").trigger()
    assert project.run(ids["done"]).note == "the reference run"
    assert "note: the reference run" in pane.run_item(ids["done"]).toolTip(0)

    # archived runs leave the tree unless View > Show archived runs is ticked
    action(menu, "Archive").trigger()
    assert project.run(ids["done"]).archived and ids["done"] not in pane.run_ids()
    assert pane.archived_label.text() == "1 archived"
    window.show_archived_action.trigger()
    assert pane.show_archived.isChecked() and ids["done"] in pane.run_ids()
    assert "[archived]" in pane.run_item(ids["done"]).text(1)
    menu = pane.menu_for(pane.run_item(ids["done"]))
    action(menu, "Unarchive").trigger()
    assert not project.run(ids["done"]).archived

    # a running run is refused with the store's message; Cancel deletes nothing
    answer(click("confirmOk"))
    action(pane.menu_for(pane.run_item(ids["live"])), "Delete…").trigger()
    assert "cancel it before deleting it" in window.banner.label.text()
    assert ids["live"] in pane.run_ids()
    answer(cancel)
    action(pane.menu_for(pane.run_item(ids["bad1"])), "Delete…").trigger()
    assert ids["bad1"] in pane.run_ids()

    # failed runs in bulk, from the Run menu
    answer(click("confirmOk"))
    window.delete_failed_action.trigger()
    assert pane.run_ids() == [ids["done"], ids["live"]]
    assert [r.id for r in project.runs()] == [ids["done"], ids["live"]]
    assert not (project.root / "runs" / str(ids["bad1"])).exists()


def test_several_selected_runs_are_deleted_together(qtbot, make_window, tmp_path) -> None:
    ids = _runs_project(tmp_path / "p")
    window = make_window(tmp_path / "p")
    pane = window.project_pane
    window.select_run(ids["done"])
    window.show_run(ids["done"])
    for key in ("done", "bad1"):
        pane.run_item(ids[key]).setSelected(True)
    assert pane.selected_runs() == [ids["done"], ids["bad1"]]
    menu = pane.menu_for(pane.run_item(ids["bad1"]))
    answer(click("confirmOk"))
    action(menu, "Delete 2 runs…").trigger()
    assert pane.run_ids() == [ids["bad2"], ids["live"]]
    assert window.run_view.run_id is None  # the deleted run is no longer shown


def test_dataset_and_model_details(qtbot, make_window, tmp_path) -> None:
    root = tmp_path / "p"
    Project.create(root).close()
    window = make_window(root)
    assert window.add_dataset(_image_folder(tmp_path / "pets", {"cat": 3, "dog": 8}))
    pane = window.project_pane
    item = pane.entry_item("dataset", "pets")
    pane.tree.itemDoubleClicked.emit(item, 0)
    dialog = pane.details_dialogs[("dataset", "pets")]
    qtbot.waitUntil(lambda: dialog.details is not None, timeout=10_000)
    assert dialog.isVisible()
    details = dialog.details
    assert details.fact("Examples") == "11" and details.fact("Classes") == "2"
    assert details.fact("Kind") == "Image folder"
    assert details.classes == [("cat", 3), ("dog", 8)]
    table = dialog.classes
    assert [table.item(r, 1).data(Qt.ItemDataRole.DisplayRole) for r in range(2)] == [3, 8]
    assert dialog.sample_count() == 3 + 6  # at most six samples per class
    assert dialog.open_button.isEnabled()

    # a built-in model: the parameter count comes from the safetensors header (64*128+128+128*10+10)
    menu = pane.menu_for(pane.entry_item("model", "digits-mlp"))
    assert not action(menu, "Rename…").isEnabled()  # built in: not the project's to rename
    action(menu, "Details…").trigger()
    model = pane.details_dialogs[("model", "digits-mlp")]
    qtbot.waitUntil(lambda: model.details is not None, timeout=10_000)
    assert model.details.fact("Parameters") == "9.61 k (9,610)"
    assert model.details.fact("Classes").startswith("10 (0, 1, 2")
    assert model.details.fact("Made by").startswith("shipped with the workbench")


def test_rename_and_remove_models_and_datasets(qtbot, make_window, tmp_path) -> None:
    root = tmp_path / "p"
    project = Project.create(root)
    inside = _image_folder(root / "data" / "inside", {"a": 1, "b": 1})
    outside = _image_folder(tmp_path / "outside", {"a": 1, "b": 1})
    project.add_dataset("inside", "classifier", "image-folder", str(inside))
    project.add_dataset("outside", "classifier", "image-folder", str(outside))
    run = project.create_run(
        job="classifier.retrain",
        kind="unlearn",
        family="classifier",
        method="retrain",
        config={},
        seed=0,
        dataset="inside",
        status="completed",
    )
    project.close()
    window = make_window(root)
    pane = window.project_pane

    answer(fill_text("renamed"))
    action(pane.menu_for(pane.entry_item("dataset", "inside")), "Rename…").trigger()
    assert pane.entry_item("dataset", "renamed") is not None
    assert window.project.run(run).dataset == "renamed"  # the run still reruns
    answer(fill_text("outside"))  # a name in use is refused, nothing changes
    action(pane.menu_for(pane.entry_item("dataset", "renamed")), "Rename…").trigger()
    assert "already has a dataset named 'outside'" in window.banner.label.text()

    # outside the project: removed from the catalogue, the folder is kept (no box to tick)
    answer(lambda box: (assert_no_check(box), click("confirmOk")(box)))
    action(pane.menu_for(pane.entry_item("dataset", "outside")), "Remove from project…").trigger()
    assert pane.entry_item("dataset", "outside") is None and outside.exists()
    # inside the project, with the box ticked: the folder goes too; the run keeps its record
    answer(click("confirmOk", tick=True))
    action(pane.menu_for(pane.entry_item("dataset", "renamed")), "Remove from project…").trigger()
    assert window.project.datasets() == [] and not inside.exists()
    assert window.project.run(run).dataset == "renamed"


def assert_no_check(box: QWidget) -> None:
    assert isinstance(box, QMessageBox) and box.checkBox() is None
    assert "lies outside the project and is not deleted" in box.text()


def test_help_and_view_menus(qtbot, make_window, tmp_path, monkeypatch) -> None:
    window = make_window()
    toggles = [d.toggleViewAction() for d in (window.project_dock, window.monitor_dock)]
    assert not any(t.isEnabled() for t in toggles)  # nothing to show without a project
    Project.create(tmp_path / "p").close()
    window.open_project(tmp_path / "p")
    assert all(t.isEnabled() for t in toggles) and window.show_archived_action.isEnabled()
    toggles[1].trigger()
    assert window.monitor_dock.isHidden()

    box = window.show_about()
    assert box.isVisible()
    for dist in ("PySide6-Essentials", "torch", "diffusers", "transformers"):
        try:
            assert metadata.version(dist) in box.text()
        except metadata.PackageNotFoundError:
            assert "not installed" in box.text()
    box.close()

    opened = []
    monkeypatch.setattr(dialogs, "open_url", lambda url: opened.append(url) or True)
    window.docs_action.trigger()
    assert len(opened) == 1 and Path(opened[0].toLocalFile()).exists()
    assert Path(opened[0].toLocalFile()).name == "docs"


def test_layout_and_open_folder_are_remembered(qtbot, tmp_path) -> None:
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    root = tmp_path / "projects" / "p"
    Project.create(root).close()
    first = MainWindow(root, settings=settings, ask_on_close=False)
    qtbot.addWidget(first)
    first.show()
    assert first.dialog_folder() == str(root.parent)
    first.resize(760, 560)  # within the offscreen screen (800 x 600), above the minimum width
    first.builder_dock.toggleViewAction().trigger()
    saved = (first.width(), first.height())
    assert saved[0] == 760 and saved != (1280, 800)  # not the default size
    first.close()

    second = MainWindow(settings=settings, ask_on_close=False)
    qtbot.addWidget(second)
    second.show()
    assert (second.width(), second.height()) == saved
    assert second.builder_dock.isHidden() and not second.project_dock.isHidden()
    assert second.dialog_folder() == str(root.parent)  # the last project's parent, not home
    second.close()


def test_a_second_window_on_the_same_project_is_warned(qtbot, make_window, tmp_path) -> None:
    root = tmp_path / "p"
    Project.create(root).close()
    first = make_window(root)
    second = make_window()
    asked = []

    def refuse(parent, name, holders) -> bool:
        asked.append((name, holders))
        return False

    second.confirm_locked_open = refuse
    assert second.open_project(root) is False and second.project is None
    ((name, holders),) = asked
    assert name == str(root) and [h.pid for h in holders] == [os.getpid()]
    text = dialogs.lock_warning_box(second, name, holders).text()
    assert text.startswith(f"Project {root} is open in another window (pid {os.getpid()} on host")
    assert "Opening it twice can mix up runs" in text

    # the CLI ignores the lock
    from workbench.cli import main

    assert main(["runs", "--project", str(root)]) == 0
    second.confirm_locked_open = lambda *_: True  # Open anyway
    assert second.open_project(root) and second.project is not None
    first.close()
    assert len(list((root / LOCK_DIR).glob("*.lock"))) == 1  # the first window's lock is gone
    third = make_window()
    third.confirm_locked_open = refuse
    assert third.open_project(root) is False and len(asked) == 2
    second.close()
    assert third.open_project(root) and len(asked) == 2  # nobody holds it: no question


@pytest.mark.parametrize("answer_with", ["openAnyway", "cancel"])
def test_the_lock_warning_box_decides(qtbot, tmp_path, answer_with) -> None:
    from workbench.lock import acquire, holders

    held = acquire(tmp_path)
    try:
        found = holders(tmp_path)
        answer(cancel if answer_with == "cancel" else click("openAnyway"))
        assert dialogs.ask_open_locked(None, str(tmp_path), found) is (answer_with != "cancel")
    finally:
        held.release()
