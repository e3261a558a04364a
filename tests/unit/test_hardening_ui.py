"""Issue 10 in the GUI: malformed runs shown as malformed, read-only and damaged projects said so,
and no file outside the project ever displayed (offscreen; screenshots with WORKBENCH_GRAB=dir)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from workbench import store as store_mod
from workbench.artifacts import Text
from workbench.store import Project

pytest.importorskip("PySide6")

from ui.main_window import MainWindow  # noqa: E402
from ui.views.artifact_views import ErrorViewer  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path: Path) -> Iterator[Callable[[Path], MainWindow]]:
    made: list[MainWindow] = []

    def make(path: Path) -> MainWindow:
        settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
        w = MainWindow(path, ask_on_close=False, settings=settings)
        qtbot.addWidget(w)
        w.resize(1200, 760)
        w.show()
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


def _grab(w: MainWindow, name: str) -> None:
    folder = os.environ.get("WORKBENCH_GRAB")
    if folder:
        w.grab().save(str(Path(folder) / name))


def _project_with_a_malformed_run_and_an_outside_artifact(root: Path, secret: Path) -> Project:
    project = Project.create(root)
    good = project.create_run(job="j.good", kind="train", family="f", method="m", config={}, seed=0)
    project.update_run(good, status="completed")
    folder = project.run_dir(good) / "artifacts"
    folder.mkdir()
    path, meta = Text("inside the project").save(folder, "notes")
    project.add_artifact(good, "text", "notes", str(path), meta)
    with project.transaction() as db:
        db["artifacts"].insert(
            {
                "run_id": good,
                "kind": "text",
                "name": "secret",
                "path": str(secret),
                "meta": "{}",
                "created": 0.0,
            }
        )
    bad = project.create_run(job="j.bad", kind="train", family="f", method="m", config={}, seed=0)
    with project.transaction() as db:
        db.execute("update runs set config = '{broken' where id = ?", [bad])
    return project


def test_malformed_run_is_listed_and_outside_artifact_not_shown(
    window, qtbot, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET OUTSIDE THE PROJECT")
    project = _project_with_a_malformed_run_and_an_outside_artifact(tmp_path / "p", secret)
    project.close()
    w = window(tmp_path / "p")
    pane = w.project_pane
    assert pane.run_ids() == [1, 2]
    assert pane.run_status(2) == "malformed"
    assert "run 2: unreadable config" in pane._run_items[2].toolTip(0)
    w.run_view.show_run(2)
    assert (
        "malformed" in w.run_view.header.text() and "unreadable config" in w.run_view.header.text()
    )
    _grab(w, "malformed-run.png")
    # the run view loads a run's artifacts in a worker (issue 11): wait for run 1's
    with qtbot.waitSignal(w.run_view.loaded, timeout=10_000, check_params_cb=lambda rid: rid == 1):
        w.run_view.show_run(1)
    qtbot.waitUntil(lambda: len(w.run_view.artifact_rows) == 2, timeout=10_000)
    names = [row["name"] for row in w.run_view.artifact_rows]
    secret_viewer = w.run_view.viewer(names.index("secret"))
    assert isinstance(secret_viewer, ErrorViewer)
    w.run_view.show_artifact("secret")
    _grab(w, "outside-artifact.png")
    shown = " ".join(lbl.text() for lbl in secret_viewer.findChildren(type(w.run_view.header)))
    assert "outside the project" in shown and "SECRET" not in shown


def test_read_only_project_says_so(window, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Project.create(tmp_path / "ro").close()
    monkeypatch.setattr(store_mod, "_writable", lambda path: False)
    w = window(tmp_path / "ro")
    assert w.project is not None and w.project.read_only
    assert any("project is read-only; runs cannot be added" in e for e in w.errors)
    _grab(w, "read-only.png")
