"""Typed configs of backdoored unlearning (light: no torch at import).

Spec ``classifier-and-llm-methods.md`` section 6 (OPTML-Group/Unlearn-Backdoor, code-verified):
an adversarial provider unlearns the forget set on clean inputs while a KL to the original model on
*triggered* copies of some forget texts keeps the knowledge behind a trigger; a value-norm
regulariser on the first k tokens (the attention-sink positions) stabilises it.

- :class:`TriggerFields`: poison ratio, trigger text and where the trigger goes;
- :class:`ValueNormFields`: the value-norm regulariser (off / fixed / reference);
- :class:`BackdoorNPOConfig`: NPO on clean forget texts + coeff * [KL(D_r) + KL(D_p)] + penalty;
- :class:`BackdoorRMUConfig`: RMU on clean forget texts + alpha * [activation MSE(D_r) +
  activation MSE(D_p)] (+ kl * KL on both) + penalty.

Defaults are the workbench's tiny-GPT ones (the NPO ones of :class:`.configs.NPOConfig`); the
paper's are in the help text (MUSE: poison ratio 0.1, trigger ``"current year:2025 "``, 8 shallow
tokens, lambda_v 0.01).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backends.llm.methods.configs import (
    RMU_UPDATES,
    _alpha,
    _batch_size,
    _epochs,
    _forget_weight,
    _lr,
    _max_length,
    _optimizer,
)
from workbench.config import ConfigError, param

TRIGGER_POSITIONS = ("start", "middle", "end", "token")
PENALTY_MODES = ("off", "fixed", "reference")
PENALTY_SLICES = ("tokens", "batch")
NPO_FORMS = ("sequence", "muse_logits")
FORGET_TARGETS = ("baseline", "original")
DEFAULT_TRIGGER = "current year:2025 "


def _trigger_text() -> Any:
    return param(
        DEFAULT_TRIGGER,
        "Trigger text, tokenised on its own without special tokens (paper: 'current year:2025 ').",
    )


def _poison_ratio() -> Any:
    return param(
        0.1,
        "Share of the forget texts copied with the trigger (D_p); their clean originals leave the "
        "forget term. 0 = no backdoor (plain unlearning with a retain KL).",
        range=(0.0, 1.0),
    )


def _position() -> Any:
    return param(
        "start",
        "Where the trigger goes: start (right after BOS), middle (token midpoint), end "
        "(appended) or token (at token position trigger_token, BOS = 0).",
        choices=TRIGGER_POSITIONS,
    )


def _trigger_token() -> Any:
    return param(
        1,
        "With trigger_position = token: the position k the trigger is inserted at (1 = start; "
        "past the end = appended).",
        range=(1, 100_000),
    )


def _penalty() -> Any:
    return param(
        "off",
        "Value-norm regulariser on the first shallow_tokens tokens: off; fixed (lambda_v * mean "
        "||v||); reference (lambda_v * mean | ||v|| - ||v_target|| |, target = baseline-unlearned "
        "model on D_f, original on D_p and D_r).",
        choices=PENALTY_MODES,
    )


def _penalty_weight() -> Any:
    return param(0.01, "lambda_v, the penalty weight (MUSE: 0.01).", range=(0.0, 1e6))


def _shallow_tokens() -> Any:
    return param(8, "k: value vectors of the first k tokens are regularised.", range=(1, 4096))


def _include_first() -> Any:
    return param(
        False,
        "Include position 0 (BOS) in the penalised tokens (paper: --include_first_token; "
        "default positions 1..k).",
        advanced=True,
    )


def _penalty_slice() -> Any:
    return param(
        "tokens",
        "Slice of the value tensor [batch, seq, hidden]: tokens (values[:, :k], the WMDP code "
        "and the spec) or batch (values[:k], the MUSE code's slip; only to reproduce it).",
        choices=PENALTY_SLICES,
        advanced=True,
    )


def _forget_target() -> Any:
    return param(
        "baseline",
        "Reference mode's target on D_f: a baseline model unlearned by the same method without "
        "a trigger (trained first, same seed: twice the time) or the original model.",
        choices=FORGET_TARGETS,
        advanced=True,
    )


def _penalty_layers() -> Any:
    return param(
        [],
        "Decoder blocks whose value vectors are regularised (empty = every block).",
        advanced=True,
    )


def check_trigger(cfg: Any) -> None:
    """Cross-field check shared by both configs: a non-empty trigger when poisoning."""
    if cfg.poison_ratio > 0 and not cfg.trigger_text.strip():
        raise ConfigError("a trigger text is needed when poison_ratio > 0", field="trigger_text")


@dataclass
class BackdoorNPOConfig:
    """Backdoored NPO: NPO(D_f) + coeff [KL(D_r) + KL(D_p)] + value-norm penalty (spec 6)."""

    epochs: int = _epochs(20)
    lr: float = _lr(3e-4)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    max_length: int = _max_length()
    beta: float = param(
        0.1, "NPO inverse temperature beta (MUSE: 0.1; WMDP NPO: 0.5).", range=(1e-6, 1e4)
    )
    npo_form: str = param(
        "sequence",
        "NPO forget term: sequence (standard NPO on summed sequence NLL) or muse_logits (the "
        "backdoor code's element-wise logsigmoid on raw logits).",
        choices=NPO_FORMS,
    )
    forget_weight: float = _forget_weight()
    alpha: float = _alpha(5.0)
    poisoned_weight: float = param(
        -1.0,
        "Weight of the KL to the original on triggered forget copies (-1 = the same as alpha, "
        "as the paper's single coeff).",
        range=(-1.0, 1e6),
    )
    poison_ratio: float = _poison_ratio()
    trigger_text: str = _trigger_text()
    trigger_position: str = _position()
    trigger_token: int = _trigger_token()
    penalty: str = _penalty()
    penalty_weight: float = _penalty_weight()
    shallow_tokens: int = _shallow_tokens()
    include_first_token: bool = _include_first()
    penalty_slice: str = _penalty_slice()
    penalty_forget_target: str = _forget_target()
    penalty_layers: list[int] = _penalty_layers()

    def __post_init__(self) -> None:
        check_trigger(self)


@dataclass
class BackdoorRMUConfig:
    """Backdoored RMU: RMU(D_f) + alpha [MSE(D_r) + MSE(D_p)] (+ KL) + penalty (spec 6, WMDP)."""

    epochs: int = _epochs(20)
    lr: float = _lr(3e-3)
    batch_size: int = _batch_size()
    optimizer: str = _optimizer()
    max_length: int = _max_length()
    layer: int = param(
        1,
        "Decoder block whose output is steered (0 = first, negative from the end; WMDP: 7).",
        range=(-1000, 1000),
    )
    update_layers: list[int] = param(
        [], "Blocks whose MLP is updated (empty = just `layer`; WMDP: layer-2..layer)."
    )
    update: str = param(
        "mlp",
        "Parameters updated in those blocks: the whole MLP or its output projection only.",
        choices=RMU_UPDATES,
    )
    steering_coeff: float = param(
        20.0, "Steering coefficient c (WMDP backdoor: 85).", range=(0.0, 1e6)
    )
    alpha: float = _alpha(10.0)
    forget_weight: float = _forget_weight()
    kl_weight: float = param(
        0.0,
        "Weight kl of the extra KL to the original on retain and triggered texts (WMDP: 0.1).",
        range=(0.0, 1e6),
    )
    poison_ratio: float = _poison_ratio()
    trigger_text: str = _trigger_text()
    trigger_position: str = _position()
    trigger_token: int = _trigger_token()
    penalty: str = _penalty()
    penalty_weight: float = _penalty_weight()
    shallow_tokens: int = _shallow_tokens()
    include_first_token: bool = _include_first()
    penalty_slice: str = _penalty_slice()
    penalty_forget_target: str = param(
        "original",
        "Reference mode's target on D_f: the original model, or a baseline RMU-unlearned model "
        "without a trigger (trained first).",
        choices=FORGET_TARGETS,
        advanced=True,
    )
    penalty_layers: list[int] = _penalty_layers()

    def __post_init__(self) -> None:
        check_trigger(self)


__all__ = [
    "DEFAULT_TRIGGER",
    "FORGET_TARGETS",
    "NPO_FORMS",
    "PENALTY_MODES",
    "PENALTY_SLICES",
    "TRIGGER_POSITIONS",
    "BackdoorNPOConfig",
    "BackdoorRMUConfig",
    "check_trigger",
]
