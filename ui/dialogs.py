"""Small dialogs of the main window: text prompts, confirmations, model/dataset details, About.

Every dialog is a class or a builder that returns the dialog *before* it is executed, so tests
fill and accept it through its widgets; :func:`ask_text` and :func:`confirm` run them modally.
The details dialog is modeless: it shows a placeholder at once and fills itself when the facts
(computed on a worker thread by :mod:`workbench.details`) arrive.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.details import Details, Sample
from workbench.lock import LockInfo
from workbench.paths import REPO_ROOT

__all__ = [
    "AddModelDialog",
    "TextDialog",
    "DetailsDialog",
    "ask_text",
    "confirm_box",
    "confirm",
    "about_text",
    "documentation_url",
    "lock_warning_box",
    "open_folder",
]

ABOUT_PACKAGES = (
    ("Python", None),
    ("PySide6", "PySide6-Essentials"),
    ("torch", "torch"),
    ("diffusers", "diffusers"),
    ("transformers", "transformers"),
)
SAMPLE_PIXELS = 40


class TextDialog(QDialog):
    """A one-field prompt: a line (rename, tags) or a text box (note)."""

    def __init__(
        self,
        parent: QWidget | None,
        title: str,
        label: str,
        text: str = "",
        *,
        multiline: bool = False,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setObjectName("textDialog")
        self.editor: QLineEdit | QPlainTextEdit
        if multiline:
            self.editor = QPlainTextEdit(text)
            self.editor.setMinimumSize(420, 160)
        else:
            self.editor = QLineEdit(text)
            self.editor.setMinimumWidth(360)
            self.editor.selectAll()
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        hint = QLabel(label)
        hint.setWordWrap(True)
        lay.addWidget(hint)
        lay.addWidget(self.editor)
        lay.addWidget(buttons)

    def set_value(self, text: str) -> None:
        if isinstance(self.editor, QPlainTextEdit):
            self.editor.setPlainText(text)
        else:
            self.editor.setText(text)

    def value(self) -> str:
        if isinstance(self.editor, QPlainTextEdit):
            return self.editor.toPlainText()
        return self.editor.text()


PICKLE_WARNING = (
    "Pickle files can run arbitrary code when they are loaded. Allow them only for a file you "
    "trust. The workbench reads them with torch.load(weights_only=True), which refuses pickles "
    "that need code, and stores this choice with the model."
)


class AddModelDialog(QDialog):
    """File > Add model folder…: the folder, its name in the project, and the per-model
    *Allow pickle weights* switch (off by default; a warning shows while it is ticked)."""

    def __init__(self, parent: QWidget | None = None, folder: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Add model folder")
        self.setObjectName("addModelDialog")
        self.folder_edit = QLineEdit(folder)
        self.folder_edit.setObjectName("modelFolder")
        self.folder_edit.setPlaceholderText("a folder with config.json and weights")
        self.folder_edit.setMinimumWidth(380)
        self.folder_edit.textChanged.connect(self._folder_changed)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        self.name_edit = QLineEdit(Path(folder).name if folder else "")
        self.name_edit.setObjectName("modelName")
        self.name_edit.setPlaceholderText("the folder's name")
        self.allow_pickle = QCheckBox("Allow pickle weights (.bin, .pt, .pth, .ckpt)")
        self.allow_pickle.setObjectName("allowPickle")
        self.allow_pickle.setToolTip(PICKLE_WARNING)
        self.warning = QLabel("⚠ " + PICKLE_WARNING)
        self.warning.setObjectName("pickleWarning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(
            "QLabel { background: #fff4e0; color: #7a4500; border: 1px solid #e0a040;"
            " border-radius: 4px; padding: 6px; }"
        )
        self.warning.setVisible(False)
        self.allow_pickle.toggled.connect(self.warning.setVisible)
        self.allow_pickle.toggled.connect(lambda _on: self.adjustSize())
        form = QFormLayout()
        form.addRow("Folder", row)
        form.addRow("Name", self.name_edit)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Add model")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.allow_pickle)
        lay.addWidget(self.warning)
        lay.addWidget(self.buttons)
        self._folder_changed(folder)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "A model folder (config.json + weights)", self.folder_edit.text()
        )
        if path:
            self.folder_edit.setText(path)

    def _folder_changed(self, text: str) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(text.strip()))
        self.name_edit.setPlaceholderText(Path(text).name if text.strip() else "the folder's name")

    def values(self) -> tuple[str, str, bool]:
        """(folder, name (the folder's name when left empty), allow pickle)."""
        folder = self.folder_edit.text().strip()
        name = self.name_edit.text().strip() or Path(folder).name
        return folder, name, self.allow_pickle.isChecked()


def ask_text(
    parent: QWidget | None, title: str, label: str, text: str = "", *, multiline: bool = False
) -> str | None:
    """Run a :class:`TextDialog`; the text, or None when cancelled."""
    dialog = TextDialog(parent, title, label, text, multiline=multiline)
    return dialog.value() if dialog.exec() == QDialog.DialogCode.Accepted else None


def confirm_box(
    parent: QWidget | None, title: str, text: str, ok_text: str, check: str | None = None
) -> QMessageBox:
    """A question box with ``ok_text`` / Cancel (Cancel is the default) and an optional check
    box (``box.checkBox()``)."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, parent=parent)
    box.setObjectName("confirmBox")
    ok = box.addButton(ok_text, QMessageBox.ButtonRole.AcceptRole)
    ok.setObjectName("confirmOk")
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    if check:
        box.setCheckBox(QCheckBox(check, box))  # parented: the box owns it
    return box


def confirm(
    parent: QWidget | None, title: str, text: str, ok_text: str, check: str | None = None
) -> tuple[bool, bool]:
    """Run a :func:`confirm_box`: (accepted, check box ticked)."""
    box = confirm_box(parent, title, text, ok_text, check)
    box.exec()
    accepted = box.clickedButton() is not None and box.buttonRole(box.clickedButton()) == (
        QMessageBox.ButtonRole.AcceptRole
    )
    return accepted, bool(box.checkBox() and box.checkBox().isChecked())


def open_folder(path: str | Path) -> bool:
    """Show ``path`` in the desktop's file manager."""
    return open_url(QUrl.fromLocalFile(str(path)))


# -- details -------------------------------------------------------------------------------------
def sample_pixmap(sample: Sample, size: int = SAMPLE_PIXELS) -> QPixmap:
    """A sample's pixels scaled to ``size`` (nearest neighbour, so 8x8 digits stay crisp)."""
    arr = np.ascontiguousarray(sample.image)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        image = QImage(arr.data, w, h, w, QImage.Format.Format_Grayscale8)
    else:
        image = QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy()).scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
    )


class DetailsDialog(QDialog):
    """Facts, class counts (with bars) and a grid of samples of a model or dataset (modeless)."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setObjectName("detailsDialog")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.resize(860, 600)
        self.details: Details | None = None
        self.status = QLabel("Loading…")
        self.status.setObjectName("detailsStatus")
        self.facts = QFormLayout()
        self.facts.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        facts_box = QGroupBox("Facts")
        facts_box.setLayout(self.facts)
        self.classes = QTableWidget(0, 3)
        self.classes.setObjectName("classCounts")
        self.classes.setHorizontalHeaderLabels(["Class", "Examples", ""])
        self.classes.verticalHeader().hide()
        self.classes.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.classes.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.classes.verticalHeader().setDefaultSectionSize(20)
        self.classes_box = QGroupBox("Class counts")
        QVBoxLayout(self.classes_box).addWidget(self.classes)
        self.grid = QGridLayout()
        self.grid.setSpacing(3)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        grid_holder = QWidget()
        grid_holder.setLayout(self.grid)
        self.samples_box = QGroupBox("Samples")
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(grid_holder)
        QVBoxLayout(self.samples_box).addWidget(scroll)
        self.notes = QLabel()
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: palette(mid);")
        self.open_button = QPushButton("Open folder")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self._open)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        left = QVBoxLayout()
        left.addWidget(facts_box)
        left.addWidget(self.classes_box, 1)
        body = QHBoxLayout()
        body.addLayout(left, 1)
        body.addWidget(self.samples_box, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.status)
        lay.addLayout(body, 1)
        lay.addWidget(self.notes)
        lay.addLayout(buttons)
        self.classes_box.hide()
        self.samples_box.hide()

    def show_error(self, message: str) -> None:
        self.status.setText(f"Could not read the details: {message}")
        self.status.show()

    def set_details(self, details: Details) -> None:
        self.details = details
        self.setWindowTitle(details.title)
        self.status.hide()
        while self.facts.rowCount():
            self.facts.removeRow(0)
        for key, value in details.facts:
            label = QLabel(value)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.facts.addRow(f"{key}:", label)
        self.classes.setRowCount(len(details.classes))
        top = max((n for _, n in details.classes), default=0)
        for row, (name, count) in enumerate(details.classes):
            self.classes.setItem(row, 0, QTableWidgetItem(name))
            item = QTableWidgetItem()
            item.setData(Qt.ItemDataRole.DisplayRole, count)
            self.classes.setItem(row, 1, item)
            bar = QProgressBar()
            bar.setRange(0, max(top, 1))
            bar.setValue(count)
            bar.setTextVisible(False)
            bar.setMaximumHeight(12)
            self.classes.setCellWidget(row, 2, bar)
        self.classes.resizeColumnsToContents()
        self.classes_box.setVisible(bool(details.classes))
        self._fill_samples(details.samples)
        self.notes.setText("\n".join(details.notes))
        self.notes.setVisible(bool(details.notes))
        self.open_button.setEnabled(details.folder is not None and details.folder.exists())

    def _fill_samples(self, samples: list[Sample]) -> None:
        while self.grid.count():
            widget = self.grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        rows: dict[str, int] = {}
        columns: dict[str, int] = {}
        for sample in samples:  # one row per class, its samples side by side
            row = rows.setdefault(sample.label, len(rows))
            column = columns.get(sample.label, 0)
            columns[sample.label] = column + 1
            if column == 0:
                name = QLabel(sample.label)
                name.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.grid.addWidget(name, row, 0)
            cell = QLabel()
            cell.setObjectName("sampleCell")
            cell.setPixmap(sample_pixmap(sample))
            cell.setToolTip(f"class {sample.label}")
            self.grid.addWidget(cell, row, column + 1)
        self.samples_box.setVisible(bool(samples))

    def sample_count(self) -> int:
        return sum(
            1
            for i in range(self.grid.count())
            if self.grid.itemAt(i).widget() is not None
            and self.grid.itemAt(i).widget().objectName() == "sampleCell"
        )

    def _open(self) -> None:
        if self.details is not None and self.details.folder is not None:
            open_folder(self.details.folder)


# -- help ----------------------------------------------------------------------------------------
def package_versions() -> list[tuple[str, str]]:
    """(name, version) of Python and the main libraries, read from package metadata only (torch
    is never imported)."""
    out = []
    for label, dist in ABOUT_PACKAGES:
        if dist is None:
            out.append((label, platform.python_version()))
            continue
        try:
            out.append((label, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            out.append((label, "not installed"))
    return out


def app_version() -> str:
    try:
        return metadata.version("unlearning-workbench")
    except metadata.PackageNotFoundError:
        import workbench

        return workbench.__version__


def about_text() -> str:
    """The About box's text (rich text)."""
    rows = "".join(
        f"<tr><td>{name}</td><td>{version}</td></tr>" for name, version in package_versions()
    )
    return (
        f"<h3>Unlearning Workbench {app_version()}</h3>"
        "<p>A desktop workbench for machine-unlearning research: train, unlearn, attack and "
        "compare classifiers, language models and diffusion models.</p>"
        f"<table cellspacing='6'>{rows}</table>"
    )


def documentation_url() -> QUrl | None:
    """The local documentation: the ``docs/`` folder of the installation, else its README."""
    for candidate in (REPO_ROOT / "docs", REPO_ROOT / "README.md"):
        if candidate.exists():
            return QUrl.fromLocalFile(str(candidate))
    return None


# -- the second-window warning -------------------------------------------------------------------
def lock_warning_text(project: str, holders: list[LockInfo]) -> str:
    where = "; ".join(h.describe() for h in holders)
    return (
        f"Project {project} is open in another window ({where}). Opening it twice can mix up "
        "runs: two windows would each run and record jobs in the same catalogue."
    )


def lock_warning_box(parent: QWidget | None, project: str, holders: list[LockInfo]) -> QMessageBox:
    """The warning before opening a project another window holds: Open anyway / Cancel."""
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        "Project already open",
        lock_warning_text(project, holders),
        parent=parent,
    )
    box.setObjectName("lockWarning")
    box.addButton("Open anyway", QMessageBox.ButtonRole.AcceptRole).setObjectName("openAnyway")
    box.setDefaultButton(box.addButton(QMessageBox.StandardButton.Cancel))
    return box


def ask_open_locked(parent: QWidget | None, project: str, holders: list[LockInfo]) -> bool:
    """Run :func:`lock_warning_box`; True for Open anyway."""
    box = lock_warning_box(parent, project, holders)
    box.exec()
    clicked = box.clickedButton()
    return clicked is not None and box.buttonRole(clicked) == QMessageBox.ButtonRole.AcceptRole


OpenLockedDecision = Callable[[QWidget | None, str, list[LockInfo]], bool]


def open_url(url: QUrl) -> bool:
    """Open ``url`` with the desktop (one place, so tests can stand in for the desktop)."""
    return QDesktopServices.openUrl(url)
