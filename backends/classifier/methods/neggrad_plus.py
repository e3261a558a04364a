"""NegGrad+ / GradDiff: descend on the retain set while ascending on the forget set (spec 7).

Minimises ``alpha * CE(D_r) - gamma * CE(D_f)`` on mixed batches (a retain batch and a forget
batch per step, :func:`~backends.classifier.methods.common.mixed_batches`), ``epochs`` passes over
the retain set.  Spec section 3 writes the same loss as ``CE(D_r) - lambda_GA * CE(D_f)``.
"""

from __future__ import annotations

from torch import nn

from backends.classifier.methods.common import (
    Stepper,
    data_on,
    mixed_epochs,
)
from backends.classifier.methods.configs import NegGradPlusConfig
from backends.classifier.setup import ClassifierSetup
from backends.common.method import Hooks, MethodResult, model_device, prepare


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: NegGradPlusConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with NegGrad+ (spec sections 3 and 7)."""
    student = prepare(model, seed, train_all=True)
    data = data_on(setup, model_device(model))
    stepper = Stepper(student, cfg.optimizer, cfg.lr, hooks)
    mixed_epochs(
        stepper,
        data,
        data.yf,
        forget_weight=-cfg.gamma,
        retain_weight=cfg.alpha,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=seed,
        name="NegGrad+",
    )
    student.eval()
    return MethodResult()
