"""NPO: negative preference optimisation, sequence level (spec ``classifier-and-llm-methods.md``
section 7; section 6 for the retain KL of MUSE's NPO_KLR).

Forget term, per forget text y with the frozen original as pi_ref:
``(2/beta) log(1 + (pi_theta(y)/pi_ref(y))^beta) = -(2/beta) log sigmoid(-beta (log pi_theta(y)
- log pi_ref(y)))`` with ``log pi(y)`` the summed token log-probs (OpenUnlearning's
``compute_dpo_loss`` without a preferred answer).  It equals ``(2/beta) log 2`` at the start and
saturates as pi_theta(y) falls, unlike GA.  Step loss:
``forget_weight * mean NPO + alpha * retain term`` (``"kl"`` to the original by default).

Not the MUSE code's element-wise variant on raw logits (section 6 notes it as a quirk).  pi_ref's
sequence NLLs are computed once before training (the reference is frozen).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from backends.common.method import Hooks, MethodResult, frozen_copy, model_device, prepare
from backends.llm.methods.common import (
    LLMData,
    RetainTerm,
    TextSet,
    TokenBatch,
    context_limit,
    npo_loss,
    run_unlearning,
    sequence_nll,
)
from backends.llm.methods.configs import NPOConfig


def unlearn(
    model: nn.Module,
    data: LLMData,
    cfg: NPOConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with NPO (spec sections 7 and 6)."""
    student = prepare(model, seed)
    reference = frozen_copy(model)
    ref_nll = reference_nll(reference, data.tokenizer, data.forget_texts, cfg)
    retain = RetainTerm(cfg.retain_loss, reference if cfg.retain_loss == "kl" else None)

    def step_loss(
        forget: TokenBatch, retain_batch: TokenBatch | None, f_idx: list[int]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        nll, _ = sequence_nll(student, forget)
        f = npo_loss(nll, ref_nll[f_idx], cfg.beta).mean()
        loss = cfg.forget_weight * f
        parts = {"npo": float(f.detach())}
        return retain.add(loss, parts, student, retain_batch, cfg.alpha), parts

    run_unlearning(
        student,
        data,
        cfg,
        step_loss,
        hooks,
        seed=seed,
        name="NPO",
        need_retain=retain.needs_retain,
    )
    return MethodResult()


@torch.no_grad()
def reference_nll(
    reference: nn.Module, tokenizer: Any, texts: Sequence[str], cfg: NPOConfig
) -> torch.Tensor:
    """pi_ref's summed sequence NLL of each forget text [N], in the order of ``texts``."""
    limit = context_limit(reference)
    max_length = min(cfg.max_length, limit) if limit else cfg.max_length
    data = TextSet(tokenizer, texts, max_length, model_device(reference))
    out = [
        sequence_nll(reference, data.batch(range(i, min(i + cfg.batch_size, len(data)))))[0]
        for i in range(0, len(data), cfg.batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0)
