"""Membership-inference attacks and unlearning metrics for classifiers (backends.classifier.attacks).

Statistics are checked on hand-made numbers; the attacks run on scikit-learn's digits with a
deliberately leaky recipe (small training pool, long training, no weight decay; spec section 10),
so that a membership signal exists for the original model and vanishes for a retrained one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from backends.classifier.attacks import metrics, roc, svc_mia, ulira
from backends.classifier.ensemble import half_membership

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


# -- U-LiRA statistics --------------------------------------------------------------------------


def test_lira_scores_separate_shifted_gaussians_and_not_identical_ones() -> None:
    rng = np.random.default_rng(0)
    k, n = 16, 400
    in_mask = half_membership(k, n, seed=0)
    mu = rng.normal(0, 3, size=n)  # per-example difficulty, as with real examples
    shift = 1.5  # "in" shadows (trained on x, then badly unlearned) sit higher
    stats = mu + rng.normal(size=(k, n)) + shift * in_mask
    is_member = rng.random(n) < 0.5
    target = mu + rng.normal(size=n) + shift * is_member
    for fixed in (False, True):
        scores = ulira.lira_scores(target, stats, in_mask, fixed_variance=fixed)
        assert roc.roc_result(scores, is_member).auc > 0.75
    same = mu + rng.normal(size=(k, n))  # in and out shadows from one distribution
    scores = ulira.lira_scores(mu + rng.normal(size=n), same, in_mask)
    assert abs(roc.roc_result(scores, is_member).auc - 0.5) < 0.08  # 3 sd of a null AUC (0.029)


def test_lira_scores_edge_cases() -> None:
    stats = np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 2.0]])
    in_mask = np.array([[True, True], [True, True], [False, True]])
    # example 1 has no "out" shadow: no evidence, score 0; example 0 has zero "in" variance,
    # which the floor keeps finite
    scores = ulira.lira_scores(np.array([1.0, 2.0]), stats, in_mask, variance_floor=1e-2)
    assert np.all(np.isfinite(scores)) and scores[1] == 0.0 and scores[0] > 0
    with pytest.raises(ValueError, match="must be"):
        ulira.lira_scores(np.zeros(3), stats, in_mask)


def test_logit_scaled_confidence_is_stable() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0], [-3.0, 1.0, 4.0]])
    labels = torch.tensor([0, 1, 2])
    p = logits.double().softmax(-1)[torch.arange(3), labels]
    naive = torch.log(p / (1 - p)).numpy()
    np.testing.assert_allclose(ulira.logit_scaled_confidence(logits, labels), naive, rtol=1e-10)
    extreme = torch.tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]])
    out = ulira.logit_scaled_confidence(extreme, torch.tensor([0, 0]))
    assert np.all(np.isfinite(out)) and out[0] == pytest.approx(1000.0) and out[1] < -1999
    # leading (K,) dimension of an ensemble's logits
    stacked = ulira.statistic(torch.stack([logits, logits]), labels, "logit_scaled")
    assert stacked.shape == (2, 3)
    np.testing.assert_allclose(ulira.true_label_logit(logits, labels), [2.0, 0.0, 4.0])


# -- metrics ------------------------------------------------------------------------------------


def _linear(weight: list[list[float]], bias: list[float]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))
    return layer


def test_tv_distance_zero_for_same_model_one_for_disjoint_outputs() -> None:
    x = torch.randn(20, 2)
    # zero weights and a huge bias: one-hot outputs on class 0 (a) and class 1 (b)
    a = _linear([[0.0, 0.0], [0.0, 0.0]], [100.0, -100.0])
    b = _linear([[0.0, 0.0], [0.0, 0.0]], [-100.0, 100.0])
    assert metrics.tv_distance(a, a, x) == 0.0
    assert metrics.tv_distance(a, b, x) == pytest.approx(1.0)
    assert metrics.gap_to({"a": 0.5, "b": 1.0}, {"a": 0.25, "c": 3.0}) == {"a": 0.25}


def test_mia_features() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    y = np.array([0, 0])
    assert svc_mia.mia_features(p, y, "correctness").ravel().tolist() == [1.0, 0.0]
    assert svc_mia.mia_features(p, y, "confidence").ravel().tolist() == [0.7, 0.1]
    entropy = -(p * np.log(p)).sum(1)
    np.testing.assert_allclose(svc_mia.mia_features(p, y, "entropy").ravel(), entropy)
    # Song & Mittal: -(1 - p_y) log p_y - sum_{j != y} p_j log(1 - p_j)
    m0 = -(0.3 * np.log(0.7) + 0.2 * np.log(0.8) + 0.1 * np.log(0.9))
    m1 = -(0.9 * np.log(0.1) + 0.1 * np.log(0.9) + 0.8 * np.log(0.2))
    np.testing.assert_allclose(svc_mia.mia_features(p, y, "modified_entropy").ravel(), [m0, m1])
    assert svc_mia.mia_features(p, y, "probability").shape == (2, 3)
    with pytest.raises(ValueError, match="unknown MIA feature"):
        svc_mia.mia_features(p, y, "loss")


def test_configs_import_no_torch() -> None:
    code = (
        "import sys\n"
        "from workbench.config import schema_of\n"
        "from backends.classifier.attacks import configs as c\n"
        "for k in (c.SvcMiaConfig, c.UMiaConfig, c.MiaNNConfig, c.ULiRAConfig):\n"
        "    schema_of(k)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'sklearn' not in sys.modules, 'sklearn imported'\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
