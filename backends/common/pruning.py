"""Drop low-influence forget points before unlearning (spec section 4, steps 2-3; light: numpy).

"When unlearning is free": score every forget point by its influence on a validation set
(:mod:`backends.common.influence`), drop those whose score is negligible, and run any unlearning
method on the rest.  Two threshold rules (spec section 4, step 2):

- ``quantile``: drop the ``floor(q * n)`` lowest-scoring points (ties broken by position, so
  ``q = 0`` drops nothing and the reduced set IS the full set);
- ``fraction_of_max``: drop every point with ``s(z) < ε · max s`` (strictly: ``ε = 0`` drops
  nothing).

Family-agnostic: a family builds its reduced forget set from :attr:`Pruned.keep`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AGGREGATES",
    "CLASS_FORGET_NOTE",
    "ESTIMATORS",
    "RULES",
    "Pruned",
    "prune",
    "saved_fraction",
]

RULES = ("quantile", "fraction_of_max")
#: the influence estimators and score aggregates of :mod:`backends.common.influence` (named here,
#: in a light module, so that job configs can offer them without importing torch)
ESTIMATORS = ("exact", "cg", "lissa", "grad_norm", "less")
AGGREGATES = ("mean_abs", "total")

#: Why a class forget set is refused (shown under the forget_kind field and in the job's log).
CLASS_FORGET_NOTE = (
    "A forgotten class has no low-influence points to drop in the paper's sense: every example "
    "of the class carries what must be forgotten (the class itself), and the forgotten model must "
    "lose all of it. Influence pruning applies to random and index forget sets; choose "
    "forget_kind = random or indices."
)


@dataclass(frozen=True)
class Pruned:
    """Which points are kept (``keep``, a boolean mask over the scored points) and why."""

    keep: np.ndarray
    threshold: float
    rule: str
    value: float

    @property
    def n_kept(self) -> int:
        return int(self.keep.sum())

    @property
    def n_dropped(self) -> int:
        return int((~self.keep).sum())

    @property
    def dropped_fraction(self) -> float:
        return self.n_dropped / max(1, len(self.keep))


def prune(scores: np.ndarray, rule: str, value: float) -> Pruned:
    """Keep the points whose influence is not negligible under ``rule`` at ``value`` (a quantile
    ``q`` in [0, 1), or ``ε`` in [0, 1] for ``fraction_of_max``).  ``threshold``: the largest
    dropped score for ``quantile`` (``-inf`` when nothing is dropped), ``ε · max s`` otherwise."""
    s = np.asarray(scores, dtype=float).ravel()
    if not np.all(np.isfinite(s)):
        raise ValueError("influence scores must be finite (a NaN or inf score cannot be ranked)")
    if rule == "quantile":
        if not 0.0 <= value < 1.0:
            raise ValueError(f"quantile {value} must be in [0, 1)")
        n_drop = math.floor(value * len(s) + 1e-9)
        order = np.argsort(s, kind="stable")
        keep = np.ones(len(s), dtype=bool)
        keep[order[:n_drop]] = False
        threshold = float(s[order[n_drop - 1]]) if n_drop else -math.inf
        return Pruned(keep, threshold, rule, float(value))
    if rule == "fraction_of_max":
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"fraction of the maximum {value} must be in [0, 1]")
        threshold = float(value * s.max()) if len(s) else 0.0
        return Pruned(s >= threshold, threshold, rule, float(value))
    raise ValueError(f"unknown pruning rule {rule!r}; known: {', '.join(RULES)}")


def saved_fraction(full: float, pruned: float) -> float:
    """``1 - pruned / full``: the share of the full run's cost (gradient steps, seconds) saved."""
    if full <= 0:
        return 0.0
    return 1.0 - pruned / full
