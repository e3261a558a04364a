"""Loading Stable Diffusion folders, and the one sampler every diffusion job uses.

- :func:`check_pipeline_folder` / :func:`load_pipeline`: any local ``StableDiffusionPipeline``
  folder (SD 1.x or the built-in tiny one) through ``from_pretrained(path,
  local_files_only=True)``, safetensors only, with device and dtype; a clear error for a folder
  that is not a pipeline or holds only pickle weights.
- :func:`encode` (prompt embeddings), :func:`make_scheduler` (DDIM with ``clip_sample=False`` for
  latents, or LMS / Euler / DPM-Solver / PNDM), :func:`sample` (CFG sampling from noise or from an
  intermediate latent, with an optional second UNet for AutoMemoRa guidance), :func:`ddim_invert`
  (deterministic DDIM inversion, spec section 2 step 3), :func:`slerp` (step 4), :func:`decode` /
  :func:`encode_images` (VAE) and :func:`generate` (a prompt list with fixed seeds).

Notation follows spec ``diffusion-methods.md`` section 0: ε̂ = ε(x_t, ∅) + s·(ε(x_t, c) − ε(x_t, ∅)).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backends.diffusion.checks import NotAPipelineError, check_pipeline_folder  # noqa: F401

SCHEDULERS = ("ddim", "lms", "euler", "dpm", "pndm")


@dataclass
class LoadedPipeline:
    """A loaded SD pipeline and where it came from."""

    pipe: Any
    path: Path
    device: torch.device
    dtype: torch.dtype

    @property
    def unet(self) -> Any:
        return self.pipe.unet

    @property
    def size(self) -> int:
        """Output image side in pixels."""
        return int(self.pipe.unet.config.sample_size) * int(self.pipe.vae_scale_factor)


def load_pipeline(
    path: str | Path, *, device: str = "cpu", dtype: str = "float32", scheduler: str = "ddim"
) -> LoadedPipeline:
    """Load a local SD pipeline folder, or a single-file checkpoint lying in a folder of the
    pipeline's config files (:mod:`backends.diffusion.single_file`); never downloads,
    safetensors only."""
    from diffusers import StableDiffusionPipeline

    from backends.common.devices import resolve_device, resolve_dtype

    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    if Path(path).is_file():  # a single-file checkpoint beside its config files
        from backends.diffusion.single_file import load_single_file

        folder = Path(path)
        pipe = load_single_file(folder, dtype=dt)
    else:
        folder = check_pipeline_folder(path)
        pipe = StableDiffusionPipeline.from_pretrained(
            str(folder),
            local_files_only=True,
            use_safetensors=True,
            dtype=dt,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipe.scheduler = make_scheduler(pipe.scheduler.config, scheduler)
    pipe.to(dev)
    pipe.set_progress_bar_config(disable=True)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
        module.eval()
    return LoadedPipeline(pipe, folder, torch.device(dev), dt)


def make_scheduler(config: Any, name: str = "ddim") -> Any:
    """A sampler built from a pipeline's scheduler config (``clip_sample=False``: latents are
    not bounded, the recipe's pitfall 2)."""
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        LMSDiscreteScheduler,
        PNDMScheduler,
    )

    classes = {
        "ddim": DDIMScheduler,
        "lms": LMSDiscreteScheduler,
        "euler": EulerDiscreteScheduler,
        "dpm": DPMSolverMultistepScheduler,
        "pndm": PNDMScheduler,
    }
    if name not in classes:
        raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULERS)}")
    extra: dict[str, Any] = {}
    if name == "ddim":
        extra = {"clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}
    return classes[name].from_config(config, **extra)


# -- text ---------------------------------------------------------------------------------------


@torch.no_grad()
def encode(pipe: Any, prompts: Sequence[str], *, text_encoder: Any = None) -> torch.Tensor:
    """Text-encoder hidden states ``[n, L, d]`` for ``prompts`` (padded to the max length)."""
    tok = pipe.tokenizer
    ids = tok(
        list(prompts),
        padding="max_length",
        max_length=tok.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(pipe.text_encoder.device)
    te = text_encoder or pipe.text_encoder
    return te(ids)[0].to(pipe.unet.dtype)


def encode_grad(pipe: Any, prompts: Sequence[str]) -> torch.Tensor:
    """As :func:`encode` but keeps the graph (for methods that train the text encoder)."""
    tok = pipe.tokenizer
    ids = tok(
        list(prompts),
        padding="max_length",
        max_length=tok.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(pipe.text_encoder.device)
    return pipe.text_encoder(ids)[0]


def last_token_index(pipe: Any, prompt: str) -> int:
    """Index of the last real token of ``prompt`` (UCE: attention-mask sum − 2)."""
    mask = pipe.tokenizer(prompt, truncation=True, max_length=pipe.tokenizer.model_max_length)[
        "attention_mask"
    ]
    return max(0, int(sum(mask)) - 2)


# -- images <-> latents ---------------------------------------------------------------------------


def to_tensor(images: np.ndarray | Sequence[Any], device: Any, dtype: torch.dtype) -> torch.Tensor:
    """uint8 ``[n, H, W, 3]`` (or PIL images) to ``[-1, 1]`` ``[n, 3, H, W]``."""
    arr = (
        np.stack([np.asarray(im) for im in images])
        if not isinstance(images, np.ndarray)
        else images
    )
    x = torch.from_numpy(np.ascontiguousarray(arr)).to(device=device, dtype=torch.float32)
    return (x.permute(0, 3, 1, 2) / 127.5 - 1.0).to(dtype)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``[-1, 1]`` ``[n, 3, H, W]`` to uint8 ``[n, H, W, 3]``."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def encode_images(
    pipe: Any, images: np.ndarray, *, sample: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """VAE latents (scaled by the VAE's ``scaling_factor``) of uint8 images."""
    vae = pipe.vae
    x = to_tensor(images, vae.device, vae.dtype)
    dist = vae.encode(x).latent_dist
    z = dist.sample(generator) if sample else dist.mean
    return z * vae.config.scaling_factor


@torch.no_grad()
def decode(pipe: Any, latents: torch.Tensor, batch: int = 64) -> np.ndarray:
    """uint8 images ``[n, H, W, 3]`` from scaled latents."""
    vae = pipe.vae
    out = []
    for i in range(0, len(latents), batch):
        z = latents[i : i + batch].to(vae.device, vae.dtype) / vae.config.scaling_factor
        out.append(to_uint8(vae.decode(z).sample))
    return np.concatenate(out) if out else np.zeros((0, 1, 1, 3), np.uint8)


def initial_latents(pipe: Any, seeds: Sequence[int], device: Any = None) -> torch.Tensor:
    """One N(0, I) latent per seed (CPU generator, so a seed gives the same image everywhere)."""
    unet = pipe.unet
    shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    z = torch.stack(
        [torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    )
    return z.to(device or unet.device, unet.dtype)


# -- sampling -------------------------------------------------------------------------------------


def cfg_eps(
    unet: Any, x: torch.Tensor, t: Any, cond: torch.Tensor, uncond: torch.Tensor, guidance: float
) -> torch.Tensor:
    """Classifier-free-guided noise estimate (one batched UNet call)."""
    if guidance == 1.0:
        return unet(x, t, encoder_hidden_states=cond).sample
    eps = unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
    e_u, e_c = eps.chunk(2)
    return e_u + guidance * (e_c - e_u)


@torch.no_grad()
def sample(
    pipe: Any,
    cond: torch.Tensor,
    latents: torch.Tensor,
    *,
    steps: int = 25,
    guidance: float = 2.0,
    uncond: torch.Tensor | None = None,
    scheduler: Any = None,
    start_index: int = 0,
    unet: Any = None,
    second_unet: Any = None,
    second_weight: float = 1.0,
    check: Callable[[], None] | None = None,
    guide: Any = None,
) -> torch.Tensor:
    """Denoise ``latents`` with CFG from step ``start_index`` of a ``steps``-step schedule.

    ``second_unet`` gives AutoMemoRa's two-model guidance (spec section 2):
    ε̂ = ε̂_U + w·(ε̂_L − ε̂_U) with ε̂_U from ``unet`` and ε̂_L from ``second_unet``.
    ``guide`` (e.g. :class:`backends.diffusion.guidance.SLDGuide`, spec sections 3 and 5) replaces
    the CFG estimate: ``guide.reset()`` before the first step, then
    ``guide(unet, x, t, index, cond, uncond, guidance)`` at each; without it the plain CFG path
    runs unchanged.
    """
    unet = unet or pipe.unet
    sched = scheduler or make_scheduler(pipe.scheduler.config, "ddim")
    sched.set_timesteps(steps, device=latents.device)
    if uncond is None:
        uncond = encode(pipe, [""]).expand(len(cond), -1, -1)
    x = latents.to(unet.dtype)
    if start_index == 0:
        x = x * sched.init_noise_sigma
    if guide is not None:
        guide.reset()
    for index, t in enumerate(sched.timesteps[start_index:], start=start_index):
        if check is not None:
            check()
        xin = sched.scale_model_input(x, t)
        if guide is None:
            eps = cfg_eps(unet, xin, t, cond, uncond, guidance)
        else:
            eps = guide(unet, xin, t, index, cond, uncond, guidance)
        if second_unet is not None:
            eps_l = cfg_eps(second_unet, xin, t, cond, uncond, guidance)
            eps = eps + second_weight * (eps_l - eps)
        x = sched.step(eps, t, x).prev_sample
    return x


@torch.no_grad()
def ddim_invert(
    pipe: Any,
    latents: torch.Tensor,
    cond: torch.Tensor,
    *,
    steps: int = 50,
    stop_index: int | None = None,
    guidance: float = 1.0,
    uncond: torch.Tensor | None = None,
    unet: Any = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Deterministic DDIM inversion (spec section 2 step 3).

    Runs the DDIM update backwards from clean ``latents``: x̂0 = (z_t − √(1−ᾱ_t)ε̂)/√ᾱ_t and
    z_{t+} = √ᾱ_{t+}·x̂0 + √(1−ᾱ_{t+})·ε̂. Returns the latent after ``stop_index`` inversion steps
    (all ``steps`` by default) and the trajectory. Regenerating from it with :func:`sample`
    (``start_index = steps − stop_index``) and the same model reconstructs the input.
    """
    unet = unet or pipe.unet
    sched = make_scheduler(pipe.scheduler.config, "ddim")
    sched.set_timesteps(steps, device=latents.device)
    timesteps = list(sched.timesteps.flip(0))  # ascending noise
    stop = len(timesteps) if stop_index is None else stop_index
    if uncond is None:
        uncond = encode(pipe, [""]).expand(len(cond), -1, -1)
    acp = sched.alphas_cumprod.to(latents.device)
    final = sched.final_alpha_cumprod.to(latents.device)
    x = latents.to(unet.dtype)
    traj = [x]
    for i in range(stop):
        t = timesteps[i]
        prev_t = timesteps[i - 1] if i > 0 else None
        a_prev = acp[prev_t] if prev_t is not None else final
        a_t = acp[t]
        # the DDIM step from t to prev_t, reversed; ε is estimated at the current (less noisy)
        # latent with the target timestep t, as in diffusers' DDIMInverseScheduler and the
        # null-text-inversion code MemoRa's latent_iversion.py follows
        eps = cfg_eps(unet, x, t, cond, uncond, guidance)
        x0 = (x - (1 - a_prev).sqrt() * eps) / a_prev.sqrt()
        x = a_t.sqrt() * x0 + (1 - a_t).sqrt() * eps
        traj.append(x)
    return x, traj


def slerp(a: torch.Tensor, b: torch.Tensor, u: float, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation of flattened tensors (spec section 2 step 4):
    sin((1−u)ω)/sin ω · a + sin(uω)/sin ω · b with cos ω the cosine of ``a`` and ``b``;
    linear when they are (anti)parallel."""
    fa, fb = a.flatten().double(), b.flatten().double()
    cos = torch.dot(fa, fb) / (fa.norm() * fb.norm()).clamp_min(eps)
    cos = cos.clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4 or (np.pi - omega).abs() < 1e-4:
        out = (1 - u) * fa + u * fb
    else:
        s = torch.sin(omega)
        out = torch.sin((1 - u) * omega) / s * fa + torch.sin(u * omega) / s * fb
    return out.reshape(a.shape).to(a.dtype)


def generate(
    loaded: LoadedPipeline | Any,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    steps: int = 25,
    guidance: float = 2.0,
    scheduler: str = "ddim",
    batch: int = 64,
    unet: Any = None,
    second_unet: Any = None,
    second_weight: float = 1.0,
    negative_prompt: str = "",
    check: Callable[[], None] | None = None,
    guide: Any = None,
    encoder: Callable[[list[str]], torch.Tensor] | None = None,
) -> np.ndarray:
    """uint8 images ``[n, H, W, 3]``, one per (prompt, seed) pair (``len(prompts) == len(seeds)``).

    ``guide`` is handed to :func:`sample`; ``encoder`` (prompts -> text states) replaces
    :func:`encode` for the prompts and the negative prompt (e.g. prompts holding a learned token,
    :func:`backends.diffusion.guidance.prompt_encoder`).

    The same prompt and seed give the same image for the same weights and batching; in another
    batch size they agree up to float rounding (a few of 255 at most).
    """
    pipe = loaded.pipe if isinstance(loaded, LoadedPipeline) else loaded
    if len(prompts) != len(seeds):
        raise ValueError("generate: one seed per prompt")
    out = []
    for i in range(0, len(prompts), batch):
        p, s = list(prompts[i : i + batch]), list(seeds[i : i + batch])
        enc = encoder or (lambda texts: encode(pipe, texts))
        cond = enc(p)
        uncond = enc([negative_prompt]).expand(len(p), -1, -1)
        z = initial_latents(pipe, s)
        sched = make_scheduler(pipe.scheduler.config, scheduler)
        z = sample(
            pipe,
            cond,
            z,
            steps=steps,
            guidance=guidance,
            uncond=uncond,
            scheduler=sched,
            unet=unet,
            second_unet=second_unet,
            second_weight=second_weight,
            check=check,
            guide=guide,
        )
        out.append(decode(pipe, z))
    return np.concatenate(out) if out else np.zeros((0, 1, 1, 3), np.uint8)


def ddpm_noise(
    pipe: Any,
    z0: torch.Tensor,
    generator: torch.Generator | None = None,
    t: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward noising x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε with t ~ U{0..T−1}: ``(x_t, t, ε)``."""
    sched = pipe.scheduler
    n = len(z0)
    if t is None:
        t = torch.randint(0, sched.config.num_train_timesteps, (n,), generator=generator)
    noise = torch.randn(z0.shape, generator=generator).to(z0.device, z0.dtype)
    t = t.to(z0.device)
    acp = sched.alphas_cumprod.to(z0.device)[t].to(z0.dtype).view(-1, 1, 1, 1)
    return acp.sqrt() * z0 + (1 - acp).sqrt() * noise, t, noise
