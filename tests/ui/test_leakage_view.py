"""The attack matrix's heat-table (issue 18 part 1): cells with intervals and references,
diverging colours by the distance from the reference (red: leaks more, whatever the attack's
direction), grey where an attack does not apply, and a click that opens the child run."""

from __future__ import annotations

import csv
import math

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QMainWindow

from ui.views.artifact_views import make_viewer
from ui.views.leakage_view import LeakageMatrixView, distance_colour
from workbench.leakage_matrix import LeakageMatrix

nan = math.nan


def _matrix() -> LeakageMatrix:
    return LeakageMatrix(
        rows=["run 1 · ga", "run 2 · ft"],
        row_runs=[1, 2],
        columns=["a.attack.auc", "a.attack.efficacy"],
        values=[[0.80, 0.30], [0.52, nan]],
        lows=[[0.70, 0.20], [0.40, nan]],
        highs=[[0.90, 0.40], [0.64, nan]],
        references=[[0.50, 0.90], [0.50, nan]],
        child_runs=[[11, 12], [13, None]],
        column_titles=["AUC attack", "efficacy attack"],
        metrics=["auc", "efficacy"],
        higher_leaks=[True, False],  # a LOW efficacy leaks
        title="toy matrix",
    )


class Window(QMainWindow):
    """What the view asks of the main window: ``select_run``."""

    def __init__(self) -> None:
        super().__init__()
        self.selected: list[int] = []

    def select_run(self, run_id: int) -> None:
        self.selected.append(run_id)


def test_distance_colour_is_diverging_and_white_at_the_reference() -> None:
    assert distance_colour(0.0, 1.0).name() == "#ffffff"
    more, less = distance_colour(1.0, 1.0), distance_colour(-1.0, 1.0)
    assert more.red() > more.blue() and less.blue() > less.red()
    # saturates at the scale and stays pale enough for black text
    assert distance_colour(5.0, 1.0) == more
    assert min(more.red(), more.green(), more.blue()) > 60


def test_cells_show_interval_and_reference_and_are_coloured_by_leakage(qtbot) -> None:
    view = LeakageMatrixView(_matrix())
    qtbot.addWidget(view)
    assert view.table.item(0, 0).text() == "0.800 [0.700, 0.900]\nref 0.500"
    assert view.table.item(1, 1).text() == "n/a"
    auc_leaks = view.cell_background(0, 0)  # 0.80 vs 0.50, higher leaks: red
    assert auc_leaks.red() > auc_leaks.blue()
    efficacy = view.cell_background(0, 1)  # 0.30 vs 0.90, lower leaks: red as well
    assert efficacy.red() > efficacy.blue()
    close = view.cell_background(1, 0)  # 0.52 vs 0.50: nearly white, interval holds the ref
    assert close.red() > 230 and close.blue() > 220
    assert view.table.item(0, 0).font().bold() and not view.table.item(1, 0).font().bold()
    assert view.cell_background(1, 1).name() == "#e1e1e1"  # does not apply


def test_clicking_a_cell_opens_its_child_run(qtbot, tmp_path) -> None:
    path, _meta = _matrix().save(tmp_path, "leakage_matrix")
    window = Window()
    qtbot.addWidget(window)
    view = make_viewer("leakage_matrix", path, {})
    assert isinstance(view, LeakageMatrixView)
    window.setCentralWidget(view)
    window.resize(900, 400)
    window.show()
    qtbot.waitExposed(window)
    rect = view.table.visualItemRect(view.table.item(0, 1))
    with qtbot.waitSignal(view.run_clicked) as blocker:
        qtbot.mouseClick(
            view.table.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(rect.center())
        )
    assert blocker.args == [12]
    assert window.selected == [12]
    assert view.open_cell(1, 1) is None  # no child: nothing opens
    assert window.selected == [12]


def test_export_table_writes_one_line_per_cell(qtbot, tmp_path) -> None:
    view = LeakageMatrixView(_matrix())
    qtbot.addWidget(view)
    with view.export_table(tmp_path / "m.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    assert rows[1]["attack"] == "a.attack.efficacy" and rows[1]["child_run"] == "12"
    assert rows[3]["value"] == "" and rows[3]["child_run"] == ""
