"""File → Export figure… (PNG, SVG) and Export table… (CSV) for the view that is shown."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

from ui.export import ExportError, export_current_figure, export_current_table, export_figure
from ui.export import export_table as export_table_of
from ui.views.artifact_views import make_viewer
from ui.views.metrics_panel import MetricsPanel
from ui.views.plotting import series_styles
from workbench.artifacts import Curves
from workbench.store import Project

SERIES = {
    "retrain": ([0.001, 0.01, 0.1, 1.0], [0.0, 0.05, 0.3, 1.0]),
    "trw": ([0.001, 0.01, 0.1, 1.0], [0.01, 0.1, 0.5, 1.0]),
    "chance": ([0.001, 1.0], [0.001, 1.0]),
}


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def _extent(image: QImage, colour: QColor, step: int) -> tuple[float, ...]:
    """Where pixels of ``colour`` lie, as fractions of the image: left, right, top, bottom."""
    rgb = colour.rgb() & 0xFFFFFF
    points = [
        (x, y)
        for x in range(0, image.width(), step)
        for y in range(0, image.height(), step)
        if image.pixelColor(x, y).rgb() & 0xFFFFFF == rgb
    ]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    w, h = image.width(), image.height()
    return min(xs) / w, max(xs) / w, min(ys) / h, max(ys) / h


def _left_axis(image: QImage) -> float:
    """The length of the longest dark vertical line in the left quarter (the y axis), as a
    fraction of the image's height."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB32)
    pixels = np.frombuffer(rgb.constBits(), np.uint8).reshape(rgb.height(), rgb.width(), 4)
    dark = pixels[:, : rgb.width() // 4, :3].max(axis=2) < 80
    return float(dark.sum(axis=0).max()) / rgb.height()


def test_export_curves_as_png_and_svg(qtbot, tmp_path: Path) -> None:
    path, meta = Curves(SERIES, x_label="fpr", y_label="tpr", log_x=True).save(tmp_path, "roc")
    viewer = make_viewer("curves", path, meta)
    qtbot.addWidget(viewer)
    viewer.resize(640, 400)
    viewer.show()
    qtbot.waitExposed(viewer)
    png = export_figure(viewer, tmp_path / "roc.png")
    image = QImage(str(png))
    assert image.width() >= 1200 and image.height() > 400
    # the curves are in the picture: TRW's colour appears in its pixels
    trw = QColor(series_styles(SERIES)["trw"].color)
    step = 3
    colours = {
        image.pixelColor(x, y).rgb() & 0xFFFFFF
        for x in range(0, image.width(), step)
        for y in range(0, image.height(), step)
    }
    assert trw.rgb() & 0xFFFFFF in colours
    svg_path = export_figure(viewer, tmp_path / "roc.svg")
    svg = svg_path.read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    for name in SERIES:  # the legend's labels are text in the SVG
        assert f">{name}</text>" in svg
    assert trw.name() in svg.lower()
    # drawn, the SVG puts the curve where the PNG has it (at the generator's default 72 dpi the
    # axes were scaled by 3/4 and the curves drifted off them)
    renderer = QSvgRenderer(str(svg_path))
    drawn = QImage(image.size(), QImage.Format.Format_ARGB32)
    drawn.fill(QColor("white"))
    painter = QPainter(drawn)
    renderer.render(painter)
    painter.end()
    assert _extent(drawn, trw, step) == pytest.approx(_extent(image, trw, step), abs=0.04)
    assert _left_axis(drawn) == pytest.approx(_left_axis(image), abs=0.03)
    # a view without a table or an unknown format: a clear error
    try:
        export_figure(viewer, tmp_path / "roc.jpg")
    except ExportError as exc:
        assert ".png or .svg" in str(exc)
    else:
        raise AssertionError("a .jpg figure must be refused")


def test_export_metrics_table_as_csv_rows_as_shown(qtbot, tmp_path: Path) -> None:
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.set_series(
        {
            "trw/forget_acc": ([0, 1, 2], [0.123456789, 0.2, 0.3]),
            "trw/apollo_auc": ([0], [0.61]),
            "ft/forget_acc": ([0, 1, 2], [0.5, 0.4, float("nan")]),
            "seconds": ([0], [12.5]),
        }
    )
    panel.filter.setText("forget")
    qtbot.waitUntil(lambda: panel.proxy.rowCount() == 2)
    out = export_table_of(panel, tmp_path / "metrics.csv")
    rows = _read_csv(out)
    header = [
        panel.proxy.headerData(
            panel.table.horizontalHeader().logicalIndex(v), Qt.Orientation.Horizontal
        )
        for v in range(panel.proxy.columnCount())
    ]
    assert rows[0] == header
    assert len(rows) == 1 + panel.proxy.rowCount()
    shown = [
        [
            panel.proxy.index(r, panel.table.horizontalHeader().logicalIndex(v)).data()
            for v in range(panel.proxy.columnCount())
        ]
        for r in range(panel.proxy.rowCount())
    ]
    for csv_row, table_row in zip(rows[1:], shown, strict=True):
        for cell, text in zip(csv_row, table_row, strict=True):
            try:  # numbers at full precision, equal to what the table rounds
                assert np.isclose(float(cell), float(text), rtol=1e-3, atol=1e-4, equal_nan=True)
            except ValueError:
                assert cell == text
    by_name = {(r[0], r[1]): r for r in rows[1:]}
    assert "0.123456789" in by_name[("trw", "forget_acc")]  # the table shows 0.1235
    assert by_name[("ft", "forget_acc")][2] == "nan"


def _project_with_run(root: Path) -> tuple[Project, int]:
    project = Project.create(root)
    run = project.create_run(
        job="classifier.unlearn.trw",
        kind="unlearn",
        family="classifier",
        method="trw",
        config={},
        seed=0,
        status="completed",
    )
    project.add_metrics(
        [
            {"run_id": run, "step": 0, "name": "forget_acc", "value": 0.1, "time": 0.0},
            {"run_id": run, "step": 0, "name": "apollo_auc", "value": 0.6, "time": 0.0},
        ]
    )
    folder = project.run_dir(run) / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    path, meta = Curves(SERIES, log_x=True).save(folder, "roc")
    project.add_artifact(run, "curves", "roc", str(path), meta)
    return project, run


def test_file_menu_exports_the_current_tab(qtbot, make_window, tmp_path: Path) -> None:
    project, run = _project_with_run(tmp_path / "p")
    project.close()
    window = make_window(tmp_path / "p")
    texts = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "Export &figure…" in texts and "Export &table…" in texts
    window.select_run(run)
    view = window.run_view
    qtbot.waitUntil(lambda: view.loaded_run == run, timeout=10_000)
    view.tabs.setCurrentIndex(0)  # Metrics: the table of final values
    rows = _read_csv(export_current_table(window, tmp_path / "m.csv"))
    assert sorted(r[1] for r in rows[1:]) == ["apollo_auc", "forget_acc"]
    # no curves (single values only): the figure is the tab as it looks
    assert QImage(str(export_current_figure(window, tmp_path / "m.png"))).width() > 100
    viewer = view.show_artifact("roc")
    qtbot.waitUntil(lambda: view.artifact_stack.currentWidget() is viewer)
    svg = export_current_figure(window, tmp_path / "roc.svg").read_text()
    assert "retrain" in svg and "chance" in svg
    rows = _read_csv(export_current_table(window, tmp_path / "roc.csv"))
    assert rows[0] == ["series", "x", "y"] and len(rows) == 1 + 4 + 4 + 2
    view.tabs.setCurrentIndex(view.tabs.count() - 1)  # Log: no table -> a message, no traceback
    before = len(window.errors)
    assert export_current_table(window, tmp_path / "log.csv") is None
    assert "no table" in window.errors[before]
    assert not (tmp_path / "log.csv").exists()
    svg = export_current_figure(window, tmp_path / "log.svg").read_text()  # the widget, drawn
    assert "<svg" in svg and "</svg>" in svg and len(svg) > 1000
