"""Boundary Shrink (Chen et al. 2023): move each forget example to its nearest wrong class
(spec section 7 "Boundary Shrink"; section 1.2 baseline list).

1. FGSM from each forget example on the *original* model:
   ``x_adv = x + epsilon * sign(grad_x CE(f_0(x), y))``, clipped to the data set's value range.
2. Nearest wrong class: the original model's label on ``x_adv`` with the true label excluded
   (``argmax_{j != y} f_0(x_adv)_j``).
3. Fine-tune the *clean* forget examples to those labels (CE on D_f only; the retain set is not
   used, as in the original method).  The original model is frozen, so the labels are computed
   once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backends.classifier.methods.common import (
    Stepper,
    data_on,
    single_set_epochs,
)
from backends.classifier.methods.configs import BoundaryShrinkConfig
from backends.classifier.setup import ClassifierSetup
from backends.common.method import Check, Hooks, MethodResult, frozen_copy, model_device, prepare


def nearest_wrong_labels(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    *,
    bounds: tuple[float, float] | None = None,
    batch_size: int = 512,
    check: Check = None,
) -> torch.Tensor:
    """The model's label (excluding ``y``) on the FGSM-perturbed ``x`` (step ``epsilon``)."""
    ref = frozen_copy(model)
    out = []
    for start in range(0, len(x), batch_size):
        if check is not None:
            check()
        xb = x[start : start + batch_size].detach().clone().requires_grad_(True)
        yb = y[start : start + batch_size]
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(F.cross_entropy(ref(xb), yb, reduction="sum"), xb)
        x_adv = xb.detach() + epsilon * grad.sign()
        if bounds is not None:
            x_adv = x_adv.clamp(*bounds)
        with torch.no_grad():
            logits = ref(x_adv)
        logits[torch.arange(len(yb), device=yb.device), yb] = float("-inf")
        out.append(logits.argmax(1))
    return torch.cat(out)


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: BoundaryShrinkConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with Boundary-Shrink (spec section 7)."""
    student = prepare(model, seed, train_all=True)
    data = data_on(setup, model_device(model), need_retain=False)
    bounds = (float(setup.x.min()), float(setup.x.max()))
    labels = nearest_wrong_labels(
        model, data.xf, data.yf, cfg.epsilon, bounds=bounds, check=hooks.on_check
    )
    counts = torch.bincount(labels, minlength=setup.num_classes).tolist()
    hooks.log(f"Boundary Shrink: nearest-wrong-class counts {counts}")
    stepper = Stepper(student, cfg.optimizer, cfg.lr, hooks)
    single_set_epochs(
        stepper,
        data.xf,
        labels,
        weight=1.0,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=seed,
        name="Boundary Shrink",
    )
    student.eval()
    return MethodResult()
