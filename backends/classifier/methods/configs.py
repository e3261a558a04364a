"""Typed configs of the classifier unlearning methods (light: no torch at import).

One ``@dataclass`` per method; every constant a method uses is a field with a default, a range or
choices, and one line of help.  Defaults are tuned for the built-in tiny setting (a 64-128-10 MLP
on scikit-learn's digits, ~1400 training examples); see ``docs/methods/classifier-unlearning.md``
for the numbers they give there.  Spec references are to
``specs/classifier-and-llm-methods.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backends.common import fields
from workbench.config import param

OPTIMIZERS = ("adam", "sgd")


# -- common fields (one definition, a per-method default) -----------------------------------------
RETAIN_PASSES = "Passes over the retain set."
MIXED_PASSES = "Passes over the retain set (forget batches cycle alongside)."
FORGET_PASSES = "Passes over the forget set."


def _epochs(default: int, help: str) -> Any:
    return fields.epochs(default, help)


def _lr(default: float) -> Any:
    return fields.lr(default)


def _batch_size(default: int = 64) -> Any:
    return fields.batch_size(
        default, "Examples per batch (of each of forget and retain).", high=8192
    )


def _optimizer(default: str = "adam") -> Any:
    return fields.optimizer(default, "Optimiser (SGD uses momentum 0.9).", OPTIMIZERS)


# -- fine-tuning style baselines (spec section 7) --------------------------------------------------
@dataclass
class FTConfig:
    """FT: cross-entropy fine-tuning on the retain set only (spec section 7)."""

    epochs: int = _epochs(5, RETAIN_PASSES)
    lr: float = _lr(1e-3)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()


@dataclass
class GAConfig:
    """GA: gradient ascent on the forget-set cross-entropy (spec section 7)."""

    epochs: int = _epochs(3, FORGET_PASSES)
    lr: float = _lr(1e-3)
    batch_size: int = _batch_size(32)
    optimizer: str = _optimizer()


@dataclass
class NegGradPlusConfig:
    """NegGrad+ / GradDiff: alpha * CE(D_r) - gamma * CE(D_f) on mixed batches (spec section 7)."""

    epochs: int = _epochs(3, MIXED_PASSES)
    lr: float = _lr(3e-4)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    alpha: float = param(1.0, "Weight of the retain cross-entropy.", range=(0.0, 1e4))
    gamma: float = param(0.1, "Weight of the (ascended) forget cross-entropy.", range=(0.0, 1e4))


@dataclass
class RLConfig:
    """RL: CE on the forget set with random wrong labels plus CE on the retain set (spec 7)."""

    epochs: int = _epochs(5, MIXED_PASSES)
    lr: float = _lr(1e-3)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    retain_weight: float = param(1.0, "Weight of the retain cross-entropy.", range=(0.0, 1e4))


@dataclass
class SCRUBConfig:
    """SCRUB: teacher = original; max-steps on D_f, min-steps on D_r (spec section 7)."""

    epochs: int = _epochs(
        5, "Epochs in all; the first max_epochs also run a max-step pass over D_f."
    )
    lr: float = _lr(3e-3)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    max_epochs: int = param(
        3,
        "Leading epochs that include a max-step pass over D_f (the rest are min-only).",
        range=(0, 10_000),
    )
    alpha: float = param(0.1, "Weight of KL(teacher||student) in the min-steps.", range=(0.0, 1e4))
    kd_temperature: float = param(
        4.0, "Distillation temperature of the KL terms (scaled by T^2).", range=(0.01, 100.0)
    )


@dataclass
class SalUnConfig:
    """SalUn: weight saliency mask from |grad CE(D_f)|, then RL on the masked weights (spec 7)."""

    epochs: int = _epochs(10, MIXED_PASSES)
    lr: float = _lr(1e-3)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    keep_fraction: float = param(
        0.5,
        "Share of weights (largest |gradient|) that may change; 0.5 = median threshold.",
        range=(1e-6, 1.0),
    )
    retain_weight: float = param(1.0, "Weight of the retain cross-entropy.", range=(0.0, 1e4))


@dataclass
class L1SparseConfig:
    """l1-sparse: FT on D_r plus lambda_t * ||theta||_1, lambda_t = (2 - 2t/T) lambda (spec 3, 7)."""

    epochs: int = _epochs(5, RETAIN_PASSES)
    lr: float = _lr(1e-3)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    l1: float = param(
        5e-4, "Base l1 weight lambda (decays linearly from 2*lambda to 0).", range=(0.0, 1.0)
    )


@dataclass
class BoundaryShrinkConfig:
    """Boundary Shrink: fine-tune forget samples to their FGSM nearest wrong class (spec 7)."""

    epochs: int = _epochs(5, FORGET_PASSES)
    lr: float = _lr(1e-3)
    batch_size: int = _batch_size(32)
    optimizer: str = _optimizer()
    epsilon: float = param(
        0.1,
        "FGSM step size (L-inf, in input units; digits pixels are in [0, 1]).",
        range=(0.0, 100.0),
    )


# -- RWFT / TRW (spec section 1.2) ----------------------------------------------------------------
@dataclass
class RWFTConfig:
    """RWFT: fine-tune forget samples to the original's renormalised remaining-class
    distribution (TRW with beta = 0), plus lambda * CE on D_r (spec section 1.2, v1)."""

    epochs: int = _epochs(5, MIXED_PASSES)
    lr: float = _lr(1e-3)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    retain_weight: float = param(
        1.0, "lambda: weight of the retain cross-entropy.", range=(0.0, 1e4)
    )


@dataclass
class TRWConfig:
    """TRW: fine-tune forget samples to the similarity-tilted target q*, plus lambda * CE on D_r
    (spec section 1.2; beta = 10 is the paper's, the other constants are [recon])."""

    epochs: int = _epochs(5, MIXED_PASSES)
    lr: float = _lr(1e-3)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    retain_weight: float = param(
        1.0, "lambda: weight of the retain cross-entropy.", range=(0.0, 1e4)
    )
    beta: float = param(10.0, "Tilt strength beta (0 gives RWFT).", range=(0.0, 1e4))
    pca_dims: int = param(
        5,
        "Top-k PCA components of the class-mean logit space (clipped to classes - 1).",
        range=(1, 100_000),
    )
    temperature: float = param(
        0.1,
        "Softmax temperature T of the class similarities (small = sharp).",
        range=(1e-4, 100.0),
    )


__all__ = [
    "BoundaryShrinkConfig",
    "FTConfig",
    "GAConfig",
    "L1SparseConfig",
    "NegGradPlusConfig",
    "RLConfig",
    "RWFTConfig",
    "SCRUBConfig",
    "SalUnConfig",
    "TRWConfig",
]


@dataclass
class MinNormOGConfig:
    """MinNorm-OG: projections towards the span of the retain output gradients, alternated
    with retain descent; final descent-only epochs (spec section 3)."""

    epochs: int = _epochs(10, "Passes over the forget batches (each paired with a retain batch).")
    lr: float = _lr(1e-3)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    strength: float = param(
        0.1,
        "Initial projection strength lambda in theta <- theta - lambda P_G-perp(theta) (<= 1).",
        range=(0.0, 1.0),
    )
    strength_decay: float = param(
        0.9, "Factor gamma applied to lambda after every projection.", range=(0.0, 1.0)
    )
    proj_every: int = param(2, "T_Proj: project in every T_Proj-th epoch.", range=(1, 100_000))
    gd_epochs: int = param(
        3, "T_GD: the last epochs only descend on the retain loss.", range=(0, 100_000)
    )
    n_pert: int = param(
        50,
        "Retain points (stratified by class) whose output gradients span G.",
        range=(1, 100_000),
    )
    retain_fraction: float = param(
        1.0, "Share of the retain set the method may use (D'_r).", range=(1e-6, 1.0)
    )
