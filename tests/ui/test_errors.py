"""Bad projects and broken plugins: readable non-blocking errors, the app and project stay up."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from workbench.registry import Registry, get_registry
from workbench.store import CATALOGUE, Project


def _project(root: Path) -> Path:
    Project.create(root).close()
    return root


def test_non_project_folder_keeps_the_current_project(make_window, tmp_path) -> None:
    good = _project(tmp_path / "good")
    window = make_window(good)
    empty = tmp_path / "not-a-project"
    empty.mkdir()
    assert window.open_project(empty) is False
    assert window.banner.isVisible()
    assert "no project at" in window.banner.label.text()
    assert window.project is not None and window.project.root == good.resolve()
    assert window.engine is not None and window.builder.run_button.isEnabled()
    assert window.isVisible()


def test_corrupted_catalogue_is_reported(make_window, tmp_path) -> None:
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / CATALOGUE).write_bytes(b"this is not sqlite at all" * 100)
    window = make_window()
    assert window.open_project(bad) is False
    text = window.banner.label.text()
    assert "not a readable Unlearning Workbench catalogue" in text
    assert window.project is None and window.stack.currentWidget() is window.empty_state
    assert (bad / CATALOGUE).read_bytes().startswith(b"this is not sqlite")  # left untouched


def test_newer_schema_is_refused(make_window, tmp_path) -> None:
    newer = _project(tmp_path / "newer")
    conn = sqlite3.connect(newer / CATALOGUE)
    with conn:
        conn.execute("update meta set value = '999' where key = 'schema_version'")
    conn.close()
    good = _project(tmp_path / "good")
    window = make_window(good)
    assert window.open_project(newer) is False
    assert "newer Unlearning Workbench" in window.banner.label.text()
    assert window.project.root == good.resolve()


def test_plugin_errors_are_shown(make_window) -> None:
    registry = Registry()
    registry.load_plugins(["workbench_tests_no_such_plugin"])
    base = get_registry()
    registry.jobs.update(base.jobs)
    registry.datasets.update(base.datasets)
    registry.model_kinds.update(base.model_kinds)
    window = make_window(registry=registry)
    assert window.banner.isVisible()
    assert "workbench_tests_no_such_plugin" in window.banner.label.text()
    assert "ModuleNotFoundError" in window.banner.label.text()


def test_new_project_and_empty_state(make_window, tmp_path) -> None:
    window = make_window()
    assert window.stack.currentWidget() is window.empty_state
    assert not window.builder.run_button.isEnabled()
    assert window.open_project(tmp_path / "fresh", create=True)
    assert (tmp_path / "fresh" / CATALOGUE).exists()
    assert window.stack.currentWidget() is window.tabs
    assert window.builder.run_button.isEnabled()
    # creating over an existing project is refused with a message
    assert window.open_project(tmp_path / "fresh", create=True) is False
    assert "already holds a project" in window.banner.label.text()


def test_add_dataset_and_model_folders(make_window, tmp_path) -> None:
    import numpy as np
    from PIL import Image

    root = tmp_path / "project"
    Project.create(root).close()
    window = make_window(root)
    # a folder without class sub-folders: refused with the reason, nothing added
    (tmp_path / "flat").mkdir()
    assert not window.add_dataset(tmp_path / "flat")
    assert window.banner.isVisible() and "no class sub-folders" in window.banner.label.text()
    assert window.project.datasets() == []
    for c in ("cat", "dog"):
        (tmp_path / "pets" / c).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "pets" / c / "a.png")
    assert window.add_dataset(tmp_path / "pets")
    names = [
        window.project_pane.datasets_item.child(i).text(0)
        for i in range(window.project_pane.datasets_item.childCount())
    ]
    assert "pets" in names and "image-folder" not in names
    window.builder.select_job("classifier.retrain")
    combo = window.builder.dataset_combo
    assert "pets" in [combo.itemData(i) for i in range(combo.count())]
    assert "image-folder" not in [combo.itemData(i) for i in range(combo.count())]
    # a model folder with pickle weights only is refused; a workbench folder is added
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "config.json").write_text('{"model_type": "workbench-mlp"}')
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"x")
    assert not window.add_model(tmp_path / "pickled")
    assert "only pickle weights" in window.banner.label.text()
    from workbench.paths import BUILTIN_MODELS

    assert window.add_model(BUILTIN_MODELS / "digits-cnn", name="my-cnn")
    assert window.project.model("my-cnn")["kind"] == "classifier.cnn"
