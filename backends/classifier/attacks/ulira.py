"""U-LiRA: the per-example unlearning likelihood-ratio attack (Hayes et al. 2024; spec section 1.3).

Shadow models are trained on random halves of a population pool, so each attacked target x is in
about half of them.  For each x the shadows split into

- "in" shadows: trained on x, then unlearned with the same algorithm as the target (x and the
  other targets in their training set as the forget set); their statistics model "unlearned";
- "out" shadows: never saw x; their statistics model "retrained".

With a per-model statistic φ (Hayes et al.: the logit-scaled confidence ``log(p_y / (1 − p_y))``;
the Apollo code: the raw true-label logit), fit ``N(μ_in, σ_in²)`` and ``N(μ_out, σ_out²)`` per
example and score the target model by

    Λ(x) = log N(φ_T(x); μ_in, σ_in²) − log N(φ_T(x); μ_out, σ_out²).

The ROC over Λ (positives: the unlearned targets, negatives: never-trained targets) is the result;
ideal unlearning gives AUC 0.5.

Which shadows are "out" is the option ``ULiRAConfig.out_shadows`` (``EvaluationConfig.ulira_out``
in the jobs), see :func:`out_statistics`:

- ``pipeline`` (default): the shadows that never saw x, after they unlearned their own forget
  examples with the same method.  A never-trained example of the attacked model went through
  exactly that pipeline, so this is the exact null; under class unlearning it is also the only
  choice whose "out" shadows no longer know the forgotten class.
- ``plain``: the shadows that never saw x, not unlearned (Hayes et al.; the official Apollo code's
  ``attacks/ULiRA.py`` reads ``self.shadow_models[i]`` for the excluded shadows).

This module is pure statistics: the caller trains (and unlearns) the shadows, evaluates them on
the targets and passes the ``(K, N)`` statistics and the ``(K, N)`` in-mask.  Build them with
:func:`out_statistics` (or :func:`combine_in_out`) from the unlearned shadows' values (always
used where in) and the chosen "out" values; with plain trained-on-x shadows as "in" this is
ordinary LiRA, i.e. the attack on a model that never unlearned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from backends.classifier.attacks.configs import ULIRA_OUT_SHADOWS, ULIRA_STATISTICS, ULiRAConfig
from backends.classifier.attacks.roc import RocResult, roc_result
from backends.classifier.training import predict_logits

__all__ = [
    "ULiRAResult",
    "combine_in_out",
    "lira_scores",
    "logit_scaled_confidence",
    "model_statistic",
    "out_statistics",
    "shadow_statistics",
    "statistic",
    "true_label_logit",
    "ulira",
    "ulira_from_stats",
]

_LOG_2PI = float(np.log(2 * np.pi))


def _as_tensor(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a).detach().cpu().to(torch.float64)


def _labels(labels: np.ndarray | torch.Tensor, shape: torch.Size) -> torch.Tensor:
    y = torch.as_tensor(labels).detach().cpu().long()
    return y.expand(shape[:-1]).unsqueeze(-1)


def true_label_logit(
    logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor
) -> np.ndarray:
    """``z_y`` for logits ``(..., N, C)`` and labels ``(N,)``; shape ``(..., N)``."""
    z = _as_tensor(logits)
    return z.gather(-1, _labels(labels, z.shape)).squeeze(-1).numpy()


def logit_scaled_confidence(
    logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor
) -> np.ndarray:
    """``log(p_y / (1 − p_y)) = z_y − logsumexp_{j≠y} z_j`` (stable for any logits);
    logits ``(..., N, C)``, labels ``(N,)``, result ``(..., N)``."""
    z = _as_tensor(logits)
    y = _labels(labels, z.shape)
    zy = z.gather(-1, y).squeeze(-1)
    others = z.scatter(-1, y, float("-inf"))
    return (zy - torch.logsumexp(others, dim=-1)).numpy()


def statistic(
    logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, kind: str
) -> np.ndarray:
    """The configured U-LiRA statistic (``logit_scaled`` or ``true_logit``)."""
    if kind == "logit_scaled":
        return logit_scaled_confidence(logits, labels)
    if kind == "true_logit":
        return true_label_logit(logits, labels)
    raise ValueError(f"unknown U-LiRA statistic {kind!r}; choose {', '.join(ULIRA_STATISTICS)}")


def model_statistic(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str = "logit_scaled"
) -> np.ndarray:
    """The statistic of one model on targets ``(x, y)``: shape ``(N,)``."""
    return statistic(predict_logits(model, x), y, kind)


def shadow_statistics(
    shadows: object, x: torch.Tensor, y: torch.Tensor, kind: str = "logit_scaled"
) -> np.ndarray:
    """``(K, N)`` statistics of K shadows: an ``Ensemble`` (anything with ``predict(x) ->
    (K, N, C)``) or a sequence of modules."""
    if hasattr(shadows, "predict"):
        logits = shadows.predict(x)  # type: ignore[attr-defined]
    else:
        logits = torch.stack([predict_logits(m, x) for m in shadows])  # type: ignore[attr-defined]
    return statistic(logits, y, kind)


def combine_in_out(in_stats: np.ndarray, out_stats: np.ndarray, in_mask: np.ndarray) -> np.ndarray:
    """``(K, N)`` statistics: the unlearned shadows' values where in, the plain ones where out."""
    return np.where(np.asarray(in_mask, dtype=bool), in_stats, out_stats)


def out_statistics(
    unlearned_stats: np.ndarray, plain_stats: np.ndarray, in_mask: np.ndarray, out_shadows: str
) -> np.ndarray:
    """The ``(K, N)`` statistics U-LiRA fits: the unlearned shadows' where in, and where out the
    unlearned shadows' (``pipeline``) or the plain shadows' (``plain``) values."""
    if out_shadows == "pipeline":
        return np.asarray(unlearned_stats)
    if out_shadows == "plain":
        return combine_in_out(unlearned_stats, plain_stats, in_mask)
    raise ValueError(
        f"unknown U-LiRA out_shadows {out_shadows!r}; choose {', '.join(ULIRA_OUT_SHADOWS)}"
    )


def _log_normal(x: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    return -0.5 * (_LOG_2PI + np.log(var) + (x - mu) ** 2 / var)


def lira_scores(
    target_stat: np.ndarray,
    stats: np.ndarray,
    in_mask: np.ndarray,
    *,
    variance_floor: float = 1e-4,
    fixed_variance: bool = False,
) -> np.ndarray:
    """Λ per target ``(N,)`` from the target's statistic ``(N,)`` and the shadows' ``(K, N)``.

    Per-example means and (maximum-likelihood, ddof 0, as ``scipy.stats.norm.fit`` in the Apollo
    code) variances over the in and the out shadows, floored at ``variance_floor``.  With
    ``fixed_variance`` one pooled within-group variance over all examples and both groups replaces
    the per-example ones (LiRA's choice for few shadows).  A target without an in or without an
    out shadow scores 0 (no evidence either way).
    """
    phi = np.asarray(target_stat, dtype=np.float64)
    s = np.asarray(stats, dtype=np.float64)
    m = np.asarray(in_mask, dtype=bool)
    if s.shape != m.shape or s.ndim != 2 or s.shape[1] != phi.shape[0]:
        raise ValueError(
            f"lira_scores: stats {s.shape}, in_mask {m.shape} and target {phi.shape} "
            "must be (K, N), (K, N) and (N,)"
        )
    n_in, n_out = m.sum(0), (~m).sum(0)
    ok = (n_in > 0) & (n_out > 0)
    safe_in, safe_out = np.maximum(n_in, 1), np.maximum(n_out, 1)
    mu_in = np.where(m, s, 0.0).sum(0) / safe_in
    mu_out = np.where(~m, s, 0.0).sum(0) / safe_out
    ss_in = np.where(m, (s - mu_in) ** 2, 0.0).sum(0)
    ss_out = np.where(~m, (s - mu_out) ** 2, 0.0).sum(0)
    if fixed_variance:
        pooled = (ss_in[ok].sum() + ss_out[ok].sum()) / max(
            int(n_in[ok].sum() + n_out[ok].sum()), 1
        )
        var_in = var_out = np.full_like(phi, max(pooled, variance_floor))
    else:
        var_in = np.maximum(ss_in / safe_in, variance_floor)
        var_out = np.maximum(ss_out / safe_out, variance_floor)
    if variance_floor <= 0:  # a zero variance would make the densities improper
        var_in, var_out = np.maximum(var_in, 1e-12), np.maximum(var_out, 1e-12)
    score = _log_normal(phi, mu_in, var_in) - _log_normal(phi, mu_out, var_out)
    return np.where(ok, score, 0.0)


@dataclass
class ULiRAResult:
    """The ROC of Λ over the attacked targets, and the per-target values behind it."""

    roc: RocResult
    scores: np.ndarray  # Λ per target
    target_stat: np.ndarray  # φ_T per target
    is_member: np.ndarray  # 1 = unlearned (positive), 0 = never trained

    def to_metrics(self, prefix: str = "ulira") -> dict[str, float]:
        return self.roc.to_metrics(prefix)


def ulira_from_stats(
    target_stat: np.ndarray,
    is_member: np.ndarray,
    stats: np.ndarray,
    in_mask: np.ndarray,
    cfg: ULiRAConfig | None = None,
) -> ULiRAResult:
    """U-LiRA from precomputed statistics (target ``(N,)``, shadows ``(K, N)``)."""
    cfg = cfg or ULiRAConfig()
    scores = lira_scores(
        target_stat,
        stats,
        in_mask,
        variance_floor=cfg.variance_floor,
        fixed_variance=cfg.fixed_variance,
    )
    labels = np.asarray(is_member, dtype=bool)
    return ULiRAResult(roc_result(scores, labels), scores, np.asarray(target_stat), labels)


def ulira(
    target_model: nn.Module,
    targets_x: torch.Tensor,
    targets_y: torch.Tensor,
    is_member: np.ndarray | Sequence[bool],
    shadow_stats: np.ndarray,
    in_mask: np.ndarray,
    cfg: ULiRAConfig | None = None,
) -> ULiRAResult:
    """Attack ``target_model`` on the targets (``is_member`` 1 = unlearned, 0 = never trained).

    ``shadow_stats (K, N)`` are the shadows' statistics on the same targets, computed with
    ``cfg.statistic`` (see :func:`shadow_statistics` and :func:`combine_in_out`), and
    ``in_mask (K, N)`` says which shadow was trained on (and then unlearned) which target.
    """
    cfg = cfg or ULiRAConfig()
    phi = model_statistic(target_model, targets_x, targets_y, cfg.statistic)
    return ulira_from_stats(phi, np.asarray(is_member), shadow_stats, in_mask, cfg)
