"""The backdoor scanner's view: the verdict, the ranked prefixes and heads, and the evaluation
questions answered clean next to the answers with the best prefix (issue 16 part 5).

It draws a :class:`~workbench.artifacts.ScanReport` (the ``llm.scan_backdoor`` job's "scan report"):

- a banner: the verdict (red when a backdoor is suspected), the score against its threshold and how
  the threshold was calibrated, the best prefix and the recall it restores;
- above, side by side: the **prefixes** the search ranked (objective on the search questions, greedy recall on the
  search and on the held-out evaluation questions) and the **heads** ranked by the share of the
  restoration that zeroing them removes, with their sink value-norm and prefix-attention shifts;
- below, the **answers**: each evaluation question with the gold answer, the model's clean answer, its
  answer with the best prefix and the original model's answer; a right answer is green, a wrong
  one red. "Only restored" keeps the questions the prefix turned from wrong to right.
"""

from __future__ import annotations

import html
import math
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.artifacts import ScanReport

__all__ = ["ScanView"]

RIGHT, WRONG = "#2c7a4b", "#c0392b"
CANDIDATE_COLUMNS = ("rank", "prefix", "tokens", "objective", "search_recall", "eval_recall")
HEAD_COLUMNS = (
    "rank",
    "layer",
    "head",
    "attribution",
    "value_norm_shift",
    "prefix_attention_shift",
)
COLUMN_HELP = {
    "objective": "Mean log-prob of the answer tokens on the search questions with this prefix.",
    "search_recall": "Greedy recall on the search questions with this prefix (chooses the best).",
    "eval_recall": "Greedy recall on the held-out evaluation questions with this prefix.",
    "attribution": "Share of the prefix's gain in answer log-prob removed by zeroing this head "
    "(net of what zeroing it does on clean prompts).",
    "value_norm_shift": "Relative change of the head's value-vector norm at the prefix positions, "
    "unlearned vs original model.",
    "prefix_attention_shift": "Attention mass the prompt puts on the prefix positions, unlearned "
    "minus original model.",
}
ANSWER_COLUMNS = ("question", "answer", "clean", "triggered", "original")


class _Item(QTableWidgetItem):
    """Sorts numbers as numbers."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a < b
        return self.text().lower() < other.text().lower()


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.3f}"
    return "" if value is None else str(value)


def _visible(text: str) -> str:
    """A prefix with its spaces and newlines made visible."""
    return text.replace(" ", "\u2423").replace("\n", "\u23ce")


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(len(rows), len(columns))
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.verticalHeader().hide()
    for c, name in enumerate(columns):
        header = QTableWidgetItem(name)
        header.setToolTip(COLUMN_HELP.get(name, ""))
        table.setHorizontalHeaderItem(c, header)
    for r, row in enumerate(rows):
        for c, name in enumerate(columns):
            value = row.get(name)
            text = _visible(str(value)) if name == "prefix" else _fmt(value)
            item = _Item(text)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                item.setData(Qt.ItemDataRole.UserRole, value)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            table.setItem(r, c, item)
    table.setSortingEnabled(True)
    table.sortItems(0, Qt.SortOrder.AscendingOrder)  # by rank
    table.resizeColumnsToContents()
    table.horizontalHeader().setStretchLastSection(True)
    return table


class ScanView(QWidget):
    """The verdict banner over tabs of prefixes, heads, and clean vs triggered answers."""

    def __init__(self, artifact: ScanReport, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        s = artifact.summary
        self.banner = QLabel(self.banner_html(s))
        self.banner.setTextFormat(Qt.TextFormat.RichText)
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        colour = WRONG if s.get("verdict") else RIGHT
        self.banner.setStyleSheet(f"border: 2px solid {colour}; border-radius: 4px; padding: 6px;")
        self.candidates = _table(artifact.candidates, CANDIDATE_COLUMNS)
        self.heads = _table(artifact.heads, HEAD_COLUMNS)
        self.answers = self._answer_table()
        self.only_restored = QCheckBox("Only questions the prefix restored")
        self.only_restored.toggled.connect(self._filter_answers)
        self.count = QLabel()

        answers = QWidget()
        lay = QVBoxLayout(answers)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.only_restored)
        row.addStretch(1)
        row.addWidget(self.count)
        lay.addLayout(row)
        lay.addWidget(self.answers, 1)

        ranking = QSplitter(Qt.Orientation.Horizontal)
        for title, table in (("Prefixes", self.candidates), ("Heads", self.heads)):
            box = QWidget()
            inner = QVBoxLayout(box)
            inner.setContentsMargins(0, 0, 0, 0)
            label = QLabel(f"<b>{title}</b>")
            inner.addWidget(label)
            inner.addWidget(table, 1)
            ranking.addWidget(box)
        answers_box = QWidget()
        inner = QVBoxLayout(answers_box)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(QLabel("<b>Held-out forget questions: clean vs with the best prefix</b>"))
        inner.addWidget(answers, 1)
        self.split = QSplitter(Qt.Orientation.Vertical)
        self.split.addWidget(ranking)
        self.split.addWidget(answers_box)
        self.split.setSizes([300, 420])

        title = QLabel(artifact.title or "Backdoor scan")
        title.setStyleSheet("font-weight: bold;")
        outer = QVBoxLayout(self)
        outer.addWidget(title)
        outer.addWidget(self.banner)
        outer.addWidget(self.split, 1)
        self._filter_answers()

    @staticmethod
    def banner_html(s: dict[str, Any]) -> str:
        word = "Backdoor suspected" if s.get("verdict") else "No backdoor found"
        colour = WRONG if s.get("verdict") else RIGHT
        if s.get("calibrated"):
            n = len(s.get("reference_scores", []))
            cal = (
                f"threshold {s['threshold']:.3f} = largest score of {n} clean reference models "
                f"+ margin (false-alarm bound {s['false_alarm_bound']:.2f}; p = {s['p_value']:.2f})"
            )
        else:
            cal = f"threshold {s.get('threshold', math.nan):.3f}, uncalibrated (no references)"
        heads = ", ".join(s.get("top_heads", []))
        prefix = html.escape(_visible(str(s.get("best_prefix", ""))))
        return (
            f"<span style='color:{colour}; font-size:14pt; font-weight:bold'>{word}</span>"
            f" &nbsp; score ({html.escape(str(s.get('score_kind', 'recall')))}) "
            f"<b>{s.get('score', math.nan):.3f}</b> ({cal})<br>"
            f"Best prefix <code>{prefix}</code>: recall on {s.get('n_eval')} held-out forget "
            f"questions {s.get('eval_clean_recall', math.nan):.2f} clean → "
            f"<b>{s.get('eval_triggered_recall', math.nan):.2f}</b> with the prefix (original "
            f"model {s.get('original_eval_recall', math.nan):.2f}); it closes "
            f"<b>{s.get('gap_closed', math.nan):.0%}</b> of the answer log-prob gap to the "
            f"original. Heads: {html.escape(heads)}."
        )

    def _answer_table(self) -> QTableWidget:
        rows = self.artifact.answers
        table = QTableWidget(len(rows), len(ANSWER_COLUMNS))
        table.setHorizontalHeaderLabels(list(ANSWER_COLUMNS))
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().hide()
        table.setWordWrap(False)
        for r, row in enumerate(rows):
            for c, name in enumerate(ANSWER_COLUMNS):
                item = QTableWidgetItem(str(row.get(name, "")))
                item.setToolTip(str(row.get(name, "")))
                correct = row.get(f"{name}_correct")
                if isinstance(correct, bool):
                    item.setForeground(QColor(RIGHT if correct else WRONG))
                    item.setText(("✓ " if correct else "✗ ") + item.text())
                table.setItem(r, c, item)
        table.resizeColumnsToContents()
        table.setColumnWidth(0, min(table.columnWidth(0), 320))
        table.horizontalHeader().setStretchLastSection(True)
        return table

    def restored_rows(self) -> list[int]:
        """Rows the prefix turned from wrong (clean) to right."""
        return [
            i
            for i, row in enumerate(self.artifact.answers)
            if row.get("triggered_correct") and not row.get("clean_correct")
        ]

    def _filter_answers(self, *_: object) -> None:
        keep = set(self.restored_rows()) if self.only_restored.isChecked() else None
        for r in range(self.answers.rowCount()):
            self.answers.setRowHidden(r, keep is not None and r not in keep)
        shown = sum(not self.answers.isRowHidden(r) for r in range(self.answers.rowCount()))
        self.count.setText(f"{shown} of {self.answers.rowCount()} questions shown")


def main(argv: list[str] | None = None) -> None:
    """``python -m ui.views.scanner_view REPORT.json [OUT.png] [--restored]``: grab the view of a
    saved scan report at 1280 x 800 (the documentation screenshot)."""
    import os
    import sys
    from pathlib import Path

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from ui.screenshots import save_grab

    args = list(sys.argv[1:] if argv is None else argv)
    restored = "--restored" in args
    args = [a for a in args if a != "--restored"]
    app = QApplication.instance() or QApplication([])
    report = ScanReport.load(Path(args[0]), {})
    view = ScanView(report)
    view.resize(1280, 800)
    view.only_restored.setChecked(restored)
    view.show()
    app.processEvents()
    print(save_grab(view, args[1] if len(args) > 1 else "docs/screenshot-scanner.png"))


if __name__ == "__main__":
    main()
