"""Typed job configs: dataclasses whose fields carry type, default, range or choices and help.

A job's config is a plain ``@dataclass`` whose fields are declared with :func:`param`::

    @dataclass
    class TrainConfig:
        epochs: int = param(20, "Passes over the training split.", range=(1, 10_000))
        optimizer: str = param("adam", "Optimiser.", choices=("adam", "sgd"))

From it the core derives a JSON-able schema (:func:`schema_of`) that the GUI turns into a form
and the CLI prints, and validates user dictionaries (:func:`validate`) with errors that name the
field and the values it allows.  This module imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Literal, get_args, get_origin

__all__ = [
    "ConfigError",
    "FieldSpec",
    "param",
    "schema_of",
    "validate",
    "to_dict",
]

_SUPPORTED = (
    "int",
    "float",
    "str",
    "bool",
    "path",
    "choice",
    "list[int]",
    "list[float]",
    "list[str]",
)


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or out of range.

    ``field`` names the offending field (``None`` for whole-config problems).
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def param(
    default: Any,
    help: str,
    *,
    range: tuple[float | None, float | None] | None = None,
    choices: typing.Sequence[Any] | None = None,
    path: bool = False,
    advanced: bool = False,
) -> Any:
    """Declare a config field with its default, one-line help and allowed values.

    ``range`` is inclusive ``(low, high)``; either end may be ``None``.  ``path`` marks a string
    as a filesystem path (the GUI shows a file picker).  ``advanced`` fields are folded away in forms.
    """
    meta = {"help": help, "range": range, "choices": tuple(choices) if choices else None}
    meta["path"] = path
    meta["advanced"] = advanced
    if isinstance(default, list):
        frozen = list(default)
        return dataclasses.field(default_factory=lambda: list(frozen), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class FieldSpec:
    """One field of a config schema, as the GUI and ``workbench jobs --json`` see it."""

    name: str
    type: str
    default: Any
    help: str
    range: tuple[float | None, float | None] | None = None
    choices: tuple[Any, ...] | None = None
    optional: bool = False
    advanced: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "help": self.help,
            "optional": self.optional,
        }
        if self.range is not None:
            out["range"] = list(self.range)
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.advanced:
            out["advanced"] = True
        return out

    def describe_allowed(self) -> str:
        """Human text for the values this field accepts (used in error messages)."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.range is not None:
            lo, hi = self.range
            if lo is not None and hi is not None:
                return f"a {self.type} in [{lo}, {hi}]"
            if lo is not None:
                return f"a {self.type} >= {lo}"
            return f"a {self.type} <= {hi}"
        return f"a {self.type}"


def _type_name(tp: Any, meta: typing.Mapping[str, Any]) -> tuple[str, bool, tuple[Any, ...] | None]:
    """Map a field annotation to (schema type, optional, literal choices)."""
    optional = False
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union type {tp!r}")
        optional = True
        tp = args[0]
        origin = get_origin(tp)
    if origin is Literal:
        return "choice", optional, tuple(get_args(tp))
    if origin is list:
        (inner,) = get_args(tp) or (str,)
        return f"list[{inner.__name__}]", optional, None
    if meta.get("choices"):
        return "choice", optional, None
    if tp is str and meta.get("path"):
        return "path", optional, None
    if tp in (int, float, str, bool):
        return tp.__name__, optional, None
    raise TypeError(f"unsupported config field type {tp!r}; use one of {_SUPPORTED}")


def schema_of(config_cls: type) -> list[FieldSpec]:
    """The schema of a config dataclass: one :class:`FieldSpec` per field, in order."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"{config_cls!r} is not a dataclass")
    hints = typing.get_type_hints(config_cls, include_extras=False)
    specs = []
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        if "help" not in meta:
            raise TypeError(
                f"{config_cls.__name__}.{f.name} has no help text; declare it with param()"
            )
        type_name, optional, literal_choices = _type_name(hints[f.name], meta)
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:
            default = None
        specs.append(
            FieldSpec(
                name=f.name,
                type=type_name,
                default=default,
                help=meta["help"],
                range=meta.get("range"),
                choices=literal_choices or meta.get("choices"),
                optional=optional,
                advanced=bool(meta.get("advanced")),
            )
        )
    return specs


def _coerce(spec: FieldSpec, value: Any, where: str) -> Any:
    """Coerce one value to the field's type and check its range/choices."""
    if value is None or (spec.optional and isinstance(value, str) and not value.strip()):
        if spec.optional:
            return None
        raise ConfigError(f"{where}: a value is required ({spec.describe_allowed()})", spec.name)

    def fail(reason: str) -> typing.NoReturn:
        raise ConfigError(
            f"{where}: {reason}; allowed: {spec.describe_allowed()} ({spec.help})", spec.name
        )

    t = spec.type
    if t.startswith("list["):
        inner = t[5:-1]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            fail(f"expected a list, got {value!r}")
        inner_spec = dataclasses.replace(spec, type=inner, choices=None, optional=False)
        return [_coerce(inner_spec, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if t == "bool":
        if isinstance(value, bool):
            out: Any = value
        elif isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            out = True
        elif isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            out = False
        else:
            fail(f"expected true or false, got {value!r}")
    elif t == "int":
        if isinstance(value, bool):
            fail(f"expected an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                fail(f"expected an integer, got {value!r}")
        if not isinstance(value, int):
            fail(f"expected an integer, got {value!r}")
        out = value
    elif t == "float":
        if isinstance(value, bool):
            fail(f"expected a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            fail(f"expected a number, got {value!r}")
        if out != out:  # NaN
            fail("NaN is not allowed")
    elif t == "choice":
        out = value
        if spec.choices is not None and value not in spec.choices:
            # Accept "3" for 3 when the choices are numbers (forms and CLI hand strings).
            by_text = {str(c): c for c in spec.choices}
            if str(value) in by_text:
                out = by_text[str(value)]
            else:
                fail(f"{value!r} is not allowed")
    else:  # str, path
        if not isinstance(value, str):
            fail(f"expected text, got {value!r}")
        out = value
    if spec.range is not None and t in ("int", "float"):
        lo, hi = spec.range
        if (lo is not None and out < lo) or (hi is not None and out > hi):
            fail(f"{out!r} is out of range")
    if spec.choices is not None and t != "choice" and out not in spec.choices:
        fail(f"{out!r} is not allowed")
    return out


def validate(config_cls: type, values: typing.Mapping[str, Any] | None, *, job: str = "") -> Any:
    """Build a ``config_cls`` instance from user values, with defaults for what is missing.

    Raises :class:`ConfigError` naming the field for an unknown field, a wrong type or a value
    outside its range or choices.
    """
    values = dict(values or {})
    specs = {s.name: s for s in schema_of(config_cls)}
    prefix = f"{job} config" if job else "config"
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ConfigError(
            f"{prefix}: unknown field {unknown[0]!r}; known fields: {', '.join(specs)}", unknown[0]
        )
    kwargs = {}
    for name, spec in specs.items():
        if name in values:
            kwargs[name] = _coerce(spec, values[name], f"{prefix} field {name!r}")
    return config_cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """A config instance as a plain JSON-able dict (the form stored with a run)."""
    return dataclasses.asdict(config)
