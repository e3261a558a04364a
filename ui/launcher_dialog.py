"""Run → Launcher…: where the project's runs execute (this machine, a Ray cluster, Slurm).

The choice is the project's setting (``<project>/settings.json``, :mod:`workbench.launchers`), the
same one ``workbench launcher`` shows and sets; runs submitted after a change go to the new
launcher, runs already running keep theirs.  A remote run shows in the job monitor like a local one
(its title names the launcher), with the same Cancel.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QMenu,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from workbench.launchers import (
    LauncherError,
    LauncherSettings,
    load_settings,
    make_launcher,
    save_settings,
)

__all__ = ["LauncherDialog", "apply_launcher_settings", "edit_launcher", "install_launcher_action"]

KIND_LABELS = {
    "local": "This machine",
    "ray": "Ray cluster (Ray Jobs)",
    "slurm": "Slurm cluster (submitit)",
}


class LauncherDialog(QDialog):
    """The launcher settings of one project; :meth:`accept` refuses settings that do not
    validate and says why under the form."""

    def __init__(self, settings: LauncherSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Launcher")
        self.setMinimumWidth(480)
        self._env = dict(settings.env)
        self.kind = QComboBox()
        for kind, label in KIND_LABELS.items():
            self.kind.addItem(label, kind)
        self.kind.setCurrentIndex(list(KIND_LABELS).index(settings.kind))
        self.kind.currentIndexChanged.connect(self._kind_changed)

        self.ray_box = QGroupBox("Ray")
        ray_form = QFormLayout(self.ray_box)
        self.ray_address = QLineEdit(settings.ray_address)
        self.ray_address.setPlaceholderText("http://head-node:8265 (the Ray dashboard)")
        ray_form.addRow("Address", self.ray_address)

        self.slurm_box = QGroupBox("Slurm")
        slurm_form = QFormLayout(self.slurm_box)
        self.slurm_partition = QLineEdit(settings.slurm_partition)
        self.slurm_partition.setPlaceholderText("the cluster's default")
        self.slurm_cluster = QComboBox()
        self.slurm_cluster.addItems(["slurm", "local", "auto"])
        self.slurm_cluster.setCurrentText(settings.slurm_cluster)
        self.slurm_folder = QLineEdit(settings.slurm_folder)
        self.slurm_folder.setPlaceholderText("<project>/remote/submitit")
        self.slurm_timeout = QSpinBox()
        self.slurm_timeout.setRange(1, 60 * 24 * 14)
        self.slurm_timeout.setSuffix(" min")
        self.slurm_timeout.setValue(settings.slurm_timeout_min)
        self.slurm_gpus = QSpinBox()
        self.slurm_gpus.setRange(0, 64)
        self.slurm_gpus.setValue(settings.slurm_gpus_per_node)
        self.slurm_cpus = QSpinBox()
        self.slurm_cpus.setRange(1, 512)
        self.slurm_cpus.setValue(settings.slurm_cpus_per_task)
        slurm_form.addRow("Partition", self.slurm_partition)
        slurm_form.addRow("Cluster", self.slurm_cluster)
        slurm_form.addRow("Job folder", self.slurm_folder)
        slurm_form.addRow("Time limit", self.slurm_timeout)
        slurm_form.addRow("GPUs per node", self.slurm_gpus)
        slurm_form.addRow("CPUs per task", self.slurm_cpus)

        self.shared_box = QGroupBox("Both clusters")
        shared_form = QFormLayout(self.shared_box)
        self.run_root = QLineEdit(settings.run_root)
        self.run_root.setPlaceholderText("<project>/remote (must be visible to the cluster)")
        self.python = QLineEdit(settings.python)
        self.python.setPlaceholderText("this Python (the same path on the cluster)")
        shared_form.addRow("Run folders", self.run_root)
        shared_form.addRow("Python", self.python)

        self.note = QLabel(
            "Remote runs write to a run folder; this window copies their results into the "
            "project as they arrive (only this machine writes the catalogue)."
        )
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(mid);")
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.hide()
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        top = QFormLayout()
        top.addRow("Runs execute on", self.kind)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        for widget in (self.ray_box, self.slurm_box, self.shared_box, self.note, self.error):
            layout.addWidget(widget)
        layout.addWidget(buttons)
        self._kind_changed()

    def _kind_changed(self) -> None:
        kind = self.kind.currentData()
        self.ray_box.setVisible(kind == "ray")
        self.slurm_box.setVisible(kind == "slurm")
        self.shared_box.setVisible(kind != "local")
        self.error.hide()
        self.adjustSize()

    def settings(self) -> LauncherSettings:
        """What the form says (not validated)."""
        return LauncherSettings(
            kind=str(self.kind.currentData()),
            ray_address=self.ray_address.text().strip(),
            slurm_folder=self.slurm_folder.text().strip(),
            slurm_cluster=self.slurm_cluster.currentText(),
            slurm_partition=self.slurm_partition.text().strip(),
            slurm_timeout_min=self.slurm_timeout.value(),
            slurm_gpus_per_node=self.slurm_gpus.value(),
            slurm_cpus_per_task=self.slurm_cpus.value(),
            run_root=self.run_root.text().strip(),
            python=self.python.text().strip(),
            env=dict(self._env),
        )

    def accept(self) -> None:
        try:
            self.settings().validate()
        except LauncherError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return
        super().accept()


def apply_launcher_settings(window: Any, settings: LauncherSettings) -> bool:
    """Save ``settings`` as the open project's and send new runs to that launcher; an error goes
    to the window's banner (False)."""
    if window.project is None or window.engine is None:
        return False
    try:
        save_settings(window.project.root, settings)
        launcher = make_launcher(settings, window.project.root)
    except (LauncherError, OSError) as exc:
        window.show_error(f"Launcher: {exc}")
        return False
    window.engine.set_launcher(launcher)
    where = launcher.describe() if launcher is not None else "this machine"
    window.statusBar().showMessage(f"New runs execute on {where}", 8000)
    return True


def edit_launcher(window: Any) -> LauncherDialog | None:
    """Run → Launcher…: show the dialog for the open project and apply what it gives."""
    if window.project is None:
        return None
    try:
        current = load_settings(window.project.root)
    except LauncherError as exc:  # a broken settings file: say so and start from local
        window.show_error(f"Launcher: {exc}")
        current = LauncherSettings()
    dialog = LauncherDialog(current, window)
    if dialog.exec() == QDialog.DialogCode.Accepted:
        apply_launcher_settings(window, dialog.settings())
    return dialog


def install_launcher_action(window: Any, menu: QMenu) -> QAction:
    """Add Run → Launcher… to ``menu``."""
    action = QAction("&Launcher…", window)
    action.setToolTip("Where runs execute: this machine, a Ray cluster or Slurm")
    action.triggered.connect(lambda _=False: edit_launcher(window))
    menu.addSeparator()
    menu.addAction(action)
    window.launcher_action = action
    return action
