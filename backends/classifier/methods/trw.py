"""TRW (Tilted ReWeighting): class unlearning towards a similarity-tilted target distribution
(spec section 1.2; CPU plan and unit tests in section 1.4).

With the original model theta_0 and forget class f:

- renormalised remaining distribution ``p~_j(x) = p_j(x) / (1 - p_f(x))`` for j != f;
- class similarity :func:`class_similarity`: ``u_c`` = mean logit vector of theta_0 over the
  training examples (retain + forget) of class c, projected on the top-k PCA components of the
  class-mean logit space; ``s_j = softmax_{j != f}(cos(u_f, u_j) / T)``;
- target :func:`trw_target`: the exponential tilt ``q*_j ∝ p~_j exp(beta s_j)``, ``q*_f = 0`` (the
  I-projection of p~ onto ``{q : sum_j q_j s_j >= c}``, beta its Lagrange multiplier);
- loss: ``E_{D_f} KL(q* || p_theta) + lambda * E_{D_r} CE``, the KL as a soft-target
  cross-entropy, ``q*`` computed once from theta_0 and detached, on mixed batches.

beta = 10 is the paper's value [2nd]; the PCA dimension, the temperature, lambda and the
optimisation constants are [recon] (config fields).  ``beta = 0`` is RWFT (:mod:`.rwft`).  TRW is
defined for class unlearning only; sample forget sets raise a ``ValueError``.
"""

from __future__ import annotations

import torch
from torch import nn

from backends.classifier.methods.common import (
    Stepper,
    data_on,
    logits_of,
    mixed_epochs,
    require_class_forget,
)
from backends.classifier.methods.configs import RWFTConfig, TRWConfig
from backends.classifier.setup import ClassifierSetup
from backends.common.method import Hooks, MethodResult, model_device, prepare


def class_mean_logits(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) matrix whose row c is the mean logit vector over the examples of class c."""
    counts = torch.bincount(labels, minlength=num_classes)
    missing = [c for c in range(num_classes) if counts[c] == 0]
    if missing:
        raise ValueError(f"no training example of class(es) {missing}; class means are undefined")
    sums = torch.zeros(num_classes, logits.shape[1], dtype=logits.dtype, device=logits.device)
    sums.index_add_(0, labels, logits)
    return sums / counts.unsqueeze(1).to(logits.dtype)


def class_similarity(
    class_mean_logits: torch.Tensor, forget_class: int, pca_dims: int, temperature: float
) -> torch.Tensor:
    """Similarity ``s`` (length K, ``s_f = 0``, sum 1) of each remaining class to ``forget_class``.

    The class means are centred and projected on their top ``min(pca_dims, K - 1)`` principal
    components; ``s_j = softmax_{j != f}(cos(u_f, u_j) / temperature)``.
    """
    means = class_mean_logits.double()
    k = means.shape[0]
    if not 0 <= forget_class < k:
        raise ValueError(f"forget class {forget_class} is not one of the {k} classes")
    if k < 2:
        raise ValueError("class similarity needs at least two classes")
    centred = means - means.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    dims = max(1, min(pca_dims, k - 1, vh.shape[0]))
    u = centred @ vh[:dims].T
    cos = torch.nn.functional.cosine_similarity(u, u[forget_class].expand_as(u), dim=1, eps=1e-12)
    scores = cos / temperature
    scores[forget_class] = float("-inf")
    s = torch.softmax(scores, dim=0)
    return s.to(class_mean_logits.dtype)


def trw_target(
    probs: torch.Tensor, forget_class: int, similarity: torch.Tensor, beta: float
) -> torch.Tensor:
    """``q*_j = p~_j exp(beta s_j) / sum_k p~_k exp(beta s_k)`` for j != f, ``q*_f = 0``.

    ``probs`` (N, K) are the original model's probabilities; p~ renormalises them over the
    remaining classes (uniform where all of a row's mass is on ``forget_class``).  Computed in
    float64 log space, so large ``beta`` does not overflow.
    """
    p = probs.double().clone()
    p[:, forget_class] = 0.0
    # A row with all its mass on the forget class has no renormalised distribution: use uniform.
    p[p.sum(1) <= 0] = 1.0
    log_p = torch.log(p)  # -inf where a probability underflowed to 0
    log_p[:, forget_class] = float("-inf")
    log_w = log_p + beta * similarity.double().to(p.device).unsqueeze(0)
    log_w[:, forget_class] = float("-inf")
    q = torch.softmax(log_w, dim=1)
    q[:, forget_class] = 0.0
    return q.to(probs.dtype)


def train_towards_target(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: RWFTConfig | TRWConfig,
    hooks: Hooks,
    *,
    beta: float,
    seed: int,
    name: str,
) -> MethodResult:
    """The shared RWFT / TRW procedure (``beta = 0`` skips the similarity: it does not matter)."""
    forget_class = require_class_forget(setup, name)
    student = prepare(model, seed, train_all=True)
    device = model_device(model)
    data = data_on(setup, device)
    if beta != 0:
        x_train, y_train = setup.tensors(setup.train_idx)  # retain + forget
        train_logits = logits_of(model, x_train.to(device))
        means = class_mean_logits(train_logits, y_train.to(device), setup.num_classes)
        similarity = class_similarity(means, forget_class, cfg.pca_dims, cfg.temperature)  # type: ignore[union-attr]
        nearest = int(similarity.argmax())
        hooks.log(
            f"{name}: similarity to class {forget_class} {similarity.tolist()} (nearest {nearest})"
        )
    else:
        similarity = torch.zeros(setup.num_classes, device=device)
    probs = torch.softmax(logits_of(model, data.xf).double(), dim=1)  # float64: less underflow
    target = trw_target(probs, forget_class, similarity, beta).to(data.xf.dtype).detach()
    stepper = Stepper(student, cfg.optimizer, cfg.lr, hooks)
    mixed_epochs(
        stepper,
        data,
        target,
        forget_weight=1.0,
        retain_weight=cfg.retain_weight,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=seed,
        name=name,
    )
    student.eval()
    return MethodResult()


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: TRWConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with TRW (spec section 1.2); class forget sets only."""
    return train_towards_target(model, setup, cfg, hooks, beta=cfg.beta, seed=seed, name="TRW")
