"""Config helpers the model families share (light: no torch)."""

from __future__ import annotations

import dataclasses
import typing

# ``part`` and ``config_parts`` live in the core (a job reaches them as ``ctx.part(...)``)
from workbench.config import CONFIG_VERSION_ATTR, PARTS_ATTR, config_parts, part

__all__ = ["compose_config", "config_parts", "part"]


def compose_config(name: str, doc: str, *classes: type, version: int | None = None) -> type:
    """One flat config dataclass with the fields of ``classes`` in order (names must not clash),
    so a job's form shows set-up, method and evaluation fields together.

    The composed class remembers its parts (:func:`part` gives a job one of them back, typed),
    builds each part when it is built, so every part's ``__post_init__`` check runs at validation
    (at submit) and a part that normalises a value hands it back; and carries ``CONFIG_VERSION``:
    ``version``, else the largest of the parts' versions (1 when none declares one)."""
    fields = []
    seen: dict[str, str] = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in seen:
                raise TypeError(
                    f"{name}: field {f.name!r} is in both {seen[f.name]} and {cls.__name__}"
                )
            seen[f.name] = cls.__name__
            kw: dict[str, typing.Any] = {"metadata": f.metadata}
            if f.default_factory is not dataclasses.MISSING:
                kw["default_factory"] = f.default_factory
            else:
                kw["default"] = f.default
            fields.append((f.name, hints[f.name], dataclasses.field(**kw)))
    checks = tuple(c for c in classes if hasattr(c, "__post_init__"))

    def __post_init__(self: typing.Any) -> None:  # noqa: N807 (the dataclass hook)
        for cls in checks:
            names = [f.name for f in dataclasses.fields(cls)]
            built = cls(**{n: getattr(self, n) for n in names})
            for n in names:  # a part that normalised a value (a tuple to a list) hands it back
                value = getattr(built, n)
                if value is not getattr(self, n):
                    object.__setattr__(self, n, value)

    namespace: dict[str, typing.Any] = {
        PARTS_ATTR: tuple(classes),
        CONFIG_VERSION_ATTR: version
        if version is not None
        else max((getattr(c, CONFIG_VERSION_ATTR, 1) for c in classes), default=1),
    }
    if checks:
        namespace["__post_init__"] = __post_init__
    composed = dataclasses.make_dataclass(name, fields, namespace=namespace)
    composed.__doc__ = doc
    composed.__module__ = classes[-1].__module__
    return composed
