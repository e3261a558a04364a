"""GradDiff: gradient difference (spec ``classifier-and-llm-methods.md`` section 7,
"GradDiff / NegGrad+").

Loss per step: ``forget_weight * (-NLL(D_f)) + alpha * retain term`` with the retain term
``"nll"`` by default (``alpha * NLL(D_r) - gamma * NLL(D_f)`` in the spec's notation, gamma =
``forget_weight``), or ``"kl"`` to the frozen original.  The same loop as :mod:`.ga`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from backends.common.loop_checkpoints import LoopCheckpoints
from backends.llm.methods.common import Check, Log
from backends.llm.methods.configs import GradDiffConfig
from backends.llm.methods.ga import ascent_unlearn


def unlearn(
    model: nn.Module,
    tokenizer: Any,
    forget_texts: Sequence[str],
    retain_texts: Sequence[str],
    cfg: GradDiffConfig,
    *,
    seed: int,
    check: Check = None,
    log: Log = None,
    checkpoints: LoopCheckpoints | None = None,
) -> nn.Module:
    """A GradDiff-unlearned deep copy of ``model`` (spec section 7)."""
    return ascent_unlearn(
        model, tokenizer, forget_texts, retain_texts, cfg, seed=seed, check=check, log=log,
        name="GradDiff", checkpoints=checkpoints,
    )  # fmt: skip
