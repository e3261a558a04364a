"""What keeps the window responsive: heavy jobs train in a child process (never on a thread of the
GUI process), and a result loaded for a selection that is no longer current is dropped.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

import ui.views.run_view as run_view_module
from tests.unit import fixture_jobs
from tests.unit.fixture_jobs import StepsConfig
from ui.main_window import MainWindow
from ui.views.artifact_views import TextViewer
from workbench.artifacts import Text
from workbench.jobs import Engine, heavy_jobs
from workbench.registry import JobSpec, Registry
from workbench.store import Project

GATE_TIMEOUT = 30.0


def named_job(ctx: Any) -> None:
    """One text artifact that names the run (so a test can tell whose viewer is shown)."""
    ctx.artifact("notes", Text(f"notes of {ctx.config.key}", title="Notes"))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("two-runs") / "project"
    project = Project.create(root)
    registry = Registry()
    registry.add_job(
        JobSpec(
            name="test.named",
            kind="experiment",
            family="test",
            title="named",
            description="a text artifact naming the run",
            config=StepsConfig,
            entry="tests.ui.test_stall:named_job",
            model_heavy=False,
        )
    )
    engine = Engine(project, registry=registry)
    try:
        for key in ("A", "B"):
            run_id = engine.submit("test.named", {"key": key})
            assert engine.wait(run_id, timeout=60) == "completed", project.run(run_id).error
    finally:
        engine.shutdown()
        project.close()
    return root


def test_a_late_artifact_of_an_earlier_selection_is_dropped(
    qtbot, make_window, two_runs: Path, monkeypatch
) -> None:
    window = make_window(two_runs)
    view = window.run_view
    first, second = sorted(r.id for r in window.project.runs())
    window.select_run(first)
    qtbot.waitUntil(lambda: view.loaded_run == first, timeout=10_000)
    first_dir = str(window.project.run_dir(first))
    held, release = threading.Event(), threading.Event()
    original = run_view_module.load_artifact

    def gated(kind: str, path: Path, meta: dict) -> Any:
        if str(path).startswith(first_dir):  # the first run's artifact loads slowly
            held.set()
            assert release.wait(GATE_TIMEOUT)
        return original(kind, path, meta)

    monkeypatch.setattr(run_view_module, "load_artifact", gated)
    try:
        view.tabs.setCurrentIndex(1)  # the first run's artifact starts loading in a worker
        assert held.wait(GATE_TIMEOUT)
        window.select_run(second)  # a quick second click while it loads
        qtbot.waitUntil(lambda: isinstance(view.artifact_stack.currentWidget(), TextViewer))
    finally:
        release.set()
    qtbot.waitUntil(lambda: view.dropped >= 1, timeout=10_000)
    shown = view.artifact_stack.currentWidget()
    assert view.run_id == second
    assert shown.text.toPlainText() == "notes of B"
    assert [v.text.toPlainText() for v in view.viewers.values()] == ["notes of B"]


def test_the_window_runs_a_heavy_job_in_a_child_process(
    qtbot, make_window, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(MainWindow, "isolate_jobs", staticmethod(heavy_jobs))  # the app's policy
    window = make_window(registry=fixture_jobs.make_registry())
    assert window.open_project(tmp_path / "project", create=True)
    engine = window.engine
    assert engine.isolate is not None and engine.isolate(engine.registry.job("test.heavy_counter"))
    run_id = engine.submit("test.heavy_counter", {"steps": 10, "hold_at": 3})
    window._submitted(run_id)
    view = window.run_view
    # the steps stream from the child into the run view's live curve
    qtbot.waitUntil(lambda: view.plot.curve_data("total")[0] == [1, 2, 3], timeout=30_000)
    child = engine.child_pid(run_id)
    assert child is not None and child != os.getpid()
    window.monitor.cancel(run_id)
    qtbot.waitUntil(lambda: "cancelled" in view.header.text(), timeout=30_000)
    assert window.project.run(run_id).status == "cancelled"
    assert "cancelled after step 3" in view.log.toPlainText()
    assert "cancel requested by the user" in view.log.toPlainText()
