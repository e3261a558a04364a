"""The job monitor shows runs on a cluster like local ones, with Cancel (issue 18 part 3), and
Run → Launcher… sets where new runs execute.  The cluster is submitit's local executor (the Slurm
launcher's code path on this machine); the fixture jobs reach it through ``PYTHONPATH``.

Set ``WORKBENCH_SHOTS=docs`` to write the screenshots into ``docs/`` (else into the test's folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from tests.unit import fixture_jobs
from ui.launcher_dialog import LauncherDialog, apply_launcher_settings
from ui.screenshots import save_grab
from workbench.launchers import SlurmLauncher, load_settings
from workbench.store import Project

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60_000


def test_the_monitor_shows_and_cancels_remote_runs_like_local_ones(
    qtbot, make_window, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("submitit")
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    shots = Path(os.environ.get("WORKBENCH_SHOTS") or tmp_path)
    root = tmp_path / "project"
    Project.create(root).close()
    window = make_window(root, registry=fixture_jobs.make_registry())
    assert window.engine.launcher is None  # no setting: this machine
    monitor = window.monitor

    window.builder.select_job("test.steps")
    local = window.builder.submit()
    assert local is not None
    qtbot.waitUntil(lambda: monitor.rows[local].status == "completed", timeout=TIMEOUT)
    assert monitor.rows[local].title.text() == f"#{local} test.steps"

    # Run → Launcher…: a Ray cluster without an address is refused in the dialog
    dialog = LauncherDialog(load_settings(root), window)
    qtbot.addWidget(dialog)
    dialog.kind.setCurrentIndex(dialog.kind.findData("ray"))
    dialog.accept()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert "needs the cluster's address" in dialog.error.text() and dialog.error.isVisibleTo(dialog)
    dialog.kind.setCurrentIndex(dialog.kind.findData("slurm"))
    dialog.slurm_cluster.setCurrentText("local")
    dialog.slurm_partition.setText("gpu")
    dialog.show()
    save_grab(dialog, shots / "screenshot-launcher-settings.png")
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert apply_launcher_settings(window, dialog.settings())
    assert load_settings(root).kind == "slurm"  # the project's setting now
    assert isinstance(window.engine.launcher, SlurmLauncher)

    window.builder.select_job("test.wait_cancel")
    waiting = window.builder.submit()
    assert waiting is not None
    row = monitor.rows[waiting]
    assert row.title.text() == f"#{waiting} test.wait_cancel · slurm"
    qtbot.waitUntil(lambda: "alive" in window.project.metric_series(waiting), timeout=TIMEOUT)
    assert row.status == "running" and row.cancel_button.isVisible()
    window.resizeDocks([window.monitor_dock], [170], Qt.Orientation.Vertical)
    qtbot.waitUntil(lambda: window.monitor_dock.height() >= 150, timeout=5000)
    save_grab(window, shots / "screenshot-launchers.png")
    qtbot.mouseClick(row.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: row.status == "cancelled", timeout=TIMEOUT)
    assert window.project.run(waiting).status == "cancelled"
    assert not row.cancel_button.isVisible()
