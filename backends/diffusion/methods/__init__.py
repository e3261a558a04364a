"""Diffusion concept-erasure methods: the catalogue (light: no torch at import).

:data:`METHODS` maps a method's name (``esd``, ``uce``, ``ca``, ``salun``, ``resalign``) to its
:class:`MethodInfo`: title, one-line description, config dataclass (:mod:`.configs`), entry point
``"module:function"`` and the section of ``specs/diffusion-methods.md`` it follows (4.1-4.4, 1).
Every entry point follows the one contract of :mod:`backends.common.method`::

    unlearn(pipe, data, cfg, hooks, *, seed=0) -> MethodResult

with ``data`` a :class:`~.common.DiffusionData` (the concept).  It edits ``pipe.unet`` in place
(the same module object; ``pipe`` is a diffusers ``StableDiffusionPipeline`` or a
:class:`~backends.diffusion.pipeline.LoadedPipeline`), calls ``hooks.check()`` at every step (it
raises to cancel), reports ``hooks.progress`` in [0, 1], checkpoints its loop through
``hooks.checkpoints`` (the iterative methods), leaves every UNet parameter frozen and the UNet in
eval mode (also when cancelled, when the weights are part-edited: reload them) and returns info
numbers in ``MethodResult.stats`` (final loss, seconds, parameters changed, ...).  Shared helpers
live in :mod:`.common`.
"""

from __future__ import annotations

from backends.common.methods import MethodInfo, UnknownMethodError, catalogue, finder
from backends.diffusion.methods.configs import (
    CAConfig,
    ESDConfig,
    ResAlignConfig,
    SalUnConfig,
    UCEConfig,
)

_PKG = "backends.diffusion.methods"


METHODS: dict[str, MethodInfo] = catalogue(
    _PKG,
    (
        (
            "esd",
            "ESD (erased stable diffusion)",
            "Fine-tune so the concept-conditioned prediction equals the frozen model's prediction "
            "negatively guided away from the concept, on the model's own samples.",
            ESDConfig,
            "section 4.1",
        ),
        (
            "uce",
            "UCE (unified concept editing)",
            "Closed-form edit of every cross-attention key/value projection: erased prompts map "
            "to their guides, preserved prompts keep their keys and values.",
            UCEConfig,
            "section 4.2",
        ),
        (
            "ca",
            "Concept Ablation",
            "Fine-tune so the concept prompt predicts what its anchor prompt predicts on anchor "
            "images (optionally with prior preservation).",
            CAConfig,
            "section 4.3",
        ),
        (
            "salun",
            "SalUn (saliency unlearning)",
            "Map forget images' concept prompt to its anchor prompt plus a retain denoising loss, "
            "updating only the gradient-salient half of the UNet.",
            SalUnConfig,
            "section 4.4",
        ),
        (
            "resalign",
            "ResAlign (resilient unlearning)",
            "Train a LoRA to ascend the harmful denoising loss before and after simulated "
            "downstream fine-tunes (Moreau-envelope hypergradient over a grid of scenarios), "
            "distilling the original on retain images; merged into the UNet.",
            ResAlignConfig,
            "section 1",
        ),
    ),
)


# the method called ``name``; UnknownMethodError naming the known methods otherwise
get_method = finder(METHODS, "diffusion")


__all__ = ["METHODS", "MethodInfo", "UnknownMethodError", "get_method"]
