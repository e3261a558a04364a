"""The ``llm.influence_pruning`` job: its typed config and registration (light: no torch).

Spec ``classifier-and-llm-methods.md`` section 4 ("When unlearning is free"), step 3 for LLMs
(GA, GradDiff, NPO): score each forget fact of the fact universe by its influence on a held-out
validation set of never-trained facts, drop the low-influence facts (a quantile sweep, or a
fraction of the maximum), run an LLM unlearning method on the rest, and report the compute saved
against quality measured on the FULL forget set.  The code is :mod:`backends.llm.pruning_job`;
the threshold rules, step counting and the curve are :mod:`backends.common.pruning`'s, shared
with ``classifier.influence_pruning``.
"""

from __future__ import annotations

from dataclasses import dataclass

from backends.common.configs import compose_config
from backends.common.pruning import RULES
from backends.llm.jobconfigs import LLMSetupConfig
from workbench.config import param
from workbench.registry import JobSpec

#: the LLM unlearning methods a pruned forget set can go to (the backdoored ones need triggers)
LLM_PRUNING_METHODS = ("ga", "graddiff", "npo", "simnpo", "rmu")
#: the estimators feasible for a language model: no Hessian (spec section 4: LESS for the LLM side,
#: "Lowest Gradients" as the cheap proxy)
LLM_ESTIMATORS = ("grad_norm", "less")


@dataclass
class LLMPruningConfig:
    """Influence estimator, threshold sweep, the methods run on the reduced forget set, seeds."""

    methods: list[str] = param(
        ["ga", "npo"],
        "LLM unlearning methods run on the reduced forget set (their default configs).",
        choices=LLM_PRUNING_METHODS,
        length=(1, len(LLM_PRUNING_METHODS)),
    )
    method_overrides: list[str] = param(
        [], "Method settings that differ from their defaults, as method.field=value."
    )
    estimator: str = param(
        "grad_norm",
        "Influence estimator: grad_norm (norm of the fact's loss gradient, 'lowest gradients') "
        "or less (mean |cosine| of randomly projected fact and validation gradients).",
        choices=LLM_ESTIMATORS,
    )
    cross_check: bool = param(
        True, "Also score with the other estimator on the first seed (Spearman agreement)."
    )
    less_dim: int = param(256, "LESS projection dimension.", range=(1, 100_000), advanced=True)
    validation_facts: int = param(
        50,
        "Never-trained facts drawn per seed as the validation set V (their texts' gradients); "
        "the other never-trained facts stay the MIAs' non-members, so V is never scored.",
        range=(1, 100_000),
    )
    rule: str = param(
        "quantile",
        "Drop below a quantile of the scores, or below a fraction of the largest score.",
        choices=RULES,
    )
    thresholds: list[float] = param(
        [0.0, 0.25, 0.5, 0.75],
        "Quantiles q (drop the lowest q share of the forget facts; 0 = unpruned) or fractions "
        "of the maximum.",
        range=(0.0, 0.999),
        length=(1, 50),
    )
    seeds: int = param(
        3,
        "Seeds (the run's seed, seed+1, ...): the method's batch order, the validation draw and "
        "LESS's projection.",
        range=(1, 100),
    )


LLMInfluencePruningConfig = compose_config(
    "LLMInfluencePruningConfig",
    "Influence-based forget-set pruning for LLM unlearning (spec section 4): what to forget, "
    "then estimator, sweep, methods.",
    LLMSetupConfig,
    LLMPruningConfig,
)

LLM_PRUNING_JOB = JobSpec(
    name="llm.influence_pruning",
    kind="experiment",
    family="llm",
    method="influence_pruning",
    title="Influence pruning of the forget facts",
    description="Score each forget fact by its influence on held-out never-trained facts "
    "(gradient norm or LESS), drop the low-influence ones at each threshold, run GA / NPO on the "
    "rest, and plot the compute saved against forget / retain / held-out-paraphrase recall, the "
    "MIAs and the gap to the retrained model (spec section 4).",
    config=LLMInfluencePruningConfig,
    entry="backends.llm.pruning_job:run",
    needs_model="llm",
    submit_check="backends.llm.checks:check_submit",
)
