"""ESD: erasing a concept by negative guidance of the model's own samples (spec
``diffusion-methods.md`` section 4.1).

Each step:

1. draw ``rollout_batch`` starting noises and a step count k ~ U{0..ddim_steps−1}; roll the noises
   out for k DDIM steps with CFG ``start_guidance`` on c_from (the frozen original does this in
   the new script, the model being trained in the legacy one: ``rollout_model``), which gives x_t
   at t = the k-th timestep of the DDIM schedule;
2. with the frozen original ε_0 compute the target
   ``ε_0(x_t, c_from) − η·(ε_0(x_t, c_e) − ε_0(x_t, ∅))`` (``target="from"``, new script) or
   ``ε_0(x_t, ∅) − η·(ε_0(x_t, c_e) − ε_0(x_t, ∅))`` (``target="null"``, legacy script);
3. take one Adam step on ``‖ε_θ(x_t, c_from, t) − target‖²`` over the chosen parameter subset
   (``train_method``: ESD-u, ESD-x, ESD-x-strict or all).

c_e is the concept's word; c_from is the word too (whole-concept erasure) or, with
``erase_from="forget_prompts"``, one of the concept's forget prompts per noise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from backends.diffusion.concepts import Concept
from backends.diffusion.methods.common import (
    Steps,
    changed_parameters,
    finish,
    frozen_copy,
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


def unlearn(
    pipe: Any,
    cfg: ESDConfig,
    concept: Concept,
    *,
    seed: int = 0,
    check: Callable[[], None] = lambda: None,
    log: Callable[[str], None] = print,
    progress: Callable[[float], None] = lambda f: None,
) -> dict[str, float]:
    """Erase ``concept`` from ``pipe.unet`` in place with ESD (spec 4.1); returns info numbers
    (``loss``: mean of the last 10 steps, ``seconds``, ``parameters_trained``,
    ``parameters_changed``)."""
    pipe = unwrap(pipe)
    unet = pipe.unet
    if not cfg.ddim_steps >= 1:
        raise ValueError("ESD needs at least one DDIM step")
    gen = torch.Generator().manual_seed(int(seed))
    from_prompts = [concept.word] if cfg.erase_from == "word" else list(concept.forget_prompts)
    if not from_prompts:
        raise ValueError("ESD with erase_from='forget_prompts' needs forget prompts")
    c_e = encode(pipe, [concept.word])
    c_null = encode(pipe, [""])
    c_from_all = encode(pipe, from_prompts)
    same = cfg.erase_from == "word"  # c_from == c_e: one frozen pass fewer
    original = frozen_copy(unet)
    params = select_parameters(unet, cfg.train_method)
    before = snapshot(params)
    shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    steps = Steps("esd", cfg.iterations, check, log, progress)
    losses: list[float] = []
    try:
        unet.requires_grad_(False)
        for p in params.values():
            p.requires_grad_(True)
        opt = torch.optim.Adam(params.values(), lr=cfg.lr)
        b = cfg.rollout_batch
        for i in range(cfg.iterations):
            steps.begin()
            c_from = c_from_all[pick(len(from_prompts), b, gen)]
            uncond = c_null.expand(b, -1, -1)
            k = int(torch.randint(0, cfg.ddim_steps, (1,), generator=gen))
            noise = torch.randn((b, *shape), generator=gen).to(unet.device, unet.dtype)
            roller = original if cfg.rollout_model == "frozen" else unet
            roller.eval()
            x, t = rollout(pipe, roller, c_from, uncond, noise, k, steps=cfg.ddim_steps,
                           guidance=cfg.start_guidance)  # fmt: skip
            with torch.no_grad():
                conds = [uncond, c_e.expand(b, -1, -1)] + ([] if same else [c_from])
                eps = original(torch.cat([x] * len(conds)), t,
                               encoder_hidden_states=torch.cat(conds)).sample.chunk(len(conds))  # fmt: skip
                e_null, e_e = eps[0], eps[1]
                e_from = e_e if same else eps[2]
                base = e_from if cfg.target == "from" else e_null
                target = base - cfg.negative_guidance * (e_e - e_null)
            unet.train()
            pred = unet(x, t, encoder_hidden_states=c_from).sample
            loss = F.mse_loss(pred, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            steps.end(i, {"loss": losses[-1], "k": k})
        opt.zero_grad(set_to_none=True)
    finally:
        finish(unet)
        for p in unet.parameters():
            p.grad = None
    return {
        "loss": sum(losses[-10:]) / max(1, len(losses[-10:])),
        "seconds": steps.seconds(),
        "parameters_trained": float(sum(p.numel() for p in params.values())),
        "parameters_changed": float(changed_parameters(before, unet)),
    }
