"""GA: gradient ascent on the forget set (spec section 7 "GA").

Minimises ``-CE(D_f)``: pushes the forget examples away from their labels.  The loss is unbounded
below, so the number of epochs and the learning rate are what stop it; the retain set is unused.
"""

from __future__ import annotations

from torch import nn

from backends.classifier.methods.common import (
    Check,
    EpochCheckpoints,
    Log,
    Stepper,
    data_on,
    model_device,
    prepare,
    single_set_epochs,
)
from backends.classifier.methods.configs import GAConfig
from backends.classifier.setup import ClassifierSetup


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: GAConfig,
    *,
    seed: int,
    check: Check = None,
    log: Log = None,
    checkpoints: EpochCheckpoints | None = None,
) -> nn.Module:
    """A GA-unlearned deep copy of ``model`` (spec section 7)."""
    student = prepare(model, seed)
    data = data_on(setup, model_device(model), need_retain=False)
    stepper = Stepper(student, cfg.optimizer, cfg.lr, check, checkpoints=checkpoints)
    single_set_epochs(
        student, data.xf, data.yf, weight=-1.0, epochs=cfg.epochs, batch_size=cfg.batch_size,
        stepper=stepper, seed=seed, log=log, name="GA",
    )  # fmt: skip
    return student.eval()
