"""Typed configs of the LLM unlearning methods (light: no torch at import).

One ``@dataclass`` per method (spec ``classifier-and-llm-methods.md`` section 7, shared baselines;
section 6 for NPO's retain KL).  Every constant a method uses is a field with a default, a range
or choices and one line of help.  Defaults are tuned on the built-in tiny setting (a 2-layer GPT-2,
d = 64, trained on a few dozen made-up facts); ``docs/methods/llm-unlearning.md`` gives the numbers
they reach there.  Real 1B-7B models want far smaller learning rates (MUSE: 1e-5).

Shared fields:

- ``epochs``: passes over the forget set; each step pairs a forget batch with a retain batch
  (the retain set cycles, re-shuffled at each wrap), as in OpenUnlearning's forget-anchored data;
- ``retain_loss``: ``"none"``, ``"nll"`` (next-token NLL on retain texts) or ``"kl"`` (token-level
  KL(pi_ref || pi_theta) to the frozen original model on retain texts);
- ``alpha``: weight of the retain term; ``forget_weight``: weight of the forget term;
- ``grad_accum_steps`` / ``gradient_checkpointing``: memory savers of the shared loop
  (:func:`backends.llm.methods.common.run_unlearning`), through accelerate and transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backends.common import fields
from workbench.config import param

OPTIMIZERS = ("adamw", "sgd")
RETAIN_LOSSES = ("none", "nll", "kl")
RMU_RETAIN_LOSSES = ("activations", "none", "nll", "kl")
RMU_UPDATES = ("mlp", "mlp_out")


def _epochs(default: int) -> Any:
    return fields.epochs(default, "Passes over the forget set (one step per forget batch).")


def _lr(default: float) -> Any:
    return fields.lr(default, "Learning rate (constant).", low=1e-10)


def _batch_size(default: int = 8) -> Any:
    return fields.batch_size(default, "Texts per batch (of each of forget and retain).", high=4096)


def _optimizer() -> Any:
    return fields.optimizer("adamw", "Optimiser (AdamW without weight decay, or SGD).", OPTIMIZERS)


def _max_length() -> Any:
    return param(
        256,
        "Longest tokenised text (BOS included); longer texts are cut.",
        range=(2, 1_000_000),
        advanced=True,
    )


def _grad_accum() -> Any:
    return param(
        1,
        "Gradient accumulation: split each batch into this many micro-batches whose gradients "
        "accelerate sums into one optimiser step (same result, a k-th of the activation memory).",
        range=(1, 4096),
        advanced=True,
    )


def _grad_checkpointing() -> Any:
    return param(
        False,
        "Gradient checkpointing: recompute activations in the backward pass (less memory, "
        "about a third more time).",
        advanced=True,
    )


def _retain_loss(default: str) -> Any:
    return param(
        default,
        "Retain term: none, NLL on retain texts, or KL to the original model on retain texts.",
        choices=RETAIN_LOSSES,
    )


def _alpha(default: float) -> Any:
    return param(default, "Weight of the retain term.", range=(0.0, 1e6))


def _forget_weight(default: float = 1.0) -> Any:
    return param(default, "Weight of the forget term.", range=(0.0, 1e6))


@dataclass
class GAConfig:
    """GA: gradient ascent on the forget texts, minimise -NLL(D_f) (spec section 7)."""

    epochs: int = _epochs(20)
    lr: float = _lr(3e-4)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    max_length: int = _max_length()
    grad_accum_steps: int = _grad_accum()
    gradient_checkpointing: bool = _grad_checkpointing()
    retain_loss: str = _retain_loss("none")
    alpha: float = _alpha(1.0)
    forget_weight: float = _forget_weight()


@dataclass
class GradDiffConfig:
    """GradDiff: forget_weight * (-NLL(D_f)) + alpha * retain term (spec section 7)."""

    epochs: int = _epochs(20)
    lr: float = _lr(3e-4)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    max_length: int = _max_length()
    grad_accum_steps: int = _grad_accum()
    gradient_checkpointing: bool = _grad_checkpointing()
    retain_loss: str = _retain_loss("nll")
    alpha: float = _alpha(1.0)
    forget_weight: float = _forget_weight()


@dataclass
class NPOConfig:
    """NPO: (2/beta) E_{D_f} log(1 + (pi_theta/pi_ref)^beta), sequence level (spec 7, 6)."""

    epochs: int = _epochs(20)
    lr: float = _lr(3e-4)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    max_length: int = _max_length()
    grad_accum_steps: int = _grad_accum()
    gradient_checkpointing: bool = _grad_checkpointing()
    retain_loss: str = _retain_loss("kl")
    alpha: float = _alpha(5.0)
    forget_weight: float = _forget_weight()
    beta: float = param(
        0.1, "NPO inverse temperature beta (MUSE / OpenUnlearning: 0.1).", range=(1e-6, 1e4)
    )


@dataclass
class SimNPOConfig:
    """SimNPO: -(2/beta) log sigmoid(beta * NLL_theta(y)/|y| - gamma), reference-free (spec 7)."""

    epochs: int = _epochs(20)
    lr: float = _lr(3e-4)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    max_length: int = _max_length()
    grad_accum_steps: int = _grad_accum()
    gradient_checkpointing: bool = _grad_checkpointing()
    retain_loss: str = _retain_loss("nll")
    alpha: float = _alpha(1.0)
    forget_weight: float = _forget_weight()
    beta: float = param(2.5, "SimNPO inverse temperature beta.", range=(1e-6, 1e4))
    gamma: float = param(
        0.0, "Reward margin gamma (OpenUnlearning's delta = gamma / beta).", range=(-1e4, 1e4)
    )


@dataclass
class RMUConfig:
    """RMU: steer layer-l activations of forget texts to c*u, keep retain activations (spec 7)."""

    epochs: int = _epochs(20)
    lr: float = _lr(3e-3)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    max_length: int = _max_length()
    grad_accum_steps: int = _grad_accum()
    gradient_checkpointing: bool = _grad_checkpointing()
    layer: int = param(
        1,
        "Decoder block whose output is steered (0 = first, negative from the end; WMDP: 7 of 32).",
        range=(-1000, 1000),
    )
    update_layers: list[int] = param(
        [], "Blocks whose MLP is updated (empty = just `layer`; WMDP updates layer-2..layer)."
    )
    update: str = param(
        "mlp",
        "Parameters updated in those blocks: the whole MLP or its output projection only.",
        choices=RMU_UPDATES,
    )
    steering_coeff: float = param(
        20.0, "Steering coefficient c (norm of the random target c*u).", range=(0.0, 1e6)
    )
    alpha: float = _alpha(10.0)
    forget_weight: float = _forget_weight()
    retain_loss: str = param(
        "activations",
        "Retain term: MSE to the original's layer activations (RMU), none, NLL or KL.",
        choices=RMU_RETAIN_LOSSES,
    )


__all__ = [
    "OPTIMIZERS",
    "RETAIN_LOSSES",
    "RMU_RETAIN_LOSSES",
    "RMU_UPDATES",
    "GAConfig",
    "GradDiffConfig",
    "NPOConfig",
    "RMUConfig",
    "SimNPOConfig",
]
