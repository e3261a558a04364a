"""The job monitor: queued and active runs with progress, status text, Cancel and Resume."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ui.icons import status_icon
from workbench.jobs import Engine, EngineError, Event
from workbench.registry import Registry
from workbench.store import FINAL_STATUSES, Project, ProjectError, RunRecord

__all__ = ["JobMonitor", "RunRow"]


class RunRow(QFrame):
    """One run in the monitor."""

    def __init__(self, run_id: int, job: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_id = run_id
        self.status = "queued"
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName(f"runRow{run_id}")
        self.icon = QLabel()
        self.title = QLabel(f"#{run_id} {job}")
        self.title.setMinimumWidth(160)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("%p%")
        self.status_label = QLabel("queued")
        self.status_label.setMinimumWidth(200)
        self.cancel_button = QPushButton("Cancel")
        self.resume_button = QPushButton("Resume")
        self.resume_button.hide()
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 2, 6, 2)
        lay.addWidget(self.icon)
        lay.addWidget(self.title)
        lay.addWidget(self.progress, 1)
        lay.addWidget(self.status_label, 1)
        lay.addWidget(self.cancel_button)
        lay.addWidget(self.resume_button)
        self.set_status("queued", "queued")

    def set_status(self, status: str, text: str | None = None) -> None:
        self.status = status
        self.icon.setPixmap(status_icon(status).pixmap(14, 14))
        self.status_label.setText(f"{status}: {text}" if text and text != status else status)
        self.status_label.setToolTip(self.status_label.text())
        self.cancel_button.setVisible(status not in FINAL_STATUSES)
        if status == "completed":
            self.progress.setValue(1000)

    def set_progress(self, fraction: float, text: str | None = None) -> None:
        self.progress.setValue(round(fraction * 1000))
        if text and self.status == "running":
            self.status_label.setText(f"running: {text}")


class JobMonitor(QWidget):
    """Shows this session's runs; emits ``run_clicked(run_id)`` and ``error(message)``."""

    run_clicked = Signal(int)
    error = Signal(str)
    changed = Signal(int)

    def __init__(self, registry: Registry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.registry = registry
        self.engine: Engine | None = None
        self.project: Project | None = None
        self.rows: dict[int, RunRow] = {}
        self._rows_box = QVBoxLayout()
        self._rows_box.setContentsMargins(0, 0, 0, 0)
        self._rows_box.setSpacing(2)
        holder = QWidget()
        holder_layout = QVBoxLayout(holder)
        holder_layout.setContentsMargins(0, 0, 0, 0)
        holder_layout.addLayout(self._rows_box)
        holder_layout.addStretch(1)
        self.empty_label = QLabel("No runs in this session yet. Build one in the Job builder.")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setStyleSheet("color: palette(mid);")
        holder_layout.insertWidget(0, self.empty_label)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(holder)
        clear = QPushButton("Clear finished")
        clear.clicked.connect(self.clear_finished)
        header = QHBoxLayout()
        self.summary = QLabel()
        header.addWidget(self.summary, 1)
        header.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(header)
        layout.addWidget(scroll, 1)
        self._update_summary()

    def set_engine(self, engine: Engine | None, project: Project | None) -> None:
        self.engine, self.project = engine, project
        for run_id in list(self.rows):
            self._remove(run_id)
        self._update_summary()

    # -- rows ------------------------------------------------------------------------------
    def track(self, record: RunRecord) -> RunRow:
        """Show a run (idempotent) with its stored status."""
        row = self.rows.get(record.id)
        if row is None:
            row = RunRow(record.id, record.job)
            where = self.engine.launcher_of(record.id) if self.engine is not None else None
            if where:  # a run on a cluster: same row, same Cancel, and where it runs
                row.title.setText(f"#{record.id} {record.job} · {where}")
                row.title.setToolTip(f"runs on {where}; its results are ingested as they arrive")
            row.cancel_button.clicked.connect(lambda _=False, r=record.id: self.cancel(r))
            row.resume_button.clicked.connect(lambda _=False, r=record.id: self.resume(r))
            row.title.mousePressEvent = lambda _e, r=record.id: self.run_clicked.emit(r)
            self.rows[record.id] = row
            self._rows_box.insertWidget(0, row)
        row.set_status(record.status, record.status_text)
        row.set_progress(record.progress or 0.0)
        self._update_resume(row, record)
        self._update_summary()
        return row

    def _update_resume(self, row: RunRow, record: RunRecord | None = None) -> None:
        if self.project is None:
            row.resume_button.hide()
            return
        record = record or self.project.run(row.run_id)
        spec = self.registry.find_job(record.job)  # an old run may record a former name
        row.resume_button.setVisible(
            record.status in ("cancelled", "failed", "interrupted")
            and bool(record.checkpoint)
            and spec is not None
            and spec.supports_resume
        )

    def _remove(self, run_id: int) -> None:
        row = self.rows.pop(run_id)
        self._rows_box.removeWidget(row)
        row.deleteLater()

    def forget(self, run_ids: list[int]) -> None:
        """Drop the rows of runs that were deleted from the project."""
        for run_id in run_ids:
            if run_id in self.rows:
                self._remove(run_id)
        self._update_summary()

    def clear_finished(self) -> None:
        for run_id, row in list(self.rows.items()):
            if row.status in FINAL_STATUSES:
                self._remove(run_id)
        self._update_summary()

    def _update_summary(self) -> None:
        active = sum(1 for r in self.rows.values() if r.status not in FINAL_STATUSES)
        self.summary.setText(f"{active} active, {len(self.rows)} shown")
        self.empty_label.setVisible(not self.rows)

    # -- events ----------------------------------------------------------------------------
    def handle_events(self, events: list[Event]) -> None:
        """Apply a batch of engine events (GUI thread)."""
        for ev in events:
            row = self.rows.get(ev.run_id)
            if row is None:
                if self.project is None:
                    continue
                try:
                    row = self.track(self.project.run(ev.run_id))
                except ProjectError:
                    continue
            if ev.type == "progress":
                row.set_progress(ev.data.get("progress", 0.0), ev.data.get("text"))
            elif ev.type == "status":
                row.set_status(ev.data.get("status", row.status), ev.data.get("text"))
                if row.status in FINAL_STATUSES:
                    self._update_resume(row)
                self._update_summary()
                self.changed.emit(ev.run_id)

    # -- actions ---------------------------------------------------------------------------
    def cancel(self, run_id: int) -> None:
        if self.engine is not None and not self.engine.cancel(run_id):
            self.error.emit(f"run {run_id} is not running in this window; nothing to cancel")
        row = self.rows.get(run_id)
        if row is not None and row.status not in FINAL_STATUSES:
            row.status_label.setText("cancelling…")

    def resume(self, run_id: int) -> None:
        if self.engine is None:
            return
        try:
            self.engine.resume(run_id)
        except (EngineError, ProjectError, LookupError, ValueError) as exc:
            self.error.emit(str(exc))
            return
        row = self.rows.get(run_id)
        if row is not None:
            row.resume_button.hide()
