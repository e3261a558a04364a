"""Config forms generated from a job's typed config schema (:func:`workbench.config.schema_of`).

Each field becomes an editor matching its type (spin box, scientific float entry, check box, combo
box, path entry with a browse button, a checklist for a list field with known choices, a
comma-separated entry for other lists, text entry) with its help as tooltip and caption.
``advanced`` fields sit in a collapsible section.  :meth:`ConfigForm.validate` runs the core's
validation and, on a :class:`ConfigError`, shows the message under the field it names (red border),
opens its section and scrolls the enclosing scroll area to it.  Editing the field clears its error.

Spin boxes and combo boxes ignore the mouse wheel unless they have keyboard focus, so scrolling a
long form never changes a value under the pointer (:class:`NoWheelSpinBox`, :class:`NoWheelComboBox`).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from workbench.config import ConfigError, FieldSpec, schema_of, validate

__all__ = [
    "Checklist",
    "ConfigForm",
    "FieldEditor",
    "NoWheelComboBox",
    "NoWheelSpinBox",
    "error_style",
    "format_value",
    "scroll_to",
]

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
ERROR_STYLE = "border: 2px solid #d9534f; border-radius: 3px;"
ERROR_TEXT_STYLE = "color: #a94442; font-size: 11px;"
CHECKLIST_COLUMNS = 3  # at most; fewer for long choices (``CHECKLIST_CHARS`` per row)
CHECKLIST_CHARS = 40
SCROLL_MARGIN = 40  # pixels kept above and below a field scrolled into view


def error_style(widget: QWidget, error: bool) -> None:
    """Red border on ``widget`` alone (an id selector, so children keep their look)."""
    name = widget.objectName()
    widget.setStyleSheet(f"#{name} {{ {ERROR_STYLE} }}" if error and name else "")
    widget.setProperty("error", error)


def scroll_to(widget: QWidget) -> None:
    """Scroll every enclosing scroll area so that ``widget`` is visible (now and once the layout
    has settled: a label just shown changes the positions only after the next layout pass)."""

    def run() -> None:
        parent = widget.parentWidget()
        while parent is not None:
            if isinstance(parent, QScrollArea) and parent.widget() is not None:
                _scroll_vertically(parent, widget)
            parent = parent.parentWidget()

    run()
    QTimer.singleShot(0, widget, run)


def forward_wheel(widget: QWidget, event: QWheelEvent) -> None:
    """Hand a wheel event to the scroll area around ``widget`` (it scrolls the form), or ignore it
    so that it propagates when there is none.  Forwarding explicitly also covers synthesised
    events, which Qt does not propagate to parents."""
    area = widget.parentWidget()
    while area is not None and not isinstance(area, QAbstractScrollArea):
        area = area.parentWidget()
    if area is None:
        event.ignore()
        return
    QApplication.sendEvent(area.viewport(), event)
    event.accept()


def _scroll_vertically(area: QScrollArea, widget: QWidget) -> None:
    """Like ``ensureWidgetVisible`` but never scrolls sideways (a form has no horizontal scroll
    bar; scrolling it sideways would hide the field labels).  A widget taller than the view
    shows its top."""
    top = widget.mapTo(area.widget(), QPoint(0, 0)).y()
    bar, view = area.verticalScrollBar(), area.viewport().height()
    if top - SCROLL_MARGIN < bar.value():
        bar.setValue(top - SCROLL_MARGIN)
    elif top + widget.height() + SCROLL_MARGIN > bar.value() + view:
        bar.setValue(min(top - SCROLL_MARGIN, top + widget.height() + SCROLL_MARGIN - view))


class _WheelOnFocus:
    """Mixin for a Qt field: wheel events change it only while it has keyboard focus; otherwise
    the wheel scrolls the form around it (:func:`forward_wheel`)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)  # type: ignore[call-arg]
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # type: ignore[attr-defined]

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt API)
        if self.hasFocus():  # type: ignore[attr-defined]
            super().wheelEvent(event)  # type: ignore[misc]
        else:
            forward_wheel(self, event)  # type: ignore[arg-type]


class NoWheelSpinBox(_WheelOnFocus, QSpinBox):
    """A spin box that takes wheel events only with keyboard focus."""


class NoWheelComboBox(_WheelOnFocus, QComboBox):
    """A combo box that takes wheel events only with keyboard focus."""


class Checklist(QFrame):
    """Check boxes for a list field with known choices; ``value()`` lists the checked ones in the
    order of the choices."""

    toggled = Signal()

    def __init__(self, choices: tuple[Any, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(2, 2, 2, 2)
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(2)
        self.boxes: dict[Any, QCheckBox] = {}
        for choice in choices:
            box = QCheckBox(str(choice))
            box.setObjectName(f"choice_{choice}")
            box.toggled.connect(self.toggled)
            self.boxes[choice] = box
        longest = max((len(str(c)) for c in choices), default=1)
        columns = max(1, min(CHECKLIST_COLUMNS, CHECKLIST_CHARS // (longest + 4)))
        for i, box in enumerate(self.boxes.values()):
            grid.addWidget(box, i // columns, i % columns)
        grid.setColumnStretch(columns, 1)

    def value(self) -> list[Any]:
        return [choice for choice, box in self.boxes.items() if box.isChecked()]

    def set_value(self, values: Any) -> None:
        wanted = values if isinstance(values, (list, tuple)) else []
        by_text = {str(v) for v in wanted}
        for choice, box in self.boxes.items():
            box.blockSignals(True)
            box.setChecked(choice in wanted or str(choice) in by_text)
            box.blockSignals(False)
        self.toggled.emit()


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
            self.input = NoWheelComboBox()
            for choice in spec.choices or ():
                self.input.addItem(str(choice), choice)
            self.input.currentIndexChanged.connect(self.changed)
        elif t.startswith("list[") and spec.choices:
            self.input = Checklist(tuple(spec.choices))
            self.input.toggled.connect(self.changed)
        elif t == "int" and not spec.optional:
            self.input = NoWheelSpinBox()
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
        if isinstance(w, Checklist):
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
        elif isinstance(w, Checklist):
            w.set_value(value)
        else:
            w.setText(format_value(value))

    def set_error(self, error: bool) -> None:
        error_style(self.input, error)


def _short_message(message: str, spec: FieldSpec) -> str:
    """The error as shown under its field: without the "job config field 'name':" prefix and the
    help text the field already shows (the tooltip keeps the full message)."""
    text = message.split(f"field {spec.name!r}: ", 1)[-1]
    suffix = f" ({spec.help})"
    return text[: -len(suffix)] if text.endswith(suffix) else text


class ConfigForm(QWidget):
    """A form for a config dataclass; ``values()``, ``set_values()``, ``reset()``, ``validate()``.

    ``error_label`` (above the fields) holds only errors that name no field of the form; a field's
    error sits in ``field_errors[name]`` under its editor.
    """

    changed = Signal()
    errors_cleared = Signal()

    def __init__(self, config_cls: type, parent: QWidget | None = None, *, job: str = "") -> None:
        super().__init__(parent)
        self.config_cls = config_cls
        self.job = job
        self.schema = schema_of(config_cls)
        self.editors: dict[str, FieldEditor] = {}
        self.field_errors: dict[str, QLabel] = {}
        self.cells: dict[str, QWidget] = {}

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
            editor.changed.connect(lambda name=spec.name: self._edited(name))
            self.editors[spec.name] = editor
            cell = QWidget()
            cell.setObjectName(f"cell_{spec.name}")
            lay = QVBoxLayout(cell)
            lay.setContentsMargins(0, 0, 0, 2)
            lay.setSpacing(1)
            lay.addWidget(editor)
            error = QLabel()
            error.setObjectName(f"error_{spec.name}")
            error.setWordWrap(True)
            error.setStyleSheet(ERROR_TEXT_STYLE)
            error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            error.hide()
            lay.addWidget(error)
            self.field_errors[spec.name] = error
            self.cells[spec.name] = cell
            help_label = QLabel(spec.help)
            help_label.setWordWrap(True)
            help_label.setStyleSheet("color: palette(mid); font-size: 11px;")
            lay.addWidget(help_label)
            label = QLabel(spec.name.replace("_", " "))
            label.setToolTip(spec.help)
            label.setBuddy(editor.input)
            if isinstance(editor.input, Checklist):  # the whole width: its own row under the label
                form.addRow(label)
                form.addRow(cell)
            else:
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
        """Show ``message`` under ``field`` (red border, scrolled into view) when it is one of
        ours, else above the form."""
        self.clear_errors()
        if field not in self.editors:
            self.error_label.setText(message)
            self.error_label.show()
            scroll_to(self.error_label)
            return
        editor = self.editors[field]
        editor.set_error(True)
        if editor.spec.advanced and self.advanced_toggle:
            self.advanced_toggle.setChecked(True)
        label = self.field_errors[field]
        label.setText(_short_message(message, editor.spec))
        label.setToolTip(message)
        label.show()
        editor.input.setFocus()
        scroll_to(self.cells[field])

    def clear_errors(self) -> None:
        had = self.has_errors
        for name, editor in self.editors.items():
            editor.set_error(False)
            self.field_errors[name].clear()
            self.field_errors[name].hide()
        self.error_label.clear()
        self.error_label.hide()
        if had:
            self.errors_cleared.emit()

    @property
    def has_errors(self) -> bool:
        return not self.error_label.isHidden() or any(
            not label.isHidden() for label in self.field_errors.values()
        )

    def _edited(self, name: str) -> None:
        """Editing a field in error clears its error (the value is checked again at submit)."""
        if not self.field_errors[name].isHidden():
            self.clear_errors()

    @property
    def error_field(self) -> str | None:
        for name, editor in self.editors.items():
            if editor.input.property("error"):
                return name
        return None
