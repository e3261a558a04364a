"""Config forms generated from schemas: editors per type, round trips, validation errors."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QSpinBox, QToolButton

from ui.forms import ConfigForm
from workbench.config import param
from workbench.registry import get_registry


@dataclass
class AllTypes:
    steps: int = param(10, "How many steps.", range=(1, 100))
    lr: float = param(1e-7, "A tiny learning rate.", range=(0.0, 1.0))
    flag: bool = param(False, "A switch.")
    mode: str = param("a", "A choice.", choices=("a", "b", "c"))
    out: str = param("", "Where to write.", path=True)
    widths: list[int] = param([8, 4], "Layer widths.")
    scales: list[float] = param([0.5], "Scales.")
    names: list[str] = param(["x"], "Names.")
    note: str = param("hi", "Free text.")
    limit: int | None = param(None, "Optional cap (empty: none).")
    beta: float = param(0.9, "An advanced knob.", range=(0.0, 1.0), advanced=True)


def test_editor_per_type_with_help(qtbot) -> None:
    form = ConfigForm(AllTypes)
    qtbot.addWidget(form)
    inputs = {name: editor.input for name, editor in form.editors.items()}
    assert isinstance(inputs["steps"], QSpinBox)
    assert (inputs["steps"].minimum(), inputs["steps"].maximum()) == (1, 100)
    assert isinstance(inputs["lr"], QLineEdit) and inputs["lr"].text() == "1e-07"
    assert isinstance(inputs["flag"], QCheckBox)
    assert isinstance(inputs["mode"], QComboBox) and inputs["mode"].count() == 3
    assert isinstance(inputs["out"], QLineEdit)
    assert form.editors["out"].findChild(QToolButton).text() == "Browse…"
    assert inputs["widths"].text() == "8, 4"
    assert inputs["steps"].toolTip() == "How many steps."
    # the advanced field is folded away until the section is opened
    assert form.advanced_box is not None and not form.advanced_box.isVisibleTo(form)
    form.advanced_toggle.click()
    assert form.advanced_box.isVisibleTo(form)


def test_values_round_trip_and_reset(qtbot) -> None:
    form = ConfigForm(AllTypes)
    qtbot.addWidget(form)
    values = {
        "steps": 42,
        "lr": 3e-9,
        "flag": True,
        "mode": "c",
        "out": "/tmp/somewhere",
        "widths": [256, 128],
        "scales": [0.1, 2.5],
        "names": ["p", "q"],
        "note": "hello",
        "limit": 7,
        "beta": 0.5,
    }
    form.set_values(values)
    assert form.values() == values
    config = form.validate()
    assert config is not None and config.lr == 3e-9 and config.widths == [256, 128]
    form.editors["limit"].input.setText("")
    assert form.values()["limit"] is None
    form.reset_button.click()
    assert form.values()["steps"] == 10 and form.values()["lr"] == 1e-7
    assert form.values()["widths"] == [8, 4]


def test_bad_value_is_rejected_naming_the_field(qtbot) -> None:
    form = ConfigForm(AllTypes, job="demo")
    qtbot.addWidget(form)
    form.show()
    form.editors["lr"].input.setText("fast")
    assert form.validate() is None
    assert form.error_field == "lr"
    error = form.field_errors["lr"]
    assert error.isVisible() and error.text().startswith("expected a number, got 'fast'")
    assert "'lr'" in error.toolTip()  # the full message names the field
    # an out-of-range value in an advanced field opens the section and highlights it
    form.editors["lr"].input.setText("0.1")
    form.editors["beta"].input.setText("3")
    assert form.validate() is None
    assert form.error_field == "beta"
    assert form.advanced_box.isVisible()
    form.editors["beta"].input.setText("0.3")
    assert form.validate() is not None
    assert form.error_field is None and not form.field_errors["beta"].isVisible()


def test_form_of_the_registered_job(qtbot) -> None:
    spec = get_registry().job("classifier.train_mlp")
    form = ConfigForm(spec.config, job=spec.name)
    qtbot.addWidget(form)
    form.editors["lr"].input.setText("1e-7")
    form.editors["hidden"].input.setText("64, 32")
    typed = form.validate()
    assert typed is not None and typed.lr == 1e-7 and typed.hidden == [64, 32]
    form.editors["hidden"].input.setText("64, wide")
    assert form.validate() is None and form.error_field == "hidden"
    assert form.editors["hidden"].input.property("error") is True
    qtbot.keyClick(form.editors["hidden"].input, Qt.Key.Key_A)  # still usable after an error
