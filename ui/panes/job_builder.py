"""The job builder: pick a job, its model and dataset, a seed and a config, and run it.

Submission goes through :meth:`workbench.jobs.Engine.submit`; its errors (unknown model, bad
config value, ...) are shown as readable text in the builder, with the offending field highlighted.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui.forms import ConfigForm
from workbench.config import ConfigError
from workbench.jobs import Engine, EngineError
from workbench.registry import JobSpec, Registry
from workbench.store import Project, ProjectError, RunRecord

__all__ = ["JobBuilder"]


class JobBuilder(QWidget):
    """Builds and submits runs; emits ``submitted(run_id)``."""

    submitted = Signal(int)

    def __init__(self, registry: Registry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.registry = registry
        self.engine: Engine | None = None
        self.project: Project | None = None
        self.form: ConfigForm | None = None
        self._forms: dict[str, ConfigForm] = {}

        self.job_combo = QComboBox()
        self.job_combo.setObjectName("jobPicker")
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setStyleSheet("color: palette(dark);")
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("modelPicker")
        self.model_browse = QToolButton()
        self.model_browse.setText("Folder…")
        self.model_browse.setToolTip("Use a model folder on disk")
        self.model_browse.clicked.connect(self._browse_model)
        model_row = QWidget()
        lay = QHBoxLayout(model_row)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.model_combo, 1)
        lay.addWidget(self.model_browse)
        self.model_row = model_row
        self.dataset_combo = QComboBox()
        self.dataset_combo.setObjectName("datasetPicker")
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("seed")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Random seed of the run (recorded; the same seed repeats it).")

        top = QFormLayout()
        top.addRow("Job", self.job_combo)
        top.addRow(self.description)
        self.model_label = QLabel("Model")
        top.addRow(self.model_label, model_row)
        self.dataset_label = QLabel("Dataset")
        top.addRow(self.dataset_label, self.dataset_combo)
        top.addRow("Seed", self.seed_spin)

        self.form_holder = QVBoxLayout()
        self.form_holder.setContentsMargins(0, 0, 0, 0)
        inner = QWidget()
        inner_layout = QVBoxLayout(inner)
        inner_layout.setContentsMargins(4, 4, 4, 4)
        inner_layout.addLayout(top)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        inner_layout.addWidget(line)
        inner_layout.addLayout(self.form_holder)
        inner_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(inner)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.message = QLabel()
        self.message.setObjectName("builderMessage")
        self.message.setWordWrap(True)
        self.message.hide()
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("runButton")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.submit)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(2, 2, 2, 2)
        outer.addWidget(scroll, 1)
        outer.addWidget(self.message)
        outer.addWidget(self.run_button)

        self._fill_jobs()
        self.job_combo.currentIndexChanged.connect(self._job_changed)
        self._job_changed()
        self.set_engine(None, None)

    # -- jobs ------------------------------------------------------------------------------
    def _fill_jobs(self) -> None:
        model = self.job_combo.model()
        assert isinstance(model, QStandardItemModel)
        specs = sorted(self.registry.jobs.values(), key=lambda s: (s.family, s.kind, s.title))
        first = -1
        for (family, kind), group in groupby(specs, key=lambda s: (s.family, s.kind)):
            self.job_combo.addItem(f"{family} · {kind}")
            header = model.item(self.job_combo.count() - 1)
            header.setEnabled(False)
            font = header.font()
            font.setBold(True)
            header.setFont(font)
            for spec in group:
                self.job_combo.addItem(f"   {spec.title}", spec.name)
                self.job_combo.setItemData(
                    self.job_combo.count() - 1, spec.description, Qt.ItemDataRole.ToolTipRole
                )
                if first < 0:
                    first = self.job_combo.count() - 1
        if first >= 0:
            self.job_combo.setCurrentIndex(first)

    @property
    def spec(self) -> JobSpec | None:
        name = self.job_combo.currentData()
        return self.registry.jobs.get(name) if name else None

    def select_job(self, name: str) -> None:
        index = self.job_combo.findData(name)
        if index < 0:
            raise LookupError(f"no job {name!r} in the builder")
        self.job_combo.setCurrentIndex(index)

    def _job_changed(self) -> None:
        spec = self.spec
        if self.form is not None:
            self.form.hide()
        self.form = None
        self.clear_message()
        if spec is None:
            self.description.setText("No jobs are installed.")
            return
        self.description.setText(f"{spec.description}\n({spec.name})")
        form = self._forms.get(spec.name)
        if form is None:
            form = ConfigForm(spec.config, job=spec.name)
            self._forms[spec.name] = form
            self.form_holder.addWidget(form)
        form.show()
        self.form = form
        self.refresh_inputs()

    # -- models and datasets ---------------------------------------------------------------
    def refresh_inputs(self) -> None:
        """Refill the model and dataset pickers for the current job (keeps the selection)."""
        spec = self.spec
        family = spec.needs_model if spec else None
        current = self.model_combo.currentData()
        self.model_combo.clear()
        if family:
            names = set()
            if spec is not None and spec.model_optional:
                self.model_combo.addItem("(none: the job trains its own)", None)
            for row in self.project.models() if self.project else []:
                if row["family"] == family:
                    names.add(row["name"])
                    self.model_combo.addItem(row["name"], row["name"])
            for kind in self.registry.model_kinds.values():
                if kind.family == family:
                    for name, _path in kind.builtin:
                        if name not in names:
                            self.model_combo.addItem(f"{name} (built-in)", name)
            if current:
                self._select_or_add(self.model_combo, current)
        self.model_label.setVisible(bool(family))
        self.model_row.setVisible(bool(family))

        ds_family = spec.needs_dataset if spec else None
        current = self.dataset_combo.currentData()
        self.dataset_combo.clear()
        if ds_family:
            names = set()
            for ds in self.registry.datasets.values():
                if ds.family == ds_family and ds.builtin:  # the others are kinds, not datasets
                    names.add(ds.name)
                    self.dataset_combo.addItem(f"{ds.name} — {ds.title}", ds.name)
            for row in self.project.datasets() if self.project else []:
                if row["family"] == ds_family and row["name"] not in names:
                    self.dataset_combo.addItem(row["name"], row["name"])
            if current:
                self._select_or_add(self.dataset_combo, current, add=False)
        self.dataset_label.setVisible(bool(ds_family))
        self.dataset_combo.setVisible(bool(ds_family))

    @staticmethod
    def _select_or_add(combo: QComboBox, value: str, add: bool = True) -> None:
        index = combo.findData(value)
        if index < 0 and add:
            combo.addItem(value, value)
            index = combo.count() - 1
        if index >= 0:
            combo.setCurrentIndex(index)

    def _browse_model(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a model folder")
        if path:
            self.set_model(path)

    def set_model(self, ref: str) -> None:
        """Select a model by name, or add a folder path to the picker and select it."""
        self._select_or_add(self.model_combo, ref)

    def set_dataset(self, name: str) -> None:
        self._select_or_add(self.dataset_combo, name)

    # -- engine and submission -------------------------------------------------------------
    def set_engine(self, engine: Engine | None, project: Project | None) -> None:
        self.engine, self.project = engine, project
        self.run_button.setEnabled(engine is not None and self.spec is not None)
        self.run_button.setToolTip("" if engine else "Open or create a project first")
        self.refresh_inputs()

    def request(self) -> dict[str, Any]:
        """What would be submitted: ``{job, seed, model, dataset, config}``."""
        spec = self.spec
        return {
            "job": spec.name if spec else None,
            "seed": self.seed_spin.value(),
            "model": self.model_combo.currentData() if spec and spec.needs_model else None,
            "dataset": self.dataset_combo.currentData() if spec and spec.needs_dataset else None,
            "config": self.form.values() if self.form else {},
        }

    def load_run(self, record: RunRecord) -> None:
        """Fill the builder with a past run's job, inputs, seed and config."""
        self.select_job(record.job)
        self.seed_spin.setValue(record.seed)
        if record.model:
            self.set_model(record.model)
        if record.dataset:
            self.set_dataset(record.dataset)
        if self.form:
            self.form.set_values(record.config)

    def submit(self) -> int | None:
        """Validate and submit; returns the run id, or ``None`` after showing why not."""
        self.clear_message()
        if self.engine is None:
            self.show_message("Open or create a project before running a job.")
            return None
        if self.form is None or self.form.validate() is None:
            return None
        req = self.request()
        try:
            run_id = self.engine.submit(
                req["job"],
                req["config"],
                seed=req["seed"],
                model=req["model"],
                dataset=req["dataset"],
            )
        except ConfigError as exc:
            if exc.field == "seed":
                self.show_message(str(exc))
            else:
                self.form.show_error(str(exc), exc.field)
            return None
        except (EngineError, ProjectError, LookupError, ValueError, OSError) as exc:
            self.show_message(str(exc))
            return None
        self.show_message(f"Run {run_id} queued.", error=False)
        self.submitted.emit(run_id)
        return run_id

    def show_message(self, text: str, *, error: bool = True) -> None:
        self.message.setText(text)
        self.message.setProperty("error", error)
        self.message.setStyleSheet(
            "color: #a94442; background: #f2dede; padding: 4px;"
            if error
            else "color: #2d6a3e; padding: 4px;"
        )
        self.message.show()

    def clear_message(self) -> None:
        self.message.clear()
        self.message.setProperty("error", False)
        self.message.hide()
