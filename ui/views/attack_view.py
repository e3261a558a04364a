"""The adversarial-prompt attack view (``diffusion.attack.*``, spec ``diffusion-methods.md`` 6.1-6.4).

Shown for a run's table artifact titled "Prompt attack results…" (the job writes one, "in
progress", once the unattacked prompts are judged, and the final one at the end):

- **Live**: the attack's loss per judged step (``attack/loss`` metric events), the current decoded
  prompt and its detector score (the job's status events) and the current image (the run folder's
  ``live/current.png``, which the job replaces before each status event);
- **Results**: one row per attacked (prompt, seed): the unattacked score and image, whether the
  attack succeeded, the winning prompt, its score and its image; the Pre-ASR and ASR counts (with
  the 95% intervals the run recorded, when the project is known) above the table.

The view never imports ``backends``: everything comes from the artifact, the events and the store.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.views.plotting import plot_widget
from workbench.artifacts import Table
from workbench.jobs import Event

__all__ = ["RESULTS_TITLE", "AttackView", "attack_table_viewer"]

RESULTS_TITLE = "Prompt attack results"  # backends.diffusion.prompt_attacks.RESULTS_TITLE
IMAGE_PX = 64
SHOWN = (
    ("prompt", "prompt"),
    ("seed", "seed"),
    ("unattacked score", "unattacked p"),
    ("unattacked image", "unattacked"),
    ("attack success", "attack"),
    ("adversarial prompt", "winning prompt"),
    ("score", "p"),
    ("image", "image"),
)


def is_attack_table(artifact: Any) -> bool:
    return isinstance(artifact, Table) and str(artifact.title).startswith(RESULTS_TITLE)


def attack_table_viewer(fallback: Callable[[Any], QWidget]) -> Callable[[Any], QWidget]:
    """A table viewer that shows attack results with :class:`AttackView` and every other table
    with ``fallback`` (the run view's table entry wraps the previous one)."""

    def make(artifact: Any, parent: QWidget | None = None) -> QWidget:
        if is_attack_table(artifact):
            return AttackView(artifact, parent)
        return fallback(artifact)

    return make


def pixmap_of(data: str | bytes, size: int = IMAGE_PX) -> QPixmap | None:
    """A scaled pixmap from base64 PNG text (a table cell) or PNG bytes; ``None`` if unreadable."""
    if not data:
        return None
    try:
        raw = base64.b64decode(data) if isinstance(data, str) else data
    except ValueError:
        return None
    image = QImage.fromData(raw)
    if image.isNull():
        return None
    return QPixmap.fromImage(image).scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
    )


def _yes_no(value: Any) -> str:
    if value is None or value == "":
        return "pending"
    return "yes" if bool(value) else "no"


class AttackView(QWidget):
    """Live progress and per-prompt results of one prompt-attack run."""

    def __init__(self, artifact: Table, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        self.project: Any = None
        self.run_id: int | None = None
        self.loss_steps: list[float] = []
        self.loss_values: list[float] = []
        self.column = {name: i for i, name in enumerate(artifact.columns)}

        title = QLabel(f"<b>{artifact.title}</b>")
        self.summary = QLabel(self._summary_text())
        self.summary.setWordWrap(True)

        live = QGroupBox("Live")
        self.plot = plot_widget("attack loss", "judged step (all cases in turn)", "loss")
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#1f77b4", width=2), symbol="o")
        self.prompt_label = QLabel("waiting for the attack's first step")
        self.prompt_label.setWordWrap(True)
        self.prompt_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.image_label = QLabel()
        self.image_label.setFixedSize(2 * IMAGE_PX, 2 * IMAGE_PX)
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setStyleSheet("border: 1px solid #bbb;")
        side = QVBoxLayout()
        side.addWidget(QLabel("current image"))
        side.addWidget(self.image_label)
        side.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(self.plot, 1)
        right.addWidget(self.prompt_label)
        row = QHBoxLayout(live)
        row.addLayout(right, 1)
        row.addLayout(side)

        self.table = QTableWidget(len(artifact.rows), len(SHOWN))
        self.table.setHorizontalHeaderLabels([label for _, label in SHOWN])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setDefaultSectionSize(IMAGE_PX + 6)
        self._fill()
        results = QWidget()
        lay = QVBoxLayout(results)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(live)
        split.addWidget(results)
        self.in_progress = "in progress" in artifact.title
        # while the attack runs the live panel leads; once it is done, the results do
        split.setSizes([420, 280] if self.in_progress else [170, 530])
        self.split = split
        outer = QVBoxLayout(self)
        outer.addWidget(title)
        outer.addWidget(self.summary)
        outer.addWidget(split, 1)

    # -- results ---------------------------------------------------------------------------
    def cell(self, row: Sequence[Any], name: str) -> Any:
        i = self.column.get(name)
        return row[i] if i is not None and i < len(row) else None

    def _fill(self) -> None:
        for r, row in enumerate(self.artifact.rows):
            for c, (name, _label) in enumerate(SHOWN):
                value = self.cell(row, name)
                if name in ("image", "unattacked image"):
                    label = QLabel()
                    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
                    pix = pixmap_of(value or "")
                    if pix is not None:
                        label.setPixmap(pix)
                    else:
                        label.setText("—")
                    self.table.setCellWidget(r, c, label)
                    continue
                if name == "attack success":
                    pre = bool(self.cell(row, "unattacked success"))
                    text = "not needed" if pre else _yes_no(value)
                elif name == "score" and bool(self.cell(row, "unattacked success")):
                    text = ""  # not attacked: its score is the unattacked one
                elif name in ("unattacked score", "score"):
                    text = "" if value is None else f"{float(value):.2f}"
                else:
                    text = "" if value is None else str(value)
                item = QTableWidgetItem(text)
                if name == "attack success" and text in ("yes", "no"):
                    item.setForeground(
                        Qt.GlobalColor.darkRed if text == "yes" else Qt.GlobalColor.darkGreen
                    )
                if name in ("prompt", "adversarial prompt"):
                    item.setToolTip(text)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        for c, (name, _label) in enumerate(SHOWN):
            if name in ("image", "unattacked image"):
                self.table.setColumnWidth(c, IMAGE_PX + 10)
        self.table.horizontalHeader().setStretchLastSection(False)
        winner = [label for _, label in SHOWN].index("winning prompt")
        self.table.horizontalHeader().setSectionResizeMode(winner, QHeaderView.ResizeMode.Stretch)

    def counts(self) -> tuple[int, int, int]:
        """(unattacked successes, unattacked + attack successes, N) of the table's rows."""
        rows = self.artifact.rows
        pre = sum(bool(self.cell(r, "unattacked success")) for r in rows)
        total = sum(
            bool(self.cell(r, "unattacked success")) or bool(self.cell(r, "attack success"))
            for r in rows
        )
        return pre, total, len(rows)

    def _summary_text(self, metrics: dict[str, float] | None = None) -> str:
        pre, total, n = self.counts()
        if n == 0:
            return "No attacked prompts."
        text = f"Pre-ASR {pre}/{n} = {pre / n:.2f}; ASR (unattacked + attack successes) {total}/{n} = {total / n:.2f}"
        m = metrics or {}
        if {"pre_asr_low", "pre_asr_high", "asr_low", "asr_high"} <= set(m):
            text = (
                f"Pre-ASR {pre}/{n} = {pre / n:.2f} [{m['pre_asr_low']:.2f}, "
                f"{m['pre_asr_high']:.2f}]; ASR {total}/{n} = {total / n:.2f} "
                f"[{m['asr_low']:.2f}, {m['asr_high']:.2f}] (95% intervals)"
            )
        if {"random_asr", "random_asr_low", "random_asr_high"} <= set(m):
            held = "held" if m.get("beats_random") else "not held"
            text += (
                f"\nRandom prompts, same judge and budget: {m['random_asr']:.2f} "
                f"[{m['random_asr_low']:.2f}, {m['random_asr_high']:.2f}]; ASR above them: {held}"
            )
        if "calibration_fpr" in m and "threshold" in m:
            text += (
                f" · success = score > {m['threshold']:.4f} (calibrated: "
                f"{m['calibration_fpr']:.3f} of {int(m.get('calibration_n', 0))} concept-free "
                "images pass)"
            )
        if "pending" in self.artifact.title or "in progress" in self.artifact.title:
            text += " — attack in progress"
        return text

    # -- the run -----------------------------------------------------------------------------
    def set_project(self, project: Any, run_id: int | None) -> None:
        """Known project and run: read the recorded intervals and the loss so far."""
        self.project, self.run_id = project, run_id
        if project is None or run_id is None:
            return
        try:
            rows = project.metrics(run_id)
        except Exception:  # a damaged or closed project: the counts stay as they are
            return
        final = {r["name"]: float(r["value"]) for r in rows}
        self.summary.setText(self._summary_text(final))
        losses = sorted(
            (int(r["step"]), float(r["value"])) for r in rows if r["name"] == "attack/loss"
        )
        self.loss_steps = [float(s) for s, _ in losses]
        self.loss_values = [v for _, v in losses]
        self.curve.setData(self.loss_steps, self.loss_values)
        try:
            steps = [r["message"] for r in project.logs(run_id) if r["message"].startswith("case ")]
        except Exception:  # the log is optional here
            steps = []
        if steps:
            done = "" if self.in_progress else "finished; last judged step: "
            self.prompt_label.setText(done + steps[-1])
        self._show_live_image()

    def handle_events(self, events: Sequence[Event]) -> None:
        """Follow the run's events (GUI thread): loss points, current prompt, current image."""
        changed = status = False
        for ev in events:
            if self.run_id is not None and ev.run_id != self.run_id:
                continue
            if ev.type == "metric" and ev.data.get("name") == "attack/loss":
                self.loss_steps.append(float(ev.data["step"]))
                self.loss_values.append(float(ev.data["value"]))
                changed = True
            elif ev.type == "status" and ev.data.get("text"):
                self.prompt_label.setText(str(ev.data["text"]))
                status = True
        if changed:
            self.curve.setData(self.loss_steps, self.loss_values)
        if status:
            self._show_live_image()

    def _show_live_image(self) -> None:
        if self.project is None or self.run_id is None:
            return
        try:
            path = Path(self.project.run_dir(self.run_id)) / "live" / "current.png"
            data = path.read_bytes() if path.is_file() else b""
        except OSError:
            return
        pix = pixmap_of(data, 2 * IMAGE_PX)
        if pix is not None:
            self.image_label.setPixmap(pix)
