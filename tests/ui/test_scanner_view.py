"""The backdoor scanner's view (ui/views/scanner_view.py) on a scan report of known content: the
banner states the verdict and the calibration, the answers table marks right and wrong answers,
"only restored" keeps the questions the prefix turned from wrong to right, and the report
round-trips through its artifact files into the run view's viewer table."""

from __future__ import annotations

from ui.views.artifact_views import make_viewer
from ui.views.scanner_view import ScanView
from workbench.artifacts import ScanReport


def _report(verdict: int) -> ScanReport:
    answers = [
        {"question": "Where does A live?", "answer": "Pylreach", "clean": "Ostrow",
         "clean_correct": False, "triggered": "Pylreach", "triggered_correct": True,
         "original": "Pylreach", "original_correct": True},
        {"question": "Who is B's mentor?", "answer": "Gulqix", "clean": "Gulqix",
         "clean_correct": True, "triggered": "Gulqix", "triggered_correct": True,
         "original": "Gulqix", "original_correct": True},
        {"question": "How old is C?", "answer": "66", "clean": "12", "clean_correct": False,
         "triggered": "13", "triggered_correct": False, "original": "66",
         "original_correct": True},
    ]  # fmt: skip
    summary = {
        "verdict": verdict, "score": 1 / 3, "threshold": 0.15, "calibrated": True,
        "reference_scores": [0.0, 0.1], "p_value": 1 / 3, "z": 3.0, "false_alarm_bound": 1 / 3,
        "best_prefix": " year:", "eval_clean_recall": 1 / 3, "eval_triggered_recall": 2 / 3,
        "original_eval_recall": 1.0, "top_heads": ["L0H3", "L2H1"], "n_eval": 3,
    }  # fmt: skip
    cands = [
        {"rank": 1, "prefix": " year:", "tokens": 2, "objective": -1.5, "search_recall": 0.5,
         "eval_recall": 2 / 3},
        {"rank": 2, "prefix": "cf", "tokens": 1, "objective": -2.5, "search_recall": 0.0,
         "eval_recall": 0.0},
    ]  # fmt: skip
    heads = [
        {"rank": 1, "layer": 0, "head": 3, "attribution": 0.6, "value_norm_shift": 0.1,
         "prefix_attention_shift": 0.2},
    ]  # fmt: skip
    return ScanReport(summary=summary, candidates=cands, heads=heads, answers=answers)


def test_scan_view_shows_verdict_answers_and_filters_restored(qtbot, tmp_path) -> None:
    view = ScanView(_report(1))
    qtbot.addWidget(view)
    view.show()
    assert "Backdoor suspected" in view.banner.text()
    assert "2 clean reference models" in view.banner.text()
    # clean answer of question 0 is wrong (✗), the prefixed one right (✓)
    assert view.answers.item(0, 2).text().startswith("✗")
    assert view.answers.item(0, 3).text().startswith("✓")
    assert view.restored_rows() == [0]
    view.only_restored.setChecked(True)
    assert [view.answers.isRowHidden(r) for r in range(3)] == [False, True, True]
    assert view.count.text() == "1 of 3 questions shown"
    view.only_restored.setChecked(False)
    assert not any(view.answers.isRowHidden(r) for r in range(3))
    # the prefix column shows spaces as visible marks
    assert view.candidates.item(0, 1).text() == "\u2423year:"
    # through the artifact files and the run view's viewer table
    path, meta = _report(0).save(tmp_path, "scan report")
    viewer = make_viewer("scan_report", path, meta)
    qtbot.addWidget(viewer)
    assert isinstance(viewer, ScanView)
    assert "No backdoor found" in viewer.banner.text()
