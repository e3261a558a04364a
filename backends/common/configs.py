"""Config helpers the model families share (light: no torch)."""

from __future__ import annotations

import dataclasses
import typing


def compose_config(name: str, doc: str, *classes: type) -> type:
    """One flat config dataclass with the fields of ``classes`` in order (names must not clash),
    so a job's form shows set-up, method and evaluation fields together."""
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
    cls = dataclasses.make_dataclass(name, fields)
    cls.__doc__ = doc
    cls.__module__ = classes[-1].__module__
    return cls
