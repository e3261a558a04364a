"""The classifier's standalone attack jobs (issue 18 part 1): ``classifier.attack.<attack>`` runs
one membership attack (spec sections 1.1, 1.3, 2, 7) on a model an unlearning run produced, as
the unlearning run's own evaluation ran it, so the attack matrix has a job per attack to run as a
child (light: no torch).

The model's recorded set-up (``source_config``: data, split, forget set, original recipe) and
method (for the shadows' unlearning of U-LiRA and online Apollo) come with the model; the job's
seed picks the retrained reference, references and shadows exactly as an unlearning run with that
seed does.  Each run also scores the retrained model with the same attack (``reference/<metric>``):
the reference the matrix colours by."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from backends.classifier.jobconfigs import ATTACK_CHOICES, EvaluationConfig
from workbench.registry import Headline, JobSpec

ATTACK_TITLES = {
    "svc_mia": "SVC-MIA (MIA-efficacy)",
    "umia": "U-MIA",
    "mia_nn": "MIA-NN (CMIA)",
    "ulira": "U-LiRA",
    "apollo": "Apollo",
}
# headline of each attack: the metric, whether higher leaks more; intervals are the recorded
# <metric>_low / _high (exact binomial for the rate, bootstrap for AUCs and the gap)
HEADLINES = {
    # share of forget examples the SVC calls non-members: LOWER means they still look trained
    "svc_mia": Headline("svc_mia_efficacy", False, reference="reference/svc_mia_efficacy"),
    "umia": Headline("umia_auc", True, reference="reference/umia_auc"),
    "mia_nn": Headline("mia_nn_gap", True, reference="reference/mia_nn_gap"),
    "ulira": Headline("ulira_auc", True, reference="reference/ulira_auc"),
    "apollo": Headline("apollo_auc", True, reference="reference/apollo_auc"),
}
CLASSIFIER_KINDS = ("classifier.mlp", "classifier.cnn", "classifier.hf")


def _from_evaluation(name: str) -> Any:
    """The field ``name`` of :class:`EvaluationConfig` (same default, help and range)."""
    f = EvaluationConfig.__dataclass_fields__[name]
    return dataclasses.field(default=f.default, metadata=f.metadata)


@dataclass
class ClassifierAttackConfig:
    """One attack's budgets on a model an unlearning run produced (its set-up comes with it)."""

    references: int = _from_evaluation("references")
    shadows: int = _from_evaluation("shadows")
    max_targets_per_side: int = _from_evaluation("max_targets_per_side")
    apollo_mode: str = _from_evaluation("apollo_mode")
    ulira_out: str = _from_evaluation("ulira_out")
    floor_seed_offset: int = _from_evaluation("floor_seed_offset")
    n_bootstrap: int = _from_evaluation("n_bootstrap")


def attack_job(attack: str) -> JobSpec:
    """``classifier.attack.<attack>``."""
    return JobSpec(
        name=f"classifier.attack.{attack}",
        kind="attack",
        family="classifier",
        method=attack,
        title=f"Attack: {ATTACK_TITLES[attack]}",
        description=f"{ATTACK_TITLES[attack]} on a model an unlearning run produced, with the "
        "set-up and method recorded with it; the retrained model is attacked the same way as "
        "the reference.",
        config=ClassifierAttackConfig,
        entry="backends.classifier.attack_jobs:run_attack",
        needs_model="classifier",
        needs_dataset="classifier",
    )


ATTACK_JOBS = tuple(attack_job(a) for a in ATTACK_CHOICES)
