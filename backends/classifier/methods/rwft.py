"""RWFT (v1 of TRW): fine-tune forget examples to the original model's renormalised
remaining-class distribution ``p~`` (spec section 1.2, "Versions"; TRW with beta = 0).

Loss ``E_{D_f} KL(p~ || p_theta) + lambda * E_{D_r} CE`` on mixed batches; class unlearning only.
"""

from __future__ import annotations

from torch import nn

from backends.classifier.methods.configs import RWFTConfig
from backends.classifier.methods.trw import train_towards_target
from backends.classifier.setup import ClassifierSetup
from backends.common.method import Hooks, MethodResult


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: RWFTConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with RWFT (spec section 1.2); class forget sets only."""
    return train_towards_target(model, setup, cfg, hooks, beta=0.0, seed=seed, name="RWFT")
