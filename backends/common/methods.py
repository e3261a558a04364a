"""The method catalogue every family uses (light: no torch at import).

A family lists its methods as :class:`MethodInfo` entries (name, title, description, config
dataclass, entry point ``"module:function"``, spec section) and looks them up with
:func:`lookup`, which names the known methods when a name is wrong.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MethodInfo", "UnknownMethodError", "catalogue", "lookup"]


@dataclass(frozen=True)
class MethodInfo:
    """One unlearning method: what it is, its config and where its code and spec are."""

    name: str
    title: str
    description: str
    config: type
    entry: str
    spec: str

    def load(self) -> Callable[..., Any]:
        """Import the entry point (this imports the family's heavy libraries)."""
        module, _, function = self.entry.partition(":")
        return getattr(importlib.import_module(module), function)


class UnknownMethodError(KeyError, ValueError):
    """No method of that name (a ``KeyError`` and a ``ValueError``; the message lists the names)."""

    def __str__(self) -> str:
        return str(self.args[0])


def catalogue(
    package: str, entries: Iterable[tuple[str, str, str, type, str]]
) -> dict[str, MethodInfo]:
    """``{name: MethodInfo}`` from ``(name, title, description, config, spec)`` rows whose code is
    ``<package>.<name>:unlearn``."""
    return {
        name: MethodInfo(name, title, description, config, f"{package}.{name}:unlearn", spec)
        for name, title, description, config, spec in entries
    }


def lookup(methods: Mapping[str, MethodInfo], name: str, family: str) -> MethodInfo:
    """The method called ``name``; :class:`UnknownMethodError` naming the known ones otherwise."""
    try:
        return methods[name]
    except KeyError:
        raise UnknownMethodError(
            f"unknown {family} unlearning method {name!r}; known methods: {', '.join(methods)}"
        ) from None
