"""The method catalogue every family uses (light: no torch at import).

A family lists its methods as :class:`MethodInfo` entries (name, title, description, config
dataclass, entry point ``"module:function"``, spec section) and looks them up with
:func:`lookup`, which names the known methods when a name is wrong.  :func:`unlearn_jobs` turns a
catalogue into the family's ``<family>.unlearn.<method>`` jobs (one loop for every family).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backends.common.configs import compose_config
from workbench.registry import JobSpec

__all__ = [
    "MethodInfo",
    "UnknownMethodError",
    "catalogue",
    "finder",
    "lookup",
    "unlearn_jobs",
]


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


def finder(methods: Mapping[str, MethodInfo], family: str) -> Callable[[str], MethodInfo]:
    """A family's ``get_method(name)``: :func:`lookup` in ``methods``, naming ``family`` in the
    error (``get_method = finder(METHODS, "classifier")``)."""
    return functools.partial(lookup, methods, family=family)


def unlearn_jobs(
    family: str,
    methods: Mapping[str, MethodInfo],
    *,
    entry: str,
    title: str,
    description: str,
    config_name: str,
    config_doc: str,
    before: Sequence[type] = (),
    after: Sequence[type] = (),
    checkpoint: type | None = None,
    closed_form: Collection[str] = (),
    resume_text: tuple[str, str] = ("", ""),
    aliases: Callable[[str], tuple[str, ...]] | None = None,
    **spec: Any,
) -> list[JobSpec]:
    """One ``<family>.unlearn.<method>`` job per catalogued method.

    The job's config composes ``before``, the method's config, ``after`` and, for a method not in
    ``closed_form``, ``checkpoint`` (such jobs resume).  ``title``, ``description``,
    ``config_name`` and ``config_doc`` are ``str.format`` templates over ``{title}``,
    ``{description}``, ``{spec}``, ``{config}`` (the method config's class name) and
    ``{resume}`` (``resume_text[0]`` for an iterative method, ``resume_text[1]`` for a closed-form
    one); ``spec`` holds the remaining :class:`JobSpec` fields, the same for every method."""
    jobs = []
    for info in methods.values():
        iterative = info.name not in closed_form
        words = {
            "title": info.title,
            "description": info.description,
            "spec": info.spec,
            "config": info.config.__name__,
            "resume": resume_text[0] if iterative else resume_text[1],
        }
        extra = (checkpoint,) if checkpoint is not None and iterative else ()
        config = compose_config(
            config_name.format(**words),
            config_doc.format(**words),
            *before,
            info.config,
            *after,
            *extra,
        )
        jobs.append(
            JobSpec(
                name=f"{family}.unlearn.{info.name}",
                aliases=aliases(info.name) if aliases else (),
                kind="unlearn",
                family=family,
                method=info.name,
                title=title.format(**words),
                description=description.format(**words),
                config=config,
                entry=entry,
                supports_resume=bool(extra),
                **spec,
            )
        )
    return jobs
