"""Forms and the job builder (issue 11): the wheel scrolls the form, errors sit by their field and
are scrolled to, checklists for list fields with choices, pickers that offer only what the job can
use, checks at submit before any run is recorded, a job picker that fits the project, and
messages that do not outlive the next action."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea, QWidget

from ui.forms import Checklist, ConfigForm, NoWheelComboBox, NoWheelSpinBox
from ui.panes.job_builder import NO_MODEL, JobBuilder
from workbench.config import ConfigError, param
from workbench.jobs import Engine
from workbench.registry import DatasetSpec, JobSpec, Registry, get_registry
from workbench.store import Project

HERE = "tests.ui.test_forms_v2"


@dataclass
class LongForm:
    """Enough fields that the form scrolls in a short window."""

    a: int = param(1, "A.", range=(0, 100))
    b: int = param(2, "B.", range=(0, 100))
    c: int = param(3, "C.", range=(0, 100))
    d: int = param(4, "D.", range=(0, 100))
    e: int = param(5, "E.", range=(0, 100))
    f: int = param(6, "F.", range=(0, 100))
    g: int = param(7, "G.", range=(0, 100))
    mode: str = param("x", "A choice.", choices=("x", "y", "z"))
    attacks: list[str] = param(["svc", "lira"], "Attacks.", choices=("svc", "umia", "lira"))
    last: int = param(3, "The class to forget.", range=(0, 100))


def _wheel(widget: QWidget, delta: int = -120) -> None:
    """A mouse-wheel notch over the middle of ``widget`` (delivered like a real one: an ignored
    event goes on to the parents)."""
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(
        centre,
        QPointF(widget.mapToGlobal(widget.rect().center())),
        QPoint(0, 0),
        QPoint(0, delta),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def _scrolled_form(qtbot, config: type = LongForm) -> tuple[QScrollArea, ConfigForm]:
    form = ConfigForm(config, job="demo")
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(form)
    scroll.resize(420, 160)
    qtbot.addWidget(scroll)
    scroll.show()
    qtbot.waitExposed(scroll)
    return scroll, form


# -- the wheel ------------------------------------------------------------------------------------
def test_wheel_over_an_unfocused_field_scrolls_the_form(qtbot) -> None:
    scroll, form = _scrolled_form(qtbot)
    spin, combo = form.editors["b"].input, form.editors["mode"].input
    assert isinstance(spin, NoWheelSpinBox) and isinstance(combo, NoWheelComboBox)
    assert spin.focusPolicy() == Qt.FocusPolicy.StrongFocus
    bar = scroll.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == 0
    _wheel(spin)
    _wheel(combo)
    assert spin.value() == 2 and combo.currentData() == "x"
    assert bar.value() > 0  # the scroll area got the wheel instead
    # with focus the field takes the wheel as usual
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    _wheel(spin, delta=120)
    assert spin.value() == 3


# -- errors next to their field -------------------------------------------------------------------
def test_error_shows_under_its_field_and_is_scrolled_to(qtbot) -> None:
    scroll, form = _scrolled_form(qtbot)
    bar = scroll.verticalScrollBar()
    form.show_error("config field 'last': 50 is out of range", "last")
    label = form.field_errors["last"]
    assert label.isVisible() and "out of range" in label.text()
    assert not form.error_label.isVisible()  # nothing at the top, off-screen
    assert form.editors["last"].input.property("error") is True
    qtbot.waitUntil(lambda: bar.value() > 0)
    viewport = scroll.viewport()
    top = label.mapTo(viewport, QPoint(0, 0)).y()
    assert top >= 0 and top + label.height() <= viewport.height()
    # the help under the field starts below the error, not on top of it
    help_label = form.cells["last"].layout().itemAt(2).widget()
    assert help_label.geometry().top() >= label.geometry().bottom()
    # editing the field clears its error
    form.editors["last"].input.setValue(4)
    assert not label.isVisible() and form.error_field is None


# -- checklists -----------------------------------------------------------------------------------
def test_list_with_choices_is_a_checklist_that_round_trips(qtbot) -> None:
    form = ConfigForm(LongForm)
    qtbot.addWidget(form)
    checklist = form.editors["attacks"].input
    assert isinstance(checklist, Checklist)
    assert list(checklist.boxes) == ["svc", "umia", "lira"]
    assert form.values()["attacks"] == ["svc", "lira"]
    form.set_values({"attacks": ["umia"]})
    assert [c for c, box in checklist.boxes.items() if box.isChecked()] == ["umia"]
    checklist.boxes["lira"].setChecked(True)
    assert form.values()["attacks"] == ["umia", "lira"]  # in the order of the choices
    assert form.validate().attacks == ["umia", "lira"]
    # the core refuses an item outside the choices (a config file, the CLI)
    from workbench.config import validate

    with pytest.raises(ConfigError) as info:
        validate(LongForm, {"attacks": ["svc", "nope"]})
    assert info.value.field == "attacks" and "'nope' is not allowed" in str(info.value)


def test_registered_method_and_attack_lists_are_checklists(qtbot) -> None:
    registry = get_registry()
    form = ConfigForm(registry.job("classifier.compare").config)
    qtbot.addWidget(form)
    from backends.classifier.methods import METHODS

    assert list(form.editors["methods"].input.boxes) == list(METHODS)
    assert form.editors["attacks"].input.value() == ["svc_mia", "umia", "mia_nn", "ulira", "apollo"]
    skeb = ConfigForm(registry.job("llm.skeb").config)
    qtbot.addWidget(skeb)
    assert isinstance(skeb.editors["framings"].input, Checklist)


# -- the builder on a project ---------------------------------------------------------------------
@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    proj = Project.create(tmp_path / "project")
    yield proj
    proj.close()


@pytest.fixture
def make_builder(qtbot) -> Iterator[Any]:
    engines: list[Engine] = []

    def make(project: Project, registry: Registry | None = None) -> JobBuilder:
        registry = registry or get_registry()
        engine = Engine(project, registry=registry)
        engines.append(engine)
        builder = JobBuilder(registry)
        builder.resize(460, 420)
        qtbot.addWidget(builder)
        builder.set_engine(engine, project)
        builder.show()
        qtbot.waitExposed(builder)
        return builder

    yield make
    for engine in engines:
        engine.shutdown(cancel=True, wait=True, timeout=30)


def _items(combo) -> list[Any]:
    return [combo.itemData(i) for i in range(combo.count())]


def test_pickers_offer_only_what_the_job_can_use(make_builder, project, tmp_path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    project.add_dataset("my-mnist", "classifier", "image-folder", str(folder))
    project.add_model("my-mlp", "classifier", "classifier.mlp", str(tmp_path / "mlp"))
    builder = make_builder(project)
    builder.select_job("classifier.train_mlp")  # reads digits only
    assert _items(builder.dataset_combo) == ["digits"]
    assert not builder.model_combo.isVisibleTo(builder)
    builder.select_job("classifier.unlearn.ga")  # any classifier dataset, an optional model
    assert _items(builder.dataset_combo) == ["digits", "my-mnist"]
    models = _items(builder.model_combo)
    assert models[:2] == [None, "my-mlp"] and builder.model_combo.itemText(0) == NO_MODEL
    builder.set_model("my-mlp")
    builder.select_job("llm.attention")  # the classifier model is not offered to an LLM job
    assert _items(builder.model_combo) == ["tiny-gpt"]
    assert not builder.dataset_combo.isVisibleTo(builder)


@pytest.mark.parametrize(
    ("family", "kind", "expected"),
    [("llm", "llm.causal", "llm.unlearn."), ("diffusion", "diffusion.sd", "diffusion.unlearn.")],
)
def test_job_picker_starts_on_a_job_of_the_projects_family(
    make_builder, project, family, kind, expected
) -> None:
    project.add_model("mine", family, kind, "somewhere")
    builder = make_builder(project)
    assert builder.spec.family == family and builder.spec.name.startswith(expected)
    assert _items(builder.model_combo)[0] == "mine"


# -- checks at submit -----------------------------------------------------------------------------
@dataclass
class ClassConfig:
    forget_class: int = param(3, "The class to forget.", range=(0, 100_000))
    steps: int = param(2, "Steps.", range=(1, 10))


def check_classes(config: Any, model: Any, dataset: Any) -> None:
    """What a classifier job checks at submit: the class exists in the dataset."""
    classes = (dataset.meta or {}).get("classes") if dataset else None
    if classes is not None and config.forget_class >= classes:
        raise ConfigError(
            f"config field 'forget_class': class {config.forget_class} does not exist; "
            f"{dataset.name} has classes 0..{classes - 1}",
            "forget_class",
        )


def noop_job(ctx: Any) -> None:
    ctx.log("ran")


def _class_registry() -> Registry:
    registry = Registry()
    registry.add_dataset(
        DatasetSpec("digits", "classifier", "digits", "8x8 digits", info={"classes": 10})
    )
    registry.add_job(
        JobSpec(
            name="test.forget",
            kind="unlearn",
            family="classifier",
            title="Forget a class",
            description="A test job with a submit check.",
            config=ClassConfig,
            entry=f"{HERE}:noop_job",
            needs_dataset="classifier",
            submit_check=f"{HERE}:check_classes",
        )
    )
    return registry


def test_forget_class_past_the_datasets_classes_is_refused_at_submit(
    make_builder, project, qtbot
) -> None:
    builder = make_builder(project, _class_registry())
    builder.form.set_values({"forget_class": 50})
    assert builder.submit() is None
    assert project.runs() == []  # refused before any run is recorded
    assert builder.form.error_field == "forget_class"
    label = builder.form.field_errors["forget_class"]
    assert label.isVisible() and "classes 0..9" in label.text()
    assert "forget class" in builder.message.text()
    # editing the field clears the error and the message; a good value runs
    builder.form.editors["forget_class"].input.setValue(9)
    assert not label.isVisible() and not builder.message.isVisible()
    run_id = builder.submit()
    assert run_id is not None and builder.message.text() == f"Run {run_id} queued."


def test_llm_layer_the_model_lacks_is_refused_at_submit(make_builder, project) -> None:
    builder = make_builder(project)
    builder.select_job("llm.attention")
    builder.form.set_values({"layer": 9})  # tiny-gpt has 4 layers
    assert builder.submit() is None
    assert project.runs() == []
    assert builder.form.error_field == "layer"
    assert "4 layers" in builder.form.field_errors["layer"].text()


@pytest.mark.parametrize(
    ("job", "values", "field", "words"),
    [
        ("diffusion.memora", {"start_step": 60, "steps": 50}, "start_step", "1..49"),
        ("diffusion.memora", {"seeds": [1, 2, 3]}, "seeds", "pairs"),
        ("diffusion.relearn", {"steps": 100, "eval_steps": [0, 50, 200]}, "eval_steps", "200"),
        ("diffusion.unlearn.uce", {"concept": "custom"}, "concept_word", "words"),
        ("llm.attention", {"head": 4}, "head", "4 attention heads"),
        ("llm.unlearn.rmu", {"update_layers": [1, 7]}, "update_layers", "block 7"),
    ],
)
def test_backend_submit_checks(project, job, values, field, words) -> None:
    engine = Engine(project)
    model = "tiny-gpt" if job.startswith("llm.") else "tiny-sd"
    try:
        with pytest.raises(ConfigError) as info:
            engine.submit(job, values, model=model)
        assert info.value.field == field and words in str(info.value)
        assert project.runs() == []
    finally:
        engine.shutdown()


def test_wrong_model_shows_under_the_model_picker(make_builder, project, tmp_path) -> None:
    builder = make_builder(project)
    builder.select_job("llm.attention")
    builder.set_model(str(tmp_path / "nowhere"))
    assert builder.submit() is None
    assert builder.input_error_field == "model"
    assert "neither a model of this project" in builder.input_errors["model"].text()
    assert builder.model_combo.property("error") is True
    builder.set_model("tiny-gpt")  # choosing another model clears it
    assert builder.input_error_field is None and not builder.message.isVisible()


# -- messages do not go stale ---------------------------------------------------------------------
def test_messages_clear_after_later_actions(make_builder, project, qtbot) -> None:
    registry = _class_registry()
    builder = make_builder(project, registry)
    run_id = builder.submit()
    assert builder.message.isVisible() and builder.message.text() == f"Run {run_id} queued."
    builder.form.editors["steps"].input.setValue(3)  # an edit
    assert not builder.message.isVisible()
    builder.submit()
    builder.seed_spin.setValue(5)  # a new seed
    assert not builder.message.isVisible()
    # an error, then a good submit: the error goes
    builder.form.set_values({"forget_class": 50})
    assert builder.submit() is None and builder.message.isVisible()
    builder.form.editors["forget_class"].input.setValue(2)
    assert builder.submit() is not None
    assert builder.form.error_field is None and "queued" in builder.message.text()
    # an error, then another job: nothing stale when coming back
    builder.form.set_values({"forget_class": 50})
    builder.submit()
    form = builder.form
    builder.job_combo.setCurrentIndex(0)  # the family header: no job
    assert not builder.message.isVisible()
    builder.select_job("test.forget")
    assert builder.form is form and form.error_field is None
    assert not form.field_errors["forget_class"].isVisible()


# -- run requests: loaded with their config migrated, submitted with one validation ------------
def test_loading_an_old_request_migrates_its_config_and_a_newer_one_is_refused(
    make_builder, project
) -> None:
    from tests.unit import fixture_jobs as fj
    from workbench.request import RunRequest

    builder = make_builder(project, fj.sized_registry(2))
    builder.load_request(RunRequest("test.sized", 4, config={"width": 7}, config_version=1))
    assert builder.spec.name == "test.sized" and builder.seed_spin.value() == 4
    assert builder.form.values()["size"] == 7
    with pytest.raises(ConfigError, match="newer version of the workbench"):
        builder.load_request(RunRequest("test.sized", 9, config={"size": 1}, config_version=3))
    assert builder.form.values()["size"] == 7 and builder.seed_spin.value() == 4
    request = builder.request()
    assert request == RunRequest("test.sized", 4, config=request.config)
    assert request.config["size"] == 7 and request.config_version is None


def test_a_request_under_a_former_job_name_loads_into_the_job(make_builder, project) -> None:
    from dataclasses import replace

    from tests.unit import fixture_jobs as fj
    from workbench.request import RunRequest

    registry = fj.sized_registry(2)
    registry.add_job(replace(registry.jobs.pop("test.sized"), aliases=("test.old_sized",)))
    builder = make_builder(project, registry)
    builder.load_request(RunRequest("test.old_sized", 4, config={"size": 3}))
    assert builder.spec.name == "test.sized" and builder.form.values()["size"] == 3


def test_the_builder_validates_a_request_once(make_builder, project, qtbot) -> None:
    from tests.unit import test_request as tr

    builder = make_builder(project, tr.counted_registry())
    builder.select_job("test.counted")
    builder.form.editors["steps"].set_value(4)
    tr.BUILT.clear()
    with qtbot.waitSignal(builder.submitted, timeout=5000):
        run_id = builder.submit()
    assert tr.BUILT == [4]  # the form's values are validated by the engine, once
    assert project.run(run_id).config["steps"] == 4
