"""The job builder: pick a job, its model and dataset, a seed and a config, and run it.

The pickers offer only what the job can use: models of the job's family whose kind is registered,
datasets of the kinds its config reads (:func:`workbench.config.dataset_kinds`).  When a project
opens, the job picker starts on a job of the family the project's models and datasets belong to.

Submitting checks everything before the run is created: the form (types, ranges), the model and
the dataset (the engine resolves them) and the job's own ``submit_check`` (through
:meth:`workbench.jobs.Engine.submit`, e.g. a class index past the dataset's classes).  An error is
shown under the field it names (a form field or the model, dataset or seed picker), which is
scrolled into view; messages and errors clear on the next edit, job change or submit.
"""

from __future__ import annotations

from collections import Counter
from itertools import groupby

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
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui.forms import (
    ERROR_TEXT_STYLE,
    ConfigForm,
    NoWheelComboBox,
    NoWheelSpinBox,
    error_style,
    scroll_to,
)
from workbench.catalog import Catalog
from workbench.config import ConfigError, dataset_kinds
from workbench.jobs import Engine, EngineError
from workbench.registry import JobSpec, Registry
from workbench.request import RunRequest
from workbench.store import Project, ProjectError, RunRecord

__all__ = ["JobBuilder", "NO_MODEL"]

NO_MODEL = "(none: the job trains its own)"
INPUT_FIELDS = ("model", "dataset", "seed")


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
        self._refreshing = False
        self._model_family: str | None = None

        self.job_combo = NoWheelComboBox()
        self.job_combo.setObjectName("jobPicker")
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setStyleSheet("color: palette(dark);")
        self.model_combo = NoWheelComboBox()
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
        self.dataset_combo = NoWheelComboBox()
        self.dataset_combo.setObjectName("datasetPicker")
        self.seed_spin = NoWheelSpinBox()
        self.seed_spin.setObjectName("seed")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Random seed of the run (recorded; the same seed repeats it).")

        # the model, dataset and seed pickers show their errors under themselves, as form fields
        self.input_widgets: dict[str, QWidget] = {
            "model": self.model_combo,
            "dataset": self.dataset_combo,
            "seed": self.seed_spin,
        }
        self.input_errors: dict[str, QLabel] = {}
        self.input_cells: dict[str, QWidget] = {}
        top = QFormLayout()
        top.addRow("Job", self.job_combo)
        top.addRow(self.description)
        self.model_label = QLabel("Model")
        top.addRow(self.model_label, self._input_cell("model", model_row))
        self.dataset_label = QLabel("Dataset")
        top.addRow(self.dataset_label, self._input_cell("dataset", self.dataset_combo))
        top.addRow("Seed", self._input_cell("seed", self.seed_spin))

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
        self.scroll = scroll

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
        self.model_combo.currentIndexChanged.connect(lambda: self._input_edited("model"))
        self.dataset_combo.currentIndexChanged.connect(lambda: self._input_edited("dataset"))
        self.seed_spin.valueChanged.connect(lambda: self._input_edited("seed"))
        self._job_changed()
        self.set_engine(None, None)

    def _input_cell(self, name: str, widget: QWidget) -> QWidget:
        """``widget`` with an error label under it (hidden until :meth:`show_input_error`)."""
        cell = QWidget()
        lay = QVBoxLayout(cell)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        lay.addWidget(widget)
        error = QLabel()
        error.setObjectName(f"error_{name}")
        error.setWordWrap(True)
        error.setStyleSheet(ERROR_TEXT_STYLE)
        error.hide()
        lay.addWidget(error)
        self.input_errors[name], self.input_cells[name] = error, cell
        return cell

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
            form.changed.connect(self._form_edited)
            form.errors_cleared.connect(self._form_edited)
            self._forms[spec.name] = form
            self.form_holder.addWidget(form)
        form.clear_errors()  # an error left from an earlier visit is stale
        form.show()
        self.form = form
        self.clear_input_errors()
        self.refresh_inputs()

    def select_job_for_project(self) -> str | None:
        """Select a job of the family most of the project's models (then datasets) belong to,
        an unlearning job where the family has one; returns its name (``None``: no change)."""
        if self.project is None:
            return None
        families = Counter(row["family"] for row in self.project.models())
        if not families:
            families = Counter(row["family"] for row in self.project.datasets())
        if not families:
            return None
        family = families.most_common(1)[0][0]
        current = self.spec
        if current is not None and current.family == family and current.kind == "unlearn":
            return current.name
        names = [self.job_combo.itemData(i) for i in range(self.job_combo.count())]
        specs = [self.registry.jobs[n] for n in names if n in self.registry.jobs]
        candidates = [s for s in specs if s.family == family]
        if not candidates:
            return None
        choice = next((s for s in candidates if s.kind == "unlearn"), candidates[0])
        self.select_job(choice.name)
        return choice.name

    # -- models and datasets ---------------------------------------------------------------
    def refresh_inputs(self) -> None:
        """Refill the model and dataset pickers for the current job (keeps the selection)."""
        self._refreshing = True
        try:
            self._refresh_inputs()
        finally:
            self._refreshing = False

    def _refresh_inputs(self) -> None:
        spec = self.spec
        family = spec.needs_model if spec else None
        current = self.model_combo.currentData()
        self.model_combo.clear()
        if family:
            if spec is not None and spec.model_optional:
                self.model_combo.addItem(NO_MODEL, None)
            # project models a plugin of the job's family can load, then the built-in ones
            for entry in Catalog(self.project, self.registry).models(family, loadable=True):
                label = f"{entry.name} (built-in)" if entry.builtin else entry.name
                self.model_combo.addItem(label, entry.name)
            if current:
                # a folder the user chose stays for jobs of the same family; a model of another
                # family is not offered to this job
                same = family == self._model_family
                self._select_or_add(self.model_combo, current, add=same)
        self._model_family = family
        self.model_label.setVisible(bool(family))
        self.model_row.setVisible(bool(family))

        ds_family = spec.needs_dataset if spec else None
        current = self.dataset_combo.currentData()
        self.dataset_combo.clear()
        if ds_family:
            # the kinds the job's config reads (None: every kind of the family); a built-in
            # dataset's kind is its name, as the engine resolves it
            kinds = dataset_kinds(spec.config) if spec else None
            for entry in Catalog(self.project, self.registry).datasets(ds_family, kinds):
                label = f"{entry.name} — {entry.title}" if entry.builtin else entry.name
                self.dataset_combo.addItem(label, entry.name)
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
        opened = project is not None and project is not self.project
        self.engine, self.project = engine, project
        self.run_button.setEnabled(engine is not None and self.spec is not None)
        self.run_button.setToolTip("" if engine else "Open or create a project first")
        self.clear_message()
        if opened and self.select_job_for_project() is not None:
            return  # the job change refreshed the pickers
        self.refresh_inputs()

    def request(self) -> RunRequest | None:
        """What would be submitted (``None`` when no job is chosen)."""
        spec = self.spec
        if spec is None:
            return None
        return RunRequest(
            job=spec.name,
            seed=self.seed_spin.value(),
            model=self.model_combo.currentData() if spec.needs_model else None,
            dataset=self.dataset_combo.currentData() if spec.needs_dataset else None,
            config=self.form.values() if self.form else {},
        )

    def load_run(self, record: RunRecord) -> None:
        """Fill the builder with a past run's job, inputs, seed and config."""
        self.load_request(RunRequest.from_record(record))

    def load_request(self, request: RunRequest) -> None:
        """Fill the builder with a request's job, inputs, seed and config, its config brought to
        the job's current version first (``LookupError`` for an unknown job, ``ConfigError`` for
        a config made by a newer workbench; the builder is then left as it was)."""
        spec = self.registry.job(request.job)
        config = spec.migrate_config(request.config, request.config_version)
        self.select_job(spec.name)  # the canonical name of a former one
        self.seed_spin.setValue(request.seed)
        if request.model:
            self.set_model(request.model)
        if request.dataset:
            self.set_dataset(request.dataset)
        if self.form:
            self.form.set_values(dict(config))

    def submit(self) -> int | None:
        """Submit what the builder shows; returns the run id, or ``None`` after showing why not
        next to the field or picker at fault (nothing is recorded then).  The engine validates
        the request once; its errors name the field."""
        self.clear_message()
        self.clear_input_errors()
        if self.form is not None:
            self.form.clear_errors()
        if self.engine is None:
            self.show_message("Open or create a project before running a job.")
            return None
        request = self.request()
        if self.form is None or request is None:
            return None
        try:
            run_id = self.engine.submit(request)
        except ConfigError as exc:
            if exc.field in INPUT_FIELDS:
                self.show_input_error(exc.field, str(exc))
            elif exc.field in self.form.editors:
                self.form.show_error(str(exc), exc.field)
                self._point_at_error()
            else:
                self.form.show_error(str(exc))
                self.show_message(str(exc))
            return None
        except EngineError as exc:
            if exc.field in INPUT_FIELDS:
                self.show_input_error(exc.field, str(exc))
            else:
                self.show_message(str(exc))
            return None
        except (ProjectError, LookupError, ValueError, OSError) as exc:
            self.show_message(str(exc))
            return None
        self.show_message(f"Run {run_id} queued.", error=False)
        self.submitted.emit(run_id)
        return run_id

    def _point_at_error(self) -> None:
        """A short line by the Run button naming the field whose error is shown in the form."""
        field = self.form.error_field if self.form else None
        if field is not None:
            label = field.replace("_", " ")
            self.show_message(f"Not run: fix {label} (its error is shown under it).")

    def show_input_error(self, name: str, message: str) -> None:
        """Show ``message`` under the model, dataset or seed picker, scrolled into view."""
        self.clear_input_errors()
        error_style(self.input_widgets[name], True)
        self.input_errors[name].setText(message)
        self.input_errors[name].show()
        scroll_to(self.input_cells[name])
        self.show_message(f"Not run: fix the {name} (its error is shown under it).")

    def clear_input_errors(self) -> None:
        for name, widget in self.input_widgets.items():
            error_style(widget, False)
            self.input_errors[name].clear()
            self.input_errors[name].hide()

    @property
    def input_error_field(self) -> str | None:
        """The picker (model, dataset or seed) whose error is shown, if any."""
        return next((n for n, lab in self.input_errors.items() if not lab.isHidden()), None)

    def _input_edited(self, name: str) -> None:
        """A changed model, dataset or seed makes the last message and its errors stale."""
        if self._refreshing:  # a refill of the pickers (a new model, ...) is not an edit
            return
        if not self.input_errors[name].isHidden():
            self.clear_input_errors()
        self.clear_message()

    def _form_edited(self) -> None:
        """An edited form makes "Run N queued." and an error message stale."""
        if self.sender() is self.form:
            self.clear_message()

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
