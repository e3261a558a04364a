"""The SKeB prompt view: every prompt with the model's answer, the judge's verdict and M1-M9.

It draws a :class:`~workbench.artifacts.PromptTable` (the ``llm.skeb`` job's "prompts" artifact):

- a sortable list of the prompts (number, framing, question, verdict and the numbers), filtered by
  framing, verdict or a search text; a column's header tooltip says what it means;
- a detail pane for the selected prompt: the question, the gold answer, the whole prompt, the
  model's answer, the verdict and the judge's label of each sentence, word-wrapped (never cut),
  then each metric with its value and its definition;
- a legend ("What do the columns mean?") with the producer's help text (for SKeB: M1-M9 from the
  spec's metrics table).

The view knows nothing of SKeB itself: which columns are long text, what each column means and
the legend all come with the artifact.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from workbench.artifacts import PromptTable

__all__ = ["SkebView", "VERDICT_COLOURS"]

# verdict words the SKeB judge gives; anything else is drawn in the text colour
VERDICT_COLOURS = {"recalled": "#c0392b", "hallucinated": "#d35400", "non-factual": "#2c7a4b"}
LIST_TEXT_CHARS = 60  # a long column shown in the list is elided there (whole in the detail pane)
LIST_LONG_COLUMNS = ("question", "answer", "verdict")  # long columns also in the list (elided)
ALL = "(all)"


class _Item(QTableWidgetItem):
    """Sorts numbers as numbers."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a < b
        return self.text().lower() < other.text().lower()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


class SkebView(QWidget):
    """Prompts with answer and verdict; the selected one in full in a detail pane.

    ``selected(row)`` fires with the artifact row index of the prompt shown in the detail pane.
    """

    selected = Signal(int)

    def __init__(self, artifact: PromptTable, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        cols = [str(c) for c in artifact.columns]
        self.columns = cols
        long = set(artifact.long_columns)
        self.list_columns = [c for c in cols if c not in long or c in LIST_LONG_COLUMNS]
        self.text_columns = [c for c in cols if c in long]
        self.number_columns = [
            c
            for c in cols
            if c not in long
            and c != "#"
            and any(isinstance(r[cols.index(c)], (int, float)) for r in artifact.rows)
        ]
        self.current: int | None = None

        title = QLabel(artifact.title or "Prompts")
        title.setStyleSheet("font-weight: bold;")
        title.setWordWrap(True)
        self.help_button = QPushButton("What do the columns mean?")
        self.help_button.setCheckable(True)
        self.legend = QLabel(artifact.legend)
        self.legend.setWordWrap(True)
        self.legend.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.legend.setStyleSheet("background: palette(alternate-base); padding: 6px;")
        self.legend.setVisible(False)
        self.help_button.toggled.connect(self.legend.setVisible)
        self.help_button.setVisible(bool(artifact.legend))

        self.framing = self._filter_box("framing")
        self.verdict = self._filter_box("verdict")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Find in prompts and answers…")
        self.search.textChanged.connect(self._apply_filter)
        filters = QHBoxLayout()
        for name, box in (("Framing", self.framing), ("Verdict", self.verdict)):
            if box is not None:
                filters.addWidget(QLabel(name))
                filters.addWidget(box)
        filters.addWidget(self.search, 1)
        filters.addWidget(self.help_button)

        self.table = QTableWidget(len(artifact.rows), len(self.list_columns))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)  # one line per prompt; the detail pane has the whole text
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        for c, name in enumerate(self.list_columns):
            header = QTableWidgetItem(name)
            header.setToolTip(artifact.column_help.get(name, ""))
            self.table.setHorizontalHeaderItem(c, header)
        for r, row in enumerate(artifact.rows):
            for c, name in enumerate(self.list_columns):
                value = row[cols.index(name)]
                item = _Item(_fmt(value))
                item.setData(Qt.ItemDataRole.UserRole + 1, r)  # the artifact row, across sorting
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    item.setData(Qt.ItemDataRole.UserRole, value)
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if name in long and len(str(value)) > LIST_TEXT_CHARS:
                    item.setText(str(value)[: LIST_TEXT_CHARS - 1] + "…")
                if name in long or name == "verdict":
                    item.setToolTip(str(value))
                if name == "verdict" and str(value) in VERDICT_COLOURS:
                    item.setForeground(QColor(VERDICT_COLOURS[str(value)]))
                self.table.setItem(r, c, item)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        if "question" in self.list_columns:
            q = self.list_columns.index("question")
            self.table.horizontalHeader().setSectionResizeMode(
                q, QHeaderView.ResizeMode.Interactive
            )
            self.table.setColumnWidth(q, 260)
        self.table.itemSelectionChanged.connect(self._on_selection)

        self.detail = QTextBrowser()
        self.detail.setOpenLinks(False)
        self.detail.setPlaceholderText("Select a prompt to read it with the model's answer.")
        self.metrics = QTableWidget(0, 3)
        self.metrics.setHorizontalHeaderLabels(["metric", "value", "what it measures"])
        self.metrics.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.metrics.verticalHeader().hide()
        self.metrics.setWordWrap(True)
        self.metrics.horizontalHeader().setStretchLastSection(True)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.detail)
        right.addWidget(self.metrics)
        right.setSizes([390, 310])
        split = QSplitter()
        split.addWidget(self.table)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setSizes([560, 560])
        self.count = QLabel()
        self.count.setStyleSheet("color: palette(dark);")

        lay = QVBoxLayout(self)
        lay.addWidget(title)
        lay.addLayout(filters)
        lay.addWidget(self.legend)
        lay.addWidget(split, 1)
        lay.addWidget(self.count)
        self._apply_filter()
        if artifact.rows:
            self.select(0)

    # -- filters ---------------------------------------------------------------------------
    def _filter_box(self, column: str) -> QComboBox | None:
        if column not in self.columns:
            return None
        box = QComboBox()
        box.addItem(ALL)
        index = self.columns.index(column)
        for value in dict.fromkeys(str(r[index]) for r in self.artifact.rows):
            box.addItem(value)
        box.currentIndexChanged.connect(self._apply_filter)
        return box

    def _row_matches(self, row: list) -> bool:
        for name, box in (("framing", self.framing), ("verdict", self.verdict)):
            chosen = box.currentText() if box is not None else ALL
            if chosen != ALL and str(row[self.columns.index(name)]) != chosen:
                return False
        needle = self.search.text().strip().lower()
        if needle:
            return any(needle in str(row[self.columns.index(c)]).lower() for c in self.text_columns)
        return True

    def _apply_filter(self, *_: object) -> None:
        shown = 0
        for r in range(self.table.rowCount()):
            source = self.table.item(r, 0).data(Qt.ItemDataRole.UserRole + 1)
            ok = self._row_matches(self.artifact.rows[source])
            self.table.setRowHidden(r, not ok)
            shown += ok
        self.count.setText(f"{shown} of {len(self.artifact.rows)} prompts shown")

    def visible_rows(self) -> list[int]:
        """Artifact row indices of the prompts the filters let through, in list order."""
        return [
            self.table.item(r, 0).data(Qt.ItemDataRole.UserRole + 1)
            for r in range(self.table.rowCount())
            if not self.table.isRowHidden(r)
        ]

    # -- selection -------------------------------------------------------------------------
    def select(self, source_row: int) -> None:
        """Select the prompt of artifact row ``source_row`` (the detail pane shows it)."""
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(Qt.ItemDataRole.UserRole + 1) == source_row:
                self.table.selectRow(r)
                self.table.scrollToItem(self.table.item(r, 0))
                return
        raise IndexError(f"no prompt row {source_row}")

    def _on_selection(self) -> None:
        items = self.table.selectedItems()
        if not items:
            return
        self.show_detail(items[0].data(Qt.ItemDataRole.UserRole + 1))

    def value(self, source_row: int, column: str) -> Any:
        return self.artifact.rows[source_row][self.columns.index(column)]

    def show_detail(self, source_row: int) -> None:
        self.current = source_row
        row = self.artifact.rows[source_row]
        parts = []
        head = [f"#{_fmt(row[self.columns.index('#')])}"] if "#" in self.columns else []
        if "framing" in self.columns:
            head.append(f"framing: {html.escape(str(self.value(source_row, 'framing')))}")
        if head:
            parts.append(f"<p style='color:gray'>{' · '.join(head)}</p>")
        for name in self.text_columns:
            text = str(row[self.columns.index(name)])
            body = html.escape(text).replace("\n", "<br>")
            if name == "verdict":
                colour = VERDICT_COLOURS.get(text, "")
                style = f" style='color:{colour}; font-weight:bold'" if colour else ""
                body = f"<span{style}>{body}</span>"
            tip = html.escape(self.artifact.column_help.get(name, ""), quote=True)
            parts.append(f"<p><b title='{tip}'>{html.escape(name.capitalize())}</b><br>{body}</p>")
        self.detail.setHtml("".join(parts))
        self.metrics.setRowCount(len(self.number_columns))
        for i, name in enumerate(self.number_columns):
            help_text = self.artifact.column_help.get(name, "")
            cells = [name, _fmt(row[self.columns.index(name)]), help_text]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(help_text)
                if c == 1:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.metrics.setItem(i, c, item)
        self.metrics.resizeColumnToContents(0)
        self.metrics.resizeColumnToContents(1)
        self.metrics.resizeRowsToContents()
        self.selected.emit(source_row)

    def detail_text(self) -> str:
        """The detail pane as plain text (what a reader sees)."""
        return self.detail.toPlainText()
