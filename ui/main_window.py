"""The main window: project tree, job builder, job monitor, run view and compare view.

It owns the open :class:`~workbench.store.Project` and its :class:`~workbench.jobs.Engine` (running
on a :class:`~ui.workers.QtExecutor`); engine events reach the panes through the throttled
:class:`~ui.workers.EngineBridge`.  Errors (a bad project folder, a newer schema, a corrupted
catalogue, plugins that failed to load) appear in a non-blocking banner; the window stays up and a
project that fails to open leaves the current one open.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui import dialogs
from ui.export import install_actions as install_export_actions
from ui.icons import app_icon
from ui.launcher_dialog import install_launcher_action
from ui.panes.job_builder import JobBuilder
from ui.panes.monitor import JobMonitor
from ui.panes.project_pane import ProjectPane
from ui.report_action import install_report_action
from ui.views.compare_view import CompareView
from ui.views.run_view import RunView
from ui.workers import EngineBridge, QtExecutor
from workbench.config import ConfigError
from workbench.jobs import Engine, Event, heavy_jobs
from workbench.launchers import LauncherError, load_settings, make_launcher
from workbench.lock import ProjectLock
from workbench.lock import acquire as acquire_lock
from workbench.lock import holders as lock_holders
from workbench.registry import (
    Registry,
    add_dataset_to_project,
    add_model_to_project,
    get_registry,
)
from workbench.request import RunRequest
from workbench.store import FINAL_STATUSES, Project, ProjectError

__all__ = ["MainWindow", "ORGANISATION", "APPLICATION", "run_request", "cli_command"]

ORGANISATION = "UnlearningWorkbench"
APPLICATION = "Unlearning Workbench"
MAX_RECENT = 8


def run_request(project: Project, run_id: int) -> RunRequest:
    """A stored run as the request that reruns it (what ``workbench run`` reads)."""
    return RunRequest.from_record(project.run(run_id))


def cli_command(project_root: Path, run_id: int) -> str:
    """The shell command that reruns run ``run_id`` with the CLI: export its config, run it."""
    root = str(project_root)
    config = f"run-{run_id}.yaml"
    export = ["workbench", "export", str(run_id), "--project", root, "-o", config]
    rerun = ["workbench", "run", config, "--project", root]
    return f"{shlex.join(export)} && {shlex.join(rerun)}"


class ErrorBanner(QFrame):
    """A dismissible message strip at the top of the window (non-blocking)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setStyleSheet(
            "#errorBanner { background: #f8d7da; border: 1px solid #f1aeb5; border-radius: 4px; }"
            " QLabel { color: #58151c; }"
        )
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.show()


class EmptyState(QWidget):
    """Shown while no project is open: New and Open buttons."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        title = QLabel("<h2>No project open</h2>")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text = QLabel(
            "A project is a folder holding the run catalogue, artifacts and models.\n"
            "Create a new one or open an existing folder."
        )
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        new = QPushButton("New project…")
        new.setObjectName("emptyNew")
        new.clicked.connect(window.new_project_dialog)
        open_ = QPushButton("Open project…")
        open_.setObjectName("emptyOpen")
        open_.clicked.connect(window.open_project_dialog)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(new)
        row.addWidget(open_)
        row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addStretch(1)
        lay.addWidget(title)
        lay.addWidget(text)
        lay.addLayout(row)
        lay.addStretch(2)


class MainWindow(QMainWindow):
    """The workbench's main window (see the module docstring)."""

    project_changed = Signal(object)
    # which jobs the engine runs in a child process (so training never holds the GUI's GIL)
    isolate_jobs = staticmethod(heavy_jobs)

    def __init__(
        self,
        project_path: str | Path | None = None,
        *,
        registry: Registry | None = None,
        settings: QSettings | None = None,
        ask_on_close: bool = True,
    ) -> None:
        super().__init__()
        self.registry = registry or get_registry()
        self.settings = settings or QSettings(ORGANISATION, APPLICATION)
        self.ask_on_close = ask_on_close
        self.project: Project | None = None
        self.engine: Engine | None = None
        self.executor: QtExecutor | None = None
        self.errors: list[str] = []
        self.lock: ProjectLock | None = None
        # asked before opening a project another window holds (tests answer it without a modal)
        self.confirm_locked_open: dialogs.OpenLockedDecision = dialogs.ask_open_locked
        self.setWindowTitle(APPLICATION)
        self.setWindowIcon(app_icon())
        self.resize(1280, 800)

        self.bridge = EngineBridge(self)
        self.bridge.batch.connect(self._on_events)

        # central: banner + (empty state | run/compare tabs)
        self.banner = ErrorBanner()
        self.run_view = RunView()
        self.compare_view = CompareView()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.run_view, "Run")
        self.tabs.addTab(self.compare_view, "Compare")
        self.tabs.currentChanged.connect(self._tab_changed)
        self.empty_state = EmptyState(self)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_state)
        self.stack.addWidget(self.tabs)
        central = QWidget()
        clay = QVBoxLayout(central)
        clay.setContentsMargins(4, 4, 4, 0)
        clay.addWidget(self.banner)
        clay.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        # docks
        self.project_pane = ProjectPane()
        self.project_pane.run_selected.connect(self.show_run)
        self.project_pane.error.connect(self.show_error)
        self.project_pane.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.project_pane.runs_removed.connect(self._runs_removed)
        self.project_pane.inputs_changed.connect(self.builder_refresh_inputs)
        self.builder = JobBuilder(self.registry)
        self.builder.submitted.connect(self._submitted)
        self.monitor = JobMonitor(self.registry)
        self.monitor.run_clicked.connect(self.select_run)
        self.monitor.error.connect(self.show_error)
        self.project_dock = self._dock(
            "Project", self.project_pane, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.builder_dock = self._dock(
            "Job builder", self.builder, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.monitor_dock = self._dock(
            "Job monitor", self.monitor, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.resizeDocks(
            [self.project_dock, self.builder_dock], [300, 330], Qt.Orientation.Horizontal
        )
        self.resizeDocks([self.monitor_dock], [130], Qt.Orientation.Vertical)

        self._build_menus()
        self.restore_layout()
        self.project_pane.refresh(None, self.registry)
        if self.registry.plugin_errors:
            self.show_error(
                "Some plugins failed to load; their jobs are unavailable:\n"
                + "\n".join(self.registry.plugin_errors)
            )
        if project_path is not None:
            self.open_project(project_path)
        self._update_state()

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "_"))
        dock.setWidget(widget)
        dock.setFeatures(  # closable: the View menu toggles it (disabled otherwise)
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        return dock

    # -- menus -----------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.new_action = QAction("&New project…", self, shortcut=QKeySequence.StandardKey.New)
        self.new_action.triggered.connect(self.new_project_dialog)
        self.open_action = QAction("&Open project…", self, shortcut=QKeySequence.StandardKey.Open)
        self.open_action.triggered.connect(self.open_project_dialog)
        file_menu.addAction(self.new_action)
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Recent projects")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        self.add_dataset_action = QAction("Add &dataset folder…", self)
        self.add_dataset_action.triggered.connect(self.add_dataset_dialog)
        self.add_model_action = QAction("Add &model folder…", self)
        self.add_model_action.triggered.connect(self.add_model_dialog)
        file_menu.addAction(self.add_dataset_action)
        file_menu.addAction(self.add_model_action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        install_export_actions(self, file_menu)  # Export figure… / Export table… (ui/export.py)
        install_report_action(self, file_menu)  # Export report… (ui/report_action.py, issue 18)

        run_menu = self.menuBar().addMenu("&Run")
        self.export_action = QAction("&Export run config…", self)
        self.export_action.triggered.connect(self.export_config_dialog)
        self.copy_cli_action = QAction("&Copy CLI command", self)
        self.copy_cli_action.triggered.connect(self.copy_cli_command)
        self.rerun_action = QAction("&Load run into builder", self)
        self.rerun_action.triggered.connect(self.load_into_builder)
        self.cancel_action = QAction("C&ancel run", self)
        self.cancel_action.triggered.connect(self._cancel_selected)
        for action in (self.export_action, self.copy_cli_action, self.rerun_action):
            run_menu.addAction(action)
        run_menu.addSeparator()
        run_menu.addAction(self.cancel_action)
        self.delete_failed_action = QAction("&Delete failed runs…", self)
        self.delete_failed_action.triggered.connect(self.project_pane.delete_failed_runs)
        run_menu.addAction(self.delete_failed_action)
        install_launcher_action(self, run_menu)  # Run → Launcher… (ui/launcher_dialog.py)

        self.view_menu = self.menuBar().addMenu("&View")
        for dock in (self.project_dock, self.builder_dock, self.monitor_dock):
            self.view_menu.addAction(dock.toggleViewAction())
        self.view_menu.addSeparator()
        self.show_archived_action = QAction("Show &archived runs", self, checkable=True)
        self.show_archived_action.toggled.connect(self.project_pane.show_archived.setChecked)
        self.project_pane.show_archived.toggled.connect(self.show_archived_action.setChecked)
        self.view_menu.addAction(self.show_archived_action)

        help_menu = self.menuBar().addMenu("&Help")
        self.docs_action = QAction(
            "&Documentation", self, shortcut=QKeySequence.StandardKey.HelpContents
        )
        self.docs_action.triggered.connect(self.open_documentation)
        self.about_action = QAction("&About Unlearning Workbench", self)
        self.about_action.triggered.connect(self.show_about)
        help_menu.addAction(self.docs_action)
        help_menu.addAction(self.about_action)

    # -- help ------------------------------------------------------------------------------
    def show_about(self) -> QMessageBox:
        """The About box (versions from package metadata), shown without blocking."""
        box = QMessageBox(
            QMessageBox.Icon.Information, "About Unlearning Workbench", "", parent=self
        )
        box.setObjectName("aboutBox")
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(dialogs.about_text())
        box.setIconPixmap(app_icon().pixmap(64, 64))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    def open_documentation(self) -> QUrl | None:
        """Open the local docs folder (or the README) in the desktop's viewer."""
        url = dialogs.documentation_url()
        if url is None:
            self.show_error("The documentation is not installed with this copy of the workbench.")
            return None
        if not dialogs.open_url(url):
            self.show_error(f"Could not open {url.toLocalFile()}; open it by hand.")
        return url

    # -- window layout ---------------------------------------------------------------------
    def save_layout(self) -> None:
        """Remember the window's geometry and its docks' layout."""
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()

    def restore_layout(self) -> bool:
        """Restore what :meth:`save_layout` remembered; False when there is nothing (or junk)."""
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        restored = False
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            restored = self.restoreGeometry(geometry)
        if isinstance(state, QByteArray) and not state.isEmpty():
            restored = self.restoreState(state) and restored
        return restored

    def dialog_folder(self) -> str:
        """Where the Open and New dialogs start: beside the current (or last) project."""
        if self.project is not None:
            return str(self.project.root.parent)
        for path in self.recent_projects():
            parent = Path(path).parent
            if parent.is_dir():
                return str(parent)
        return str(Path.home())

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_projects()
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_project(p))

    # -- recent projects -------------------------------------------------------------------
    def recent_projects(self) -> list[str]:
        value = self.settings.value("recent_projects", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value or []]

    def _remember(self, path: Path) -> None:
        recent = [p for p in self.recent_projects() if p != str(path)]
        self.settings.setValue("recent_projects", [str(path), *recent][:MAX_RECENT])
        self.settings.sync()

    # -- errors ----------------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        """Show ``message`` in the banner (non-blocking) and remember it."""
        self.errors.append(message)
        self.banner.show_message(message)
        self.statusBar().showMessage(message.splitlines()[0], 10_000)

    # -- models and datasets of the project ------------------------------------------------
    def add_dataset(self, path: str | Path, name: str = "", kind: str = "") -> bool:
        """Add a dataset folder of a registered user kind (default: the first one that accepts
        it); on failure show why and add nothing."""
        if self.project is None:
            self.show_error("Open or create a project first.")
            return False
        kinds = [d.name for d in self.registry.datasets.values() if not d.builtin]
        reasons = []
        for candidate in [kind] if kind else kinds:
            try:
                add_dataset_to_project(
                    self.project, self.registry, candidate, name or Path(path).name, str(path)
                )
            except (ValueError, LookupError) as exc:
                reasons.append(str(exc))
                continue
            self.project_pane.refresh(self.project, self.registry)
            self.builder.refresh_inputs()
            self.statusBar().showMessage(f"Added dataset {name or Path(path).name}", 5000)
            return True
        self.show_error("Cannot add this dataset: " + ("; ".join(reasons) or "no dataset kinds"))
        return False

    def add_model(self, path: str | Path, name: str = "", *, allow_pickle: bool = False) -> bool:
        """Add a model folder (any kind a plugin can load); on failure show why.
        ``allow_pickle``: the dialog's *Allow pickle weights* box, stored with the model."""
        if self.project is None:
            self.show_error("Open or create a project first.")
            return False
        try:
            add_model_to_project(
                self.project,
                self.registry,
                name or Path(path).name,
                str(path),
                allow_pickle=allow_pickle,
            )
        except (ValueError, LookupError) as exc:
            self.show_error(f"Cannot add this model: {exc}")
            return False
        self.project_pane.refresh(self.project, self.registry)
        self.builder.refresh_inputs()
        self.statusBar().showMessage(f"Added model {name or Path(path).name}", 5000)
        return True

    def add_dataset_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "A dataset folder (one sub-folder per class)")
        if path:
            self.add_dataset(path)

    def model_dialog(self) -> dialogs.AddModelDialog:
        """The add-model dialog, not yet shown (tests fill and accept it through its widgets)."""
        dialog = dialogs.AddModelDialog(self)
        dialog.accepted.connect(lambda: self._add_model_from(dialog))
        return dialog

    def add_model_dialog(self) -> None:
        self.model_dialog().open()

    def _add_model_from(self, dialog: dialogs.AddModelDialog) -> None:
        folder, name, allow_pickle = dialog.values()
        if folder:
            self.add_model(folder, name, allow_pickle=allow_pickle)

    # -- projects --------------------------------------------------------------------------
    def new_project_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Folder for the new project", self.dialog_folder()
        )
        if path:
            self.open_project(path, create=True)

    def open_project_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a project folder", self.dialog_folder())
        if path:
            self.open_project(path)

    def open_project(self, path: str | Path, *, create: bool = False) -> bool:
        """Open (or with ``create`` make) a project; on failure show why and keep the current."""
        try:
            project = Project.create(path) if create else Project.open(path)
        except (ProjectError, OSError) as exc:
            self.show_error(f"Could not {'create' if create else 'open'} the project: {exc}")
            return False
        others = lock_holders(project.root, ignore=self.lock)
        if others and not self.confirm_locked_open(self, str(project.root), others):
            project.close()
            self.statusBar().showMessage(f"Not opened: {project.root} is open elsewhere", 10_000)
            return False
        if not self.close_project():
            project.close()
            return False
        self.project = project
        self.lock = acquire_lock(project.root)
        self.executor = QtExecutor(max_threads=2)
        launcher_problem = None
        try:  # where runs execute: the project's launcher setting (Run → Launcher…)
            launcher = make_launcher(load_settings(project.root), project.root)
        except LauncherError as exc:
            launcher, launcher_problem = None, f"Launcher: {exc}; runs execute on this machine"
        self.engine = Engine(
            project,
            executor=self.executor,
            registry=self.registry,
            isolate=self.isolate_jobs,
            launcher=launcher,
        )
        self.engine.add_listener(self.bridge.post)
        self._remember(project.root)
        self.banner.hide()
        if project.read_only_reason:  # a read-only folder or a damaged catalogue: say so
            self.show_error(f"Opened read-only: {project.read_only_reason}")
        if launcher_problem:
            self.show_error(launcher_problem)
        self.run_view.set_project(project)
        self.compare_view.set_project(project)
        self.project_pane.refresh(project, self.registry)
        self.builder.set_engine(self.engine, project)
        self.monitor.set_engine(self.engine, project)
        if project.interrupted_on_open:
            ids = ", ".join(map(str, project.interrupted_on_open))
            self.statusBar().showMessage(
                f"Runs {ids} were left running by a process that ended; marked interrupted.", 10_000
            )
        runs = project.runs()
        if runs:
            self.select_run(runs[-1].id)
        self._update_state()
        self.project_changed.emit(project)
        return True

    def close_project(self, *, ask: bool = False) -> bool:
        """Cancel running jobs, stop the engine and close the project; False if the user refused."""
        if self.project is None:
            return True
        active = self.engine.active_runs() if self.engine else []
        if active and ask and self.ask_on_close:
            answer = QMessageBox.question(
                self,
                "Jobs are running",
                f"{len(active)} run(s) are still running or queued. Cancel them and close?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return False
        if self.engine is not None:
            self.engine.shutdown(cancel=True, wait=True, timeout=30)
            self.engine.remove_listener(self.bridge.post)
        if self.executor is not None:
            self.executor.shutdown()
        self.bridge.stop()
        self.builder.set_engine(None, None)
        self.monitor.set_engine(None, None)
        self.run_view.set_project(None)
        self.compare_view.set_project(None)
        self.project_pane.refresh(None, self.registry)
        self.project.close()
        if self.lock is not None:
            self.lock.release()
        self.project = self.engine = self.executor = self.lock = None
        self._update_state()
        self.project_changed.emit(None)
        return True

    def _update_state(self) -> None:
        has = self.project is not None
        self.stack.setCurrentWidget(self.tabs if has else self.empty_state)
        for action in (
            self.export_action,
            self.copy_cli_action,
            self.rerun_action,
            self.cancel_action,
            self.delete_failed_action,
            self.show_archived_action,
            self.launcher_action,
        ):
            action.setEnabled(has)
        for dock in (self.project_dock, self.builder_dock, self.monitor_dock):
            dock.toggleViewAction().setEnabled(has)
        title = APPLICATION + (f" — {self.project.root}" if has else "")
        self.setWindowTitle(title)
        self._update_status()

    def _update_status(self) -> None:
        if self.project is None:
            self.statusBar().showMessage("No project open")
            return
        active = len(self.engine.active_runs()) if self.engine else 0
        self.statusBar().showMessage(f"{self.project.root}   ·   {active} active run(s)")

    # -- runs ------------------------------------------------------------------------------
    def select_run(self, run_id: int) -> None:
        """Select a run in the tree (which shows it in the run view)."""
        self.project_pane.select_run(run_id)
        if self.run_view.run_id != run_id:
            self.show_run(run_id)

    def show_run(self, run_id: int) -> None:
        self.run_view.show_run(run_id)
        self.tabs.setCurrentWidget(self.run_view)

    def selected_run(self) -> int | None:
        return self.run_view.run_id or self.project_pane.selected_run()

    def _submitted(self, run_id: int) -> None:
        assert self.project is not None
        record = self.project.run(run_id)
        self.monitor.track(record)
        self.project_pane.update_run(record)
        self.project_pane.runs_item.setText(1, str(len(self.project_pane.run_ids())))
        self.select_run(run_id)
        self._update_status()

    def _on_events(self, events: list[Event]) -> None:
        if self.project is None:
            return
        self.monitor.handle_events(events)
        self.run_view.handle_events(events)
        changed = {e.run_id for e in events if e.type == "status"}
        finished = any(e.data.get("status") in FINAL_STATUSES for e in events if e.type == "status")
        for run_id in changed:
            try:
                self.project_pane.update_run(self.project.run(run_id))
            except ProjectError:
                continue
        if finished:
            self.project_pane.refresh_models(self.project, self.registry)
            self.builder.refresh_inputs()
            if self.tabs.currentWidget() is self.compare_view:
                self.compare_view.refresh()
        if changed:
            self._update_status()

    def _tab_changed(self, _index: int) -> None:
        if self.tabs.currentWidget() is self.compare_view:
            self.compare_view.refresh()

    def _runs_removed(self, run_ids: list[int]) -> None:
        """Runs were deleted (or archived out of the tree): drop them from the views."""
        self.monitor.forget(run_ids)
        if self.run_view.run_id in run_ids:
            self.run_view.clear()
        if self.project is not None and self.tabs.currentWidget() is self.compare_view:
            self.compare_view.refresh()
        self._update_status()

    def builder_refresh_inputs(self) -> None:
        self.builder.refresh_inputs()

    def _cancel_selected(self) -> None:
        run_id = self.selected_run()
        if run_id is not None:
            self.monitor.cancel(run_id)

    # -- export ----------------------------------------------------------------------------
    def export_config(self, run_id: int, path: str | Path) -> Path:
        """Write the run file that reruns the run (YAML unless ``.json``), with its config
        version."""
        assert self.project is not None
        return run_request(self.project, run_id).to_file(path)

    def export_config_dialog(self) -> None:
        run_id = self.selected_run()
        if self.project is None or run_id is None:
            self.show_error("Select a run to export its config.")
            return
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export run config",
            str(Path.home() / f"run{run_id}.yaml"),
            "YAML (*.yaml *.yml);;JSON (*.json)",
        )
        if path:
            try:
                self.export_config(run_id, path)
            except OSError as exc:
                self.show_error(f"Could not write {path}: {exc}")
                return
            self.statusBar().showMessage(f"Exported run {run_id} to {path}", 5000)

    def copy_cli_command(self) -> str | None:
        run_id = self.selected_run()
        if self.project is None or run_id is None:
            self.show_error("Select a run to copy its command.")
            return None
        command = cli_command(self.project.root, run_id)
        QGuiApplication.clipboard().setText(command)
        self.statusBar().showMessage("Copied: " + command, 5000)
        return command

    def load_into_builder(self) -> None:
        run_id = self.selected_run()
        if self.project is not None and run_id is not None:
            try:  # an old run's config is migrated to the job's current version
                self.builder.load_request(run_request(self.project, run_id))
            except (LookupError, ConfigError) as exc:
                self.show_error(str(exc))

    # -- closing ---------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        if not self.close_project(ask=True):
            event.ignore()
            return
        self.save_layout()
        event.accept()
