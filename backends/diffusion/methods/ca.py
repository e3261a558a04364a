"""Concept Ablation, CA (spec ``diffusion-methods.md`` section 4.3).

1. The pretrained model generates ``anchor_images`` anchor images (latents: the tiny pipeline's
   "images" live in latent space, so no VAE round trip) from the concept's anchor prompts
   ("a red circle"), cycling through them; each image is paired with the forget prompt aligned
   with its anchor prompt (c*, "a striped red circle").
2. Each step draws a batch of them, noises them to a random t (x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε) and
   minimises
   - ``loss="model"`` (default): ‖ε_θ(x_t, c*, t) − sg(ε_θ(x_t, c_anchor, t))‖², the anchor
     prediction coming from the *current* model without gradient;
   - ``loss="noise"``: ‖ε_θ(x_t, c*, t) − ε‖²;
   plus ``prior_weight``·‖ε_θ(x_t, c_anchor, t) − ε‖² (prior preservation on the anchor images
   with their own prompts; 0 turns it off).
3. Only the chosen parameters train: cross-attention K/V (``xattn-kv``) or the full UNet.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from backends.common.method import Hooks, MethodResult
from backends.diffusion.methods.common import (
    DiffusionData,
    LoopState,
    Steps,
    finish,
    generate_latents,
    loop_result,
    pick,
    select_parameters,
    snapshot,
    unwrap,
)
from backends.diffusion.methods.configs import CAConfig
from backends.diffusion.pipeline import ddpm_noise, encode


def unlearn(
    pipe: Any,
    data: DiffusionData,
    cfg: CAConfig,
    hooks: Hooks,
    *,
    seed: int = 0,
) -> MethodResult:
    """Ablate ``concept`` from ``pipe.unet`` in place with CA (spec 4.3); returns info numbers
    (``loss``: mean of the last 10 steps, ``seconds``, ``parameters_trained``,
    ``parameters_changed``).  ``checkpoints``: as :func:`backends.diffusion.methods.esd.unlearn`
    (the anchor images are generated again on resume, from the same seeds)."""
    concept = data.concept
    pipe = unwrap(pipe)
    unet = pipe.unet
    if not concept.anchor_prompts:
        raise ValueError("concept ablation needs anchor prompts (one per forget prompt)")
    steps = Steps("ca", cfg.steps, hooks)
    gen = torch.Generator().manual_seed(int(seed))
    n_prompts = len(concept.anchor_prompts)
    which = [i % n_prompts for i in range(cfg.anchor_images)]
    seeds = torch.randint(0, 2**31 - 1, (len(which),), generator=gen).tolist()
    hooks.log(f"ca: generating {len(which)} anchor images")
    unet.eval()
    z0 = generate_latents(
        pipe,
        [concept.anchor_prompts[i] for i in which],
        seeds,
        steps=cfg.sample_steps,
        guidance=cfg.sample_guidance,
        check=hooks.check,
    )
    c_anchor = encode(pipe, concept.anchor_prompts)[which]
    c_star = encode(pipe, concept.forget_prompts)[which]
    params = select_parameters(unet, cfg.parameters)
    before = snapshot(params)
    losses: list[float] = []
    try:
        unet.requires_grad_(False)
        for p in params.values():
            p.requires_grad_(True)
        opt = torch.optim.Adam(params.values(), lr=cfg.lr)
        loop = LoopState(hooks.checkpoints, params, opt, gen)
        start, losses = loop.restore()
        unet.train()
        for i in range(start, cfg.steps):
            steps.begin()
            idx = pick(len(which), cfg.batch_size, gen)
            x_t, t, eps = ddpm_noise(pipe, z0[idx], gen)
            if cfg.prior_weight > 0 or cfg.loss == "model":
                both = unet(
                    torch.cat([x_t, x_t]),
                    torch.cat([t, t]),
                    encoder_hidden_states=torch.cat([c_star[idx], c_anchor[idx]]),
                ).sample
                pred, pred_anchor = both.chunk(2)
            else:
                pred = unet(x_t, t, encoder_hidden_states=c_star[idx]).sample
                pred_anchor = None
            target = pred_anchor.detach() if cfg.loss == "model" else eps
            ablation = F.mse_loss(pred, target)
            loss = ablation
            values = {"ablation": float(ablation.detach())}
            if cfg.prior_weight > 0 and pred_anchor is not None:
                prior = F.mse_loss(pred_anchor, eps)
                loss = loss + cfg.prior_weight * prior
                values["prior"] = float(prior.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            steps.end(i, values)
            loop.step_done(i + 1, cfg.steps, losses)
        opt.zero_grad(set_to_none=True)
    finally:
        finish(unet)
        for p in unet.parameters():
            p.grad = None
    return loop_result(losses, steps, before, unet, trained=params)
