"""GA: gradient ascent on the forget set (spec section 7 "GA").

Minimises ``-CE(D_f)``: pushes the forget examples away from their labels.  The loss is unbounded
below, so the number of epochs and the learning rate are what stop it; the retain set is unused.
"""

from __future__ import annotations

from torch import nn

from backends.classifier.methods.common import (
    Stepper,
    data_on,
    single_set_epochs,
)
from backends.classifier.methods.configs import GAConfig
from backends.classifier.setup import ClassifierSetup
from backends.common.method import Hooks, MethodResult, model_device, prepare


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: GAConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with GA (spec section 7)."""
    student = prepare(model, seed, train_all=True)
    data = data_on(setup, model_device(model), need_retain=False)
    stepper = Stepper(student, cfg.optimizer, cfg.lr, hooks)
    single_set_epochs(
        stepper,
        data.xf,
        data.yf,
        weight=-1.0,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=seed,
        name="GA",
    )
    student.eval()
    return MethodResult()
