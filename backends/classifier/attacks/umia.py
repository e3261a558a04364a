"""U-MIA (Kurmanji et al. 2023), as re-implemented in the Apollo code (spec section 2).

The attacker queries the (unlearned) target model and sees its logit vectors.  An RBF SVC
(``C = 3``, ``gamma = "auto"``, Apollo ``attacks/UMIA.py``) is trained on a surrogate split:
half of the forget examples labelled "unlearned" (1) and half of the never-trained examples
labelled "never trained" (0).  It scores the other halves; the ROC of those scores (positives: the
held-out forget examples) is the attack's result.  Ideal unlearning gives AUC 0.5.

Choices made here: the score is the SVC's decision function (Apollo uses Platt-scaled
``predict_log_proba``, a monotone map of it up to Platt's internal cross-validation noise, so the
ROC is the same); the two sides are balanced by seeded subsampling of the larger one; for class
unlearning the never-trained examples are the forget class's test examples (otherwise the SVC
would only learn "class f vs the rest", which says nothing about unlearning).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.svm import SVC
from torch import nn

from backends.classifier.attacks.configs import UMiaConfig
from backends.classifier.attacks.roc import RocResult, roc_result
from backends.classifier.setup import ClassifierSetup
from backends.classifier.training import predict_logits

__all__ = ["UMiaResult", "umia", "umia_from_logits"]


@dataclass
class UMiaResult:
    """The ROC on the evaluation halves, with the per-example scores behind it."""

    roc: RocResult
    scores: np.ndarray  # SVC decision values of the evaluation examples (higher: "unlearned")
    labels: np.ndarray  # 1 = forget (unlearned), 0 = never trained
    n_train: int  # surrogate examples per side

    def to_metrics(self, prefix: str = "umia") -> dict[str, float]:
        return self.roc.to_metrics(prefix)


def _halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    return perm[: n // 2], perm[n // 2 :]


def umia_from_logits(
    forget_logits: np.ndarray, never_logits: np.ndarray, cfg: UMiaConfig | None = None
) -> UMiaResult:
    """U-MIA from the target's logits on forget ``(Nf, C)`` and never-trained ``(Nn, C)`` inputs."""
    cfg = cfg or UMiaConfig()
    f = np.asarray(forget_logits, dtype=np.float64)
    t = np.asarray(never_logits, dtype=np.float64)
    rng = np.random.default_rng(cfg.split_seed)
    n = min(len(f), len(t))
    if n < 4:
        raise ValueError(
            f"U-MIA needs at least 4 forget and 4 never-trained examples (got {len(f)}, {len(t)})"
        )
    f = f[rng.choice(len(f), n, replace=False)]
    t = t[rng.choice(len(t), n, replace=False)]
    f_fit, f_eval = _halves(n, rng)
    t_fit, t_eval = _halves(n, rng)
    x_fit = np.concatenate([f[f_fit], t[t_fit]])
    y_fit = np.concatenate([np.ones(len(f_fit)), np.zeros(len(t_fit))])
    clf = SVC(C=cfg.c, gamma=cfg.gamma, kernel="rbf")
    clf.fit(x_fit, y_fit)
    x_eval = np.concatenate([f[f_eval], t[t_eval]])
    labels = np.concatenate([np.ones(len(f_eval)), np.zeros(len(t_eval))]).astype(np.int64)
    scores = clf.decision_function(x_eval)
    return UMiaResult(roc_result(scores, labels), scores, labels, len(f_fit))


@torch.no_grad()
def umia(model: nn.Module, setup: ClassifierSetup, cfg: UMiaConfig | None = None) -> UMiaResult:
    """U-MIA against ``model``: forget set vs the test set (class unlearning: the forget class's
    test examples)."""
    never_idx = setup.forget_test_idx if setup.forget_class is not None else setup.test_idx
    forget = predict_logits(model, setup.forget[0]).cpu().numpy()
    never = predict_logits(model, setup.tensors(never_idx)[0]).cpu().numpy()
    return umia_from_logits(forget, never, cfg)
