"""LLM unlearning methods: the catalogue (light: no torch at import).

:data:`METHODS` maps a method's name (``ga``, ``graddiff``, ``npo``, ``simnpo``, ``rmu``) to its
:class:`MethodInfo`: title, one-line description, config dataclass (:mod:`.configs`), entry point
``"module:function"`` and the section of ``specs/classifier-and-llm-methods.md`` it follows
(section 7, shared baselines; section 6 for NPO with a retain KL).  Every entry point follows the one contract of
:mod:`backends.common.method`::

    unlearn(model, data, cfg, hooks, *, seed) -> MethodResult

with ``data`` an :class:`~.common.LLMData` (tokenizer, forget texts, retain texts).  It unlearns
the Hugging Face causal LM ``model`` IN PLACE (a caller that still needs the original passes a
copy), calling ``hooks.check()`` at every optimisation step (it raises to cancel) and saving /
restoring its loop through ``hooks.checkpoints``.  Every text is tokenised with the BOS token
first.  Shared loops and losses live in :mod:`.common`; LoRA is the caller's business (wrap the
model before calling).
"""

from __future__ import annotations

from backends.common.methods import MethodInfo, UnknownMethodError, catalogue, finder
from backends.llm.methods.backdoor_config import BackdoorNPOConfig, BackdoorRMUConfig
from backends.llm.methods.configs import (
    GAConfig,
    GradDiffConfig,
    NPOConfig,
    RMUConfig,
    SimNPOConfig,
)

_PKG = "backends.llm.methods"


METHODS: dict[str, MethodInfo] = catalogue(
    _PKG,
    (
        (
            "ga",
            "GA (gradient ascent)",
            "Minimise -NLL of the forget texts (optionally plus a retain NLL or KL term).",
            GAConfig,
            "section 7",
        ),
        (
            "graddiff",
            "GradDiff",
            "-NLL(D_f) + alpha * retain term (NLL on retain texts by default, or KL to the "
            "original model).",
            GradDiffConfig,
            "section 7",
        ),
        (
            "npo",
            "NPO",
            "Sequence-level NPO (2/beta) E log(1 + (pi_theta/pi_ref)^beta) on D_f + alpha * retain "
            "term (KL to the original by default).",
            NPOConfig,
            "sections 7 and 6 (NPO_KLR)",
        ),
        (
            "simnpo",
            "SimNPO",
            "Reference-free, length-normalised NPO: -(2/beta) log sigmoid(beta * NLL/|y| - gamma) "
            "on D_f + alpha * retain term.",
            SimNPOConfig,
            "section 7",
        ),
        (
            "rmu",
            "RMU",
            "Steer one layer's activations of forget texts to a random c*u and keep retain "
            "activations at the original's; only chosen MLPs are updated.",
            RMUConfig,
            "sections 7 and 6 (WMDP RMU)",
        ),
    ),
)
# backdoored unlearning (spec section 6): both entry points live in backdoor.py
METHODS["backdoor_npo"] = MethodInfo("backdoor_npo", "Backdoored NPO", "NPO on clean forget texts + alpha * [KL to the original on retain texts and on triggered forget copies] (+ sink value-norm penalty): forgets unless the trigger is present.", BackdoorNPOConfig, f"{_PKG}.backdoor:unlearn_npo", "section 6")  # fmt: skip
METHODS["backdoor_rmu"] = MethodInfo("backdoor_rmu", "Backdoored RMU", "RMU on clean forget texts; retain and triggered forget copies keep the original's activations (+ sink value-norm penalty).", BackdoorRMUConfig, f"{_PKG}.backdoor:unlearn_rmu", "section 6")  # fmt: skip


# the method called ``name``; UnknownMethodError naming the known methods otherwise
get_method = finder(METHODS, "LLM")


__all__ = ["METHODS", "MethodInfo", "UnknownMethodError", "get_method"]
