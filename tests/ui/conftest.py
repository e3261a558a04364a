"""Fixtures of the GUI tests: isolated settings, windows that are shut down, a trained project."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from ui.main_window import MainWindow
from workbench.jobs import Engine
from workbench.store import Project

JOB = "classifier.train_mlp"


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    """Recent projects etc. in a file of this test, never the user's settings."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, settings: QSettings, monkeypatch) -> Iterator[Callable[..., MainWindow]]:
    """Build shown main windows; every one is closed (engine shut down) after the test.

    Their engines run jobs on threads: a child process per run would import torch afresh for
    each test's run (tests/ui/test_stall.py covers the window's child processes)."""
    monkeypatch.setattr(MainWindow, "isolate_jobs", None)
    windows: list[MainWindow] = []

    def make(project_path: str | Path | None = None, **kwargs) -> MainWindow:
        kwargs.setdefault("settings", settings)
        window = MainWindow(project_path, ask_on_close=False, **kwargs)
        qtbot.addWidget(window)
        window.resize(1280, 800)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
        assert window.engine is None and window.project is None


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with two completed digits runs (trained headless once per session)."""
    root = tmp_path_factory.mktemp("trained") / "project"
    project = Project.create(root)
    engine = Engine(project)
    try:
        for seed, epochs in ((1, 3), (2, 4)):
            run_id = engine.submit(JOB, {"epochs": epochs}, seed=seed, dataset="digits")
            assert engine.wait(run_id, timeout=120) == "completed", project.run(run_id).error
    finally:
        engine.shutdown()
        project.close()
    return root
