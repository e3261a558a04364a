"""Typed configs of the diffusion concept-erasure methods (light: no torch at import).

One ``@dataclass`` per method of spec ``diffusion-methods.md`` section 4 (4.1 ESD, 4.2 UCE, 4.3
CA, 4.4 SalUn).  Every constant a method uses is a field with a default, a range or choices and
one line of help that gives the paper's value.  Defaults are tuned on the built-in tiny
text-to-image model (section 0's CPU testbed: a 1-4M-parameter latent UNet on 8x8 or 16x16
latents, sampled with DDIM 25 at guidance 2), where a few hundred fast steps replace the papers'
hours on an 860M-parameter UNet: learning rates are one to two orders of magnitude larger, step
counts and data sizes smaller and samplers shorter.  For Stable Diffusion use the paper values
given in each help line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backends.common import fields
from workbench.config import param

ESD_TRAIN_METHODS = ("u", "x", "x-strict", "all")
ESD_TARGETS = ("from", "null")
ESD_ROLLOUT_MODELS = ("frozen", "trained")
ESD_ERASE_FROM = ("word", "forget_prompts")
ESD_DIRECTIONS = ("word", "in_context")
UCE_GUIDES = ("anchor", "guide")
UCE_TOKENS = ("last", "word_to_last")
CA_PARAMETERS = ("xattn-kv", "full")
CA_LOSSES = ("model", "noise")
SALUN_RETAIN_SOURCES = ("anchor", "retain")
RESALIGN_LOSSES = ("ga", "esd")
RESALIGN_INITS = ("official", "zero")
RESALIGN_OPTIMIZERS = ("gd", "adam")
RESALIGN_MODES = ("lora", "full", "dreambooth")
RESALIGN_DATASETS = ("benign", "benign1", "benign2", "benign3", "concept")


def _lr(default: float, paper: str) -> Any:
    return fields.lr(
        default,
        f"Learning rate (constant). Paper: {paper}; the tiny UNet needs a far larger one.",
        low=1e-10,
    )


def _sample_steps(default: int = 25) -> Any:
    return param(
        default,
        "DDIM steps when the method samples with the model (papers: 50; tiny: 25, as its "
        "evaluation).",
        range=(1, 1000),
        advanced=True,
    )


def _sample_guidance(default: float, paper: str) -> Any:
    return param(
        default,
        f"CFG scale when the method samples with the original model. Paper: {paper}; the tiny "
        "model is sampled at about 2 (stronger guidance breaks it).",
        range=(0.0, 50.0),
        advanced=True,
    )


@dataclass
class ESDConfig:
    """ESD (spec 4.1): ε_θ(x_t, c_from) → ε_0(x_t, c_from) − η(ε_0(x_t, c_e) − ε_0(x_t, ∅))."""

    train_method: str = param(
        "x",
        "Parameters trained: u = all but cross-attention (the paper's choice for nudity and "
        "global concepts), x = cross-attention only (the paper's for styles), x-strict = attn2 "
        "to_k/to_v only, all = the whole UNet. Tiny default x: on the tiny model u costs more "
        "utility for the same erasure.",
        choices=ESD_TRAIN_METHODS,
    )
    negative_guidance: float = param(
        2.0,
        "eta, the negative guidance of the target (legacy script and paper: 1; new script: 2).",
        range=(0.0, 100.0),
    )
    iterations: int = param(
        80,
        "Optimiser steps (legacy script: 1000; new script: 200; tiny: 80).",
        range=(1, 1_000_000),
    )
    lr: float = _lr(1e-3, "1e-5 (legacy) / 5e-5 (new script)")
    rollout_batch: int = param(
        4,
        "Starting noises rolled out per step (paper: 1; a few more make the tiny run smoother).",
        range=(1, 1024),
    )
    start_guidance: float = param(
        3.0, "CFG scale of the rollout that produces x_t (both scripts: 3).", range=(0.0, 50.0)
    )
    ddim_steps: int = param(
        25,
        "DDIM steps of the rollout schedule; x_t is taken after a random number of them "
        "(paper: 50; tiny: 25, as its sampler).",
        range=(2, 1000),
    )
    target: str = param(
        "from",
        "Target base: from = ε_0(x_t, c_from) (new script), null = ε_0(x_t, ∅) (legacy script).",
        choices=ESD_TARGETS,
    )
    erase_from: str = param(
        "forget_prompts",
        "c_from: the concept word itself (the paper's whole-concept erasure) or the concept's "
        "forget prompts, one per rolled-out noise. The tiny models were only trained on whole "
        "prompts, so erasing the lone word barely reaches them: the default is forget_prompts.",
        choices=ESD_ERASE_FROM,
    )
    concept_direction: str = param(
        "in_context",
        "What eta pushes away from: word = ε_0(x_t, c_e) − ε_0(x_t, ∅) with c_e the concept word "
        "(the paper), in_context = ε_0(x_t, c_from) − ε_0(x_t, c_anchor), the concept's "
        "direction inside each forget prompt (its anchor prompt lacks only the concept). The "
        "tiny models never saw the word alone: its direction is 10x weaker than in context on "
        "the 32x32 model, so word-ESD needs eta ~15 there and breaks the 16x16 one.",
        choices=ESD_DIRECTIONS,
    )
    rollout_model: str = param(
        "frozen",
        "Model that rolls out x_t: the frozen original (new script) or the one being trained "
        "(legacy script).",
        choices=ESD_ROLLOUT_MODELS,
        advanced=True,
    )


@dataclass
class UCEConfig:
    """UCE (spec 4.2): closed-form edit of every attn2.to_k / attn2.to_v."""

    lamb: float = param(
        0.5,
        "lambda, the weight that keeps W close to the original (paper: 0.5).",
        range=(0.0, 1e6),
    )
    erase_scale: float = param(
        1.0, "s_e, weight of each erased concept (paper: 1).", range=(0.0, 1e6)
    )
    preserve_scale: float = param(
        1.0, "s_p, weight of each preserved concept (paper: 1).", range=(0.0, 1e6)
    )
    erase_forget_prompts: bool = param(
        True,
        "Erase the forget prompts as well as the concept word (the paper erases the word; the "
        "tiny text encoder spreads the concept over the whole prompt, so the word alone moves "
        "little).",
    )
    forget_guides: str = param(
        "anchor",
        "Guide of each forget prompt: its anchor prompt (the same prompt without the concept) or "
        "the concept's guide like the word ('' = neutral).",
        choices=UCE_GUIDES,
    )
    preserve: bool = param(
        True, "Preserve the concept's retain prompts (the paper's preserve set P)."
    )
    tokens: str = param(
        "word_to_last",
        "Erased text features: the last real token of each prompt (paper), or every token from "
        "the concept word to the last real token, aligned with the guide's tokens. The tiny "
        "encoder spreads the concept over those tokens: on the 32x32 tiny model last-token UCE "
        "only takes the stripe rate from 0.97 to 0.69, word_to_last to 0.09.",
        choices=UCE_TOKENS,
    )


@dataclass
class CAConfig:
    """Concept Ablation (spec 4.3): ε_θ(x_t, c*) → sg(ε_θ(x_t, c_anchor)) on anchor images."""

    loss: str = param(
        "model",
        "model = match the current model's prediction for the anchor prompt (paper default); "
        "noise = plain denoising loss with the concept prompt on anchor images.",
        choices=CA_LOSSES,
    )
    parameters: str = param(
        "xattn-kv",
        "Parameters trained: cross-attention K/V (paper default for styles and objects) or the "
        "full UNet (the paper's memorisation setting).",
        choices=CA_PARAMETERS,
    )
    anchor_images: int = param(
        32,
        "Anchor images generated by the original model (paper: 200 default, 1000 in the "
        "paper; tiny: 2 per anchor prompt).",
        range=(1, 100_000),
    )
    steps: int = param(
        200, "Optimiser steps (paper: 100 for styles/objects).", range=(1, 1_000_000)
    )
    batch_size: int = param(8, "Anchor images per step (paper: 4).", range=(1, 4096))
    lr: float = _lr(1e-3, "2e-6 scaled by the batch (about 8e-6)")
    prior_weight: float = param(
        1.0,
        "Weight of the prior-preservation term (L_DM on anchor images with their anchor "
        "prompts); 0 turns it off (paper: optional, weight 1).",
        range=(0.0, 1e6),
    )
    sample_steps: int = _sample_steps()
    sample_guidance: float = _sample_guidance(2.0, "SD's usual 7.5 [unverified]")


@dataclass
class SalUnConfig:
    """SalUn for SD (spec 4.4): saliency-masked ‖ε_θ(x_t, c_f) − sg(ε_θ(x_t, c_a))‖² + α·L_DM."""

    mask_fraction: float = param(
        0.5,
        "Fraction of UNet entries kept trainable by the saliency mask (paper: 0.5).",
        range=(0.0, 1.0),
    )
    alpha: float = param(
        0.5,
        "Weight of the retain term alpha (paper: 0.1 for nudity, 0.5 for objects).",
        range=(0.0, 1e6),
    )
    forget_images: int = param(
        32, "D_f: images generated from the forget prompts (paper: 800).", range=(1, 100_000)
    )
    retain_images: int = param(
        32,
        "D_r: images generated from the retain source prompts (paper: 800).",
        range=(1, 100_000),
    )
    retain_source: str = param(
        "anchor",
        "Prompts of D_r: the concept's anchor prompts (the paper's 'person wearing clothes') or "
        "its retain prompts.",
        choices=SALUN_RETAIN_SOURCES,
    )
    steps: int = param(
        200,
        "Optimiser steps (paper: 1 epoch of 800 images at batch 8, i.e. 100).",
        range=(1, 1_000_000),
    )
    batch_size: int = param(
        8, "Images per step of each of D_f and D_r (paper: 8).", range=(1, 4096)
    )
    lr: float = _lr(3e-4, "1e-5")
    sample_steps: int = _sample_steps()
    sample_guidance: float = _sample_guidance(2.0, "SD's usual 7.5 [unverified]")


@dataclass
class ResAlignConfig:
    """ResAlign (spec section 1): a LoRA θ trained on (1−λ)·L_h(θ) + λ·L_h(θ*) + α·R(θ) with θ* a
    simulated downstream fine-tune, through the Moreau-envelope fixed-point hypergradient.

    Defaults are the spec's "Minimal faithful CPU-scale version"; each help line gives the
    official value (``scripts/train.sh``, ``train.py``, ``configs/*.json``)."""

    iterations: int = param(
        40, "Outer steps (paper: 160 'epochs'; CPU-scale: 50-200).", range=(1, 1_000_000)
    )
    lr: float = _lr(5e-3, "2e-4 (AdamW, weight decay 1e-2, betas 0.9/0.999)")
    weight_decay: float = param(
        1e-2, "Weight decay of the outer AdamW (paper: 1e-2).", range=(0.0, 10.0), advanced=True
    )
    rank: int = param(4, "LoRA rank on every attention projection (paper: 4).", range=(1, 256))
    lora_alpha: float = param(
        4.0,
        "LoRA alpha; the adapter's scale is alpha/rank (paper: 1, i.e. alpha = rank).",
        range=(1e-6, 1e6),
        advanced=True,
    )
    lora_init: str = param(
        "official",
        "official = up ~ N(0, up_std²), down ~ N(0, down_std²) (the official non-zero init; the "
        "model moves slightly at step 0); zero = peft's default (down Kaiming, up 0: the start "
        "is exactly the original model).",
        choices=RESALIGN_INITS,
    )
    lora_up_std: float = param(
        0.002,
        "Std of the up (B) init with lora_init=official (paper: 0.002).",
        range=(0.0, 10.0),
        advanced=True,
    )
    lora_down_std: float = param(
        0.008,
        "Std of the down (A) init with lora_init=official (paper: 0.008).",
        range=(0.0, 10.0),
        advanced=True,
    )
    loss_mode: str = param(
        "ga",
        "Harmful loss L_h: ga = gradient ascent on the denoising loss of harmful images (paper "
        "default); esd = ESD-style target ε_0(c_f) − η(ε_0(c_f) − ε_0(c_anchor)) (the concept's "
        "in-context direction, as ESD's tiny default; paper: c_e 'nude people', c_from 'people').",
        choices=RESALIGN_LOSSES,
    )
    negative_guidance: float = param(
        1.0, "η of the esd harmful loss (paper: 1).", range=(0.0, 100.0), advanced=True
    )
    lam: float = param(
        0.8,
        "λ, the weight of L_h(θ*) after simulated fine-tuning; (1−λ) weighs L_h(θ) (paper: 0.8, "
        "constant).",
        range=(0.0, 1.0),
    )
    alpha: float = param(
        1.6,
        "α, the weight of the retain distillation R(θ) (paper: 1.6, ramped to 2.0).",
        range=(0.0, 1e6),
    )
    alpha_end: float = param(
        2.0,
        "α at the end of the sigmoid ramp over the second half of training (paper: 2.0; equal "
        "to alpha turns the ramp off).",
        range=(0.0, 1e6),
        advanced=True,
    )
    harm_images: int = param(
        16,
        "D_harm: images the original model generates from the concept's forget prompts (paper: "
        "the ResAlign_train harmful set).",
        range=(1, 100_000),
    )
    retain_images: int = param(
        16,
        "D_ret: images the original model generates from the retain prompts (paper: the "
        "ResAlign_train retain set).",
        range=(1, 100_000),
    )
    finetune_images: int = param(
        16,
        "Images of each simulated fine-tuning dataset (paper: down1-3, db_prior).",
        range=(1, 100_000),
    )
    batch_size: int = param(
        4,
        "Images per harmful, fine-tuning and prior batch (paper: 1; the tiny model wants a few).",
        range=(1, 4096),
    )
    retain_batch: int = param(4, "Images per retain batch (paper: 4).", range=(1, 4096))
    hypergradient: bool = param(
        True,
        "Use the Moreau-envelope hypergradient of λ·L_h(θ*). False = the direct gradient of "
        "(1−λ)·L_h(θ) + α·R(θ) only (the ablation ladder's first rung; no fine-tuning is "
        "simulated).",
    )
    meta_data: bool = param(
        True,
        "Sample each scenario's dataset from 'datasets' (data meta-learning); False = always "
        "the first one.",
    )
    meta_config: bool = param(
        True,
        "Sample each scenario's lr, steps, optimiser and mode from their lists (config "
        "meta-learning); False = always the first of each.",
    )
    inner_sample_k: int = param(
        3,
        "Scenarios sampled per outer step, without replacement (paper: 3 of 15).",
        range=(1, 1000),
    )
    ft_lrs: list[float] = param(
        [1e-3, 1e-2, 1e-4],
        "Learning rates of the simulated fine-tunes (paper: 1e-4, 1e-5, 1e-6; CPU-scale: "
        "1e-2, 1e-3, 1e-4 for the tiny model). The first is used when meta_config is off.",
        range=(1e-10, 10.0),
        length=(1, 32),
    )
    ft_steps: list[int] = param(
        [5, 10, 20, 30],
        "Steps of the simulated fine-tunes (paper: 5, 10, 20, 30).",
        range=(1, 100_000),
        length=(1, 32),
    )
    ft_optimizers: list[str] = param(
        ["gd", "adam"],
        "Optimisers of the simulated fine-tunes: gd, adam (paper: both).",
        choices=RESALIGN_OPTIMIZERS,
        length=(1, 2),
    )
    ft_modes: list[str] = param(
        ["lora", "full", "dreambooth"],
        "What the simulated fine-tune trains: lora = the same unlearning adapter (paper: 13 of "
        "15 configs), full = the whole UNet, projected back to rank r by truncated SVD "
        "(config_full), dreambooth = the adapter on one instance prompt plus prior "
        "preservation (config0).",
        choices=RESALIGN_MODES,
        length=(1, 3),
    )
    datasets: list[str] = param(
        ["benign1", "benign2", "benign3"],
        "Fine-tuning datasets: benign = all the concept's benign (anchor) prompts, "
        "benign1/2/3 = three disjoint thirds of them (paper: down1-3), concept = the forget "
        "prompts (harmful fine-tuning). The first is used when meta_data is off.",
        choices=RESALIGN_DATASETS,
        length=(1, 5),
    )
    instance_prompt: str = param(
        "a photo of sks shape",
        "The one prompt of every instance image in dreambooth mode (paper: 'a photo of *s "
        "person').",
        advanced=True,
    )
    prior_weight: float = param(
        1.0,
        "Weight of the prior-preservation loss in dreambooth mode (paper: 1).",
        range=(0.0, 1e6),
        advanced=True,
    )
    adam_quirks: bool = param(
        True,
        "Reproduce the official inner Adam: bias correction applied twice and the state of each "
        "scenario kept across outer steps. False = textbook Adam, fresh per simulation.",
        advanced=True,
    )
    fixed_point_steps: int = param(
        5, "K, vector-Jacobian steps of the fixed-point iteration (paper: 5).", range=(1, 10_000)
    )
    prox_gamma: float = param(
        1.0,
        "γ of the Moreau envelope ½γ⁻¹‖θ′−θ‖² (paper: 1, i.e. the ½‖θ′−θ‖² term).",
        range=(1e-6, 1e6),
        advanced=True,
    )
    max_grad_norm: float = param(
        1.0,
        "Norm cap of one hypergradient: above it η is halved and the fixed point redone "
        "(paper: 0.2 on SD's adapters; the tiny adapters' direct gradient alone is about 0.1-0.5).",
        range=(1e-10, 1e10),
    )
    max_retries: int = param(
        5,
        "η halvings before falling back to the direct gradient (paper: 5).",
        range=(0, 100),
        advanced=True,
    )
    meta_rate: float = param(
        0.3,
        "Scale of the mean hypergradient before the AdamW step (paper: 0.3).",
        range=(0.0, 1e6),
        advanced=True,
    )
    sample_steps: int = _sample_steps()
    sample_guidance: float = _sample_guidance(2.0, "none: real images are used")


__all__ = [
    "CA_LOSSES",
    "CA_PARAMETERS",
    "ESD_DIRECTIONS",
    "ESD_ERASE_FROM",
    "ESD_ROLLOUT_MODELS",
    "ESD_TARGETS",
    "ESD_TRAIN_METHODS",
    "RESALIGN_DATASETS",
    "RESALIGN_INITS",
    "RESALIGN_LOSSES",
    "RESALIGN_MODES",
    "RESALIGN_OPTIMIZERS",
    "SALUN_RETAIN_SOURCES",
    "UCE_GUIDES",
    "UCE_TOKENS",
    "CAConfig",
    "ESDConfig",
    "ResAlignConfig",
    "SalUnConfig",
    "UCEConfig",
]
