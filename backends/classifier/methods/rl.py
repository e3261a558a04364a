"""RL (random labels): CE on the forget set with random wrong labels plus CE on the retain set
(spec section 7 "RL").

Each forget example gets one random label, drawn once (seeded) uniformly among the classes other
than its own and, for class unlearning, other than the forgotten class; then
``CE(D_f, random labels) + retain_weight * CE(D_r)`` is minimised on mixed batches.
"""

from __future__ import annotations

from torch import nn

from backends.classifier.methods.common import (
    Data,
    Stepper,
    data_on,
    mixed_epochs,
    random_wrong_labels,
)
from backends.classifier.methods.configs import RLConfig, SalUnConfig
from backends.classifier.setup import ClassifierSetup
from backends.common.method import Hooks, MethodResult, model_device, prepare


def relabel_and_train(
    setup: ClassifierSetup,
    data: Data,
    cfg: RLConfig | SalUnConfig,
    stepper: Stepper,
    *,
    seed: int,
    name: str,
) -> None:
    """The RL loop (shared with SalUn, which passes a masked ``stepper``)."""
    labels = random_wrong_labels(data.yf, setup.num_classes, seed, setup.forget_class)
    mixed_epochs(
        stepper,
        data,
        labels,
        forget_weight=1.0,
        retain_weight=cfg.retain_weight,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=seed,
        name=name,
    )


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: RLConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with RL (spec section 7)."""
    student = prepare(model, seed, train_all=True)
    data = data_on(setup, model_device(model))
    stepper = Stepper(student, cfg.optimizer, cfg.lr, hooks)
    relabel_and_train(setup, data, cfg, stepper, seed=seed, name="RL")
    student.eval()
    return MethodResult()
