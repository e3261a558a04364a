"""Selecting a run never loads its metrics, log or artifacts on the GUI thread; late results of a
selection that is no longer current are dropped; the Metrics tab shows final values in a sortable,
filterable table grouped by method, and curves only for real series, one axis per unit.

The comparison-like project is written by a real (tiny) job run through the engine: every metric
of two methods, as ``method/metric``, some per seed (series) and some once (final values).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from tests.unit.fixture_jobs import StepsConfig
from ui.views.artifact_views import TableViewer
from ui.views.metric_plot import LOSS, OTHER, OVERLAY, RATE
from workbench.artifacts import Table
from workbench.jobs import Engine
from workbench.registry import JobSpec, Registry
from workbench.store import Project

GATE_TIMEOUT = 30.0
METHODS = ("ft", "trw")


def compare_like_job(ctx: Any) -> None:
    """Per method: forget accuracy and loss per seed (series), an AUC and a count once (final)."""
    for m, method in enumerate(METHODS):
        for seed in range(3):
            ctx.metric(f"{method}/forget_acc", 0.1 * (m + 1) + 0.01 * seed, seed)
            ctx.metric(f"{method}/train_loss", 2.0 - 0.5 * seed + m, seed)
        ctx.metric(f"{method}/apollo_auc", 0.5 + 0.1 * m, 2)
        ctx.metric(f"{method}/n_queries", 1200.0 * (m + 1), 2)
    ctx.artifact("gap table", Table(["method", "gap"], [[m, 0.1] for m in METHODS]))


@pytest.fixture(scope="module")
def compare_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compare") / "project"
    project = Project.create(root)
    registry = Registry()
    registry.add_job(
        JobSpec(
            name="test.compare_like",
            kind="experiment",
            family="test",
            title="compare-like",
            description="method/metric names like a comparison",
            config=StepsConfig,
            entry="tests.ui.test_run_view_loading:compare_like_job",
            model_heavy=False,
        )
    )
    engine = Engine(project, registry=registry)
    try:
        run_id = engine.submit("test.compare_like", {})
        assert engine.wait(run_id, timeout=60) == "completed", project.run(run_id).error
    finally:
        engine.shutdown()
        project.close()
    return root


def _spy(monkeypatch, project: Project, calls: list, gates: dict[int, threading.Event]) -> None:
    """Record the thread of every catalogue read that grows with a run; hold runs in ``gates``."""
    for name in ("metric_series", "logs", "artifacts"):
        original = getattr(project, name)

        def spy(run_id: int, _original=original, _name=name) -> Any:
            calls.append((_name, run_id, threading.get_ident()))
            gate = gates.get(run_id)
            if gate is not None and _name == "metric_series":
                assert gate.wait(GATE_TIMEOUT)
            return _original(run_id)

        monkeypatch.setattr(project, name, spy)


def test_selection_loads_off_the_gui_thread_and_drops_stale_results(
    qtbot, make_window, trained_project: Path, monkeypatch
) -> None:
    window = make_window(trained_project)
    view = window.run_view
    qtbot.waitUntil(lambda: not view.loading, timeout=10_000)
    first, second = sorted(r.id for r in window.project.runs())[:2]  # 3 and 4 epochs
    calls: list[tuple[str, int, int]] = []
    release_first = threading.Event()
    _spy(monkeypatch, window.project, calls, {first: release_first})
    gui = threading.get_ident()
    try:
        window.select_run(first)
        # the handler returned without reading the run's metrics, log or artifacts itself
        assert view.run_id == first and view.loading
        assert all(thread != gui for *_rest, thread in calls)
        assert view.metrics.model.rowCount() == 0 and "Loading" in view.metrics.count.text()
        # a quick second click: the first run's load is still held in its worker
        with qtbot.waitSignal(view.loaded, timeout=10_000) as loaded:
            window.select_run(second)
        assert loaded.args == [second]
    finally:
        release_first.set()
    qtbot.waitUntil(lambda: view.dropped >= 1, timeout=10_000)
    # the first run's late result was dropped: the second run (4 epochs, not 3) stays shown
    assert view.run_id == view.loaded_run == second
    loads = list(calls)
    expected = window.project.metric_series(second)
    rows = {r[-1]: r for r in view.metrics.model.rows}
    assert set(rows) == set(expected)
    assert rows["train_acc"][3] == len(expected["train_acc"][0]) == 4
    assert rows["train_acc"][2] == expected["train_acc"][1][-1]
    qtbot.waitUntil(lambda: view.plot.curve_data("train_acc") == expected["train_acc"])
    assert {name for name, run_id, _t in loads if run_id == second} == {
        "metric_series",
        "logs",
        "artifacts",
    }
    assert all(thread != gui for *_rest, thread in loads)


def test_artifacts_load_in_a_worker_when_their_tab_is_shown(
    qtbot, make_window, compare_project: Path, monkeypatch
) -> None:
    import ui.views.run_view as run_view_module

    window = make_window(compare_project)
    view = window.run_view
    run_id = window.project.runs()[0].id
    qtbot.waitUntil(lambda: view.loaded_run == run_id, timeout=10_000)
    window.select_run(run_id)
    view.show_run(run_id)  # a fresh selection of the same run
    qtbot.waitUntil(lambda: view.loaded_run == run_id, timeout=10_000)
    loads: list[int] = []
    original = run_view_module.load_artifact

    def spy(*args: Any) -> Any:
        loads.append(threading.get_ident())
        return original(*args)

    monkeypatch.setattr(run_view_module, "load_artifact", spy)
    assert view.tabs.currentIndex() == 0 and view.viewers == {}  # nothing built for hidden tabs
    assert view.tabs.tabText(1) == "Artifacts (1)"
    view.tabs.setCurrentIndex(1)
    assert view.artifact_stack.currentWidget() is view.artifact_loading
    qtbot.waitUntil(lambda: isinstance(view.artifact_stack.currentWidget(), TableViewer))
    assert loads and threading.get_ident() not in loads
    assert view.artifact_stack.currentWidget().table.rowCount() == len(METHODS)


def test_metrics_tab_table_grouped_by_method_and_filtered(
    qtbot, make_window, compare_project: Path
) -> None:
    window = make_window(compare_project)
    view = window.run_view
    run_id = window.project.runs()[0].id
    window.select_run(run_id)
    qtbot.waitUntil(lambda: view.loaded_run == run_id, timeout=10_000)
    panel = view.metrics
    # every metric is a row: method and metric split, the final value, steps and the unit
    assert panel.visible_names() == [
        f"{m}/{k}" for m in METHODS for k in ("apollo_auc", "forget_acc", "n_queries", "train_loss")
    ]
    rows = {r[-1]: r for r in panel.model.rows}
    assert rows["trw/apollo_auc"][:4] == ("trw", "apollo_auc", pytest.approx(0.6), 1)
    assert rows["ft/forget_acc"][2:4] == (pytest.approx(0.12), 3)
    assert rows["ft/forget_acc"][7] == pytest.approx(0.11)  # the mean over the three seeds
    assert rows["trw/n_queries"][6] == OTHER and rows["ft/forget_acc"][6] == RATE
    assert rows["ft/train_loss"][6] == LOSS
    # sortable by value: descending final values
    value_col = 2
    panel.table.sortByColumn(value_col, Qt.SortOrder.DescendingOrder)
    values = [
        panel.proxy.index(r, value_col).data(Qt.ItemDataRole.UserRole)
        for r in range(panel.proxy.rowCount())
    ]
    assert values == sorted(values, reverse=True) and values[0] == 2400.0
    # the filter narrows the table and the curves alike (every word must match)
    panel.filter.setText("trw acc")
    qtbot.waitUntil(lambda: panel.proxy.rowCount() == 1)
    assert panel.visible_names() == ["trw/forget_acc"]
    assert panel.count.text() == "1 of 8 metrics"
    qtbot.waitUntil(lambda: panel.plot.shown == ["trw/forget_acc"])
    panel.filter.setText("")
    qtbot.waitUntil(lambda: panel.proxy.rowCount() == 8)


def test_metrics_tab_draws_only_series_one_axis_per_unit(
    qtbot, make_window, compare_project: Path
) -> None:
    window = make_window(compare_project)
    view = window.run_view
    run_id = window.project.runs()[0].id
    window.select_run(run_id)
    qtbot.waitUntil(lambda: view.loaded_run == run_id, timeout=10_000)
    plot = view.plot
    qtbot.waitUntil(lambda: bool(plot.shown) and not plot.building)
    # curves for the four per-seed series only; the single-step values have no (empty) plot
    assert plot.shown == ["ft/forget_acc", "ft/train_loss", "trw/forget_acc", "trw/train_loss"]
    assert set(plot.curves) == set(plot.shown) and len(plot.plots) == 4
    assert plot.curve_data("ft/forget_acc")[0] == [0, 1, 2]
    assert "4 single-step values are in the table" in plot.empty.text()
    # no collapsed axis: each plot spans its own steps (auto-ranged when painted)
    qtbot.waitUntil(lambda: all(-1 < p.viewRange()[0][0] <= 0 for p in plot.plots))
    qtbot.waitUntil(lambda: all(2 <= p.viewRange()[0][1] < 3 for p in plot.plots))
    # overlay: one plot (axis) per unit, rates apart from losses
    plot.mode.setCurrentText(OVERLAY)
    qtbot.waitUntil(lambda: len(plot.plots) == 2 and not plot.building)
    labels = sorted(p.getAxis("left").labelText for p in plot.plots)
    assert labels == sorted([LOSS, RATE])
    for item in plot.plots:
        names = {c.name() for c in item.listDataItems()}
        unit = item.getAxis("left").labelText
        assert names == {f"{m}/{'train_loss' if unit == LOSS else 'forget_acc'}" for m in METHODS}
