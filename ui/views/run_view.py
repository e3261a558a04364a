"""The run view: one run's live metric curves, artifacts, details (config, versions, error), log."""

from __future__ import annotations

import datetime as dt
import html
import json

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ui.icons import status_color
from ui.views.artifact_views import ErrorViewer, make_viewer, sort_item
from ui.views.metric_plot import MetricPlot
from workbench.jobs import Event
from workbench.store import FINAL_STATUSES, Project, ProjectError, RunRecord

__all__ = ["RunView"]

KIND_LABELS = {
    "image_grid": "images",
    "heatmap": "heatmap",
    "graph": "graph",
    "curves": "curves",
    "table": "table",
    "text": "text",
    "file": "file",
}


def _when(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "—"


class RunView(QWidget):
    """Shows the run given to :meth:`show_run` and follows its events."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.run_id: int | None = None
        self.record: RunRecord | None = None
        self.artifact_rows: list[dict] = []
        self.viewers: dict[int, QWidget] = {}

        self.header = QLabel("Select a run in the project tree, or start one from the Job builder.")
        self.header.setObjectName("runHeader")
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.tabs = QTabWidget()
        self.plot = MetricPlot()
        self.tabs.addTab(self.plot, "Metrics")

        self.artifact_list = QListWidget()
        self.artifact_list.setMinimumWidth(120)
        self.artifact_stack = QStackedWidget()
        self.no_artifacts = QLabel("This run has no artifacts (yet).")
        self.no_artifacts.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.artifact_stack.addWidget(self.no_artifacts)
        split = QSplitter()
        split.addWidget(self.artifact_list)
        split.addWidget(self.artifact_stack)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([175, 600])
        self.artifact_split = split
        self.artifact_list.currentRowChanged.connect(self._show_artifact)
        self.tabs.addTab(split, "Artifacts")

        self.details = QFormLayout()
        self.detail_labels: dict[str, QLabel] = {}
        for key in (
            "Job",
            "Status",
            "Seed",
            "Model",
            "Dataset",
            "Device",
            "Created",
            "Started",
            "Finished",
            "Duration",
            "Checkpoint",
            "Versions",
        ):
            label = QLabel("—")
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.detail_labels[key] = label
            self.details.addRow(f"{key}:", label)
        self.config_table = QTableWidget(0, 2)
        self.config_table.setHorizontalHeaderLabels(["Config field", "Value"])
        self.config_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.config_table.horizontalHeader().setStretchLastSection(True)
        self.config_table.verticalHeader().hide()
        self.config_table.setMinimumHeight(150)
        self.error_box = QPlainTextEdit()
        self.error_box.setReadOnly(True)
        self.error_box.setFont(QFont("monospace", 9))
        self.error_box.setStyleSheet("color: #a94442;")
        self.error_title = QLabel("Error traceback:")
        details = QWidget()
        dlay = QVBoxLayout(details)
        dlay.addLayout(self.details)
        dlay.addWidget(self.config_table)
        dlay.addWidget(self.error_title)
        dlay.addWidget(self.error_box)
        dlay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(details)
        self.tabs.addTab(scroll, "Details")

        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setFont(QFont("monospace", 9))
        self.log.setMaximumBlockCount(20_000)
        self.tabs.addTab(self.log, "Log")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.header)
        layout.addWidget(self.tabs, 1)
        self._set_error(None)

    # -- loading ---------------------------------------------------------------------------
    def set_project(self, project: Project | None) -> None:
        self.project = project
        self.clear()

    def clear(self) -> None:
        self.run_id = self.record = None
        self.header.setText("Select a run in the project tree, or start one from the Job builder.")
        self.plot.set_series({})
        self._clear_artifacts()
        self.log.clear()
        self.config_table.setRowCount(0)
        for label in self.detail_labels.values():
            label.setText("—")
        self._set_error(None)

    def show_run(self, run_id: int) -> None:
        """Load everything about ``run_id`` from the project."""
        if self.project is None:
            return
        try:
            record = self.project.run(run_id)
        except ProjectError:
            self.clear()
            return
        self.run_id = run_id
        self._show_record(record)
        self.plot.set_series(self.project.metric_series(run_id))
        self.log.setPlainText(
            "\n".join(
                self._log_line(r["time"], r["level"], r["message"])
                for r in self.project.logs(run_id)
            )
        )
        self._load_artifacts()

    def _show_record(self, r: RunRecord) -> None:
        self.record = r
        colour = status_color(r.status).name()
        text = f" — {r.status_text}" if r.status_text and r.status_text != r.status else ""
        self.header.setText(
            f"<b>Run #{r.id}</b> · {html.escape(r.job)} · "
            f"<span style='color:{colour}; font-weight:bold'>{html.escape(r.status)}</span>"
            f"{html.escape(text)}"
            + (f" · {round((r.progress or 0) * 100)}%" if r.status == "running" else "")
        )
        if r.problems:  # a malformed row: say so, show what could be read
            self.header.setText(
                f"<b>Run #{r.id}</b> · <span style='color:#c0392b; font-weight:bold'>"
                f"malformed</span> · {html.escape(r.describe_problems())}"
            )
        d = self.detail_labels
        d["Job"].setText(f"{r.job} ({r.kind}, {r.family}, method {r.method})")
        d["Status"].setText(
            f"malformed ({', '.join(r.problems)})" if r.problems else r.status + text
        )
        d["Seed"].setText(str(r.seed))
        d["Model"].setText(r.model or "—")
        d["Dataset"].setText(r.dataset or "—")
        d["Device"].setText(r.device or "—")
        d["Created"].setText(_when(r.created))
        d["Started"].setText(_when(r.started))
        d["Finished"].setText(_when(r.finished))
        d["Duration"].setText(
            f"{r.finished - r.started:.1f} s" if r.started and r.finished else "—"
        )
        d["Checkpoint"].setText(
            f"{r.checkpoint} (after step {r.checkpoint_step})" if r.checkpoint else "—"
        )
        d["Versions"].setText(", ".join(f"{k} {v}" for k, v in sorted(r.versions.items())) or "—")
        self.config_table.setSortingEnabled(False)
        self.config_table.setRowCount(len(r.config))
        for i, (key, value) in enumerate(sorted(r.config.items())):
            self.config_table.setItem(i, 0, sort_item(key))
            shown = value if isinstance(value, (int, float, str)) else json.dumps(value)
            self.config_table.setItem(i, 1, sort_item(shown))
        self.config_table.resizeColumnToContents(0)
        self._set_error(r.error)

    def _set_error(self, error: str | None) -> None:
        self.error_box.setPlainText(error or "")
        self.error_box.setVisible(bool(error))
        self.error_title.setVisible(bool(error))

    @staticmethod
    def _log_line(t: float, level: str, message: str) -> str:
        try:
            stamp = dt.datetime.fromtimestamp(t).strftime("%H:%M:%S")
        except (TypeError, ValueError, OverflowError, OSError):
            stamp = "--:--:--"  # a malformed log row
        return f"{stamp} {str(level).upper():7} {message}"

    # -- artifacts -------------------------------------------------------------------------
    def _clear_artifacts(self) -> None:
        self.artifact_list.blockSignals(True)
        self.artifact_list.clear()
        self.artifact_list.blockSignals(False)
        for viewer in self.viewers.values():
            self.artifact_stack.removeWidget(viewer)
            viewer.deleteLater()
        self.viewers.clear()
        self.artifact_rows = []
        self.artifact_stack.setCurrentWidget(self.no_artifacts)

    def _load_artifacts(self) -> None:
        current = self.artifact_list.currentRow()
        self._clear_artifacts()
        if self.project is None or self.run_id is None:
            return
        self.artifact_rows = self.project.artifacts(self.run_id)
        self.artifact_list.blockSignals(True)
        for row in self.artifact_rows:
            item = QListWidgetItem(f"{row['name']}  [{KIND_LABELS.get(row['kind'], row['kind'])}]")
            item.setToolTip(row["path"])
            self.artifact_list.addItem(item)
        self.artifact_list.blockSignals(False)
        if self.artifact_rows:
            self.artifact_list.setCurrentRow(min(max(current, 0), len(self.artifact_rows) - 1))
        self.tabs.setTabText(1, f"Artifacts ({len(self.artifact_rows)})")

    def viewer(self, index: int) -> QWidget:
        """The viewer of artifact ``index`` (created on first use)."""
        viewer = self.viewers.get(index)
        if viewer is None:
            row = self.artifact_rows[index]
            if self.project is None:
                raise LookupError("no project is open")
            try:
                path = self.project.artifact_path(row)
            except ValueError as exc:  # a crafted row: files outside the project are never shown
                viewer = ErrorViewer(f"Not shown: {exc}")
            else:
                viewer = make_viewer(row["kind"], path, row["meta"])
            self.viewers[index] = viewer
            self.artifact_stack.addWidget(viewer)
        return viewer

    def _show_artifact(self, index: int) -> None:
        if 0 <= index < len(self.artifact_rows) and self.project is not None:
            self.artifact_stack.setCurrentWidget(self.viewer(index))
        else:
            self.artifact_stack.setCurrentWidget(self.no_artifacts)

    def show_artifact(self, name: str) -> QWidget:
        """Select the artifact called ``name`` (and switch to the Artifacts tab)."""
        for i, row in enumerate(self.artifact_rows):
            if row["name"] == name:
                self.tabs.setCurrentIndex(1)
                self.artifact_list.setCurrentRow(i)
                return self.viewer(i)
        raise LookupError(f"run {self.run_id} has no artifact {name!r}")

    # -- live updates ----------------------------------------------------------------------
    def handle_events(self, events: list[Event]) -> None:
        """Apply a batch of engine events for the shown run (GUI thread)."""
        if self.run_id is None or self.project is None:
            return
        mine = [e for e in events if e.run_id == self.run_id]
        if not mine:
            return
        reload_record = reload_artifacts = False
        lines = []
        for ev in mine:
            if ev.type == "metric":
                self.plot.append(ev.data["name"], ev.data["step"], ev.data["value"])
            elif ev.type == "log":
                lines.append(
                    self._log_line(
                        dt.datetime.now().timestamp(),
                        ev.data.get("level", "info"),
                        ev.data["message"],
                    )
                )
            elif ev.type == "artifact":
                reload_artifacts = True
            elif ev.type in ("status", "progress", "checkpoint"):
                reload_record = True
        self.plot.redraw()
        for line in lines:
            self.log.appendPlainText(line)
        if reload_record:
            try:
                record = self.project.run(self.run_id)
            except ProjectError:
                return
            self._show_record(record)
            # on (re)queueing and at the end, draw what the store holds: the final picture is
            # the recorded one, not whatever throttled live updates had reached
            if any(
                e.type == "status" and e.data.get("status") in ("queued", *FINAL_STATUSES)
                for e in mine
            ):
                self.plot.set_series(self.project.metric_series(self.run_id))
        if reload_artifacts:
            self._load_artifacts()
