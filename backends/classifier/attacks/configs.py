"""Typed configs of the classifier attacks and metrics (light: no torch, no scikit-learn).

One dataclass per attack; fields are declared with :func:`workbench.config.param` so the GUI and
the CLI build forms and validate values.  Defaults follow the sources named in each docstring
(spec: ``/work/shared/specs/classifier-and-llm-methods.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.config import param

SVC_FEATURES = ("correctness", "confidence", "entropy", "modified_entropy", "probability")
"""The OPTML MIA-efficacy feature sets (spec section 7)."""

ULIRA_STATISTICS = ("logit_scaled", "true_logit")
"""U-LiRA per-example statistics: Hayes et al.'s log(p_y / (1 - p_y)) or Apollo's raw logit."""

ULIRA_OUT_SHADOWS = ("pipeline", "plain")
"""Which shadows model "retrained" for a target x (U-LiRA's "out" shadows; docs/methods/
classifier-attacks.md): ``pipeline`` = the shadows that never trained on x, after they unlearned
their own forget examples with the same method (the default: the exact null for a never-trained
example of the attacked model); ``plain`` = the same shadows without that unlearning (Hayes et
al. and the official Apollo code, ``attacks/ULiRA.py``)."""


@dataclass
class SvcMiaConfig:
    """MIA-efficacy (OPTML code base, spec section 7): an RBF SVC trained on the model's features
    of retain (member) vs test (non-member) examples, applied to the forget set."""

    features: str = param(
        "entropy",
        "Per-example feature the SVC sees ('all' runs each of the five).",
        choices=(*SVC_FEATURES, "all"),
    )
    c: float = param(3.0, "SVC regularisation C (OPTML: 3).", range=(1e-6, 1e6))
    max_per_side: int = param(
        0,
        "Cap on member and non-member training examples each (0: as many as the smaller side).",
        range=(0, 10_000_000),
        advanced=True,
    )
    seed: int = param(0, "Seed of the balanced subsampling.", range=(0, 2**31 - 1))


@dataclass
class UMiaConfig:
    """U-MIA (Kurmanji et al.; Apollo's re-implementation, spec section 2): an RBF SVC on the
    target's logit vectors, trained on half of the forget (unlearned) vs half of the test
    (never trained) examples and scored on the other halves."""

    c: float = param(3.0, "SVC regularisation C (Apollo: 3).", range=(1e-6, 1e6))
    gamma: str = param(
        "auto",
        "RBF width: 'auto' = 1/classes (Apollo), 'scale' = sklearn's default.",
        choices=("auto", "scale"),
    )
    split_seed: int = param(0, "Seed of the surrogate / evaluation halves.", range=(0, 2**31 - 1))


@dataclass
class MiaNNConfig:
    """MIA-NN / CMIA (spec section 1.1, [recon]): nearest-neighbour class from R references
    retrained without the forget class, one-vs-rest linear SVMs on logits, gap to retrain."""

    features: str = param(
        "probabilities",
        "What the SVMs see: softmax probabilities (measured to separate far better on digits) "
        "or raw logits (the reviewers' wording).",
        choices=("probabilities", "logits"),
    )
    svm_c: float = param(1.0, "LinearSVC regularisation C.", range=(1e-6, 1e6))
    references: int = param(
        8, "Number R of reference models retrained without the forget class.", range=(1, 1024)
    )
    max_train_per_class: int = param(
        0,
        "Cap on retain examples per class for the SVMs (0: all).",
        range=(0, 10_000_000),
        advanced=True,
    )
    standardize: bool = param(
        True, "Standardise logits before the SVMs (helps LinearSVC converge).", advanced=True
    )
    seed: int = param(0, "Seed of the SVMs and the subsampling.", range=(0, 2**31 - 1))


@dataclass
class ULiRAConfig:
    """U-LiRA (Hayes et al. 2024; spec section 1.3): per-example Gaussian likelihood ratio between
    shadows trained on x and then unlearned ("in") and shadows that never saw x ("out")."""

    shadows: int = param(
        16, "Number K of shadow models (each target is in about half).", range=(2, 4096)
    )
    statistic: str = param(
        "logit_scaled",
        "Per-example statistic: logit-scaled confidence (Hayes et al.) or the raw true-label "
        "logit (Apollo code).",
        choices=ULIRA_STATISTICS,
    )
    variance_floor: float = param(
        1e-4, "Smallest per-example variance (keeps the Gaussians proper).", range=(0.0, 1e6)
    )
    fixed_variance: bool = param(
        False,
        "Use one global in / out variance for all examples (LiRA's choice when K is small).",
    )
    out_shadows: str = param(
        "pipeline",
        "Which shadows model 'retrained' for a target: pipeline (never trained on it, then "
        "unlearned their own forget examples like the target; default) or plain (never trained "
        "on it, not unlearned: Hayes et al. and the official Apollo code).",
        choices=ULIRA_OUT_SHADOWS,
    )
    seed: int = param(0, "Seed of the shadow memberships.", range=(0, 2**31 - 1))
