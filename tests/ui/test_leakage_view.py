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


def _wide() -> LeakageMatrix:
    """Eight attacks, as on the demo project: long titles, bold cells, a percentage column."""
    n = 8
    return LeakageMatrix(
        rows=["run 3 · uce", "run 7 · ga"],
        row_runs=[3, 7],
        columns=[f"x.attack.a{c}" for c in range(n)],
        values=[[0.556] * (n - 1) + [40.0], [0.966] * (n - 1) + [nan]],
        lows=[[0.333] * (n - 1) + [12.155], [0.922] * (n - 1) + [nan]],
        highs=[[0.778] * (n - 1) + [73.762], [0.989] * (n - 1) + [nan]],
        references=[[0.0] * (n - 1) + [nan], [0.753] * (n - 1) + [nan]],
        child_runs=[[10 + c for c in range(n)], [20 + c for c in range(n - 1)] + [None]],
        column_titles=["Relearning attack: downstream fine-tuning"] * n,
        metrics=["recovered/concept_rate/explicit"] * n,
        higher_leaks=[True] * n,
    )


def test_a_cell_is_as_wide_as_its_bold_text_and_a_percentage_has_one_decimal(qtbot) -> None:
    """In a window narrower than the matrix, a column keeps the width of its widest cell line
    and title line, and the table scrolls instead (stretched columns cut long titles at both
    ends: "ttack: SVC-MIA (MIA-efficacy"; fails without the fix)."""
    from PySide6.QtGui import QFontMetrics

    m = _wide()
    view = LeakageMatrixView(m)
    qtbot.addWidget(view)
    view.resize(700, 400)
    view.show()
    qtbot.waitExposed(view)
    for c in range(len(m.columns)):
        for r in range(len(m.rows)):
            item = view.table.item(r, c)
            widest = max(
                QFontMetrics(item.font()).horizontalAdvance(x) for x in item.text().split("\n")
            )
            assert view.table.columnWidth(c) >= widest, (r, c, item.text())
        # and of its title's widest line (a stretched column cut a long title at both ends)
        title = view.table.horizontalHeaderItem(c).text().split("\n")
        metrics = QFontMetrics(view.table.horizontalHeader().font())
        assert view.table.columnWidth(c) >= max(metrics.horizontalAdvance(x) for x in title)
    assert view.table.item(0, 0).font().bold()  # the interval excludes the reference
    assert view.table.item(0, 7).text() == "40.0 [12.2, 73.8]"  # percent: one decimal
    header = view.table.horizontalHeaderItem(0).text().split("\n")
    assert header == [
        "Relearning attack:",
        "downstream",
        "fine-tuning",
        "concept_rate/explicit",
        "↑ leaks",
    ]


def test_the_not_applicable_notes_are_folded_into_one_count() -> None:
    m = _wide()
    m.notes = [
        "llm.skeb does not apply to run 3's diffusion.sd model",
        "llm.skeb does not apply to run 7's classifier.mlp model",
        "run 7 x x.attack.a7: child run 27 failed",
    ]
    shown = m.shown_notes()
    assert shown[0].startswith("2 cell(s) n/a: the attack does not apply")
    assert shown[1:] == ["run 7 x x.attack.a7: child run 27 failed"]
    m.notes = []
    assert m.shown_notes() == []
