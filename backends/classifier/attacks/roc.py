"""ROC curves and the low-FPR summaries every membership / unlearning attack reports.

Scores are "higher means positive" (positive = member / unlearned, the attacked class of
examples).  Besides the AUC, attacks against unlearning are judged at low false-positive rates
(Carlini et al.'s LiRA convention, used by U-LiRA and Apollo, spec sections 1.3 and 2): the TPR at
FPR 1% and 0.1% (read off the ROC polyline by linear interpolation) and the precision at FPR 1%
(Apollo's headline number).  An attack that cannot tell the two sets apart has AUC 0.5 and
TPR@FPR = FPR.

Light: numpy and scikit-learn only (no torch), so label-only attacks reuse it as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn import metrics as _skm

__all__ = [
    "RocResult",
    "auc",
    "precision_at_fpr",
    "roc_curve",
    "roc_result",
    "tpr_at_fpr",
]


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"roc: {s.size} scores for {y.size} labels")
    if not np.all(np.isfinite(s)):
        raise ValueError("roc: scores must be finite (got NaN or inf)")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(
            f"roc: needs both positives and negatives (got {n_pos} positives, "
            f"{y.size - n_pos} negatives)"
        )
    return s, y


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)``, starting at (0, 0); a score >= threshold predicts positive.

    All thresholds are kept (no dropped collinear points), so the curve can be read at any FPR.
    """
    s, y = _check(scores, labels)
    fpr, tpr, thresholds = _skm.roc_curve(y, s, drop_intermediate=False)
    return fpr, tpr, thresholds


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the ROC polyline (trapezoids; ties count one half)."""
    return float(_skm.auc(np.asarray(fpr), np.asarray(tpr)))


def _last_at_or_below(fpr: np.ndarray, target: float) -> int:
    # fpr is non-decreasing; the last vertex with fpr <= target has the highest tpr among them
    return int(np.searchsorted(fpr, target, side="right") - 1)


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """TPR at false-positive rate ``target``, linearly interpolated on the ROC polyline.

    On a vertical segment at exactly ``target`` the highest TPR counts (the best threshold with
    FPR <= target); between two vertices the value is the randomised mix of their thresholds.
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"tpr_at_fpr: target FPR {target} is not in [0, 1]")
    i = _last_at_or_below(fpr, target)
    if i < 0:
        return 0.0
    if fpr[i] == target or i == len(fpr) - 1:
        return float(tpr[i])
    f0, f1, t0, t1 = fpr[i], fpr[i + 1], tpr[i], tpr[i + 1]
    return float(t0 + (t1 - t0) * (target - f0) / (f1 - f0))


def precision_at_fpr(scores: np.ndarray, labels: np.ndarray, target: float) -> float:
    """Precision TP / (TP + FP) at the best real threshold whose FPR is at most ``target``.

    NaN when no threshold with FPR <= target predicts any positive.
    """
    s, y = _check(scores, labels)
    fpr, tpr, _ = _skm.roc_curve(y, s, drop_intermediate=False)
    i = _last_at_or_below(fpr, target)
    tp = tpr[i] * y.sum()
    fp = fpr[i] * (~y).sum()
    if tp + fp <= 0:
        return float("nan")
    return float(tp / (tp + fp))


@dataclass
class RocResult:
    """One attack's ROC and its summaries (positives: members / unlearned examples)."""

    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    tpr_at_1pct: float
    tpr_at_01pct: float
    precision_at_1pct: float
    n_pos: int
    n_neg: int
    thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def to_metrics(self, prefix: str = "") -> dict[str, float]:
        """Scalar metrics, keys ``<prefix>_auc`` etc. (no prefix: ``auc`` etc.)."""
        values = {
            "auc": self.auc,
            "tpr_at_1pct_fpr": self.tpr_at_1pct,
            "tpr_at_01pct_fpr": self.tpr_at_01pct,
            "precision_at_1pct_fpr": self.precision_at_1pct,
            "n_pos": float(self.n_pos),
            "n_neg": float(self.n_neg),
        }
        return {(f"{prefix}_{k}" if prefix else k): float(v) for k, v in values.items()}

    @property
    def advantage(self) -> float:
        """Balanced-accuracy advantage max_t (TPR - FPR) (0 for a useless attack)."""
        return float(np.max(self.tpr - self.fpr))


def roc_result(scores: np.ndarray, labels: np.ndarray) -> RocResult:
    """The full :class:`RocResult` for attack ``scores`` (higher = positive) and 0/1 ``labels``."""
    s, y = _check(scores, labels)
    fpr, tpr, thresholds = _skm.roc_curve(y, s, drop_intermediate=False)
    return RocResult(
        fpr=fpr,
        tpr=tpr,
        auc=auc(fpr, tpr),
        tpr_at_1pct=tpr_at_fpr(fpr, tpr, 0.01),
        tpr_at_01pct=tpr_at_fpr(fpr, tpr, 0.001),
        precision_at_1pct=precision_at_fpr(s, y, 0.01),
        n_pos=int(y.sum()),
        n_neg=int((~y).sum()),
        thresholds=thresholds,
    )
