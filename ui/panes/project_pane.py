"""The project tree: Models (project and built-in), Datasets (registry and project), Runs."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from ui.icons import status_icon
from workbench.registry import Registry
from workbench.store import Project, RunRecord

__all__ = ["ProjectPane"]

RUN_ROLE = Qt.ItemDataRole.UserRole + 1


class ProjectPane(QWidget):
    """Tree of the open project's models, datasets and runs; emits ``run_selected(run_id)``."""

    run_selected = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setObjectName("projectTree")
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Name", "Detail"])
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setStretchLastSection(True)
        self.tree.setColumnWidth(0, 190)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
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
        self.refresh_models(project, registry)
        self.refresh_runs(project)

    def refresh_models(self, project: Project | None, registry: Registry) -> None:
        self.models_item.takeChildren()
        self.datasets_item.takeChildren()
        seen = set()
        for row in project.models() if project else []:
            seen.add(row["name"])
            item = QTreeWidgetItem([row["name"], row["kind"]])
            item.setToolTip(0, f"{row['name']}\n{row['path']}\nfrom run {row['source_run']}")
            self.models_item.addChild(item)
        for kind in registry.model_kinds.values():
            for name, path in kind.builtin:
                if name not in seen:
                    item = QTreeWidgetItem([name, f"{kind.name} (built-in)"])
                    item.setToolTip(0, f"{kind.title}\n{path}")
                    self.models_item.addChild(item)
        names = set()
        for ds in registry.datasets.values():
            if not ds.builtin:  # a kind of user dataset (File > Add dataset), not a dataset
                continue
            names.add(ds.name)
            item = QTreeWidgetItem([ds.name, f"{ds.family} (built-in)"])
            item.setToolTip(0, f"{ds.title}\n{ds.description}")
            self.datasets_item.addChild(item)
        for row in project.datasets() if project else []:
            if row["name"] not in names:
                item = QTreeWidgetItem([row["name"], row["family"]])
                item.setToolTip(0, row["path"] or row["name"])
                self.datasets_item.addChild(item)
        self.models_item.setText(1, str(self.models_item.childCount()))
        self.datasets_item.setText(1, str(self.datasets_item.childCount()))

    def refresh_runs(self, project: Project | None) -> None:
        runs = project.runs() if project else []
        wanted = {r.id for r in runs}
        for run_id in list(self._run_items):
            if run_id not in wanted:
                self.runs_item.removeChild(self._run_items.pop(run_id))
        for run in runs:
            self.update_run(run)
        self.runs_item.setText(1, str(len(runs)))

    def update_run(self, run: RunRecord) -> None:
        item = self._run_items.get(run.id)
        if item is None:
            item = QTreeWidgetItem()
            item.setData(0, RUN_ROLE, run.id)
            self.runs_item.insertChild(0, item)  # newest first
            self._run_items[run.id] = item
        if run.problems:  # a malformed row is listed as malformed, never breaks the list
            item.setText(0, f"#{run.id} {run.job or '(unreadable)'}")
            item.setText(1, "malformed")
            item.setIcon(0, status_icon("failed"))
            tip = run.describe_problems()
            item.setToolTip(0, tip)
            item.setToolTip(1, tip)
            return
        item.setText(0, f"#{run.id} {run.job}")
        item.setText(1, run.status)
        item.setIcon(0, status_icon(run.status))
        tip = f"run {run.id}: {run.job}\nstatus: {run.status}"
        if run.status_text:
            tip += f" ({run.status_text})"
        item.setToolTip(0, tip)
        item.setToolTip(1, tip)

    # -- selection -------------------------------------------------------------------------
    def run_ids(self) -> list[int]:
        return sorted(self._run_items)

    def run_status(self, run_id: int) -> str | None:
        item = self._run_items.get(run_id)
        return item.text(1) if item else None

    def select_run(self, run_id: int) -> None:
        item = self._run_items.get(run_id)
        if item is not None:
            self.tree.setCurrentItem(item)

    def selected_run(self) -> int | None:
        items = self.tree.selectedItems()
        if items and items[0].data(0, RUN_ROLE) is not None:
            return int(items[0].data(0, RUN_ROLE))
        return None

    def _selection_changed(self) -> None:
        run_id = self.selected_run()
        if run_id is not None:
            self.run_selected.emit(run_id)
