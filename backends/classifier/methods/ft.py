"""FT: fine-tune on the retain set only (spec section 7 "FT"; section 3 "GD").

Minimises ``CE(D_r)`` for a few epochs, starting from the original weights.  The forget set is
never looked at, so forgetting comes only from drift away from the original solution.
"""

from __future__ import annotations

from torch import nn

from backends.classifier.methods.common import (
    Stepper,
    data_on,
    single_set_epochs,
)
from backends.classifier.methods.configs import FTConfig
from backends.classifier.setup import ClassifierSetup
from backends.common.method import Hooks, MethodResult, model_device, prepare


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: FTConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with FT (spec section 7)."""
    student = prepare(model, seed, train_all=True)
    data = data_on(setup, model_device(model), need_forget=False)
    stepper = Stepper(student, cfg.optimizer, cfg.lr, hooks)
    single_set_epochs(
        stepper,
        data.xr,
        data.yr,
        weight=1.0,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=seed,
        name="FT",
    )
    student.eval()
    return MethodResult()
