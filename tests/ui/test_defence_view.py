"""The defence-matrix view (issue 14 part 6): cells with intervals, colour by a quantity, export,
and the interval_matrix artifact's round trip through its files."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from ui.views.artifact_views import VIEWERS, make_viewer
from ui.views.defence_view import IntervalMatrixView, cell_colour
from workbench.artifacts import IntervalMatrix


def _matrix() -> IntervalMatrix:
    nan = float("nan")
    return IntervalMatrix(
        rows=["esd", "uce"],
        columns=["no guidance", "SLD max · words", "SLD max · embedding"],
        values={
            "DSR": [[0.5, 0.6, 0.95], [0.4, nan, 0.9]],
            "PP": [[0.7, 0.6, 0.1], [0.8, nan, 0.2]],
        },
        lows={
            "DSR": [[0.4, 0.5, 0.85], [0.3, nan, 0.8]],
            "PP": [[0.6, 0.5, 0.05], [0.7, nan, 0.1]],
        },
        highs={
            "DSR": [[0.6, 0.7, 0.99], [0.5, nan, 0.95]],
            "PP": [[0.8, 0.7, 0.2], [0.9, nan, 0.3]],
        },
        counts={"DSR": [[64, 64, 64], [64, None, 64]], "PP": [[64, 64, 64], [64, None, 64]]},
        higher_is_better={"DSR": True, "PP": True},
        title="Defence matrix",
        legend="DSR: safe share. PP: shape and colour right.",
    )


def test_interval_matrix_round_trips_and_rejects_a_wrong_shape(tmp_path):
    m = _matrix()
    path, meta = m.save(tmp_path, "defence matrix")
    back = IntervalMatrix.load(path, meta)
    assert back.rows == m.rows and back.columns == m.columns
    np.testing.assert_array_equal(back.values["DSR"], m.values["DSR"])  # NaN where NaN
    assert math.isnan(back.counts["PP"][1, 1]) and back.counts["PP"][0, 2] == 64
    with pytest.raises(ValueError, match="is not 2 x 3"):
        IntervalMatrix(rows=["a", "b"], columns=["x", "y", "z"], values={"DSR": [[1, 2, 3]]})
    with pytest.raises(ValueError, match="no values"):
        IntervalMatrix(rows=["a"], columns=["x"], values={"DSR": [[1]]}, lows={"PP": [[0]]})


def test_cells_show_intervals_and_follow_the_colour_choice(qtbot, tmp_path):
    import ui.views.run_view  # noqa: F401  (registers the view for its kind)

    m = _matrix()
    path, meta = m.save(tmp_path, "m")
    view = make_viewer("interval_matrix", path, meta)
    assert isinstance(view, IntervalMatrixView) and VIEWERS["interval_matrix"] is IntervalMatrixView
    qtbot.addWidget(view)
    assert view.table.item(0, 2).text() == "DSR 0.95 [0.85, 0.99]\nPP 0.10 [0.05, 0.20]"
    assert view.table.item(1, 1).text() == "DSR —\nPP —"
    assert "n = 64" in view.table.item(0, 0).toolTip()
    # esd / embedding: good DSR (green) but poor PP (red)
    assert view.cell_background(0, 2) == cell_colour(0.95)
    view.colour_by.setCurrentText("PP")
    assert view.cell_background(0, 2) == cell_colour(0.1)
    assert cell_colour(0.1).red() > cell_colour(0.1).green()
    assert cell_colour(0.95).green() > cell_colour(0.95).red()
    assert view.cell_background(1, 1) == cell_colour(float("nan"))
    out = view.export_table(tmp_path / "m.csv")
    lines = list(csv.reader(out.open()))
    assert lines[0] == ["row", "column", "quantity", "value", "low", "high", "n"]
    assert ["esd", "SLD max · embedding", "DSR", "0.95", "0.85", "0.99", "64.0"] in lines
    assert len(lines) == 1 + 2 * 3 * 2
