"""SalUn: gradient-saliency weight mask, then random-label unlearning on the masked weights
(spec section 7 "SalUn"; section 3 baseline list).

1. Saliency: ``g = grad_theta CE(D_f)`` at the original weights (mean over the forget set).
2. Mask: ``m = 1[|g| >= threshold]`` where the threshold keeps the top ``keep_fraction`` of all
   trainable entries (one global ranking over every parameter tensor); 0.5 is the median rule of
   spec section 3.  Entries whose gradient is exactly 0 never count as salient.
3. RL (:mod:`~backends.classifier.methods.rl`) with every gradient multiplied by ``m`` before the
   optimiser step, so the weights outside the mask keep their original values (Adam and SGD with no
   weight decay leave an entry whose gradient is always 0 unchanged).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from backends.classifier.methods.common import (
    Stepper,
    data_on,
)
from backends.classifier.methods.configs import SalUnConfig
from backends.classifier.methods.rl import relabel_and_train
from backends.classifier.setup import ClassifierSetup
from backends.common.method import Check, Hooks, MethodResult, model_device, prepare


def saliency_masks(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    keep_fraction: float,
    *,
    batch_size: int = 512,
    check: Check = None,
) -> dict[str, torch.Tensor]:
    """0/1 masks (same shapes as the trainable parameters) keeping the ``keep_fraction`` entries
    with the largest ``|grad CE(x, y)|`` over all parameters together."""
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction {keep_fraction} must be in (0, 1]")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    for start in range(0, len(x), batch_size):
        if check is not None:
            check()
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        with torch.enable_grad():
            loss = F.cross_entropy(model(xb), yb, reduction="sum") / len(x)
            step_grads = torch.autograd.grad(loss, list(params.values()))
        for n, g in zip(params, step_grads, strict=True):
            grads[n] += g.detach()
    flat = torch.cat([g.abs().flatten() for g in grads.values()])
    keep = max(1, math.ceil(keep_fraction * flat.numel()))
    threshold = torch.topk(flat, keep).values[-1]
    if threshold > 0:
        return {n: (g.abs() >= threshold).to(g.dtype) for n, g in grads.items()}
    return {n: (g.abs() > 0).to(g.dtype) for n, g in grads.items()}


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: SalUnConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with SalUn (spec section 7)."""
    student = prepare(model, seed, train_all=True)
    data = data_on(setup, model_device(model))
    masks = saliency_masks(student, data.xf, data.yf, cfg.keep_fraction, check=hooks.on_check)
    kept = sum(float(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    hooks.log(f"SalUn: {kept:.0f} of {total} weights salient ({kept / total:.1%})")
    stepper = Stepper(student, cfg.optimizer, cfg.lr, hooks, masks=masks)
    relabel_and_train(setup, data, cfg, stepper, seed=seed, name="SalUn")
    student.eval()
    return MethodResult()
