"""Membership-inference attacks and unlearning metrics for classifiers (backends.classifier.attacks).

Statistics are checked on hand-made numbers; the attacks run on scikit-learn's digits with a
deliberately leaky recipe (small training pool, long training, no weight decay; spec section 10),
so that a membership signal exists for the original model and vanishes for a retrained one.
"""

from __future__ import annotations

import numpy as np
import pytest

from backends.classifier.attacks import roc

# -- roc ----------------------------------------------------------------------------------------


def test_roc_perfect_reversed_and_tied_scores() -> None:
    labels = np.array([1, 1, 1, 0, 0, 0])
    perfect = roc.roc_result(np.array([6.0, 5, 4, 3, 2, 1]), labels)
    assert perfect.auc == 1.0 and perfect.tpr_at_1pct == 1.0 and perfect.precision_at_1pct == 1.0
    reversed_ = roc.roc_result(np.array([1.0, 2, 3, 4, 5, 6]), labels)
    assert reversed_.auc == 0.0 and reversed_.tpr_at_1pct == 0.0
    assert np.isnan(reversed_.precision_at_1pct)  # nothing is predicted positive at FPR <= 1%
    tied = roc.roc_result(np.zeros(6), labels)
    assert tied.auc == 0.5
    # a tie is a coin flip: TPR at FPR t is t on the diagonal
    assert tied.tpr_at_1pct == pytest.approx(0.01) and tied.tpr_at_01pct == pytest.approx(0.001)
    assert (tied.n_pos, tied.n_neg) == (3, 3)
    metrics = perfect.to_metrics("umia")
    assert metrics["umia_auc"] == 1.0 and metrics["umia_n_pos"] == 3.0
    assert set(perfect.to_metrics()) == {k.removeprefix("umia_") for k in metrics}


def test_roc_auc_matches_pairwise_count() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=200).round(1)  # with ties
    labels = rng.random(200) < 0.4
    fpr, tpr, _ = roc.roc_curve(scores, labels)
    pos, neg = scores[labels], scores[~labels]
    pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    assert roc.auc(fpr, tpr) == pytest.approx(pairs)


def test_tpr_at_fpr_interpolates_on_the_polyline() -> None:
    fpr = np.array([0.0, 0.0, 0.02, 0.5, 1.0])
    tpr = np.array([0.0, 0.1, 0.3, 0.9, 1.0])
    assert roc.tpr_at_fpr(fpr, tpr, 0.01) == pytest.approx(0.2)  # halfway between 0.1 and 0.3
    assert roc.tpr_at_fpr(fpr, tpr, 0.0) == pytest.approx(0.1)  # top of the vertical segment
    assert roc.tpr_at_fpr(fpr, tpr, 0.02) == pytest.approx(0.3)
    assert roc.tpr_at_fpr(fpr, tpr, 0.26) == pytest.approx(0.6)
    assert roc.tpr_at_fpr(fpr, tpr, 1.0) == 1.0
    with pytest.raises(ValueError):
        roc.tpr_at_fpr(fpr, tpr, 1.5)


def test_precision_at_fpr_and_bad_input() -> None:
    # 4 positives at the top, then 1 negative, then the rest mixed: at FPR 0 precision is 1
    scores = np.array([10.0, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    labels = np.array([1, 1, 1, 1, 0, 1, 0, 0, 0, 0])
    assert roc.precision_at_fpr(scores, labels, 0.01) == 1.0
    assert roc.precision_at_fpr(scores, labels, 0.2) == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="both positives and negatives"):
        roc.roc_result(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="finite"):
        roc.roc_result(np.array([np.nan, 1.0]), np.array([1, 0]))
