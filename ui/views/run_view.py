"""The run view: one run's metrics, artifacts, details (config, versions, error), log.

Selecting a run costs the GUI thread one catalogue row (the header and details); its metrics, log
and artifact list load in a :class:`~ui.workers.Loader` worker, and an artifact's data loads there
too when the Artifacts tab first shows it.  Placeholders show meanwhile.  Every load carries a token
(what it is for, the run and a selection counter); a result whose token is not current any more (the
user selected another run meanwhile) is dropped, so late results never overwrite the shown run.
"""

from __future__ import annotations

import datetime as dt
import html
import json

from PySide6.QtCore import Qt, Signal
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
from ui.views.artifact_views import VIEWERS, ErrorViewer, make_viewer, sort_item
from ui.views.attack_view import attack_table_viewer
from ui.views.defence_view import IntervalMatrixView
from ui.views.influence_view import InfluenceView, PruningCurveView
from ui.views.leakage_view import LeakageMatrixView
from ui.views.metrics_panel import MetricsPanel
from ui.views.resilience_view import IntervalCurvesViewer
from ui.views.scanner_view import ScanView
from ui.views.sine_view import SineView
from ui.views.sink_view import SinkView
from ui.views.skeb_view import SkebView
from ui.views.sweep_view import SweepView
from ui.workers import Loader
from workbench.artifacts import load_artifact
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
    "attention": "attention maps",
    "prompt_table": "prompts",
    "sweep_table": "sweep chart",
}
# the evidence views of the attention-map stack and of per-prompt records (SKeB)
VIEWERS.setdefault("attention", SinkView)
VIEWERS.setdefault("prompt_table", SkebView)
VIEWERS.setdefault("interval_curves", IntervalCurvesViewer)
VIEWERS.update({"influence": InfluenceView, "pruning_curve": PruningCurveView})  # spec 4
VIEWERS.setdefault("interval_matrix", IntervalMatrixView)
VIEWERS.setdefault("scan_report", ScanView)
VIEWERS.setdefault("sweep_table", SweepView)  # the backdoor sweep's chart (spec section 6)
VIEWERS["table"] = attack_table_viewer(VIEWERS["table"])  # diffusion.attack.*: live + results
VIEWERS.setdefault("sine_functions", SineView)
VIEWERS.setdefault("leakage_matrix", LeakageMatrixView)  # the attack matrix (issue 18)


def _load_run(project: Project, run_id: int) -> dict:
    """Everything about a run that grows with its size (worker thread)."""
    logs = project.logs(run_id)
    return {
        "series": project.metric_series(run_id),
        "log": "\n".join(RunView._log_line(r["time"], r["level"], r["message"]) for r in logs),
        "artifacts": project.artifacts(run_id),
    }


def _when(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "—"


class RunView(QWidget):
    """Shows the run given to :meth:`show_run` and follows its events.

    ``loaded(run_id)`` fires when the selected run's metrics, log and artifact list are shown;
    :attr:`dropped` counts results that arrived for a selection that was no longer current.
    """

    loaded = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.run_id: int | None = None
        self.record: RunRecord | None = None
        self.artifact_rows: list[dict] = []
        self.viewers: dict[int, QWidget] = {}
        self.loading = False
        self.loaded_run: int | None = None
        self.dropped = 0
        self._selection = 0  # bumped per selection; part of every load's token
        self.loader = Loader(self)
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(self._on_failed)

        self.header = QLabel("Select a run in the project tree, or start one from the Job builder.")
        self.header.setObjectName("runHeader")
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.tabs = QTabWidget()
        self.metrics = MetricsPanel()
        self.plot = self.metrics.plot
        self.tabs.addTab(self.metrics, "Metrics")

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
        self.tabs.currentChanged.connect(self._tab_changed)
        self.artifact_loading = QLabel("Loading…")
        self.artifact_loading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.artifact_stack.addWidget(self.artifact_loading)

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
        if self.project is not None and project is not self.project:
            self.loader.wait()  # no worker may still read a project that is being closed
        self.project = project
        self.clear()

    def clear(self) -> None:
        self._selection += 1
        self.run_id = self.record = self.loaded_run = None
        self.loading = False
        self.header.setText("Select a run in the project tree, or start one from the Job builder.")
        self.metrics.set_series({})
        self._clear_artifacts()
        self.log.clear()
        self.config_table.setRowCount(0)
        for label in self.detail_labels.values():
            label.setText("—")
        self._set_error(None)

    def show_run(self, run_id: int) -> None:
        """Show ``run_id``: its header and details now, the rest when a worker has loaded it."""
        if self.project is None:
            return
        try:
            record = self.project.run(run_id)
        except ProjectError:
            self.clear()
            return
        self._selection += 1
        self.run_id = run_id
        self.loaded_run = None
        self._show_record(record)
        self.loading = True
        self.metrics.set_loading()
        self.log.setPlainText("Loading the log…")
        self._clear_artifacts()
        self.artifact_stack.setCurrentWidget(self.artifact_loading)
        self.tabs.setTabText(1, "Artifacts")
        project = self.project
        self.loader.load(self._token("run"), lambda: _load_run(project, run_id))

    def _token(self, what: str, *extra: object) -> tuple:
        return (what, self.run_id, self._selection, *extra)

    def _current(self, token: tuple) -> bool:
        return token[1:3] == (self.run_id, self._selection) and self.project is not None

    def _on_loaded(self, token: tuple, result: object) -> None:
        if not self._current(token):
            self.dropped += 1
            return
        what = token[0]
        if what == "run":
            assert isinstance(result, dict)
            self.metrics.set_series(result["series"])
            self.log.setPlainText(result["log"])
            self._set_artifact_rows(result["artifacts"])
            self.loading = False
            self.loaded_run = self.run_id
            self.loaded.emit(self.run_id)
        elif what == "series":
            self.metrics.set_series(result)  # type: ignore[arg-type]
        elif what == "artifacts":
            self._set_artifact_rows(result, keep_row=True)  # type: ignore[arg-type]
        elif what == "artifact":
            index, kind = token[3], token[4]
            try:
                viewer = VIEWERS[kind](result)
            except Exception as exc:  # a broken artifact must not break the run view
                viewer = ErrorViewer(f"Cannot show this {kind} artifact: {exc}")
            self._add_viewer(index, viewer)

    def _on_failed(self, token: tuple, exc: object) -> None:
        if not self._current(token):
            self.dropped += 1
            return
        what = token[0]
        message = f"{type(exc).__name__}: {exc}"
        if what == "artifact":
            self._add_viewer(token[3], ErrorViewer(f"Cannot show this artifact: {message}"))
        elif what == "run":
            self.loading = False
            self.metrics.set_loading(f"Could not load this run: {message}")
            self.log.setPlainText(f"Could not load this run: {message}")
            self.artifact_stack.setCurrentWidget(self.no_artifacts)

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
        """Reload the artifact list in a worker (a job wrote a new artifact)."""
        if self.project is None or self.run_id is None:
            return
        project, run_id = self.project, self.run_id
        self.loader.load(self._token("artifacts"), lambda: project.artifacts(run_id))

    def _set_artifact_rows(self, rows: list[dict], keep_row: bool = False) -> None:
        current = self.artifact_list.currentRow() if keep_row else 0
        self._clear_artifacts()
        self.artifact_rows = rows
        self.artifact_list.blockSignals(True)
        for row in self.artifact_rows:
            item = QListWidgetItem(f"{row['name']}  [{KIND_LABELS.get(row['kind'], row['kind'])}]")
            item.setToolTip(row["path"])
            self.artifact_list.addItem(item)
        if self.artifact_rows:
            self.artifact_list.setCurrentRow(min(max(current, 0), len(self.artifact_rows) - 1))
        self.artifact_list.blockSignals(False)
        self.tabs.setTabText(1, f"Artifacts ({len(self.artifact_rows)})")
        self._show_artifact(self.artifact_list.currentRow())

    def viewer(self, index: int) -> QWidget:
        """The viewer of artifact ``index``, loaded now on this thread if not loaded yet."""
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
            self._add_viewer(index, viewer)
        return viewer

    def _add_viewer(self, index: int, viewer: QWidget) -> None:
        old = self.viewers.get(index)
        if old is not None:
            self.artifact_stack.removeWidget(old)
            old.deleteLater()
        self.viewers[index] = viewer
        if hasattr(viewer, "set_project"):  # a view that reaches other runs (the sink view's diff)
            viewer.set_project(self.project, self.run_id)
        self.artifact_stack.addWidget(viewer)
        if self.artifact_list.currentRow() == index and self.tabs.currentIndex() == 1:
            self.artifact_stack.setCurrentWidget(viewer)

    def _tab_changed(self, index: int) -> None:
        if index == 1:
            self._show_artifact(self.artifact_list.currentRow())

    def _show_artifact(self, index: int) -> None:
        """Show artifact ``index`` when the Artifacts tab is shown; its data loads in a worker."""
        if not (0 <= index < len(self.artifact_rows)) or self.project is None:
            self.artifact_stack.setCurrentWidget(
                self.artifact_loading if self.loading else self.no_artifacts
            )
            return
        viewer = self.viewers.get(index)
        if viewer is not None:
            self.artifact_stack.setCurrentWidget(viewer)
            return
        self.artifact_stack.setCurrentWidget(self.artifact_loading)
        if self.tabs.currentIndex() != 1:  # built lazily, when the tab is shown
            return
        row = self.artifact_rows[index]
        try:
            path = self.project.artifact_path(row)
        except ValueError as exc:  # a crafted row: files outside the project are never shown
            self._add_viewer(index, ErrorViewer(f"Not shown: {exc}"))
            return
        if row["kind"] not in VIEWERS:
            self._add_viewer(index, make_viewer(row["kind"], path, row["meta"]))
            return
        kind, meta = row["kind"], row["meta"]
        self.loader.load(
            self._token("artifact", index, kind), lambda: load_artifact(kind, path, meta)
        )

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
        for viewer in list(self.viewers.values()):  # views that follow their run live
            getattr(viewer, "handle_events", lambda _events: None)(mine)
        reload_record = reload_artifacts = False
        lines = []
        for ev in mine:
            if ev.type == "metric":
                self.metrics.append(ev.data["name"], ev.data["step"], ev.data["value"])
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
        self.metrics.redraw()
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
                project, run_id = self.project, self.run_id
                self.loader.load(self._token("series"), lambda: project.metric_series(run_id))
        if reload_artifacts:
            self._load_artifacts()
