"""The project tree: Models (project and built-in), Datasets (registry and project), Runs.

Right-click menus manage what the tree lists.  Runs: Delete… (several at once, or every failed
run), Archive / Unarchive, Edit note…, Edit tags…; archived runs are hidden unless "Show archived"
is ticked, and each run shows its tags.  Models and datasets: Details… (also on double-click),
Rename…, Remove from project… and Open folder.  Every change goes through the project store
(:meth:`~workbench.store.Project.delete_run` refuses a queued or running run; its message goes to
the window's error banner through :attr:`ProjectPane.error`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QAction, QBrush, QColor, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui import dialogs
from ui.icons import status_icon
from ui.workers import Loader
from workbench.catalog import Catalog
from workbench.details import Details, dataset_details, model_details
from workbench.registry import Registry
from workbench.store import Project, ProjectError, RunRecord

__all__ = ["ProjectPane"]

RUN_ROLE = Qt.ItemDataRole.UserRole + 1
STATUS_ROLE = Qt.ItemDataRole.UserRole + 2
ENTRY_ROLE = Qt.ItemDataRole.UserRole + 3  # ("model" | "dataset", name, in the project)
ACTIVE = ("queued", "running")


class ProjectPane(QWidget):
    """Tree of the open project's models, datasets and runs; emits ``run_selected(run_id)``."""

    run_selected = Signal(int)
    error = Signal(str)
    message = Signal(str)
    runs_removed = Signal(list)  # ids of runs deleted (or hidden by archiving)
    inputs_changed = Signal()  # models or datasets renamed or removed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.registry: Registry | None = None
        # what the menus ask the user; tests may run the dialogs through their widgets
        self.ask_text: Callable[..., str | None] = dialogs.ask_text
        self.confirm: Callable[..., tuple[bool, bool]] = dialogs.confirm
        self.loader = Loader(self, max_threads=1)
        self.loader.loaded.connect(self._details_loaded)
        self.loader.failed.connect(self._details_failed)
        self.details_dialogs: dict[tuple[str, str], dialogs.DetailsDialog] = {}

        self.tree = QTreeWidget()
        self.tree.setObjectName("projectTree")
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Name", "Detail"])
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setStretchLastSection(True)
        self.tree.setColumnWidth(0, 190)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        delete = QAction("Delete selected runs", self.tree)
        delete.setShortcut(QKeySequence.StandardKey.Delete)
        delete.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        delete.triggered.connect(lambda: self.delete_runs(self.selected_runs()))
        self.tree.addAction(delete)
        self.show_archived = QCheckBox("Show archived runs")
        self.show_archived.setObjectName("showArchived")
        self.show_archived.toggled.connect(lambda _on: self.refresh_runs(self.project))
        self.archived_label = QLabel()
        self.archived_label.setStyleSheet("color: palette(mid);")
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        bar.addWidget(self.show_archived)
        bar.addStretch(1)
        bar.addWidget(self.archived_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.tree)
        self.models_item = QTreeWidgetItem(["Models"])
        self.datasets_item = QTreeWidgetItem(["Datasets"])
        self.runs_item = QTreeWidgetItem(["Runs"])
        for item in (self.models_item, self.datasets_item, self.runs_item):
            font = item.font(0)
            font.setBold(True)
            item.setFont(0, font)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.tree.addTopLevelItem(item)
            item.setExpanded(True)
        self._run_items: dict[int, QTreeWidgetItem] = {}
        self.tree.itemSelectionChanged.connect(self._selection_changed)

    # -- filling ---------------------------------------------------------------------------
    def clear(self) -> None:
        for item in (self.models_item, self.datasets_item, self.runs_item):
            item.takeChildren()
        self._run_items.clear()

    def refresh(self, project: Project | None, registry: Registry) -> None:
        """Reload everything from the project and the registry."""
        if project is not self.project:
            self.loader.wait()  # no details worker may read a project that is being closed
            for dialog in list(self.details_dialogs.values()):
                dialog.close()
        self.project, self.registry = project, registry
        self.refresh_models(project, registry)
        self.refresh_runs(project)

    def _entry_item(self, kind: str, name: str, detail: str, in_project: bool) -> QTreeWidgetItem:
        item = QTreeWidgetItem([name, detail])
        item.setData(0, ENTRY_ROLE, (kind, name, in_project))
        return item

    def refresh_models(self, project: Project | None, registry: Registry) -> None:
        self.project, self.registry = project, registry
        self.models_item.takeChildren()
        self.datasets_item.takeChildren()
        catalog = Catalog(project, registry)
        for model in catalog.models():
            if model.builtin:
                item = self._entry_item("model", model.name, f"{model.kind} (built-in)", False)
                item.setToolTip(0, f"{model.title}\n{model.path}\nDouble-click for details")
            else:
                item = self._entry_item("model", model.name, model.kind, True)
                made = f"from run {model.source_run}" if model.source_run else "added from a folder"
                tip = f"{model.name}\n{model.path}\n{made}\nDouble-click for details"
                item.setToolTip(0, tip)
            self.models_item.addChild(item)
        # datasets only: a kind of user dataset (File > Add dataset) is not listed
        for ds in catalog.datasets():
            if ds.builtin:
                item = self._entry_item("dataset", ds.name, f"{ds.family} (built-in)", False)
                item.setToolTip(0, f"{ds.title}\n{ds.description}\nDouble-click for details")
            else:
                item = self._entry_item("dataset", ds.name, ds.family, True)
                item.setToolTip(0, (ds.path or ds.name) + "\nDouble-click for details")
            self.datasets_item.addChild(item)
        self.models_item.setText(1, str(self.models_item.childCount()))
        self.datasets_item.setText(1, str(self.datasets_item.childCount()))

    def refresh_runs(self, project: Project | None) -> None:
        self.project = project
        runs = project.runs() if project else []
        archived = sum(1 for r in runs if r.archived)
        shown = [r for r in runs if self.show_archived.isChecked() or not r.archived]
        wanted = {r.id for r in shown}
        for run_id in list(self._run_items):
            if run_id not in wanted:
                self.runs_item.removeChild(self._run_items.pop(run_id))
        for run in shown:
            self.update_run(run)
        self.runs_item.setText(1, str(len(shown)))
        self.archived_label.setText(f"{archived} archived" if archived else "")

    def update_run(self, run: RunRecord) -> None:
        item = self._run_items.get(run.id)
        if item is None:
            if run.archived and not self.show_archived.isChecked():
                return
            item = QTreeWidgetItem()
            item.setData(0, RUN_ROLE, run.id)
            position = sum(1 for r in self._run_items if r > run.id)  # newest first
            self.runs_item.insertChild(position, item)
            self._run_items[run.id] = item
        item.setData(0, STATUS_ROLE, run.status)
        if run.problems:  # a malformed row is listed as malformed, never breaks the list
            item.setData(0, STATUS_ROLE, "malformed")
            item.setText(0, f"#{run.id} {run.job or '(unreadable)'}")
            item.setText(1, "malformed")
            item.setIcon(0, status_icon("failed"))
            tip = run.describe_problems()
            item.setToolTip(0, tip)
            item.setToolTip(1, tip)
            return
        tags = run.tags or []
        item.setText(0, f"#{run.id} {run.job}")
        detail = run.status + ("  [archived]" if run.archived else "")
        item.setText(1, detail + "".join(f"  #{t}" for t in tags))
        item.setIcon(0, status_icon(run.status))
        grey = QBrush(QColor("#8a8a8a")) if run.archived else QBrush()
        for column in (0, 1):
            item.setForeground(column, grey)
        tip = f"run {run.id}: {run.job}\nstatus: {run.status}"
        if run.status_text:
            tip += f" ({run.status_text})"
        if tags:
            tip += "\ntags: " + ", ".join(tags)
        if run.note:
            tip += "\nnote: " + run.note
        if run.archived:
            tip += "\narchived (hidden unless Show archived runs is ticked)"
        item.setToolTip(0, tip)
        item.setToolTip(1, tip)

    # -- selection -------------------------------------------------------------------------
    def run_ids(self) -> list[int]:
        return sorted(self._run_items)

    def run_status(self, run_id: int) -> str | None:
        item = self._run_items.get(run_id)
        return item.data(0, STATUS_ROLE) if item else None

    def run_item(self, run_id: int) -> QTreeWidgetItem | None:
        return self._run_items.get(run_id)

    def entry_item(self, kind: str, name: str) -> QTreeWidgetItem | None:
        parent = self.models_item if kind == "model" else self.datasets_item
        for i in range(parent.childCount()):
            if parent.child(i).text(0) == name:
                return parent.child(i)
        return None

    def select_run(self, run_id: int) -> None:
        item = self._run_items.get(run_id)
        if item is not None:
            self.tree.setCurrentItem(item)

    def selected_runs(self) -> list[int]:
        return sorted(
            int(i.data(0, RUN_ROLE))
            for i in self.tree.selectedItems()
            if i.data(0, RUN_ROLE) is not None
        )

    def selected_run(self) -> int | None:
        item = self.tree.currentItem()
        if item is not None and item.isSelected() and item.data(0, RUN_ROLE) is not None:
            return int(item.data(0, RUN_ROLE))
        runs = self.selected_runs()
        return runs[0] if runs else None

    def _selection_changed(self) -> None:
        runs = self.selected_runs()
        if len(runs) == 1:
            self.run_selected.emit(runs[0])

    # -- menus -----------------------------------------------------------------------------
    def menu_for(self, item: QTreeWidgetItem | None) -> QMenu | None:
        """The context menu of ``item`` (not shown; :meth:`_context_menu` shows it)."""
        if item is None or self.project is None:
            return None
        menu = QMenu(self)
        if item is self.runs_item:
            self._add(menu, "Delete failed runs…", self.delete_failed_runs)
            archived = menu.addAction("Show archived runs")
            archived.setCheckable(True)
            archived.setChecked(self.show_archived.isChecked())
            archived.toggled.connect(self.show_archived.setChecked)
            return menu
        run_id = item.data(0, RUN_ROLE)
        if run_id is not None:
            ids = self.selected_runs() if item.isSelected() else [int(run_id)]
            ids = ids or [int(run_id)]
            try:
                records = [self.project.run(i) for i in ids]
            except ProjectError as exc:  # deleted meanwhile (by the CLI, say)
                self.error.emit(str(exc))
                self.refresh_runs(self.project)
                return None
            n = f" {len(ids)} runs" if len(ids) > 1 else ""
            self._add(menu, f"Delete{n}…", lambda: self.delete_runs(ids))
            if any(not r.archived for r in records):
                self._add(menu, f"Archive{n}", lambda: self.set_archived(ids, True))
            if any(r.archived for r in records):
                self._add(menu, f"Unarchive{n}", lambda: self.set_archived(ids, False))
            if len(ids) == 1:
                menu.addSeparator()
                self._add(menu, "Edit note…", lambda: self.edit_note(ids[0]))
                self._add(menu, "Edit tags…", lambda: self.edit_tags(ids[0]))
            menu.addSeparator()
            self._add(menu, "Delete failed runs…", self.delete_failed_runs)
            return menu
        entry = item.data(0, ENTRY_ROLE)
        if entry is None:
            return None
        kind, name, in_project = entry
        self._add(menu, "Details…", lambda: self.show_details(kind, name))
        rename = self._add(menu, "Rename…", lambda: self.rename_entry(kind, name))
        remove = self._add(menu, "Remove from project…", lambda: self.remove_entry(kind, name))
        for action in (rename, remove):
            action.setEnabled(in_project)
            if not in_project:
                action.setToolTip("built in: not part of the project")
        folder = self._entry_folder(kind, name)
        opener = self._add(menu, "Open folder", lambda: dialogs.open_folder(folder))
        opener.setEnabled(folder is not None and folder.exists())
        return menu

    @staticmethod
    def _add(menu: QMenu, text: str, slot: Callable[[], Any]) -> QAction:
        action = menu.addAction(text)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _context_menu(self, pos: QPoint) -> None:
        menu = self.menu_for(self.tree.itemAt(pos))
        if menu is not None:
            menu.exec(self.tree.viewport().mapToGlobal(pos))
            menu.deleteLater()

    def _double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        entry = item.data(0, ENTRY_ROLE)
        if entry is not None:
            self.show_details(entry[0], entry[1])

    # -- runs ------------------------------------------------------------------------------
    def delete_runs(self, run_ids: list[int]) -> list[int]:
        """Ask, then delete ``run_ids``; a queued or running one is refused (banner).  Returns
        the ids deleted."""
        if self.project is None or not run_ids:
            return []
        what = f"run #{run_ids[0]}" if len(run_ids) == 1 else f"{len(run_ids)} runs"
        ok, _ = self.confirm(
            self,
            "Delete runs",
            f"Delete {what}: its record, metrics, log and artifacts?\n"
            "Models it registered stay. This cannot be undone.",
            "Delete",
        )
        if not ok:
            return []
        deleted, refused = [], []
        for run_id in run_ids:
            try:
                self.project.delete_run(run_id)
            except (ProjectError, OSError) as exc:
                refused.append(str(exc))
                continue
            deleted.append(run_id)
        self.refresh_runs(self.project)
        if deleted:
            self.runs_removed.emit(deleted)
            self.message.emit(f"Deleted {len(deleted)} run(s)")
        if refused:
            self.error.emit("Not deleted: " + "; ".join(refused))
        return deleted

    def delete_failed_runs(self) -> list[int]:
        """Delete every failed run (after one confirmation)."""
        if self.project is None:
            return []
        failed = [r.id for r in self.project.runs(status=["failed"])]
        if not failed:
            self.message.emit("No failed runs to delete")
            return []
        return self.delete_runs(failed)

    def set_archived(self, run_ids: list[int], archived: bool) -> None:
        if self.project is None:
            return
        refused = []
        for run_id in run_ids:
            try:
                self.project.archive_run(run_id, archived)
            except (ProjectError, ValueError) as exc:
                refused.append(str(exc))
        self.refresh_runs(self.project)
        if archived and not self.show_archived.isChecked():
            self.runs_removed.emit([i for i in run_ids if i not in self._run_items])
        if refused:
            self.error.emit("; ".join(refused))

    def edit_note(self, run_id: int) -> None:
        if self.project is None:
            return
        record = self.project.run(run_id)
        text = self.ask_text(
            self,
            f"Note of run #{run_id}",
            "What this run was for:",
            record.note or "",
            multiline=True,
        )
        if text is None:
            return
        try:
            self.project.set_note(run_id, text)
        except (ProjectError, ValueError) as exc:
            self.error.emit(f"Note not saved: {exc}")
            return
        self.update_run(self.project.run(run_id))

    def edit_tags(self, run_id: int) -> None:
        if self.project is None:
            return
        record = self.project.run(run_id)
        text = self.ask_text(
            self,
            f"Tags of run #{run_id}",
            "Tags, separated by commas (empty removes them):",
            ", ".join(record.tags or []),
        )
        if text is None:
            return
        try:
            self.project.set_tags(run_id, text.split(","))
        except (ProjectError, ValueError) as exc:
            self.error.emit(f"Tags not saved: {exc}")
            return
        self.update_run(self.project.run(run_id))

    # -- models and datasets ---------------------------------------------------------------
    def _entry_folder(self, kind: str, name: str) -> Path | None:
        if self.project is not None:
            rows = self.project.models() if kind == "model" else self.project.datasets()
            row = next((r for r in rows if r["name"] == name), None)
            if row is not None:
                return self.project.abspath(row["path"]) if row["path"] else None
        if kind == "model" and self.registry is not None:
            builtin = Catalog(None, self.registry).builtin_model(name)
            if builtin is not None:
                return Path(builtin[1])
        return None

    def show_details(self, kind: str, name: str) -> dialogs.DetailsDialog:
        """Open (or raise) the details of a model or dataset; the facts load on a worker."""
        key = (kind, name)
        dialog = self.details_dialogs.get(key)
        if dialog is None:
            dialog = dialogs.DetailsDialog(f"{kind.capitalize()} {name}", self)
            dialog.setWindowFlag(Qt.WindowType.Window)
            dialog.destroyed.connect(lambda _=None, k=key: self.details_dialogs.pop(k, None))
            self.details_dialogs[key] = dialog
            project, registry = self.project, self.registry
            fn = dataset_details if kind == "dataset" else model_details
            self.loader.load(key, lambda: fn(registry, project, name))
        dialog.show()
        dialog.raise_()
        return dialog

    def _details_loaded(self, key: tuple[str, str], details: Details) -> None:
        dialog = self.details_dialogs.get(key)
        if dialog is not None:
            dialog.set_details(details)

    def _details_failed(self, key: tuple[str, str], exc: Exception) -> None:
        dialog = self.details_dialogs.get(key)
        if dialog is not None:
            dialog.show_error(str(exc))

    def rename_entry(self, kind: str, name: str) -> str | None:
        """Ask for a new name of a project model or dataset; runs naming it follow."""
        if self.project is None:
            return None
        new = self.ask_text(self, f"Rename {kind} {name}", f"New name of the {kind}:", name)
        if new is None or new.strip() == name:
            return None
        if (
            self.registry is not None
            and kind == "dataset"
            and new.strip() in self.registry.datasets
        ):
            self.error.emit(f"{new.strip()!r} is the name of a built-in dataset; choose another")
            return None
        try:
            runs = self.project.rename_entry(kind + "s", name, new)
        except (ProjectError, ValueError, LookupError) as exc:
            self.error.emit(f"Not renamed: {exc}")
            return None
        self.refresh_models(self.project, self.registry)  # type: ignore[arg-type]
        self.inputs_changed.emit()
        self.message.emit(f"Renamed {kind} {name} to {new.strip()} ({runs} run(s) follow)")
        return new.strip()

    def remove_entry(self, kind: str, name: str) -> bool:
        """Remove a model or dataset from the project; its files are deleted only when they lie
        inside the project and the user ticks the box."""
        if self.project is None:
            return False
        folder = self._entry_folder(kind, name)
        inside = False
        if folder is not None:
            try:
                self.project.inside(folder)
                inside = folder.exists()
            except ValueError:
                inside = False
        used = sum(
            1 for r in self.project.runs() if (r.model if kind == "model" else r.dataset) == name
        )
        text = f"Remove the {kind} {name} from the project?"
        if used:
            text += f"\n{used} run(s) used it; their records stay."
        if folder is not None and not inside:
            text += f"\nIts folder {folder} lies outside the project and is not deleted."
        check = f"Also delete its folder {folder} (inside the project)" if inside else None
        ok, delete_files = self.confirm(self, f"Remove {kind}", text, "Remove", check)
        if not ok:
            return False
        try:
            self.project.remove_entry(kind + "s", name, delete_files=delete_files and inside)
        except (ProjectError, ValueError, LookupError, OSError) as exc:
            self.error.emit(f"Not removed: {exc}")
            return False
        self.refresh_models(self.project, self.registry)  # type: ignore[arg-type]
        self.inputs_changed.emit()
        self.message.emit(f"Removed {kind} {name}" + (" and its folder" if delete_files else ""))
        return True
