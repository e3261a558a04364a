"""SimNPO: simple (reference-free, length-normalised) NPO (spec
``classifier-and-llm-methods.md`` section 7).

Forget term, per forget text y with |y| predicted tokens:
``-(2/beta) log sigmoid(beta * NLL_theta(y)/|y| - gamma)`` (Fan et al. 2024; OpenUnlearning's
``simnpo.py`` writes ``beta (NLL/|y| - delta)``, i.e. ``delta = gamma / beta``).  No reference
model: the average per-token NLL replaces NPO's log-ratio, so long texts do not dominate.  Step
loss: ``forget_weight * mean SimNPO + alpha * retain term`` (``"nll"`` by default).
"""

from __future__ import annotations

import torch
from torch import nn

from backends.common.method import Hooks, MethodResult, frozen_copy, prepare
from backends.llm.methods.common import (
    LLMData,
    RetainTerm,
    TokenBatch,
    run_unlearning,
    sequence_nll,
    simnpo_loss,
)
from backends.llm.methods.configs import SimNPOConfig


def unlearn(
    model: nn.Module,
    data: LLMData,
    cfg: SimNPOConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with SimNPO (spec section 7)."""
    student = prepare(model, seed)
    retain = RetainTerm(cfg.retain_loss, frozen_copy(model) if cfg.retain_loss == "kl" else None)

    def step_loss(
        forget: TokenBatch, retain_batch: TokenBatch | None, _: list[int]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        nll, count = sequence_nll(student, forget)
        f = simnpo_loss(nll, count, cfg.beta, cfg.gamma).mean()
        loss = cfg.forget_weight * f
        parts = {"simnpo": float(f.detach())}
        return retain.add(loss, parts, student, retain_batch, cfg.alpha), parts

    run_unlearning(
        student,
        data,
        cfg,
        step_loss,
        hooks,
        seed=seed,
        name="SimNPO",
        need_retain=retain.needs_retain,
    )
    return MethodResult()
