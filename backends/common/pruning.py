"""Drop low-influence forget points before unlearning (spec section 4, steps 2-3; light: numpy).

"When unlearning is free": score every forget point by its influence on a validation set
(:mod:`backends.common.influence`), drop those whose score is negligible, and run any unlearning
method on the rest.  Two threshold rules (spec section 4, step 2):

- ``quantile``: drop the ``floor(q * n)`` lowest-scoring points (ties broken by position, so
  ``q = 0`` drops nothing and the reduced set IS the full set);
- ``fraction_of_max``: drop every point with ``s(z) < ε · max s`` (strictly: ``ε = 0`` drops
  nothing).

Family-agnostic: a family builds its reduced forget set from :attr:`Pruned.keep`; the sweep's
shared pieces (:func:`level_label`, :class:`StepCounter`, :func:`curve_and_table`) serve the
classifier (``classifier.influence_pruning``) and LLM (``llm.influence_pruning``) jobs alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from workbench.artifacts import Table
    from workbench.influence_artifacts import PruningCurve

__all__ = [
    "AGGREGATES",
    "CLASS_FORGET_NOTE",
    "ESTIMATORS",
    "RULES",
    "Pruned",
    "StepCounter",
    "curve_and_table",
    "level_label",
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


def level_label(rule: str, value: float) -> str:
    """``q30`` for quantile 0.30, ``f05`` for 5% of the maximum, ``f0p5`` for 0.5%."""
    pct = round(value * 100, 3)
    text = f"{int(pct):02d}" if pct == int(pct) else f"{pct:g}".replace(".", "p")
    return f"{'q' if rule == 'quantile' else 'f'}{text}"


class StepCounter:
    """``check`` for a method: counts its calls (one per optimisation step) and passes on."""

    def __init__(self, check: Callable[[], None] | None = None) -> None:
        self.calls = 0
        self.inner = check

    def __call__(self) -> None:
        self.calls += 1
        if self.inner is not None:
            self.inner()


def curve_and_table(
    levels: Sequence[float],
    labels: Sequence[str],
    ests: dict[str, dict[str, Any]],
    kept: dict[str, float],
    quality_names: Sequence[str],
    compute_names: Sequence[str],
    *,
    x_label: str,
    title: str,
    not_compared: Sequence[str] = ("avg_gap",),
) -> tuple[PruningCurve, Table]:
    """The compute-vs-quality curve and the table of a pruning sweep.

    ``ests[label][name]``: an estimate with ``value``, ``low``, ``high`` (or ``None``) of every
    quality and compute measure at each level; ``labels[0]`` is the unpruned level, the reference.
    A level keeps "equal quality" when every quality interval (except ``not_compared``) overlaps
    the reference's; the note gives the largest ``saved_fraction`` at equal quality."""
    from workbench.artifacts import Table
    from workbench.influence_artifacts import PruningCurve

    def series(names: Sequence[str]) -> dict[str, dict[str, list[float]]]:
        out = {}
        for n in names:
            got = [ests[label].get(n) for label in labels]
            out[n] = {
                "mean": [e.value if e else math.nan for e in got],
                "low": [e.low if e else math.nan for e in got],
                "high": [e.high if e else math.nan for e in got],
            }
        return out

    ref = ests[labels[0]]
    rows = []
    best = 0.0
    for value, label in zip(levels, labels, strict=True):
        e = ests[label]
        overlap = all(
            e.get(n) is not None
            and ref.get(n) is not None
            and e[n].low <= ref[n].high
            and ref[n].low <= e[n].high
            for n in quality_names
            if n not in not_compared
        )
        if overlap and e.get("saved_fraction") is not None:
            best = max(best, e["saved_fraction"].value)
        shown = (*compute_names, *quality_names)
        rows.append(
            [
                label,
                value,
                round(float(kept[label]), 1),
                *(str(e[n]) if e.get(n) is not None else "n/a" for n in shown),
                "yes" if overlap else "no",
            ]
        )
    curve = PruningCurve(
        list(levels),
        series(quality_names),
        series(compute_names),
        x_label=x_label,
        title=title,
        note=f"largest share of gradient steps saved at equal quality: {best:.2f}",
    )
    table = Table(
        ["level", "value", "kept", *compute_names, *quality_names, "equal quality"],
        rows,
        title=title + f". Steps saved at equal quality: up to {best:.2f}.",
    )
    return curve, table
