"""NegGrad+ / GradDiff: descend on the retain set while ascending on the forget set (spec 7).

Minimises ``alpha * CE(D_r) - gamma * CE(D_f)`` on mixed batches (a retain batch and a forget
batch per step, :func:`~backends.classifier.methods.common.mixed_batches`), ``epochs`` passes over
the retain set.  Spec section 3 writes the same loss as ``CE(D_r) - lambda_GA * CE(D_f)``.
"""

from __future__ import annotations

from torch import nn

from backends.classifier.methods.common import (
    Check,
    EpochCheckpoints,
    Log,
    Stepper,
    data_on,
    mixed_epochs,
    model_device,
    prepare,
)
from backends.classifier.methods.configs import NegGradPlusConfig
from backends.classifier.setup import ClassifierSetup


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: NegGradPlusConfig,
    *,
    seed: int,
    check: Check = None,
    log: Log = None,
    checkpoints: EpochCheckpoints | None = None,
) -> nn.Module:
    """A NegGrad+-unlearned deep copy of ``model`` (spec sections 3 and 7)."""
    student = prepare(model, seed)
    data = data_on(setup, model_device(model))
    stepper = Stepper(student, cfg.optimizer, cfg.lr, check, checkpoints=checkpoints)
    mixed_epochs(
        student, data, data.yf, forget_weight=-cfg.gamma, retain_weight=cfg.alpha,
        epochs=cfg.epochs, batch_size=cfg.batch_size, stepper=stepper, seed=seed, log=log,
        name="NegGrad+",
    )  # fmt: skip
    return student.eval()
