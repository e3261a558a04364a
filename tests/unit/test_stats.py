"""The shared 95% intervals and the "held" rule, on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from backends.common import stats


def test_clopper_pearson_matches_closed_forms() -> None:
    # k = 0: the upper end is 1 - (alpha/2)^(1/n); k = n mirrors it.
    low, high = stats.binomial_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-9)
    low, high = stats.binomial_interval(10, 10)
    assert high == 1.0
    assert low == pytest.approx(0.025 ** (1 / 10), abs=1e-9)
    # The textbook value for 5 of 10: [0.1871, 0.8129].
    low, high = stats.binomial_interval(5, 10)
    assert (low, high) == pytest.approx((0.18709, 0.81291), abs=1e-4)


def test_rate_and_bad_input() -> None:
    est = stats.rate(62, 64)
    assert est.value == pytest.approx(62 / 64)
    assert est.low < est.value < est.high
    assert est.as_dict("r") == {"r": est.value, "r_low": est.low, "r_high": est.high}
    with pytest.raises(ValueError, match="n must be positive"):
        stats.binomial_interval(0, 0)
    with pytest.raises(ValueError, match="k must be in"):
        stats.binomial_interval(11, 10)


def test_bootstrap_auc_separated_and_random() -> None:
    rng = np.random.default_rng(0)
    perfect = stats.bootstrap_auc(rng.normal(5, 1, 50), rng.normal(0, 1, 50))
    assert perfect.value > 0.99 and perfect.low > 0.97
    chance = stats.bootstrap_auc(rng.normal(0, 1, 200), rng.normal(0, 1, 200))
    assert chance.low < 0.5 < chance.high
    assert chance.high - chance.low < 0.15
    # Fixed seed: the same call gives the same interval.
    again = stats.bootstrap_auc(rng.normal(0, 1, 20), rng.normal(0, 1, 20), seed=3)
    assert again.n == 40


def test_bootstrap_mean_and_difference() -> None:
    est = stats.bootstrap_mean([1.0] * 10)
    assert (est.value, est.low, est.high) == (1.0, 1.0, 1.0)
    diff = stats.difference_interval([1.0, 1.0, 0.9, 1.0], [0.0, 0.1, 0.0, 0.0])
    assert diff.value == pytest.approx(0.95)
    assert stats.difference_held(diff) == "held"
    assert stats.difference_held(diff, direction="less") == "not held"


def test_bootstrap_statistic_resamples_paired_columns() -> None:
    # the mean case is bootstrap_mean, draw for draw (the values recorded before bootstrap_mean
    # was rewritten on top of bootstrap_statistic)
    x = np.random.default_rng(1).normal(size=37)
    est = stats.bootstrap_mean(x, seed=4)
    assert (est.value, est.low, est.high, est.n) == (
        0.04009848166979833,
        -0.2559882070273184,
        0.33668834257677,
        37,
    )
    same = stats.bootstrap_statistic(x[None, :], lambda a: a[..., 0, :].mean(axis=-1), seed=4)
    assert same == est
    # columns stay paired: a resample draws whole samples, so mean(a) - mean(a) is 0 in every
    # replicate (independent resampling of the two columns would spread it)
    diff = stats.bootstrap_statistic(
        [x, x], lambda a: a[..., 0, :].mean(axis=-1) - a[..., 1, :].mean(axis=-1)
    )
    assert (diff.value, diff.low, diff.high) == (0.0, 0.0, 0.0)
    # two samples: a replicate is (a, a), (a, b) or (b, a), (b, b), each end drawn ~1/4 of the
    # time, so the 2.5% / 97.5% quantiles are the ratios of the two all-same resamples
    ratio = stats.bootstrap_statistic(
        [[1.0, 3.0], [2.0, 2.0]], lambda a: a[..., 0, :].mean(axis=-1) / a[..., 1, :].mean(axis=-1)
    )
    assert (ratio.value, ratio.low, ratio.high) == (1.0, 0.5, 1.5)
    with pytest.raises(ValueError, match="columns"):
        stats.bootstrap_statistic([[]], lambda a: a.mean(axis=-1))


def test_held_needs_disjoint_intervals() -> None:
    high = stats.rate(60, 64)
    low = stats.rate(4, 64)
    assert stats.held(high, low) == "held"
    assert stats.held(low, high, direction="less") == "held"
    # 0.17 vs 0.16 on 64 samples each: the intervals overlap, so not held either way.
    a, b = stats.rate(11, 64), stats.rate(10, 64)
    assert stats.held(a, b) == "not held"
    assert stats.held(a, b, direction="less") == "not held"
    with pytest.raises(ValueError, match="direction"):
        stats.held(a, b, direction="sideways")  # type: ignore[arg-type]


def test_bootstrap_auc_equals_sklearn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    members = rng.integers(0, 5, 30).astype(float)  # many ties
    nonmembers = rng.integers(0, 4, 40).astype(float)
    est = stats.bootstrap_auc(members, nonmembers, n_bootstrap=200, seed=5)
    labels = np.r_[np.ones(30), np.zeros(40)]
    assert est.value == pytest.approx(roc_auc_score(labels, np.r_[members, nonmembers]))
    # the replicates are the ones a per-replicate sklearn loop with the same draws gives
    draw = np.random.default_rng(5)
    reps = []
    for _ in range(200):
        p = members[draw.integers(0, 30, 30)]
        q = nonmembers[draw.integers(0, 40, 40)]
        reps.append(roc_auc_score(labels, np.r_[p, q]))
    lo, hi = np.quantile(reps, [0.025, 0.975])
    assert (est.low, est.high) == pytest.approx((lo, hi))
