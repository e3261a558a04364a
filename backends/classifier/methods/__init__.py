"""Classifier unlearning methods: the catalogue (light: no torch at import).

:data:`METHODS` maps a method's name to its :class:`MethodInfo`: title, one-line description, config
dataclass (:mod:`.configs`), entry point ``"module:function"`` and the section of
``specs/classifier-and-llm-methods.md`` it follows.  Every entry point follows the one contract of
:mod:`backends.common.method`::

    unlearn(model, setup, cfg, hooks, *, seed) -> MethodResult

and unlearns ``model`` IN PLACE (a caller that still needs the original passes a copy:
:func:`~backends.common.method.unlearned_copy`), calling ``hooks.check()`` at every optimisation
step (it raises to cancel).  With ``hooks.checkpoints`` the epoch loop saves its state every N
epochs and, given a checkpoint to resume, continues after its epoch, ending bit-identical to an
uninterrupted run.  Shared loops live in :mod:`.common`.
"""

from __future__ import annotations

from backends.classifier.methods.configs import (
    BoundaryShrinkConfig,
    FTConfig,
    GAConfig,
    L1SparseConfig,
    MinNormOGConfig,
    NegGradPlusConfig,
    RLConfig,
    RWFTConfig,
    SalUnConfig,
    SCRUBConfig,
    TRWConfig,
)
from backends.common.methods import MethodInfo, UnknownMethodError, catalogue, finder

_PKG = "backends.classifier.methods"


METHODS: dict[str, MethodInfo] = catalogue(
    _PKG,
    (
        ("ft", "FT", "Fine-tune on the retain set only: CE(D_r).", FTConfig, "section 7"),
        (
            "ga",
            "GA",
            "Gradient ascent on the forget set: minimise -CE(D_f).",
            GAConfig,
            "section 7",
        ),
        (
            "neggrad_plus",
            "NegGrad+ / GradDiff",
            "alpha * CE(D_r) - gamma * CE(D_f) on mixed forget/retain batches.",
            NegGradPlusConfig,
            "sections 3 (baselines) and 7",
        ),
        (
            "rl",
            "RL (random labels)",
            "CE on the forget set with random wrong labels plus CE on the retain set.",
            RLConfig,
            "section 7",
        ),
        (
            "scrub",
            "SCRUB",
            "Teacher = original; max-steps push KL(teacher||student) up on D_f, min-steps fit "
            "CE + alpha * KL on D_r; final min-only epochs.",
            SCRUBConfig,
            "sections 3 (baselines) and 7",
        ),
        (
            "salun",
            "SalUn",
            "Mask the weights with the largest |grad CE(D_f)|, then random-label unlearning on "
            "the masked weights only.",
            SalUnConfig,
            "sections 3 (baselines) and 7",
        ),
        (
            "l1_sparse",
            "l1-sparse",
            "Fine-tune on D_r with a decaying l1 penalty (2 - 2t/T) * lambda * ||theta||_1.",
            L1SparseConfig,
            "sections 3 (baselines) and 7",
        ),
        (
            "boundary_shrink",
            "Boundary Shrink",
            "Fine-tune each forget example to its nearest wrong class, found by an FGSM step on "
            "the original model.",
            BoundaryShrinkConfig,
            "section 7 (baseline list in 1.2)",
        ),
        (
            "rwft",
            "RWFT",
            "Class unlearning: fit forget examples to the original's renormalised distribution "
            "over the remaining classes (TRW with beta = 0), plus lambda * CE(D_r).",
            RWFTConfig,
            "section 1.2 (v1)",
        ),
        (
            "trw",
            "TRW (Tilted ReWeighting)",
            "Class unlearning: fit forget examples to the similarity-tilted target "
            "q* ∝ p~ exp(beta s), plus lambda * CE(D_r).",
            TRWConfig,
            "sections 1.2 and 1.4",
        ),
        (
            "minnorm_og",
            "MinNorm-OG",
            "Step towards the projection of theta onto the span of the retain output gradients "
            "(QR, float64), alternated with retain descent; final descent-only epochs.",
            MinNormOGConfig,
            "section 3",
        ),
    ),
)


# the method called ``name``; UnknownMethodError naming the known methods otherwise
get_method = finder(METHODS, "classifier")


__all__ = ["METHODS", "MethodInfo", "UnknownMethodError", "get_method"]
