"""GradDiff: gradient difference (spec ``classifier-and-llm-methods.md`` section 7,
"GradDiff / NegGrad+").

Loss per step: ``forget_weight * (-NLL(D_f)) + alpha * retain term`` with the retain term
``"nll"`` by default (``alpha * NLL(D_r) - gamma * NLL(D_f)`` in the spec's notation, gamma =
``forget_weight``), or ``"kl"`` to the frozen original.  The same loop as :mod:`.ga`.
"""

from __future__ import annotations

from torch import nn

from backends.common.method import Hooks, MethodResult
from backends.llm.methods.common import LLMData
from backends.llm.methods.configs import GradDiffConfig
from backends.llm.methods.ga import ascent_unlearn


def unlearn(
    model: nn.Module,
    data: LLMData,
    cfg: GradDiffConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with GradDiff (spec section 7)."""
    return ascent_unlearn(model, data, cfg, hooks, seed=seed, name="GradDiff")
