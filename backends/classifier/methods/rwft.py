"""RWFT (v1 of TRW): fine-tune forget examples to the original model's renormalised
remaining-class distribution ``p~`` (spec section 1.2, "Versions"; TRW with beta = 0).

Loss ``E_{D_f} KL(p~ || p_theta) + lambda * E_{D_r} CE`` on mixed batches; class unlearning only.
"""

from __future__ import annotations

from torch import nn

from backends.classifier.methods.common import Check, EpochCheckpoints, Log
from backends.classifier.methods.configs import RWFTConfig
from backends.classifier.methods.trw import train_towards_target
from backends.classifier.setup import ClassifierSetup


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: RWFTConfig,
    *,
    seed: int,
    check: Check = None,
    log: Log = None,
    checkpoints: EpochCheckpoints | None = None,
) -> nn.Module:
    """An RWFT-unlearned deep copy of ``model`` (spec section 1.2); class forget sets only."""
    return train_towards_target(
        model, setup, cfg, beta=0.0, seed=seed, check=check, log=log, name="RWFT",
        checkpoints=checkpoints,
    )  # fmt: skip
