"""Typed job configs: dataclasses whose fields carry type, default, range or choices and help.

A job's config is a plain ``@dataclass`` whose fields are declared with :func:`param`::

    @dataclass
    class TrainConfig:
        epochs: int = param(20, "Passes over the training split.", range=(1, 10_000))
        optimizer: str = param("adam", "Optimiser.", choices=("adam", "sgd"))

From it the core derives a JSON-able schema (:func:`schema_of`) that the GUI turns into a form
and the CLI prints, and validates user dictionaries (:func:`validate`) with errors that name the
field and the values it allows.  This module imports nothing heavy.

Backends only declare constraints; validation at submit is complete (issue 10):

- ``range`` of a list field applies to every element (widths, channels), ``length`` to the list;
- ``name=True``: a plain name of something the project creates (:func:`workbench.files.check_name`);
- ``file="json"`` (or ``"text"``) with ``max_bytes``: a path the user points at, which must be a
  regular file of at most ``max_bytes``, UTF-8 and (for ``"json"``) valid JSON, checked at submit;
- a field named ``device`` whose choices include ``"cuda"`` (or declared ``device=True``) is checked
  for availability by the engine at submit (:func:`device_fields`);
- ``choices`` of a list field bound every element (the GUI shows a checklist);
- a config class may set ``DATASET_KINDS: ClassVar[tuple[str, ...]]``, the dataset kinds the job
  can read (checked by the engine at submit);
- seeds are integers in 0..2^32-1 (:func:`check_seed`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Literal, get_args, get_origin

from workbench.files import (
    DEFAULT_MAX_BYTES,
    FileCheckError,
    check_name,
    read_json_file,
    read_text_file,
)

__all__ = [
    "ConfigError",
    "FieldSpec",
    "MAX_SEED",
    "CONFIG_VERSION_ATTR",
    "check_seed",
    "config_parts",
    "config_version",
    "dataset_kinds",
    "device_fields",
    "param",
    "part",
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


MAX_SEED = 2**32 - 1
FILE_FORMATS = ("json", "text")


def check_seed(seed: Any, where: str = "seed") -> int:
    """``seed`` as an int in 0..2^32-1 (integral floats and digit strings accepted)."""
    value = seed
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SEED:
        shown = repr(seed) if len(repr(seed)) < 60 else repr(seed)[:57] + "..."
        raise ConfigError(
            f"{where} must be an integer in 0..{MAX_SEED} (2^32-1), got {shown}", "seed"
        )
    return value


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
    length: tuple[int | None, int | None] | None = None,
    name: bool = False,
    file: str | None = None,
    max_bytes: int | None = None,
    device: bool = False,
) -> Any:
    """Declare a config field with its default, one-line help and allowed values.

    ``range`` is inclusive ``(low, high)``; either end may be ``None``; for a list field it bounds
    every element, and ``length`` bounds the number of elements.  ``path`` marks a string
    as a filesystem path (the GUI shows a file picker).  ``advanced`` fields are folded away in forms.
    ``name`` marks a plain name of something the project creates (no separators).  ``file``
    (``"json"`` or ``"text"``) marks a path to a file the job reads, checked at validation: a
    regular file of at most ``max_bytes`` (default 16 MiB), UTF-8, valid JSON for ``"json"``.
    ``device`` marks a device field whose availability the engine checks at submit.
    """
    if file is not None and file not in FILE_FORMATS:
        raise TypeError(f"param(file=...) must be one of {FILE_FORMATS}, got {file!r}")
    meta: dict[str, Any] = {
        "help": help,
        "range": range,
        "choices": tuple(choices) if choices else None,
    }
    meta["path"] = path or file is not None
    meta["advanced"] = advanced
    meta["length"] = length
    meta["name"] = name
    meta["file"] = file
    meta["max_bytes"] = max_bytes
    meta["device"] = device
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
    length: tuple[int | None, int | None] | None = None
    plain_name: bool = False
    file: str | None = None
    max_bytes: int | None = None
    device: bool = False

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
        if self.length is not None:
            out["length"] = list(self.length)
        if self.plain_name:
            out["plain_name"] = True
        if self.file is not None:
            out["file"] = self.file
            out["max_bytes"] = self.max_bytes or DEFAULT_MAX_BYTES
        return out

    def describe_allowed(self) -> str:
        """Human text for the values this field accepts (used in error messages)."""
        if self.choices is not None:
            allowed = ", ".join(repr(c) for c in self.choices)
            if self.type.startswith("list["):
                return f"a list of items from {allowed}"
            return f"one of {allowed}"
        what = f"a {self.type}"
        if self.type.startswith("list["):
            inner = self.type[5:-1]
            count = ""
            if self.length is not None:
                n_lo, n_hi = self.length
                count = f"{n_lo if n_lo is not None else 0}..{n_hi if n_hi is not None else 'any'} "
            what = f"a list of {count}{inner}s" + (", each" if self.range is not None else "")
        if self.range is not None:
            lo, hi = self.range
            if lo is not None and hi is not None:
                return f"{what} in [{lo}, {hi}]"
            if lo is not None:
                return f"{what} >= {lo}"
            return f"{what} <= {hi}"
        if self.plain_name:
            return f"{what} (a plain name, no '/')"
        if self.file is not None:
            return f"a path to a {self.file.upper() if self.file == 'json' else 'text'} file"
        return what


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
                length=meta.get("length"),
                plain_name=bool(meta.get("name")),
                file=meta.get("file"),
                max_bytes=meta.get("max_bytes"),
                device=bool(meta.get("device"))
                or (f.name == "device" and "cuda" in (meta.get("choices") or ())),
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
            fail(f"expected a list, got {_short(value)}")
        if spec.length is not None:
            n_lo, n_hi = spec.length
            if (n_lo is not None and len(value) < n_lo) or (n_hi is not None and len(value) > n_hi):
                fail(f"{len(value)} items")
        # a list field's choices bound every element (a checklist in the GUI)
        inner_spec = dataclasses.replace(spec, type=inner, optional=False, length=None)
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
        if isinstance(value, str) and len(value) > 40:
            fail(f"expected an integer, got {_short(value)}")
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
        if isinstance(value, str) and len(value) > 60:
            fail(f"expected a number, got {_short(value)}")
        try:
            out = float(value)
        except (TypeError, ValueError, OverflowError):
            fail(f"expected a number, got {_short(value)}")
        if out != out:  # NaN
            fail("NaN is not allowed")
        if out in (float("inf"), float("-inf")):
            fail("infinity is not allowed")
    elif t == "choice":
        out = value
        if (
            not isinstance(value, (str, int, float))
            or isinstance(value, bool)
            and not any(isinstance(c, bool) for c in spec.choices or ())
        ):
            fail(f"{_short(value)} is not allowed")
        if spec.choices is not None and value not in spec.choices:
            # Accept "3" for 3 when the choices are numbers (forms and CLI hand strings).
            by_text = {str(c): c for c in spec.choices}
            if str(value) in by_text:
                out = by_text[str(value)]
            else:
                fail(f"{value!r} is not allowed")
    else:  # str, path
        if not isinstance(value, str):
            fail(f"expected text, got {_short(value)}")
        if "\x00" in value:
            fail("text may not contain NUL characters")
        out = value
        if spec.plain_name and out:
            try:
                check_name(out, "the name")
            except ValueError as exc:
                fail(str(exc))
        if spec.file is not None and out:
            reader = read_json_file if spec.file == "json" else read_text_file
            try:
                reader(out, max_bytes=spec.max_bytes or DEFAULT_MAX_BYTES, what="file")
            except FileCheckError as exc:
                raise ConfigError(f"{where}: {exc}", spec.name) from None
    if spec.range is not None and t in ("int", "float"):
        lo, hi = spec.range
        if (lo is not None and out < lo) or (hi is not None and out > hi):
            fail(f"{out!r} is out of range")
    if spec.choices is not None and t != "choice" and out not in spec.choices:
        fail(f"{out!r} is not allowed")
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(config_cls: type, values: typing.Mapping[str, Any] | None, *, job: str = "") -> Any:
    """Build a ``config_cls`` instance from user values, with defaults for what is missing.

    Raises :class:`ConfigError` naming the field for an unknown field, a wrong type or a value
    outside its range or choices.
    """
    if values is not None and not isinstance(values, typing.Mapping):
        raise ConfigError(
            f"{job + ' ' if job else ''}config must be a mapping of field names to values, "
            f"got {type(values).__name__}"
        )
    values = dict(values or {})
    specs = {s.name: s for s in schema_of(config_cls)}
    bad_keys = [k for k in values if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError(f"config field names are text; got {_short(bad_keys[0])}")
    prefix = f"{job} config" if job else "config"
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ConfigError(
            f"{prefix}: unknown field {_short(unknown[0])}; known fields: {', '.join(specs)}",
            unknown[0],
        )
    kwargs = {}
    for name, spec in specs.items():
        if name in values:
            kwargs[name] = _coerce(spec, values[name], f"{prefix} field {name!r}")
    try:  # a config's own cross-field checks (``__post_init__``) run here, at validation
        return config_cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"{prefix}: {' '.join(str(exc).split())}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """A config instance as a plain JSON-able dict (the form stored with a run)."""
    return dataclasses.asdict(config)


def device_fields(config: Any) -> list[tuple[str, str]]:
    """``(field, value)`` of a config's device fields (whose availability the engine checks)."""
    return [
        (spec.name, getattr(config, spec.name))
        for spec in schema_of(type(config))
        if spec.device and isinstance(getattr(config, spec.name, None), str)
    ]


def dataset_kinds(config_cls: type) -> tuple[str, ...] | None:
    """The dataset kinds a job's config declares it can read (``DATASET_KINDS``), or ``None``."""
    kinds = getattr(config_cls, "DATASET_KINDS", None)
    return tuple(kinds) if kinds else None


# -- composed configs and versions ------------------------------------------------------------

PARTS_ATTR = "__config_parts__"
CONFIG_VERSION_ATTR = "CONFIG_VERSION"


def config_parts(config: Any) -> tuple[type, ...]:
    """The part classes a composed config class (or instance) was made of, in order; ``()`` for
    a plain config.  (``backends.common.configs.compose_config`` records them.)"""
    cls = config if isinstance(config, type) else type(config)
    return tuple(getattr(cls, PARTS_ATTR, ()))


def part(config: Any, part_cls: type) -> Any:
    """The ``part_cls`` part of a composed ``config``, as a ``part_cls`` instance with the
    config's values (``config`` itself when it already is one).  ``LookupError`` when the config
    has no such part."""
    if isinstance(config, part_cls):
        return config
    if part_cls not in config_parts(config):
        have = ", ".join(p.__name__ for p in config_parts(config)) or "no parts"
        raise LookupError(
            f"{type(config).__name__} has no part {part_cls.__name__} (it has {have})"
        )
    return part_cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(part_cls)})


def config_version(config: Any) -> int:
    """A config class's (or instance's) version: its ``CONFIG_VERSION`` class variable, 1 when
    it declares none (a composed config's is its own, else the largest of its parts')."""
    cls = config if isinstance(config, type) else type(config)
    version = getattr(cls, CONFIG_VERSION_ATTR, 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TypeError(f"{cls.__name__}.{CONFIG_VERSION_ATTR} must be a positive int")
    return version
