"""Every artifact viewer draws what the digits job produced; the compare view overlays runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from ui.views.artifact_views import (
    BarsViewer,
    CurvesViewer,
    ErrorViewer,
    FileViewer,
    GraphViewer,
    HeatmapViewer,
    ImageGridViewer,
    TableViewer,
    TextViewer,
    make_viewer,
)
from workbench.store import Project


def test_every_artifact_viewer_renders(qtbot, make_window, trained_project: Path) -> None:
    window = make_window(trained_project)
    run_id = window.project.runs()[0].id
    window.select_run(run_id)
    view = window.run_view
    qtbot.waitUntil(lambda: view.loaded_run == run_id, timeout=10_000)
    kinds = {row["name"]: row["kind"] for row in view.artifact_rows}
    assert set(kinds.values()) == {"curves", "table", "heatmap", "image_grid", "graph", "text"}
    for name in kinds:
        viewer = view.show_artifact(name)
        assert not isinstance(viewer, ErrorViewer), getattr(viewer, "message", "")
        assert view.artifact_stack.currentWidget() is viewer
        assert not viewer.grab().isNull()

    heat = view.show_artifact("confusion matrix")
    assert isinstance(heat, HeatmapViewer)
    assert heat.image.image.shape == (10, 10)
    ticks = heat.plot_item.getAxis("bottom")._tickLevels[0]
    assert [t[1] for t in ticks] == [str(i) for i in range(10)]
    assert heat.colorbar.levels()[1] > heat.colorbar.levels()[0]

    grid = view.show_artifact("misclassified")
    assert isinstance(grid, ImageGridViewer)
    assert len(grid.cells) == len(grid.artifact.images) > 0
    before = grid.cells[0].pixmap().width()
    grid.zoom.setValue(grid.zoom.value() * 2)
    assert grid.cells[0].pixmap().width() == 2 * before

    graph = view.show_artifact("confusion graph")
    assert isinstance(graph, GraphViewer) and graph.node_count == 10
    assert [lbl.toPlainText() for lbl in graph.labels] == [str(i) for i in range(10)]

    table = view.show_artifact("per-class accuracy")
    assert isinstance(table, TableViewer) and table.table.rowCount() == 10
    table.table.sortItems(2, Qt.SortOrder.AscendingOrder)
    accs = [table.table.item(r, 2).data(Qt.ItemDataRole.UserRole) for r in range(10)]
    assert accs == sorted(accs)

    curves = view.show_artifact("training curves")
    assert isinstance(curves, CurvesViewer) and set(curves.curves) == {"train_acc", "test_acc"}
    assert isinstance(view.show_artifact("summary"), TextViewer)


def test_file_viewer_and_broken_artifacts(qtbot, tmp_path: Path) -> None:
    target = tmp_path / "model" / "weights.bin"
    target.parent.mkdir()
    target.write_bytes(b"0")
    viewer = make_viewer("file", target, {"description": "weights"})
    qtbot.addWidget(viewer)
    assert isinstance(viewer, FileViewer)
    assert viewer.path_label.text() == str(target) and viewer.open_button.isEnabled()
    assert viewer.folder() == target.parent
    broken = make_viewer("heatmap", tmp_path / "missing.npz", {})
    qtbot.addWidget(broken)
    assert isinstance(broken, ErrorViewer) and "missing.npz" in broken.message


def test_bars_viewer_draws_grouped_bars(qtbot, tmp_path: Path) -> None:
    from workbench.artifacts import Bars

    bars = Bars(
        ["0", "1", "2"],
        {"original": [0.9, 0.8, 0.7], "unlearned": [0.9, 0.0, 0.7]},
        highlight=["1"],
        y_label="accuracy",
    )
    path, meta = bars.save(tmp_path, "per-class")
    viewer = make_viewer("bars", path, meta)
    qtbot.addWidget(viewer)
    assert isinstance(viewer, BarsViewer) and set(viewer.bars) == {"original", "unlearned"}
    heights = viewer.bars["unlearned"].opts["height"]
    assert list(heights) == [0.9, 0.0, 0.7]
    # the two series sit side by side around each category
    xs_a = viewer.bars["original"].opts["x"]
    xs_b = viewer.bars["unlearned"].opts["x"]
    assert all(a < b for a, b in zip(xs_a, xs_b, strict=True))
    ticks = viewer.plot.getPlotItem().getAxis("bottom")._tickLevels[0]
    assert [t[1] for t in ticks] == ["0", "[1]", "2"]
    assert viewer.error_bars == {}


def test_bars_viewer_draws_intervals_and_exports_them(qtbot, tmp_path: Path) -> None:
    from workbench.artifacts import Bars

    with pytest.raises(ValueError, match="needs an upper end"):
        Bars(["a"], {"s": [0.5]}, lower={"s": [0.4]})
    with pytest.raises(ValueError, match="not a series"):
        Bars(["a"], {"s": [0.5]}, lower={"t": [0.4]}, upper={"t": [0.6]})
    bars = Bars(
        ["striped", "dotted"],
        {"original": [0.9, 0.5], "esd": [0.2, float("nan")]},
        lower={"original": [0.8, 0.3], "esd": [0.1, float("nan")]},
        upper={"original": [0.95, 0.7], "esd": [0.35, float("nan")]},
    )
    path, meta = bars.save(tmp_path, "collateral")
    viewer = make_viewer("bars", path, meta)
    qtbot.addWidget(viewer)
    orig = viewer.error_bars["original"].opts
    assert list(orig["top"]) == pytest.approx([0.05, 0.2])
    assert list(orig["bottom"]) == pytest.approx([0.1, 0.2])
    assert len(viewer.error_bars["esd"].opts["x"]) == 1  # the missing one is left out
    out = viewer.export_table(tmp_path / "t.csv")
    lines = out.read_text().splitlines()
    assert lines[0] == "category,original,original low,original high,esd,esd low,esd high"
    assert lines[1].startswith("striped,0.9,0.8,0.95,0.2,0.1,0.35")


def test_compare_two_runs(qtbot, make_window, trained_project: Path) -> None:
    window = make_window(trained_project)
    ids = [r.id for r in window.project.runs()]
    window.tabs.setCurrentWidget(window.compare_view)
    compare = window.compare_view
    compare.set_checked(ids)
    compare.metric_box.setCurrentText("test_acc")
    labels = [f"run {i} · {window.project.run(i).method}" for i in ids]
    assert list(compare.curves) == labels
    assert [len(compare.curves[label].xData) for label in labels] == [3, 4]
    headers = [
        compare.table.horizontalHeaderItem(c).text() for c in range(compare.table.columnCount())
    ]
    assert headers[:2] == ["run", "method"] and "test_acc" in headers and "train_loss" in headers
    assert compare.table.rowCount() == 2
    col = headers.index("test_acc")
    compare.table.sortItems(col, Qt.SortOrder.DescendingOrder)
    values = [compare.table.item(r, col).data(Qt.ItemDataRole.UserRole) for r in range(2)]
    assert values == sorted(values, reverse=True)


def test_export_config_and_cli_command(make_window, trained_project: Path, tmp_path) -> None:
    window = make_window(trained_project)
    run = window.project.runs()[0]
    window.select_run(run.id)
    expected = {
        "job": run.job,
        "seed": run.seed,
        "model": None,
        "dataset": "digits",
        "config": run.config,
        "config_version": 1,
    }
    assert (
        yaml.safe_load(window.export_config(run.id, tmp_path / "run.yaml").read_text()) == expected
    )
    assert json.loads(window.export_config(run.id, tmp_path / "run.json").read_text()) == expected
    command = window.copy_cli_command()
    assert command is not None and QGuiApplication.clipboard().text() == command
    # the copied command really reruns the run, from the config the app exports
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    with Project.open(trained_project) as project:
        rerun = project.runs()[-1]
        assert rerun.id != run.id and rerun.status == "completed"
        assert (rerun.job, rerun.seed, rerun.config) == (run.job, run.seed, run.config)
    window.load_into_builder()
    assert window.builder.form.values()["epochs"] == 3
    assert window.builder.seed_spin.value() == run.seed


def test_heatmap_cell_values_show_only_when_cells_are_wide_enough(qtbot, tmp_path: Path) -> None:
    import numpy as np

    from workbench.artifacts import Heatmap

    path, meta = Heatmap(np.eye(10), x_labels=list("abcdefghij")).save(tmp_path, "eye")
    viewer = make_viewer("heatmap", path, meta)
    qtbot.addWidget(viewer)
    viewer.resize(300, 300)
    viewer.show()
    qtbot.waitUntil(lambda: 0 < viewer.plot_item.vb.width() < 10 * viewer.MIN_CELL_PX)
    qtbot.waitUntil(lambda: not any(t.isVisible() for t in viewer.texts))
    viewer.resize(1200, 500)
    qtbot.waitUntil(lambda: viewer.plot_item.vb.width() >= 10 * viewer.MIN_CELL_PX)
    qtbot.waitUntil(lambda: all(t.isVisible() for t in viewer.texts))


def test_scatter_curves_draw_points_without_lines(qtbot, tmp_path: Path) -> None:
    from workbench.artifacts import Curves

    path, meta = Curves({"a": ([1, 2, 3], [3, 1, 2])}, scatter=True).save(tmp_path, "pts")
    viewer = make_viewer("curves", path, meta)
    qtbot.addWidget(viewer)
    item = viewer.curves["a"]
    assert item.opts["pen"] is None and item.opts["symbol"] == "o"
    assert list(item.xData) == [1, 2, 3]
