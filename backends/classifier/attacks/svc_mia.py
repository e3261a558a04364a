"""MIA-efficacy: the OPTML code base's SVC membership attack on the forget set (spec section 7).

Following ``evaluation/SVC_MIA.py`` of OPTML-Group/Unlearn-Saliency (used by SalUn, ℓ1-sparse and
their successors; spec section 7 and OPTML issues #7 and #10):

1. per-example features of the model under test, from its softmax ``p`` and the label ``y``:
   ``correctness`` 1[argmax p = y], ``confidence`` p_y, ``entropy`` −Σ_j p_j log p_j,
   ``modified_entropy`` (Song & Mittal 2021)
   ``−(1 − p_y) log p_y − Σ_{j≠y} p_j log(1 − p_j)``, or the whole ``probability`` vector;
2. an RBF SVC (C = 3, gamma = "auto") trained on retain examples (members, label 1) vs test
   examples (non-members, label 0), with as many retain as test examples (OPTML takes the first
   |test| retain examples; here a seeded random subset);
3. efficacy = fraction of forget examples the SVC predicts non-member.  Higher means the forget
   set looks less like training data; a retrained model is the reference value, not 1.

Differences from the OPTML code: its ``m_entropy`` indexes ``[:, labels]`` (mixing columns across
the batch) and uses ``log p`` where ``log(1 − p)`` is meant; the formula above is Song & Mittal's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.svm import SVC
from torch import nn

from backends.classifier.attacks.configs import SVC_FEATURES, SvcMiaConfig
from backends.classifier.setup import ClassifierSetup
from backends.classifier.training import predict_logits

__all__ = ["SvcMiaResult", "mia_features", "svc_efficacy", "svc_mia"]

_EPS = 1e-30


def mia_features(probs: np.ndarray, labels: np.ndarray, kind: str) -> np.ndarray:
    """Features ``(N, d)`` of softmax outputs ``probs (N, C)`` with labels ``(N,)``."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    n = len(p)
    py = p[np.arange(n), y]
    if kind == "correctness":
        return (p.argmax(1) == y).astype(np.float64)[:, None]
    if kind == "confidence":
        return py[:, None]
    if kind == "entropy":
        return -(p * np.log(np.maximum(p, _EPS))).sum(1, keepdims=True)
    if kind == "modified_entropy":
        log_p = np.log(np.maximum(p, _EPS))
        log_1mp = np.log(np.maximum(1.0 - p, _EPS))
        onehot = np.zeros_like(p, dtype=bool)
        onehot[np.arange(n), y] = True
        terms = np.where(onehot, (1.0 - p) * log_p, p * log_1mp)
        return -terms.sum(1, keepdims=True)
    if kind == "probability":
        return p
    raise ValueError(f"unknown MIA feature {kind!r}; choose one of {', '.join(SVC_FEATURES)}")


def svc_efficacy(
    member: np.ndarray,
    non_member: np.ndarray,
    target: np.ndarray,
    *,
    c: float = 3.0,
    max_per_side: int = 0,
    seed: int = 0,
) -> float:
    """Fit an RBF SVC on balanced ``member`` (1) vs ``non_member`` (0) features and return the
    fraction of ``target`` rows predicted non-member (NaN for no target)."""
    if len(target) == 0:
        return float("nan")
    if len(member) == 0 or len(non_member) == 0:
        raise ValueError("svc_efficacy: needs member and non-member examples to train the SVC")
    rng = np.random.default_rng(seed)
    n = min(len(member), len(non_member))
    if max_per_side > 0:
        n = min(n, max_per_side)
    mem = member[rng.choice(len(member), n, replace=False)]
    non = non_member[rng.choice(len(non_member), n, replace=False)]
    x = np.concatenate([mem, non]).reshape(2 * n, -1)
    y = np.concatenate([np.ones(n), np.zeros(n)])
    if len(np.unique(x, axis=0)) == 1:  # one feature value for all: the SVC cannot be fitted
        return 0.5
    clf = SVC(C=c, gamma="auto", kernel="rbf")
    clf.fit(x, y)
    return float(1.0 - clf.predict(np.asarray(target).reshape(len(target), -1)).mean())


@dataclass
class SvcMiaResult:
    """MIA-efficacy per feature set, and the sizes it was computed from."""

    efficacy: dict[str, float]
    n_per_side: int
    n_forget: int

    def to_metrics(self, prefix: str = "mia_efficacy") -> dict[str, float]:
        """``<prefix>`` for a single feature set, ``<prefix>_<feature>`` for several."""
        if len(self.efficacy) == 1:
            return {prefix: next(iter(self.efficacy.values()))}
        return {f"{prefix}_{k}": v for k, v in self.efficacy.items()}


@torch.no_grad()
def _probs(model: nn.Module, setup: ClassifierSetup, idx: np.ndarray) -> tuple[np.ndarray, ...]:
    x, y = setup.tensors(idx)
    return predict_logits(model, x).double().softmax(-1).cpu().numpy(), y.cpu().numpy()


def svc_mia(
    model: nn.Module, setup: ClassifierSetup, cfg: SvcMiaConfig | None = None
) -> SvcMiaResult:
    """MIA-efficacy of ``model`` on ``setup``'s forget set: members = retain, non-members = test."""
    cfg = cfg or SvcMiaConfig()
    kinds = SVC_FEATURES if cfg.features == "all" else (cfg.features,)
    retain = _probs(model, setup, setup.retain_idx)
    test = _probs(model, setup, setup.test_idx)
    forget = _probs(model, setup, setup.forget_idx)
    out = {}
    for kind in kinds:
        out[kind] = svc_efficacy(
            mia_features(*retain, kind),
            mia_features(*test, kind),
            mia_features(*forget, kind),
            c=cfg.c,
            max_per_side=cfg.max_per_side,
            seed=cfg.seed,
        )
    n = min(len(setup.retain_idx), len(setup.test_idx))
    if cfg.max_per_side > 0:
        n = min(n, cfg.max_per_side)
    return SvcMiaResult(out, n, len(setup.forget_idx))
