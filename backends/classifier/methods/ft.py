"""FT: fine-tune on the retain set only (spec section 7 "FT"; section 3 "GD").

Minimises ``CE(D_r)`` for a few epochs, starting from the original weights.  The forget set is
never looked at, so forgetting comes only from drift away from the original solution.
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
from backends.classifier.methods.configs import FTConfig
from backends.classifier.setup import ClassifierSetup


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: FTConfig,
    *,
    seed: int,
    check: Check = None,
    log: Log = None,
    checkpoints: EpochCheckpoints | None = None,
) -> nn.Module:
    """An FT-unlearned deep copy of ``model`` (spec section 7)."""
    student = prepare(model, seed)
    data = data_on(setup, model_device(model), need_forget=False)
    stepper = Stepper(student, cfg.optimizer, cfg.lr, check, checkpoints=checkpoints)
    single_set_epochs(
        student, data.xr, data.yr, weight=1.0, epochs=cfg.epochs, batch_size=cfg.batch_size,
        stepper=stepper, seed=seed, log=log, name="FT",
    )  # fmt: skip
    return student.eval()
