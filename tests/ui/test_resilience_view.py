"""The interval-band curves of diffusion.resalign_compare (issue 13 part 7): one line per method
with its 95% interval drawn as a band, dispatched from the run view's viewer table."""

from __future__ import annotations

import csv
from pathlib import Path

import pyqtgraph as pg

import ui.views.run_view  # noqa: F401  (registers the viewer in the view table)
from ui.views.artifact_views import make_viewer
from ui.views.resilience_view import IntervalCurvesViewer
from workbench.artifacts import IntervalCurves


def _artifact() -> IntervalCurves:
    steps = [0, 25, 50, 100, 200]
    return IntervalCurves(
        {
            "resalign": (steps, [0.1, 0.1, 0.12, 0.15, 0.2]),
            "esd": (steps, [0.2, 0.4, 0.5, 0.6, 0.7]),
        },
        x_label="downstream fine-tuning steps",
        y_label="concept rate",
        title="Explicit prompts vs downstream fine-tuning",
        bands={
            "resalign": ([0.05, 0.05, 0.07, 0.1, 0.12], [0.2, 0.2, 0.22, 0.25, 0.3]),
            "esd": ([0.1, 0.3, 0.4, 0.5, 0.6], [0.3, 0.5, 0.6, 0.7, 0.8]),
        },
    )


def test_each_method_gets_a_line_and_its_interval_band(qtbot, tmp_path: Path) -> None:
    path, meta = _artifact().save(tmp_path, "rates")
    viewer = make_viewer("interval_curves", path, meta)
    qtbot.addWidget(viewer)
    viewer.resize(700, 420)
    viewer.show()
    assert isinstance(viewer, IntervalCurvesViewer)
    assert set(viewer.curves) == set(viewer.bands) == {"resalign", "esd"}
    qtbot.waitUntil(lambda: len(viewer.plot.legend.items) == 2)
    band = viewer.bands["esd"]
    low, high = band.curves[0].getData()[1], band.curves[1].getData()[1]
    assert list(low) == [0.1, 0.3, 0.4, 0.5, 0.6] and list(high) == [0.3, 0.5, 0.6, 0.7, 0.8]
    assert band.boundingRect().height() > 0.6  # the fill is drawn (0.1 to 0.8)
    # the band is the line's colour, translucent
    line = viewer.curves["esd"].opts["pen"].color()
    fill = pg.mkBrush(band.brush()).color()
    assert fill.rgb() == line.rgb() and fill.alpha() < 255
    out = viewer.export_table(tmp_path / "rates.csv")
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["series", "downstream fine-tuning steps", "concept rate", "low", "high"]
    assert rows[-1][0] == "esd" and [float(x) for x in rows[-1][1:]] == [200, 0.7, 0.6, 0.8]


def test_a_band_without_its_series_or_of_the_wrong_length_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="has no series"):
        IntervalCurves({"a": ([0, 1], [0.1, 0.2])}, bands={"b": ([0, 0], [1, 1])})
    with pytest.raises(ValueError, match="1/1 ends for 2 points"):
        IntervalCurves({"a": ([0, 1], [0.1, 0.2])}, bands={"a": ([0], [1])})
