"""SalUn for Stable Diffusion: saliency-masked concept remapping (spec ``diffusion-methods.md``
section 4.4).

1. Data: the original model generates D_f (``forget_images`` latents from the forget prompts,
   cycling) and D_r (``retain_images`` latents from the anchor or retain prompts); generated
   latents are the tiny pipeline's "images" (no VAE round trip).
2. Saliency: the gradient of the denoising loss L_DM(θ; D_f) is accumulated over D_f (batches of
   ``batch_size``, summed); its magnitude per entry (the sign of −L_DM does not matter) ranks
   every UNet entry globally and the top ``mask_fraction`` form the binary mask m
   (:func:`saliency_mask`).
3. Each step, on a D_f batch noised to x_t (each latent with its forget prompt c_f and that
   prompt's anchor c_a) and a D_r batch (each with its own prompt):
   ``‖ε_θ(x_t, c_f, t) − sg(ε_θ(x_t, c_a, t))‖² + α·L_DM(θ; D_r batch)``; the gradients are
   multiplied by m before the Adam step, so only salient entries move.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from backends.common.method import Hooks, MethodResult
from backends.diffusion.methods.common import (
    DiffusionData,
    LoopState,
    Steps,
    finish,
    generate_latents,
    loop_result,
    pick,
    snapshot,
    unwrap,
)
from backends.diffusion.methods.configs import SalUnConfig
from backends.diffusion.pipeline import ddpm_noise, encode


def saliency_mask(
    unet: nn.Module | None, scores: Mapping[str, torch.Tensor], fraction: float
) -> dict[str, torch.Tensor]:
    """Boolean masks keeping the top ``fraction`` of all entries of ``scores`` by magnitude, with
    one global threshold (spec 4.4).

    Exactly ``round(fraction · total)`` entries are kept (ties broken by position).  With a
    ``unet`` the masks follow its parameter order and shapes (names missing from ``scores`` get
    no mask); without one, the order of ``scores``.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("saliency_mask: fraction must be in [0, 1]")
    if unet is not None:
        shapes = {n: p.shape for n, p in unet.named_parameters()}
        names = [n for n in shapes if n in scores]
        for n in names:
            if scores[n].shape != shapes[n]:
                raise ValueError(f"saliency_mask: score of {n} has shape {tuple(scores[n].shape)}")
    else:
        names = list(scores)
    if not names:
        return {}
    flat = torch.cat([scores[n].detach().abs().flatten().float().cpu() for n in names])
    keep = int(round(fraction * flat.numel()))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    if keep:
        chosen[torch.topk(flat, keep, sorted=False).indices] = True
    out, start = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = chosen[start : start + size].view(scores[n].shape).to(scores[n].device)
        start += size
    return out


def forget_gradients(
    pipe: Any,
    unet: nn.Module,
    z0: torch.Tensor,
    cond: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
    check: Callable[[], None],
) -> dict[str, torch.Tensor]:
    """∇_θ L_DM(θ; D_f) summed over batches of (``z0``, ``cond``), per parameter."""
    params = dict(unet.named_parameters())
    unet.requires_grad_(True)
    try:
        for p in params.values():
            p.grad = None
        for i in range(0, len(z0), batch_size):
            check()
            x_t, t, eps = ddpm_noise(pipe, z0[i : i + batch_size], generator)
            pred = unet(x_t, t, encoder_hidden_states=cond[i : i + batch_size]).sample
            F.mse_loss(pred, eps).backward()
        return {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
    finally:
        for p in params.values():
            p.grad = None
        unet.requires_grad_(False)


def unlearn(
    pipe: Any,
    data: DiffusionData,
    cfg: SalUnConfig,
    hooks: Hooks,
    *,
    seed: int = 0,
) -> MethodResult:
    """Erase ``concept`` from ``pipe.unet`` in place with SalUn (spec 4.4); returns info numbers
    (``loss``: mean of the last 10 steps, ``seconds``, ``parameters_masked`` (kept by the mask),
    ``parameters_changed``).  ``checkpoints``: as :func:`backends.diffusion.methods.esd.unlearn`
    (on resume the images and the saliency mask are computed again from the original weights and
    the same seed, then the masked parameters, Adam and the generator are restored)."""
    concept = data.concept
    pipe = unwrap(pipe)
    unet = pipe.unet
    if not concept.forget_prompts or not concept.anchor_prompts:
        raise ValueError("SalUn needs forget prompts and their anchor prompts")
    anchor = cfg.retain_source == "anchor"
    retain_prompts = concept.anchor_prompts if anchor else concept.retain_prompts
    if not retain_prompts:
        raise ValueError(f"SalUn: the concept has no {cfg.retain_source} prompts for D_r")
    steps = Steps("salun", cfg.steps, hooks)
    gen = torch.Generator().manual_seed(int(seed))
    forget_idx = [i % len(concept.forget_prompts) for i in range(cfg.forget_images)]
    retain_idx = [i % len(retain_prompts) for i in range(cfg.retain_images)]
    n_images = len(forget_idx) + len(retain_idx)
    seeds = torch.randint(0, 2**31 - 1, (n_images,), generator=gen).tolist()
    hooks.log(f"salun: generating {len(forget_idx)} forget and {len(retain_idx)} retain images")
    unet.eval()
    prompts = [concept.forget_prompts[i] for i in forget_idx]
    prompts += [retain_prompts[i] for i in retain_idx]
    z_all = generate_latents(
        pipe,
        prompts,
        seeds,
        steps=cfg.sample_steps,
        guidance=cfg.sample_guidance,
        check=hooks.check,
    )
    z_f, z_r = z_all[: len(forget_idx)], z_all[len(forget_idx) :]
    c_f = encode(pipe, concept.forget_prompts)[forget_idx]
    c_a = encode(pipe, concept.anchor_prompts)[forget_idx]
    c_r = encode(pipe, retain_prompts)[retain_idx]

    grads = forget_gradients(
        pipe, unet, z_f, c_f, batch_size=cfg.batch_size, generator=gen, check=hooks.check
    )
    mask = saliency_mask(unet, grads, cfg.mask_fraction)
    del grads
    params = {n: p for n, p in unet.named_parameters() if n in mask and bool(mask[n].any())}
    masks = {n: mask[n].to(p.dtype) for n, p in params.items()}
    kept = int(sum(int(m.sum()) for m in mask.values()))
    hooks.log(f"salun: mask keeps {kept} of {sum(m.numel() for m in mask.values())} entries")
    before = snapshot(dict(unet.named_parameters()))
    losses: list[float] = []
    try:
        unet.requires_grad_(False)
        for p in params.values():
            p.requires_grad_(True)
        opt = torch.optim.Adam(params.values(), lr=cfg.lr) if params else None
        loop = LoopState(hooks.checkpoints, params, opt, gen)
        start, losses = loop.restore()
        unet.train()
        for i in range(start, cfg.steps):
            steps.begin()
            fi = pick(len(forget_idx), cfg.batch_size, gen)
            ri = pick(len(retain_idx), cfg.batch_size, gen)
            x_f, t_f, _ = ddpm_noise(pipe, z_f[fi], gen)
            x_r, t_r, eps_r = ddpm_noise(pipe, z_r[ri], gen)
            with torch.no_grad():
                target = unet(x_f, t_f, encoder_hidden_states=c_a[fi]).sample
            out = unet(
                torch.cat([x_f, x_r]),
                torch.cat([t_f, t_r]),
                encoder_hidden_states=torch.cat([c_f[fi], c_r[ri]]),
            ).sample
            pred_f, pred_r = out[: len(fi)], out[len(fi) :]
            forget = F.mse_loss(pred_f, target)
            retain = F.mse_loss(pred_r, eps_r)
            loss = forget + cfg.alpha * retain
            if opt is not None:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                for n, p in params.items():
                    if p.grad is not None:
                        p.grad.mul_(masks[n])
                opt.step()
            losses.append(float(loss.detach()))
            steps.end(i, {"forget": float(forget.detach()), "retain": float(retain.detach())})
            loop.step_done(i + 1, cfg.steps, losses)
    finally:
        finish(unet)
        for p in unet.parameters():
            p.grad = None
    return loop_result(losses, steps, before, unet, parameters_masked=float(kept))
