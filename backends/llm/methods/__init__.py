"""LLM unlearning methods: the catalogue (light: no torch at import).

:data:`METHODS` maps a method's name (``ga``, ``graddiff``, ``npo``, ``simnpo``, ``rmu``) to its
:class:`MethodInfo`: title, one-line description, config dataclass (:mod:`.configs`), entry point
``"module:function"`` and the section of ``specs/classifier-and-llm-methods.md`` it follows
(section 7, shared baselines; section 6 for NPO with a retain KL).  Every entry point has the
signature::

    unlearn(model, tokenizer, forget_texts, retain_texts, cfg, *, seed, check=None, log=None)
        -> model

and returns an unlearned deep copy of a Hugging Face causal LM (the given model is left
unchanged), calling ``check()`` at every optimisation step (it raises to cancel).  Every text is
tokenised with the BOS token first.  Shared loops and losses live in :mod:`.common`; LoRA is the
caller's business (wrap the model before calling).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backends.llm.methods.configs import (
    GAConfig,
    GradDiffConfig,
    NPOConfig,
    RMUConfig,
    SimNPOConfig,
)

_PKG = "backends.llm.methods"


@dataclass(frozen=True)
class MethodInfo:
    """One LLM unlearning method: what it is, its config and where its code and spec are."""

    name: str
    title: str
    description: str
    config: type
    entry: str
    spec: str

    def load(self) -> Callable[..., Any]:
        """Import the entry point (this imports torch)."""
        module, _, function = self.entry.partition(":")
        return getattr(importlib.import_module(module), function)


def _info(name: str, title: str, description: str, config: type, spec: str) -> MethodInfo:
    return MethodInfo(name, title, description, config, f"{_PKG}.{name}:unlearn", spec)


METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        _info(
            "ga",
            "GA (gradient ascent)",
            "Minimise -NLL of the forget texts (optionally plus a retain NLL or KL term).",
            GAConfig,
            "section 7",
        ),
        _info(
            "graddiff",
            "GradDiff",
            "-NLL(D_f) + alpha * retain term (NLL on retain texts by default, or KL to the "
            "original model).",
            GradDiffConfig,
            "section 7",
        ),
        _info(
            "npo",
            "NPO",
            "Sequence-level NPO (2/beta) E log(1 + (pi_theta/pi_ref)^beta) on D_f + alpha * retain "
            "term (KL to the original by default).",
            NPOConfig,
            "sections 7 and 6 (NPO_KLR)",
        ),
        _info(
            "simnpo",
            "SimNPO",
            "Reference-free, length-normalised NPO: -(2/beta) log sigmoid(beta * NLL/|y| - gamma) "
            "on D_f + alpha * retain term.",
            SimNPOConfig,
            "section 7",
        ),
        _info(
            "rmu",
            "RMU",
            "Steer one layer's activations of forget texts to a random c*u and keep retain "
            "activations at the original's; only chosen MLPs are updated.",
            RMUConfig,
            "sections 7 and 6 (WMDP RMU)",
        ),
    )
}


class UnknownMethodError(KeyError, ValueError):
    """No method of that name (a ``KeyError`` and a ``ValueError``; the message lists the names)."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_method(name: str) -> MethodInfo:
    """The method called ``name``; :class:`UnknownMethodError` naming the known methods otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise UnknownMethodError(
            f"unknown LLM unlearning method {name!r}; known methods: {', '.join(METHODS)}"
        ) from None


__all__ = ["METHODS", "MethodInfo", "UnknownMethodError", "get_method"]
