"""Config forms generated from a job's typed config schema (:func:`workbench.config.schema_of`).

Each field becomes an editor matching its type (spin box, scientific float entry, check box, combo
box, path entry with a browse button, comma-separated list entry, text entry) with its help as
tooltip and caption.  ``advanced`` fields sit in a collapsible section.  :meth:`ConfigForm.validate`
runs the core's validation and, on a :class:`ConfigError`, highlights the field it names and shows
the message above the form.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from workbench.config import ConfigError, FieldSpec, schema_of, validate

__all__ = ["ConfigForm", "FieldEditor", "format_value"]

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
ERROR_STYLE = "border: 2px solid #d9534f; border-radius: 3px;"


def format_value(value: Any) -> str:
    """Text for a value in an entry: floats keep tiny values readable (``1e-07``)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def _parse_scalar(text: str, type_name: str) -> Any:
    """Parse entry text as ``type_name``; on failure return the text (validation names the field)."""
    text = text.strip()
    try:
        if type_name == "int":
            return int(text)
        if type_name == "float":
            return float(text)
    except ValueError:
        return text
    return text


class FieldEditor(QWidget):
    """One field's editor: ``value()``/``set_value()`` in the field's type."""

    changed = Signal()

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        t = spec.type
        self.input: QWidget
        if t == "bool":
            self.input = QCheckBox()
            self.input.toggled.connect(self.changed)
        elif t == "choice":
            self.input = QComboBox()
            for choice in spec.choices or ():
                self.input.addItem(str(choice), choice)
            self.input.currentIndexChanged.connect(self.changed)
        elif t == "int" and not spec.optional:
            self.input = QSpinBox()
            lo, hi = spec.range or (None, None)
            self.input.setRange(
                max(INT_MIN, int(lo)) if lo is not None else INT_MIN,
                min(INT_MAX, int(hi)) if hi is not None else INT_MAX,
            )
            self.input.setAccelerated(True)
            self.input.valueChanged.connect(self.changed)
        else:  # float, str, path, list[...], optional int
            self.input = QLineEdit()
            if t.startswith("list["):
                self.input.setPlaceholderText("comma-separated, e.g. 128, 64")
            elif t == "float":
                self.input.setPlaceholderText("a number, e.g. 0.001 or 1e-7")
            elif spec.optional:
                self.input.setPlaceholderText("empty: none")
            self.input.textChanged.connect(self.changed)
        self.input.setObjectName(f"field_{spec.name}")
        self.input.setToolTip(spec.help)
        layout.addWidget(self.input, 1)
        if t == "path":
            browse = QToolButton()
            browse.setText("Browse…")
            browse.setToolTip("Choose a file or folder")
            browse.clicked.connect(self._browse)
            layout.addWidget(browse)
        self.set_value(spec.default)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, f"Choose {self.spec.name}")
        if path:
            self.input.setText(path)

    def value(self) -> Any:
        t, w = self.spec.type, self.input
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QComboBox):
            return w.currentData()
        if isinstance(w, QSpinBox):
            return w.value()
        text = w.text()
        if t.startswith("list["):
            inner = t[5:-1]
            return [_parse_scalar(p, inner) for p in text.split(",") if p.strip()]
        if not text.strip() and self.spec.optional:
            return None
        if t in ("int", "float"):
            return _parse_scalar(text, t)
        return text

    def set_value(self, value: Any) -> None:
        w = self.input
        if isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QComboBox):
            index = w.findData(value)
            if index < 0:
                index = w.findText(str(value))
            w.setCurrentIndex(max(index, 0))
        elif isinstance(w, QSpinBox):
            w.setValue(int(value) if value is not None else 0)
        else:
            w.setText(format_value(value))

    def set_error(self, error: bool) -> None:
        self.input.setStyleSheet(ERROR_STYLE if error else "")
        self.input.setProperty("error", error)


class ConfigForm(QWidget):
    """A form for a config dataclass; ``values()``, ``set_values()``, ``reset()``, ``validate()``."""

    changed = Signal()

    def __init__(self, config_cls: type, parent: QWidget | None = None, *, job: str = "") -> None:
        super().__init__(parent)
        self.config_cls = config_cls
        self.job = job
        self.schema = schema_of(config_cls)
        self.editors: dict[str, FieldEditor] = {}

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.error_label = QLabel()
        self.error_label.setObjectName("formError")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(
            "color: #a94442; background: #f2dede; border: 1px solid #ebccd1; padding: 4px;"
        )
        self.error_label.hide()
        outer.addWidget(self.error_label)

        basic = [s for s in self.schema if not s.advanced]
        advanced = [s for s in self.schema if s.advanced]
        outer.addLayout(self._section(basic))
        self.advanced_toggle: QToolButton | None = None
        self.advanced_box: QWidget | None = None
        if advanced:
            toggle = QToolButton()
            toggle.setText(f"Advanced ({len(advanced)})")
            toggle.setCheckable(True)
            toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            toggle.setArrowType(Qt.ArrowType.RightArrow)
            toggle.setAutoRaise(True)
            box = QWidget()
            box.setLayout(self._section(advanced))
            box.setVisible(False)

            def flip(on: bool) -> None:
                box.setVisible(on)
                toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)

            toggle.toggled.connect(flip)
            outer.addWidget(toggle)
            outer.addWidget(box)
            self.advanced_toggle, self.advanced_box = toggle, box
        reset = QPushButton("Reset to defaults")
        reset.setObjectName("resetDefaults")
        reset.clicked.connect(self.reset)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(reset)
        outer.addLayout(row)
        self.reset_button = reset

    def _section(self, specs: list[FieldSpec]) -> QFormLayout:
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        for spec in specs:
            editor = FieldEditor(spec)
            editor.changed.connect(self.changed)
            self.editors[spec.name] = editor
            cell = QWidget()
            lay = QVBoxLayout(cell)
            lay.setContentsMargins(0, 0, 0, 2)
            lay.setSpacing(1)
            lay.addWidget(editor)
            help_label = QLabel(spec.help)
            help_label.setWordWrap(True)
            help_label.setStyleSheet("color: palette(mid); font-size: 11px;")
            lay.addWidget(help_label)
            label = QLabel(spec.name.replace("_", " "))
            label.setToolTip(spec.help)
            label.setBuddy(editor.input)
            form.addRow(label, cell)
        return form

    # -- values ----------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        return {name: editor.value() for name, editor in self.editors.items()}

    def set_values(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name in self.editors:
                self.editors[name].set_value(value)
        self.clear_errors()

    def reset(self) -> None:
        for editor in self.editors.values():
            editor.set_value(editor.spec.default)
        self.clear_errors()

    # -- validation ------------------------------------------------------------------------
    def validate(self) -> Any | None:
        """The typed config, or ``None`` after showing the error on the form."""
        self.clear_errors()
        try:
            return validate(self.config_cls, self.values(), job=self.job)
        except ConfigError as exc:
            self.show_error(str(exc), exc.field)
            return None

    def show_error(self, message: str, field: str | None = None) -> None:
        """Show ``message`` above the form and highlight ``field`` (when it is one of ours)."""
        for name, editor in self.editors.items():
            editor.set_error(name == field)
        if field in self.editors and self.editors[field].spec.advanced and self.advanced_toggle:
            self.advanced_toggle.setChecked(True)
        self.error_label.setText(message)
        self.error_label.show()
        if field in self.editors:
            self.editors[field].input.setFocus()

    def clear_errors(self) -> None:
        for editor in self.editors.values():
            editor.set_error(False)
        self.error_label.clear()
        self.error_label.hide()

    @property
    def error_field(self) -> str | None:
        for name, editor in self.editors.items():
            if editor.input.property("error"):
                return name
        return None
