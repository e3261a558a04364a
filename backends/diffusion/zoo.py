"""Build the built-in tiny text-to-image model: ``python -m backends.diffusion.zoo build``.

The measured recipe of ``shared/design/tiny-t2i-recipe.md`` (option B, latent), trained from
scratch with no pretrained weights:

1. the shapes world (:mod:`backends.diffusion.data`): 6000 training and 1000 held-out images;
2. a CLIP tokenizer with a BPE trained on the captions (:mod:`backends.diffusion.tokenizer`);
3. an ``AutoencoderKL`` (2 levels, 32x32x3 -> 16x16x4), loss MSE + 0.5·L1 + 1e-4·KL, and its
   ``scaling_factor`` = 1 / std of the latents;
4. a ``CLIPTextModel`` (64 wide, 2 layers) and a ``UNet2DConditionModel`` (attention only at the
   lowest resolution, SD-style ``attn1``/``attn2`` names) trained jointly on cached latents, DDPM
   1000 steps with SD's scaled-linear schedule, CFG dropout 10%;
5. the probes (concept detector, shape/colour classifier) trained on ground truth;
6. saved as a standard ``StableDiffusionPipeline`` folder (DDIM scheduler, safetensors, weights
   stored as float16 to stay under 15 MB), probes and world in ``workbench_probes/``, and a build
   report with concept rates of the reloaded pipeline.

``--variant small`` builds a smaller model on 16x16 images in under a minute for the tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backends.diffusion.data import (
    WorldConfig,
    iter_all_captions,
    load_world,
    make_dataset,
    prompt_list,
    save_world,
)
from backends.diffusion.plugin import TINY_SD
from backends.diffusion.probes import PROBES_DIR, train_probes
from backends.diffusion.tokenizer import train_clip_tokenizer

BUILD_REPORT = "build_report.json"


@dataclass
class Variant:
    """Sizes and step counts of one build."""

    name: str = "full"
    image_size: int = 32
    n_train: int = 6000
    n_test: int = 1000
    vae_channels: tuple[int, ...] = (32, 64)
    vae_steps: int = 600
    vae_lr: float = 2e-3
    unet_channels: tuple[int, ...] = (64, 128)
    unet_steps: int = 2000
    text_width: int = 64
    text_layers: int = 2
    lr: float = 1e-3
    warmup: int = 100
    batch: int = 32
    cfg_dropout: float = 0.1
    probe_epochs: int = 4
    storage_dtype: str = "float16"
    report_samples: int = 2  # images per prompt in the build report
    unet_seconds: float = 0.0  # stop UNet training after this long (0: run all unet_steps)


VARIANTS = {
    "full": Variant(),
    "small": Variant(
        name="small",
        image_size=16,
        n_train=1600,
        n_test=300,
        vae_channels=(16, 32),
        vae_steps=120,
        unet_channels=(32, 64),
        unet_steps=450,
        text_width=32,
        lr=2e-3,
        warmup=30,
        probe_epochs=3,
        storage_dtype="float32",
        report_samples=2,
    ),
}
SEEDS = {"train": 0, "test": 1}


def _world(v: Variant) -> WorldConfig:
    cfg = WorldConfig(size=v.image_size)
    if v.image_size != 32:
        scale = v.image_size / 32
        cfg = replace(
            cfg,
            radius=(max(3, round(8 * scale)), max(4, round(12 * scale))),
            stripe_period=max(2, round(4 * scale)),
        )
    return cfg


def make_unet(v: Variant, cross_dim: int) -> Any:
    from diffusers import UNet2DConditionModel

    n = len(v.unet_channels)
    return UNet2DConditionModel(
        sample_size=v.image_size // 2,
        in_channels=4,
        out_channels=4,
        block_out_channels=v.unet_channels,
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * (n - 1) + ("CrossAttnDownBlock2D",),
        up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
        cross_attention_dim=cross_dim,
        attention_head_dim=4,  # the number of heads (a diffusers misnomer)
        norm_num_groups=16,
    )


def make_vae(v: Variant) -> Any:
    from diffusers import AutoencoderKL

    n = len(v.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=v.vae_channels,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=v.image_size,
    )


def make_text_encoder(v: Variant, vocab_size: int, max_length: int) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=v.text_width,
        intermediate_size=2 * v.text_width,
        num_hidden_layers=v.text_layers,
        num_attention_heads=4,
        max_position_embeddings=max_length,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return CLIPTextModel(cfg)


def train_vae(
    vae: Any,
    images: np.ndarray,
    v: Variant,
    seed: int,
    log: Callable[[str], None],
    device: Any = "cpu",
) -> float:
    """MSE + 0.5·L1 + 1e-4·KL (per pixel); returns the latent std (for ``scaling_factor``)."""
    from backends.diffusion.pipeline import to_tensor

    gen = torch.Generator().manual_seed(seed)
    x_all = to_tensor(images, device, torch.float32)
    opt = torch.optim.AdamW(vae.parameters(), lr=v.vae_lr)
    vae.train()
    ema = None
    for step in range(v.vae_steps):
        idx = torch.randint(0, len(x_all), (v.batch,), generator=gen).to(device)
        x = x_all[idx]
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen).to(device)
        rec = vae.decode(z).sample
        kl = 0.5 * (post.mean**2 + post.var - 1.0 - post.logvar).mean()
        loss = ((rec - x) ** 2).mean() + 0.5 * (rec - x).abs().mean() + 1e-4 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        value = float(loss.detach())
        ema = value if ema is None else 0.95 * ema + 0.05 * value
        if (step + 1) % max(1, v.vae_steps // 6) == 0:
            log(f"vae step {step + 1}/{v.vae_steps}: loss {ema:.4f}")
    vae.eval()
    with torch.no_grad():
        lat = torch.cat(
            [
                vae.encode(x_all[i : i + 256]).latent_dist.mean
                for i in range(0, min(len(x_all), 2048), 256)
            ]
        )
    return float(lat.std())


def train_unet(
    unet: Any,
    text_encoder: Any,
    tokenizer: Any,
    latents: torch.Tensor,
    captions: list[str],
    v: Variant,
    seed: int,
    log: Callable[[str], None],
    device: Any = "cpu",
) -> list[float]:
    """Joint UNet + text-encoder training on cached latents (ε-prediction, CFG dropout)."""
    from diffusers import DDPMScheduler

    gen = torch.Generator().manual_seed(seed + 1)
    sched = DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
    )
    ids_all = tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(device)
    empty = (
        tokenizer(
            [""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt"
        )
        .input_ids[0]
        .to(device)
    )
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=v.lr, weight_decay=1e-2)
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, v.warmup)))
    acp = sched.alphas_cumprod.to(device)
    unet.train()
    text_encoder.train()
    ema, losses = None, []
    t_start = time.perf_counter()
    for step in range(v.unet_steps):
        if step and v.unet_seconds and time.perf_counter() - t_start > v.unet_seconds:
            log(f"unet: time limit {v.unet_seconds:.0f} s reached after {step} steps")
            break
        idx = torch.randint(0, len(latents), (v.batch,), generator=gen).to(device)
        z0 = latents[idx]
        ids = ids_all[idx].clone()
        drop = (torch.rand(v.batch, generator=gen) < v.cfg_dropout).to(device)
        ids[drop] = empty
        t = torch.randint(0, 1000, (v.batch,), generator=gen).to(device)
        noise = torch.randn(z0.shape, generator=gen).to(device)
        a = acp[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        cond = text_encoder(ids)[0]
        pred = unet(zt, t, encoder_hidden_states=cond).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        warm.step()
        value = float(loss.detach())
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        losses.append(value)
        if (step + 1) % max(1, v.unet_steps // 10) == 0:
            log(f"unet step {step + 1}/{v.unet_steps}: loss (EMA) {ema:.4f}")
    unet.eval()
    text_encoder.eval()
    return losses


def evaluate_pipeline(
    folder: Path, *, samples: int = 2, guidance: float = 2.0, steps: int = 25, seed: int = 1000
) -> dict[str, Any]:
    """Concept rates and benign utility of a saved pipeline, as every job measures them."""
    from backends.diffusion.evaluation import evaluate_prompt_sets
    from backends.diffusion.pipeline import load_pipeline
    from backends.diffusion.probes import Probes

    loaded = load_pipeline(folder, device="cpu")
    probes = Probes.load(folder / PROBES_DIR)
    result = evaluate_prompt_sets(
        loaded, probes, samples_per_prompt=samples, seed=seed, steps=steps, guidance=guidance
    )
    return result.summary()


def build(
    out: Path = TINY_SD,
    *,
    variant: str = "full",
    seed: int = 0,
    threads: int = 2,
    log: Callable[[str], None] = print,
    concept_free_from: Path | None = None,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
    neighbours: tuple[str, ...] = (),
    neighbour_fraction: float = 0.25,
    texture_period: int = 4,
) -> dict[str, Any]:
    """Build, save and evaluate the tiny pipeline in ``out``; returns the build report.

    ``neighbours``: neighbour textures the world adds (``("dotted", "checkered")``, issue 14's
    collateral-damage study), each on a non-striped image with total probability
    ``neighbour_fraction``; none by default, which rebuilds the earlier worlds exactly.

    ``texture_period``: the neighbour textures' period in px at 32x32 (dots of half the period,
    squares of half the period); 4, the stripes' period, by default.

    ``concept_free_from``: build the *never-learned control* instead (MemoRa's control, spec
    section 2): the same recipe and step budget, but trained on a world with no striped images
    (the words "striped" and "zebra" never occur in its captions), reusing the VAE, tokenizer and
    probes of the pipeline in that folder so both models share one latent space and one detector.

    ``overrides`` replaces fields of the variant (e.g. ``{"storage_dtype": "float16"}`` for the
    shipped test fixture, or tiny step counts in the test that checks this function builds).
    """
    from diffusers import DDIMScheduler, DDPMScheduler, StableDiffusionPipeline

    from backends.common.seeding import seed_everything

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    v = replace(VARIANTS[variant], **(overrides or {}))
    torch.set_num_threads(threads)
    seed_everything(seed)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    world = _world(v)
    if neighbours:
        world = replace(
            world,
            neighbours=tuple(neighbours),
            neighbour_fraction=neighbour_fraction,
            texture_period=texture_period,
        )
    reference = None
    if concept_free_from is not None:
        from backends.diffusion.pipeline import load_pipeline

        reference = load_pipeline(concept_free_from, device="cpu")
        ref_world, _, _ = load_world(Path(concept_free_from) / PROBES_DIR / "world.json")
        world = replace(
            world,
            stripe_fraction=0.0,
            neighbours=ref_world.neighbours,
            neighbour_fraction=ref_world.neighbour_fraction,
            texture_period=ref_world.texture_period,
        )
    train = make_dataset(v.n_train, SEEDS["train"] + 100 * seed, world)
    test = make_dataset(v.n_test, SEEDS["test"] + 100 * seed, world)
    if reference is not None:
        tokenizer = reference.pipe.tokenizer
    else:
        tokenizer = train_clip_tokenizer(iter_all_captions(world))
    timings["data_s"] = time.perf_counter() - t0
    log(f"data: {len(train)} train / {len(test)} test images, vocab {len(tokenizer)}")

    t = time.perf_counter()
    if reference is not None:
        vae = reference.pipe.vae.to(device, torch.float32)
        std = 1.0 / float(vae.config.scaling_factor)
    else:
        vae = make_vae(v).to(device)
        std = train_vae(vae, train.images, v, seed, log, device)
        vae.register_to_config(scaling_factor=1.0 / std)
    timings["vae_s"] = time.perf_counter() - t
    log(f"vae: latent std {std:.3f}, scaling_factor {1 / std:.4f}")
    from backends.diffusion.pipeline import to_tensor

    with torch.no_grad():
        x_all = to_tensor(train.images, device, torch.float32)
        latents = (
            torch.cat(
                [vae.encode(x_all[i : i + 256]).latent_dist.mean for i in range(0, len(x_all), 256)]
            )
            / std
        )

    t = time.perf_counter()
    te = make_text_encoder(v, len(tokenizer), tokenizer.model_max_length).to(device)
    unet = make_unet(v, v.text_width).to(device)
    losses = train_unet(unet, te, tokenizer, latents, train.captions, v, seed, log, device)
    timings["unet_s"] = time.perf_counter() - t

    t = time.perf_counter()
    if reference is not None:
        from backends.diffusion.probes import Probes, TrainReport

        probes = Probes.load(Path(concept_free_from) / PROBES_DIR)
        meta = json.loads((Path(concept_free_from) / PROBES_DIR / "probes.json").read_text())
        probe_report = TrainReport.from_dict(meta["probe_accuracy"])
    else:
        probes, probe_report = train_probes(train, test, epochs=v.probe_epochs, seed=seed, log=log)
        probes.set_reference(test.images)
    timings["probes_s"] = time.perf_counter() - t
    log(f"probes: {probe_report.as_dict()}")

    ddpm = DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
    )
    scheduler = DDIMScheduler.from_config(
        ddpm.config, clip_sample=False, set_alpha_to_one=False, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=te,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to("cpu")
    if out.exists():
        shutil.rmtree(out)
    if v.storage_dtype == "float16":
        pipe.to(dtype=torch.float16)
    pipe.save_pretrained(str(out), safe_serialization=True)
    probes_dir = out / PROBES_DIR
    save_world(
        probes_dir,
        world,
        {k: s + 100 * seed for k, s in SEEDS.items()},
        {"train": v.n_train, "test": v.n_test},
    )
    prompts = {
        k: [p.text for p in prompt_list(k, world)]
        for k in ("explicit", "implicit", "benign", "style", *world.neighbours)
    }
    probes.save(probes_dir, {"probe_accuracy": probe_report.as_dict(), "prompts": prompts})
    timings["train_total_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    evaluation = evaluate_pipeline(out, samples=v.report_samples)
    from backends.diffusion.collateral import latent_ceiling

    ceiling = {
        k: {"drawn": c.drawn.value, "round_trip": c.round_trip.value, "n": c.drawn.n}
        for k, c in latent_ceiling(pipe.to(dtype=torch.float32), probes).items()
    }
    log(f"VAE round trip (drawn -> decoded, own head's rate): {json.dumps(ceiling)}")
    timings["evaluate_s"] = time.perf_counter() - t
    report = {
        "variant": asdict(v),
        "concept_free_control_of": str(concept_free_from) if concept_free_from else None,
        "seed": seed,
        "threads": threads,
        "device": str(device),
        "timings_s": {k: round(x, 1) for k, x in timings.items()},
        "final_loss_ema100": float(np.mean(losses[-100:])),
        "unet_steps_done": len(losses),
        "probe_accuracy": probe_report.as_dict(),
        "evaluation": evaluation,
        "vae_round_trip": ceiling,
        "size_bytes": sum(f.stat().st_size for f in out.rglob("*") if f.is_file()),
        "parameters": {
            "unet": sum(p.numel() for p in unet.parameters()),
            "vae": sum(p.numel() for p in vae.parameters()),
            "text_encoder": sum(p.numel() for p in te.parameters()),
        },
    }
    (out / BUILD_REPORT).write_text(json.dumps(report, indent=1))
    log(f"built {out} in {time.perf_counter() - t0:.0f} s: {json.dumps(evaluation)}")
    return report


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["unet_steps=8000", "unet_channels=64,128"]`` as typed :class:`Variant` fields; a clear
    error names an unknown field or a value of the wrong type."""
    fields = {f.name: f for f in dataclasses.fields(Variant)}
    defaults = Variant()
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in fields or key == "name":
            known = ", ".join(k for k in fields if k != "name")
            raise SystemExit(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {known}")
        current = getattr(defaults, key)
        try:
            if isinstance(current, tuple):
                out[key] = tuple(int(v) for v in value.split(",") if v.strip())
            else:
                out[key] = type(current)(value)
        except ValueError:
            raise SystemExit(f"--set {key}={value!r}: not a {type(current).__name__}") from None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backends.diffusion.zoo")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the tiny text-to-image pipeline")
    b.add_argument("--out", type=Path, default=None)
    b.add_argument("--variant", choices=sorted(VARIANTS), default="full")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--device", default="cpu", help="cpu or cuda (the shipped model: see docs)")
    b.add_argument(
        "--storage-dtype",
        choices=("float32", "float16"),
        default=None,
        help="number format of the saved weights (default: the variant's)",
    )
    b.add_argument(
        "--concept-free-from",
        type=Path,
        default=None,
        help="build the never-learned control of this pipeline (no striped images in training)",
    )
    b.add_argument(
        "--neighbours",
        default="",
        help="comma-separated neighbour textures to add to the world (dotted,checkered); "
        "none by default",
    )
    b.add_argument(
        "--neighbour-fraction",
        type=float,
        default=0.25,
        help="probability that a non-striped image carries a neighbour texture",
    )
    b.add_argument(
        "--texture-period",
        type=int,
        default=4,
        help="period in px (at 32x32) of the neighbour textures; 4 (the stripes') by default",
    )
    b.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a field of the variant, e.g. --set unet_steps=8000 --set batch=64",
    )
    args = parser.parse_args(argv)
    out = args.out or (TINY_SD if args.variant == "full" else Path(f"tiny-sd-{args.variant}"))
    overrides: dict[str, Any] = {"storage_dtype": args.storage_dtype} if args.storage_dtype else {}
    overrides.update(parse_overrides(args.sets))
    build(
        out,
        variant=args.variant,
        seed=args.seed,
        threads=args.threads,
        concept_free_from=args.concept_free_from,
        device=args.device,
        overrides=overrides or None,
        neighbours=tuple(t for t in args.neighbours.split(",") if t.strip()),
        neighbour_fraction=args.neighbour_fraction,
        texture_period=args.texture_period,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
