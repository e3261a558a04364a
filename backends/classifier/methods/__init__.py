"""Classifier unlearning methods: the catalogue (light: no torch at import).

:data:`METHODS` maps a method's name to its :class:`MethodInfo`: title, one-line description, config
dataclass (:mod:`.configs`), entry point ``"module:function"`` and the section of
``specs/classifier-and-llm-methods.md`` it follows.  Every entry point has the signature::

    unlearn(model, setup, cfg, *, seed, check=None, log=None) -> nn.Module

and returns an unlearned deep copy (the given model is left unchanged), calling ``check()`` at every
optimisation step (it raises to cancel).  Shared loops live in :mod:`.common`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backends.classifier.methods.configs import (
    BoundaryShrinkConfig,
    FTConfig,
    GAConfig,
    L1SparseConfig,
    NegGradPlusConfig,
    RLConfig,
    RWFTConfig,
    SalUnConfig,
    SCRUBConfig,
    TRWConfig,
)

_PKG = "backends.classifier.methods"


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
        """Import the entry point (this imports torch)."""
        module, _, function = self.entry.partition(":")
        return getattr(importlib.import_module(module), function)


def _info(name: str, title: str, description: str, config: type, spec: str) -> MethodInfo:
    return MethodInfo(name, title, description, config, f"{_PKG}.{name}:unlearn", spec)


METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        _info("ft", "FT", "Fine-tune on the retain set only: CE(D_r).", FTConfig, "section 7"),
        _info(
            "ga",
            "GA",
            "Gradient ascent on the forget set: minimise -CE(D_f).",
            GAConfig,
            "section 7",
        ),  # fmt: skip
        _info(
            "neggrad_plus",
            "NegGrad+ / GradDiff",
            "alpha * CE(D_r) - gamma * CE(D_f) on mixed forget/retain batches.",
            NegGradPlusConfig,
            "sections 3 (baselines) and 7",
        ),
        _info(
            "rl",
            "RL (random labels)",
            "CE on the forget set with random wrong labels plus CE on the retain set.",
            RLConfig,
            "section 7",
        ),
        _info(
            "scrub",
            "SCRUB",
            "Teacher = original; max-steps push KL(teacher||student) up on D_f, min-steps fit "
            "CE + alpha * KL on D_r; final min-only epochs.",
            SCRUBConfig,
            "sections 3 (baselines) and 7",
        ),
        _info(
            "salun",
            "SalUn",
            "Mask the weights with the largest |grad CE(D_f)|, then random-label unlearning on "
            "the masked weights only.",
            SalUnConfig,
            "sections 3 (baselines) and 7",
        ),
        _info(
            "l1_sparse",
            "l1-sparse",
            "Fine-tune on D_r with a decaying l1 penalty (2 - 2t/T) * lambda * ||theta||_1.",
            L1SparseConfig,
            "sections 3 (baselines) and 7",
        ),
        _info(
            "boundary_shrink",
            "Boundary Shrink",
            "Fine-tune each forget example to its nearest wrong class, found by an FGSM step on "
            "the original model.",
            BoundaryShrinkConfig,
            "section 7 (baseline list in 1.2)",
        ),
        _info(
            "rwft",
            "RWFT",
            "Class unlearning: fit forget examples to the original's renormalised distribution "
            "over the remaining classes (TRW with beta = 0), plus lambda * CE(D_r).",
            RWFTConfig,
            "section 1.2 (v1)",
        ),
        _info(
            "trw",
            "TRW (Tilted ReWeighting)",
            "Class unlearning: fit forget examples to the similarity-tilted target "
            "q* ∝ p~ exp(beta s), plus lambda * CE(D_r).",
            TRWConfig,
            "sections 1.2 and 1.4",
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
            f"unknown classifier unlearning method {name!r}; known methods: {', '.join(METHODS)}"
        ) from None


__all__ = ["METHODS", "MethodInfo", "UnknownMethodError", "get_method"]
