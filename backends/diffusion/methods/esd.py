"""ESD: erasing a concept by negative guidance of the model's own samples (spec
``diffusion-methods.md`` section 4.1).

Each step:

1. draw ``rollout_batch`` starting noises and a step count k ~ U{0..ddim_steps−1}; roll the noises
   out for k DDIM steps with CFG ``start_guidance`` on c_from (the frozen original does this in
   the new script, the model being trained in the legacy one: ``rollout_model``), which gives x_t
   at t = the k-th timestep of the DDIM schedule;
2. with the frozen original ε_0 compute the target ``base − η·d``: the base is
   ε_0(x_t, c_from) (``target="from"``, new script) or ε_0(x_t, ∅) (``target="null"``, legacy
   script), the concept direction d is the paper's ε_0(x_t, c_e) − ε_0(x_t, ∅)
   (``concept_direction="word"``) or ε_0(x_t, c_from) − ε_0(x_t, c_anchor) with c_anchor the
   forget prompt's anchor (``"in_context"``, the tiny default: the tiny models only learned the
   concept inside whole prompts, so the lone word's direction is far too weak);
3. take one Adam step on ``‖ε_θ(x_t, c_from, t) − target‖²`` over the chosen parameter subset
   (``train_method``: ESD-u, ESD-x, ESD-x-strict or all).

c_e is the concept's word; c_from is the word too (whole-concept erasure, whose anchor is the
concept's guide, "" by default) or, with ``erase_from="forget_prompts"`` (the tiny default), one
of the concept's forget prompts per noise.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from backends.common.method import Hooks, MethodResult, frozen_copy
from backends.diffusion.methods.common import (
    DiffusionData,
    LoopState,
    Steps,
    finish,
    loop_result,
    pick,
    select_parameters,
    snapshot,
    unwrap,
)
from backends.diffusion.methods.configs import ESDConfig
from backends.diffusion.pipeline import cfg_eps, encode, make_scheduler


@torch.no_grad()
def rollout(
    pipe: Any,
    unet: Any,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    noise: torch.Tensor,
    k: int,
    *,
    steps: int,
    guidance: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_t, t)``: ``noise`` after ``k`` DDIM steps (of ``steps``) with CFG ``guidance``;
    t is the timestep the next step would denoise."""
    sched = make_scheduler(pipe.scheduler.config, "ddim")
    sched.set_timesteps(steps, device=noise.device)
    x = noise * sched.init_noise_sigma
    for t in sched.timesteps[:k]:
        eps = cfg_eps(unet, sched.scale_model_input(x, t), t, cond, uncond, guidance)
        x = sched.step(eps, t, x).prev_sample
    return x, sched.timesteps[k]


def frozen_predictions(
    original: Any,
    x: torch.Tensor,
    t: Any,
    c_from: torch.Tensor,
    uncond: torch.Tensor,
    c_e: torch.Tensor,
    c_anchor: torch.Tensor,
    cfg: ESDConfig,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ε_0(x_t, c_from), ε_0(x_t, ∅), concept direction)`` in one batched UNet call; the
    direction is ε_0(c_e) − ε_0(∅) (``"word"``) or ε_0(c_from) − ε_0(c_anchor) (``"in_context"``)."""
    conds = [c_from, uncond] + ([c_e] if cfg.concept_direction == "word" else [c_anchor])
    eps = original(torch.cat([x] * 3), t, encoder_hidden_states=torch.cat(conds)).sample.chunk(3)
    e_from, e_null, other = eps
    if cfg.concept_direction == "word":
        return e_from, e_null, other - e_null
    return e_from, e_null, e_from - other


def unlearn(
    pipe: Any,
    data: DiffusionData,
    cfg: ESDConfig,
    hooks: Hooks,
    *,
    seed: int = 0,
) -> MethodResult:
    """Erase ``concept`` from ``pipe.unet`` in place with ESD (spec 4.1); returns info numbers
    (``loss``: mean of the last 10 steps, ``seconds``, ``parameters_trained``,
    ``parameters_changed``).  With ``checkpoints`` the trained parameters, Adam and the generator
    are saved every ``checkpoints.every`` steps, and a resumed run continues after the saved step
    (``pipe`` must hold the original weights, as on a fresh start)."""
    concept = data.concept
    pipe = unwrap(pipe)
    unet = pipe.unet
    if cfg.ddim_steps < 1:
        raise ValueError("ESD needs at least one DDIM step")
    gen = torch.Generator().manual_seed(int(seed))
    from_prompts = [concept.word] if cfg.erase_from == "word" else list(concept.forget_prompts)
    if not from_prompts:
        raise ValueError("ESD with erase_from='forget_prompts' needs forget prompts")
    if cfg.erase_from == "word":
        anchor_prompts = [concept.guide]
    elif concept.anchor_prompts:
        anchor_prompts = list(concept.anchor_prompts)
    elif cfg.concept_direction == "in_context":
        raise ValueError("ESD's in_context direction needs the concept's anchor prompts")
    else:
        anchor_prompts = [""] * len(from_prompts)
    c_e = encode(pipe, [concept.word])
    c_null = encode(pipe, [""])
    c_from_all = encode(pipe, from_prompts)
    c_anchor_all = encode(pipe, anchor_prompts)
    original = frozen_copy(unet)
    params = select_parameters(unet, cfg.train_method)
    before = snapshot(params)
    shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    steps = Steps("esd", cfg.iterations, hooks)
    losses: list[float] = []
    try:
        unet.requires_grad_(False)
        for p in params.values():
            p.requires_grad_(True)
        opt = torch.optim.Adam(params.values(), lr=cfg.lr)
        loop = LoopState(hooks.checkpoints, params, opt, gen)
        start, losses = loop.restore()
        b = cfg.rollout_batch
        for i in range(start, cfg.iterations):
            steps.begin()
            idx = pick(len(from_prompts), b, gen)
            c_from, c_anchor = c_from_all[idx], c_anchor_all[idx]
            uncond = c_null.expand(b, -1, -1)
            k = int(torch.randint(0, cfg.ddim_steps, (1,), generator=gen))
            noise = torch.randn((b, *shape), generator=gen).to(unet.device, unet.dtype)
            roller = original if cfg.rollout_model == "frozen" else unet
            roller.eval()
            x, t = rollout(
                pipe,
                roller,
                c_from,
                uncond,
                noise,
                k,
                steps=cfg.ddim_steps,
                guidance=cfg.start_guidance,
            )
            with torch.no_grad():
                e_from, e_null, direction = frozen_predictions(
                    original, x, t, c_from, uncond, c_e.expand(b, -1, -1), c_anchor, cfg
                )
                base = e_from if cfg.target == "from" else e_null
                target = base - cfg.negative_guidance * direction
            unet.train()
            pred = unet(x, t, encoder_hidden_states=c_from).sample
            loss = F.mse_loss(pred, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            steps.end(i, {"loss": losses[-1], "k": k})
            loop.step_done(i + 1, cfg.iterations, losses)
        opt.zero_grad(set_to_none=True)
    finally:
        finish(unet)
        for p in unet.parameters():
            p.grad = None
    return loop_result(losses, steps, before, unet, trained=params)
