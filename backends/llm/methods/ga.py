"""GA: gradient ascent on the forget texts (spec ``classifier-and-llm-methods.md`` section 7).

Loss per step: ``forget_weight * (-NLL(D_f)) + alpha * retain term`` where NLL is the
token-weighted mean next-token NLL and the retain term is ``retain_loss`` (``"none"`` by default:
plain GA; ``"nll"`` makes it GradDiff, ``"kl"`` GA_KLR as in MUSE).  The loss is unbounded below,
so the epochs and the learning rate are what stop it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from backends.common.loop_checkpoints import LoopCheckpoints
from backends.llm.methods.common import (
    Check,
    Log,
    RetainTerm,
    TokenBatch,
    frozen_copy,
    mean_nll,
    prepare,
    run_unlearning,
)
from backends.llm.methods.configs import GAConfig, GradDiffConfig


def ascent_unlearn(
    model: nn.Module,
    tokenizer: Any,
    forget_texts: Sequence[str],
    retain_texts: Sequence[str],
    cfg: GAConfig | GradDiffConfig,
    *,
    seed: int,
    check: Check,
    log: Log,
    name: str,
    checkpoints: LoopCheckpoints | None = None,
) -> nn.Module:
    """The GA / GradDiff loop: ``-forget_weight * NLL(D_f) + alpha * retain term``."""
    student = prepare(model, seed)
    retain = RetainTerm(cfg.retain_loss, frozen_copy(model) if cfg.retain_loss == "kl" else None)

    def step_loss(
        forget: TokenBatch, retain_batch: TokenBatch | None, _: list[int]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        forget_nll = mean_nll(student, forget)
        loss = -cfg.forget_weight * forget_nll
        parts = {"forget_nll": float(forget_nll.detach())}
        return retain.add(loss, parts, student, retain_batch, cfg.alpha), parts

    return run_unlearning(
        student, tokenizer, forget_texts, retain_texts, cfg, step_loss, seed=seed, check=check,
        log=log, name=name, need_retain=retain.needs_retain, checkpoints=checkpoints,
    )  # fmt: skip


def unlearn(
    model: nn.Module,
    tokenizer: Any,
    forget_texts: Sequence[str],
    retain_texts: Sequence[str],
    cfg: GAConfig,
    *,
    seed: int,
    check: Check = None,
    log: Log = None,
    checkpoints: LoopCheckpoints | None = None,
) -> nn.Module:
    """A GA-unlearned deep copy of ``model`` (spec section 7)."""
    return ascent_unlearn(
        model, tokenizer, forget_texts, retain_texts, cfg, seed=seed, check=check, log=log,
        name="GA", checkpoints=checkpoints,
    )  # fmt: skip
