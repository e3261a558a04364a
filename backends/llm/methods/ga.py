"""GA: gradient ascent on the forget texts (spec ``classifier-and-llm-methods.md`` section 7).

Loss per step: ``forget_weight * (-NLL(D_f)) + alpha * retain term`` where NLL is the
token-weighted mean next-token NLL and the retain term is ``retain_loss`` (``"none"`` by default:
plain GA; ``"nll"`` makes it GradDiff, ``"kl"`` GA_KLR as in MUSE).  The loss is unbounded below,
so the epochs and the learning rate are what stop it.
"""

from __future__ import annotations

import torch
from torch import nn

from backends.common.method import Hooks, MethodResult, frozen_copy, prepare
from backends.llm.methods.common import (
    LLMData,
    RetainTerm,
    TokenBatch,
    mean_nll,
    run_unlearning,
)
from backends.llm.methods.configs import GAConfig, GradDiffConfig


def ascent_unlearn(
    model: nn.Module,
    data: LLMData,
    cfg: GAConfig | GradDiffConfig,
    hooks: Hooks,
    *,
    seed: int,
    name: str,
) -> MethodResult:
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

    run_unlearning(
        student, data, cfg, step_loss, hooks, seed=seed, name=name, need_retain=retain.needs_retain
    )
    return MethodResult()


def unlearn(
    model: nn.Module,
    data: LLMData,
    cfg: GAConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with GA (spec section 7)."""
    return ascent_unlearn(model, data, cfg, hooks, seed=seed, name="GA")
