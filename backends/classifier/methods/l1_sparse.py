"""l1-sparse: FT with a decaying l1 penalty (spec section 3 baseline list, section 7).

Minimises ``CE(D_r) + lambda_t * ||theta||_1`` with ``lambda_t = (2 - 2 t / T) * lambda``, where
``t / T`` is the share of optimisation steps done (so lambda_t falls linearly from 2 lambda to 0;
its mean over the run is lambda).  The penalty covers every trainable parameter (weights and
biases).  Like FT it never looks at the forget set.
"""

from __future__ import annotations

import torch
from torch import nn

from backends.classifier.methods.common import (
    Stepper,
    data_on,
    single_set_epochs,
)
from backends.classifier.methods.configs import L1SparseConfig
from backends.classifier.setup import ClassifierSetup
from backends.common.method import Hooks, MethodResult, model_device, prepare


def l1_weight(base: float, progress: float) -> float:
    """lambda_t = (2 - 2 t/T) * lambda for ``progress`` = t/T in [0, 1]."""
    return (2.0 - 2.0 * progress) * base


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: L1SparseConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with l1-sparse (spec sections 3 and 7)."""
    student = prepare(model, seed, train_all=True)
    data = data_on(setup, model_device(model), need_forget=False)
    stepper = Stepper(student, cfg.optimizer, cfg.lr, hooks)
    params = [p for p in student.parameters() if p.requires_grad]

    def penalty(progress: float) -> torch.Tensor:
        return l1_weight(cfg.l1, progress) * sum(p.abs().sum() for p in params)

    single_set_epochs(
        stepper,
        data.xr,
        data.yr,
        weight=1.0,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=seed,
        name="l1-sparse",
        penalty=penalty,
    )
    student.eval()
    return MethodResult()
