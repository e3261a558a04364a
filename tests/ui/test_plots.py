"""Plots: one distinct style per series, fixed method colours, legends beside the data, decade
ticks on log axes, single points visible, no NaN reaching pyqtgraph, and one metric namespace in
the compare view."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, SignalInstance
from PySide6.QtWidgets import QWidget

from ui.views.artifact_views import BarsViewer, CurvesViewer, HeatmapViewer, make_viewer
from ui.views.compare_view import MEAN, CompareView
from ui.views.metric_plot import OVERLAY, MetricPlot
from ui.views.plotting import PALETTE, Figure, series_styles
from workbench.artifacts import Bars, Curves, Heatmap
from workbench.store import Project

ROC_NAMES = [
    "original",
    "retrain",
    "ft",
    "ga",
    "neggrad_plus",
    "rl",
    "scrub",
    "salun",
    "l1_sparse",
    "boundary_shrink",
    "rwft",
    "trw",
    "chance",
]


def _viewer(qtbot, tmp_path: Path, artifact, name: str = "a", size=(700, 420)):
    path, meta = artifact.save(tmp_path, name)
    viewer = make_viewer(artifact.kind, path, meta)
    qtbot.addWidget(viewer)
    viewer.resize(*size)
    viewer.show()
    qtbot.waitExposed(viewer)
    return viewer


def _roc(names: list[str]) -> Curves:
    fpr = np.logspace(-3, 0, 40)
    return Curves(
        {n: (fpr, np.clip(fpr ** (1 / (1 + i / 4)), 0, 1)) for i, n in enumerate(names)},
        x_label="false-positive rate (log)",
        y_label="true-positive rate",
        log_x=True,
    )


def test_thirteen_series_get_distinct_styles() -> None:
    styles = series_styles(ROC_NAMES)
    assert len({(s.color, s.dash) for s in styles.values()}) == 13
    # the methods the tester saw collide (original/RWFT blue, retrain/TRW red) now differ
    assert styles["original"].color != styles["rwft"].color
    assert styles["retrain"].color != styles["trw"].color
    # 30 arbitrary names: 20 solid colours first, then the colours again with another line style
    many = series_styles([f"metric_{i}" for i in range(30)])
    pairs = [(s.color, s.dash) for s in many.values()]
    assert len(set(pairs)) == 30
    solid = [s.color for s in many.values() if s.dash == Qt.PenStyle.SolidLine]
    assert sorted(solid) == sorted(PALETTE)


def test_a_method_has_the_same_colour_in_every_plot(qtbot, tmp_path: Path) -> None:
    roc = _viewer(qtbot, tmp_path, _roc(ROC_NAMES), "roc")
    bars = _viewer(
        qtbot,
        tmp_path,
        Bars(["0", "1"], {"retrain": [0.1, 0.2], "trw": [0.3, 0.1], "rwft": [0.2, 0.2]}),
        "bars",
    )
    assert isinstance(roc, CurvesViewer) and isinstance(bars, BarsViewer)
    for name in ("retrain", "trw", "rwft"):
        line = roc.curves[name].opts["pen"].color().name()
        bar = pg.mkBrush(bars.bars[name].opts["brush"]).color().name()
        assert line == bar, name
    # and in the metric curves of a comparison ("trw/forget_acc" is drawn in TRW's colour)
    plot = MetricPlot()
    qtbot.addWidget(plot)
    plot.show()
    plot.mode.setCurrentText(OVERLAY)
    plot.set_series({"trw/forget_acc": ([0, 1, 2], [0.1, 0.2, 0.3])})
    qtbot.waitUntil(lambda: "trw/forget_acc" in plot.curves)
    pen = plot.curves["trw/forget_acc"].opts["pen"].color().name()
    assert pen == roc.curves["trw"].opts["pen"].color().name()


def test_roc_legend_beside_the_data_and_decade_ticks(qtbot, tmp_path: Path) -> None:
    viewer = _viewer(qtbot, tmp_path, _roc(ROC_NAMES), "roc", size=(800, 460))
    fig = viewer.plot
    vb = fig.plot_item.vb
    qtbot.waitUntil(lambda: fig.legend.sceneBoundingRect().width() > 0)
    legend, data = fig.legend.sceneBoundingRect(), vb.sceneBoundingRect()
    assert len(fig.legend.items) == 13
    assert legend.left() >= data.right() and not legend.intersects(data)
    axis = fig.plot_item.getAxis("bottom")
    levels = axis.tickValues(-3.0, 0.0, 500)
    labels = [axis.tickStrings(values, 1.0, spacing) for spacing, values in levels]
    assert labels[0] == ["0.001", "0.01", "0.1", "1"]
    assert labels[1] and all(text == "" for text in labels[1])  # minor ticks carry no label
    # a short axis labels every second decade, never two labels closer than min_label_px
    spacing, values = axis.tickValues(-6.0, 0.0, 150)[0]
    assert len(values) < 7
    assert spacing * 150 / 6 >= axis.min_label_px
    assert axis.tickStrings(values, 1.0, spacing)[-1] == "1"
    assert "1e-6" in axis.tickStrings(values, 1.0, spacing)


def test_single_points_are_drawn_as_markers(qtbot, tmp_path: Path) -> None:
    viewer = _viewer(
        qtbot, tmp_path, Curves({"one": ([0.5], [0.25]), "long": (range(50), range(50))}), "pts"
    )
    one = viewer.curves["one"]
    assert one.opts["symbol"] is not None and list(one.xData) == [0.5]
    assert viewer.curves["long"].opts["symbol"] is None  # a dense curve stays a line
    plot = MetricPlot()  # a series with one finite value among two steps: that value, as a marker
    qtbot.addWidget(plot)
    plot.show()
    plot.set_series({"acc": ([0, 1], [math.nan, 0.7])})
    qtbot.waitUntil(lambda: "acc" in plot.curves)
    assert plot.curve_data("acc") == ([1], [0.7])
    assert plot.curves["acc"].opts["symbol"] is not None


def test_all_nan_series_warn_nothing_and_are_named(qtbot, tmp_path: Path) -> None:
    nan3 = [math.nan] * 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # a warning raised inside a Qt paint would be swallowed
        scatter = _viewer(
            qtbot,
            tmp_path,
            Curves({"ok": ([1, 2, 3], [0.1, 0.2, 0.3]), "blank": ([1, 2, 3], nan3)}, scatter=True),
            "scatter",
        )
        nothing = _viewer(qtbot, tmp_path, Curves({"blank": ([1, 2, 3], nan3)}), "nothing")
        heat = _viewer(qtbot, tmp_path, Heatmap(np.full((3, 3), np.nan)), "heat")
        plot = MetricPlot()
        qtbot.addWidget(plot)
        plot.show()
        plot.set_series({"loss": ([0, 1, 2], [1.0, 0.5, 0.2]), "auc": ([0, 1, 2], nan3)})
        qtbot.waitUntil(lambda: "loss" in plot.curves)
        for widget in (scatter, nothing, heat, plot):
            assert not widget.grab().isNull()  # paints, computing every bound
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert "blank" not in scatter.curves and "ok" in scatter.curves
    assert scatter.plot.note.isVisibleTo(scatter) and "blank" in scatter.plot.note.text()
    assert not nothing.plot.graphics.isVisibleTo(nothing)  # no empty plot, a note instead
    assert "Nothing to plot" in nothing.plot.note.text()
    assert isinstance(heat, HeatmapViewer) and "9 of 9 cells" in heat.missing.text()
    assert "auc" not in plot.curves and "auc" in plot.empty.text()


def _comparable_project(root: Path) -> tuple[Project, int, int]:
    """A comparison (TRW and retrain, two seeds) and a standalone TRW run, metrics written
    through the store as the jobs write them (``trw/apollo_auc`` against ``apollo_auc``)."""
    project = Project.create(root)
    common = {"config": {}, "seed": 0, "status": "completed", "family": "classifier"}
    comparison = project.create_run(
        job="classifier.compare", kind="experiment", method="compare", **common
    )
    single = project.create_run(
        job="classifier.unlearn.trw", kind="unlearn", method="trw", **common
    )
    rows = []
    for step, (trw, retrain) in enumerate(((0.61, 0.50), (0.59, 0.52))):
        rows += [
            {
                "run_id": comparison,
                "step": step,
                "name": "trw/apollo_auc",
                "value": trw,
                "time": 0.0,
            },
            {
                "run_id": comparison,
                "step": step,
                "name": "retrain/apollo_auc",
                "value": retrain,
                "time": 0.0,
            },
        ]
    rows += [
        {"run_id": single, "step": 0, "name": "apollo_auc", "value": 0.63, "time": 0.0},
        {"run_id": single, "step": 0, "name": "forget_acc", "value": 0.1, "time": 0.0},
    ]
    project.add_metrics(rows)
    return project, comparison, single


def test_compare_view_lines_up_a_comparison_and_a_standalone_run(qtbot, tmp_path: Path) -> None:
    project, comparison, single = _comparable_project(tmp_path / "p")
    view = CompareView()
    qtbot.addWidget(view)
    view.set_project(project)
    view.set_checked([comparison, single])
    headers = [view.table.horizontalHeaderItem(c).text() for c in range(view.table.columnCount())]
    assert headers == ["run", "method", "apollo_auc", "forget_acc"]  # no "trw/apollo_auc"
    table = {
        (view.table.item(r, 0).text(), view.table.item(r, 1).text()): [
            view.table.item(r, c).data(Qt.ItemDataRole.UserRole) for c in (2, 3)
        ]
        for r in range(view.table.rowCount())
    }
    assert table == {
        (str(comparison), "retrain"): [0.52, None],
        (str(comparison), "trw"): [0.59, None],
        (str(single), "trw"): [0.63, 0.1],
    }
    view.value_mode.setCurrentText(MEAN)
    col = {
        view.table.item(r, 1).text() + view.table.item(r, 0).text(): r
        for r in range(view.table.rowCount())
    }
    mean = view.table.item(col[f"trw{comparison}"], 2).data(Qt.ItemDataRole.UserRole)
    assert math.isclose(mean, 0.60)
    assert [view.metric_box.itemText(i) for i in range(view.metric_box.count())] == [
        "apollo_auc",
        "forget_acc",
    ]
    view.metric_box.setCurrentText("apollo_auc")
    assert sorted(view.curves) == sorted(
        [f"run {comparison} · retrain", f"run {comparison} · trw", f"run {single} · trw"]
    )
    # the two TRW curves are told apart, each differs from retrain
    pens = {
        k: (c.opts["pen"].color().name(), c.opts["pen"].style()) for k, c in view.curves.items()
    }
    assert len(set(pens.values())) == 3
    # a run still going is read again on refresh (finished ones are read once)
    live = project.create_run(
        job="classifier.unlearn.ga",
        kind="unlearn",
        family="classifier",
        method="ga",
        config={},
        seed=0,
        status="running",
    )
    project.add_metrics(
        [{"run_id": live, "step": 0, "name": "apollo_auc", "value": 0.7, "time": 0.0}]
    )
    view.refresh()
    view.set_checked([comparison, single, live])
    assert f"run {live} · ga" in view.curves
    project.add_metrics(
        [{"run_id": live, "step": 1, "name": "apollo_auc", "value": 0.8, "time": 0.0}]
    )
    view.refresh()
    assert list(view.curves[f"run {live} · ga"].xData) == [0, 1]
    project.close()


def test_a_long_legend_goes_below_a_narrow_plot_and_stays_inside(qtbot) -> None:
    names = [f"run {r} · {m}" for r in (1, 2) for m in ROC_NAMES[:12]]
    fig = Figure("", "step", "auc", integer_x=True)
    qtbot.addWidget(fig)
    styles = series_styles(names)
    for i, name in enumerate(names):
        fig.add_series(name, [0, 1, 2], [0.5 + i / 100, 0.6, 0.55], styles[name])
    fig.resize(400, 380)
    fig.show()
    qtbot.waitExposed(fig)
    qtbot.waitUntil(lambda: fig.legend_at == (1, 0) and fig.legend_hidden > 0)
    legend, data = fig.legend.sceneBoundingRect(), fig.plot_item.vb.sceneBoundingRect()
    assert not legend.intersects(data) and data.height() > legend.height()
    assert legend.bottom() <= fig.graphics.height()  # in view, not cut off
    more = fig.legend.items[-1][1].text
    assert more.startswith(f"… {fig.legend_hidden} more")
    assert len(fig.legend.items) - 1 + fig.legend_hidden == 24
    # steps are whole numbers: no 0.5 ticks
    ticks = [
        v for _s, values in fig.plot_item.getAxis("bottom").tickValues(0, 2, 300) for v in values
    ]
    assert ticks and all(float(v).is_integer() for v in ticks)
    fig.resize(1400, 900)  # room again: every entry, right of the plot
    qtbot.waitUntil(lambda: fig.legend_at == (0, 1) and fig.legend_hidden == 0)
    assert len(fig.legend.items) == 24


def test_views_shadow_no_qt_method(qtbot, tmp_path: Path) -> None:
    """``CompareView.metric`` (a combo box) hid ``QWidget.metric()``, which Qt calls for a
    widget's DPI and size when painting it elsewhere: ``logicalDpiY()`` crashed the process."""
    views = [CompareView(), MetricPlot(), Figure(), _viewer(qtbot, tmp_path, _roc(["trw"]))]
    for view in views:
        qtbot.addWidget(view)
        shadowed = [
            n
            for n, value in vars(view).items()
            if callable(getattr(QWidget, n, None)) and not isinstance(value, SignalInstance)
        ]
        assert shadowed == [], type(view).__name__
        assert view.logicalDpiY() > 0
