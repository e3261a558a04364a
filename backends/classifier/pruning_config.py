"""The ``classifier.influence_pruning`` job: its typed config and registration (light: no torch).

Spec section 4 ("When unlearning is free"): score the forget points by influence on a held-out
validation set, drop the low-influence ones (a quantile sweep, or a fraction of the maximum), run
a registered unlearning method on the rest, and report the compute saved against quality.  The
job's code is :mod:`backends.classifier.pruning_job`.
"""

from __future__ import annotations

from dataclasses import dataclass

from backends.classifier.jobconfigs import SetupConfig
from backends.classifier.methods import METHODS
from backends.common.configs import compose_config
from backends.common.pruning import AGGREGATES, CLASS_FORGET_NOTE, ESTIMATORS, RULES
from workbench.config import ConfigError, param
from workbench.registry import JobSpec

# methods that need a class forget set (TRW, RWFT) cannot run on a pruned sample forget set
CLASS_ONLY = ("rwft", "trw")
PRUNING_METHODS = tuple(m for m in METHODS if m not in CLASS_ONLY)
PRUNING_ATTACKS = ("svc_mia", "umia")  # the offline MIAs (online ones would prune every shadow)


@dataclass
class PruningSetupConfig(SetupConfig):
    """The classifier set-up, forgetting a random subset by default; a class forget set is
    refused (:data:`~backends.common.pruning.CLASS_FORGET_NOTE`)."""

    forget_kind: str = param(
        "random",
        "What to forget: random or indices (a forgotten class has no low-influence points to "
        "drop).",
        choices=("class", "random", "indices"),
    )

    def __post_init__(self) -> None:
        if self.forget_kind == "class":
            raise ConfigError(CLASS_FORGET_NOTE, "forget_kind")


@dataclass
class PruningConfig:
    """Influence estimator, threshold sweep, the method run on the reduced set, seeds."""

    method: str = param(
        "ga",
        "Registered unlearning method run on the reduced forget set (its default config).",
        choices=PRUNING_METHODS,
    )
    method_overrides: list[str] = param(
        [], "Method settings that differ from their defaults, as field=value (e.g. lr=0.003)."
    )
    estimator: str = param(
        "exact",
        "Influence estimator: exact (damped Hessian), cg, lissa, grad_norm (lowest gradients) or "
        "less (randomly projected gradient cosine).",
        choices=ESTIMATORS,
    )
    params: str = param(
        "last_layer",
        "Parameters the influence is taken over: the output layer (convex in it, exact Hessian "
        "cheap) or all (exact needs at most max_exact_params).",
        choices=("last_layer", "all"),
    )
    max_exact_params: int = param(
        5000,
        "Largest parameter count for the exact Hessian (d x d in float64).",
        range=(1, 50_000),
        advanced=True,
    )
    damping: float = param(
        0.01, "Damping lambda added to the Hessian (H + lambda I).", range=(0.0, 100.0)
    )
    aggregate: str = param(
        "mean_abs",
        "Score of a forget point: mean_abs = mean over validation points of |I(z, t)|; total = "
        "|I(z, V)| on the summed validation loss.",
        choices=AGGREGATES,
    )
    validation_size: int = param(
        100,
        "Validation points V (drawn from the shadow pool: never trained on, not the test split).",
        range=(1, 100_000),
    )
    cg_max_iter: int = param(200, "CG iterations at most.", range=(1, 100_000), advanced=True)
    lissa_depth: int = param(300, "LiSSA recursion depth.", range=(1, 1_000_000), advanced=True)
    lissa_batch: int = param(
        0, "LiSSA mini-batch (0: full-batch Hessian products).", range=(0, 100_000), advanced=True
    )
    less_dim: int = param(256, "LESS projection dimension.", range=(1, 100_000), advanced=True)
    cross_check: bool = param(
        True,
        "Also compute the other estimators on the first seed and record their Spearman "
        "correlation with the chosen one.",
    )
    rule: str = param(
        "quantile",
        "Drop below a quantile of the scores, or below a fraction of the largest score.",
        choices=RULES,
    )
    thresholds: list[float] = param(
        [0.0, 0.1, 0.3, 0.5, 0.7, 0.9],
        "Quantiles q (drop the lowest q share; 0 = unpruned) or fractions of the maximum.",
        range=(0.0, 0.999),
        length=(1, 50),
    )
    seeds: int = param(3, "Seeds (the run's seed, seed+1, ...).", range=(1, 100))
    attacks: list[str] = param(
        list(PRUNING_ATTACKS),
        "MIAs scoring each unlearned model on the FULL forget set: svc_mia, umia.",
        choices=PRUNING_ATTACKS,
    )
    n_bootstrap: int = param(
        1000, "Bootstrap replicates of the 95% intervals.", range=(10, 100_000), advanced=True
    )


InfluencePruningConfig = compose_config(
    "InfluencePruningConfig",
    "Influence-based forget-set pruning (spec section 4): set-up, then estimator, sweep, method.",
    PruningSetupConfig,
    PruningConfig,
)

PRUNING_JOB = JobSpec(
    name="classifier.influence_pruning",
    kind="experiment",
    family="classifier",
    method="influence_pruning",
    title="Influence pruning of the forget set",
    description="Score each forget example by its influence on held-out data, drop the "
    "low-influence ones at each threshold, run an unlearning method on the rest, and plot the "
    "compute saved against forget / retain / test accuracy and the MIAs (spec section 4).",
    config=InfluencePruningConfig,
    entry="backends.classifier.pruning_job:run",
    needs_dataset="classifier",
    needs_model="classifier",
    model_optional=True,
    submit_check="backends.classifier.checks:check_submit",
)
