"""95% intervals for the rates and AUCs the workbench compares, and the one "held" rule.

Every table that compares a rate (a concept rate, a recall, an accuracy) or an AUC between two
models carries an interval from this module, and every "held / not held" verdict comes from
:func:`held`: a direction is held only when the two intervals do not overlap (the conservative
reading of the developers' guide: "the difference lies outside them"), or, where paired samples
exist, when the bootstrap interval of the difference excludes zero.

- :func:`binomial_interval`: exact Clopper-Pearson interval of k successes in n trials
  (``scipy.stats.beta``), the right choice at the small n of tiny-model studies.
- :func:`rate`: a :class:`Estimate` of k / n with that interval.
- :func:`bootstrap_auc`: ROC AUC (``sklearn.metrics.roc_auc_score``) with a stratified
  percentile-bootstrap interval (members and non-members resampled separately, fixed seed).
- :func:`bootstrap_mean`: mean of per-sample values with a percentile-bootstrap interval.
- :func:`bootstrap_statistic`: any statistic of paired per-sample columns (a ratio of means,
  say) with the same percentile bootstrap over samples; :func:`bootstrap_mean` is its mean case.
- :func:`difference_interval`: bootstrap interval of mean(a) - mean(b) for independent samples.
- :func:`held`: the verdict.

numpy / scipy / sklearn only, no torch, so the headless core and the views can use it too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "Estimate",
    "binomial_interval",
    "bootstrap_auc",
    "bootstrap_mean",
    "bootstrap_statistic",
    "difference_held",
    "difference_interval",
    "held",
    "rate",
]

#: Default confidence level and bootstrap size; callers pass their config's values through.
CONFIDENCE = 0.95
N_BOOTSTRAP = 1000


@dataclass(frozen=True)
class Estimate:
    """A point value with its interval ``[low, high]`` at ``confidence``; ``n`` samples behind it."""

    value: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    def as_dict(self, prefix: str) -> dict[str, float]:
        """``{prefix: value, prefix_low: low, prefix_high: high}`` for metrics and tables."""
        return {prefix: self.value, f"{prefix}_low": self.low, f"{prefix}_high": self.high}

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def binomial_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion ``k / n``.

    ``n`` must be positive and ``0 <= k <= n``; the interval at k = 0 starts at 0 and at k = n
    ends at 1.
    """
    from scipy.stats import beta

    if n <= 0:
        raise ValueError(f"binomial_interval: n must be positive, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"binomial_interval: k must be in 0..{n}, got {k}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"binomial_interval: confidence must be in (0, 1), got {confidence}")
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def rate(k: int, n: int, confidence: float = CONFIDENCE) -> Estimate:
    """``k / n`` with its exact binomial interval."""
    low, high = binomial_interval(int(k), int(n), confidence)
    return Estimate(float(k) / float(n), low, high, int(n), confidence)


def _percentile(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bootstrap_statistic(
    columns: Sequence[Sequence[float]] | np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    confidence: float = CONFIDENCE,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> Estimate:
    """``statistic`` of per-sample values with a percentile-bootstrap interval (fixed ``seed``).

    ``columns`` is ``(d, n)``: ``d`` values measured on each of ``n`` samples (the same sample in
    every column, so a resample keeps them paired).  ``statistic`` maps an array ``(..., d, n)``
    to ``(...)`` (reducing over the last axis); it is applied once to ``columns`` for the value
    and once to the ``(n_bootstrap, d, n)`` resamples, which draw the samples with replacement.
    """
    x = np.asarray(columns, dtype=float)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError("bootstrap_statistic: columns must be (d, n) with n > 0 samples")
    n = x.shape[1]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_bootstrap, n))
    replicates = np.asarray(statistic(x[:, idx].transpose(1, 0, 2)), dtype=float)
    low, high = _percentile(replicates, confidence)
    return Estimate(float(statistic(x)), low, high, int(n), confidence)


def _mean_of_first(x: np.ndarray) -> np.ndarray:
    return np.asarray(x[..., 0, :].mean(axis=-1))


def bootstrap_mean(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> Estimate:
    """Mean of ``values`` with a percentile-bootstrap interval (fixed ``seed``)."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("bootstrap_mean: no values")
    return bootstrap_statistic(
        x[None, :], _mean_of_first, confidence=confidence, n_bootstrap=n_bootstrap, seed=seed
    )


def difference_interval(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> Estimate:
    """mean(a) - mean(b) for independent samples, with a percentile-bootstrap interval."""
    xa = np.asarray(a, dtype=float).ravel()
    xb = np.asarray(b, dtype=float).ravel()
    if xa.size == 0 or xb.size == 0:
        raise ValueError("difference_interval: both samples need values")
    rng = np.random.default_rng(seed)
    ma = xa[rng.integers(0, xa.size, size=(n_bootstrap, xa.size))].mean(axis=1)
    mb = xb[rng.integers(0, xb.size, size=(n_bootstrap, xb.size))].mean(axis=1)
    low, high = _percentile(ma - mb, confidence)
    return Estimate(float(xa.mean() - xb.mean()), low, high, int(xa.size + xb.size), confidence)


def bootstrap_auc(
    member_scores: Sequence[float] | np.ndarray,
    nonmember_scores: Sequence[float] | np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> Estimate:
    """ROC AUC of scores where members (label 1) should score higher, with a stratified bootstrap
    interval: members and non-members are resampled separately so every replicate has both."""
    pos = np.asarray(member_scores, dtype=float).ravel()
    neg = np.asarray(nonmember_scores, dtype=float).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError("bootstrap_auc: need at least one member and one non-member score")
    value = float(_rank_auc(np.r_[pos, neg][None, :], pos.size)[0])
    rng = np.random.default_rng(seed)
    # the resampled indices are drawn replicate by replicate (members, then non-members), and
    # the AUCs computed by ranks in chunks: ~100x faster than one roc_auc_score per replicate
    reps = np.empty(n_bootstrap)
    chunk = max(1, 2_000_000 // (pos.size + neg.size))
    for start in range(0, n_bootstrap, chunk):
        m = min(chunk, n_bootstrap - start)
        rows = []
        for _ in range(m):
            p = pos[rng.integers(0, pos.size, pos.size)]
            q = neg[rng.integers(0, neg.size, neg.size)]
            rows.append(np.r_[p, q])
        reps[start : start + m] = _rank_auc(np.stack(rows), pos.size)
    low, high = _percentile(reps, confidence)
    return Estimate(value, low, high, int(pos.size + neg.size), confidence)


def _rank_auc(scores: np.ndarray, n_pos: int) -> np.ndarray:
    """ROC AUC of each row of ``scores`` (R, n) whose first ``n_pos`` columns are members, by the
    Mann-Whitney rank formula with average ranks for ties (equal to ``roc_auc_score``)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=1)
    n_neg = scores.shape[1] - n_pos
    return (ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


Verdict = Literal["held", "not held"]


def held(
    better: Estimate,
    worse: Estimate,
    *,
    direction: Literal["greater", "less"] = "greater",
) -> Verdict:
    """ "held" when ``better`` lies strictly on the claimed side of ``worse`` with no overlap of
    their intervals (``direction="greater"``: better.low > worse.high; ``"less"``: better.high <
    worse.low); otherwise "not held"."""
    if direction == "greater":
        return "held" if better.low > worse.high else "not held"
    if direction == "less":
        return "held" if better.high < worse.low else "not held"
    raise ValueError(f"held: direction must be 'greater' or 'less', got {direction!r}")


def difference_held(
    diff: Estimate, *, direction: Literal["greater", "less"] = "greater"
) -> Verdict:
    """ "held" when the interval of a difference excludes zero on the claimed side."""
    if direction == "greater":
        return "held" if diff.low > 0 else "not held"
    if direction == "less":
        return "held" if diff.high < 0 else "not held"
    raise ValueError(f"difference_held: direction must be 'greater' or 'less', got {direction!r}")
