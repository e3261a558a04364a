"""Downstream fine-tuning / relearning of a UNet (spec ``diffusion-methods.md`` section 6.6).

ResAlign's evaluation (spec section 1, "Evaluation protocol") fine-tunes the unlearned model's
whole UNet on a downstream dataset (200 steps, lr 1e-5 constant, batch 1 × 4 accumulation, max
grad norm 1) and measures the harmful rate before and after. Its inner fine-tuning loss (section 1,
"Inner fine-tuning loss") is the plain denoising loss

    L_DM(θ; D) = E_{(z0, c)~D, t~U{0..T−1}, ε~N(0, I)} ‖ε_θ(√ᾱ_t·z0 + √(1−ᾱ_t)·ε, c, t) − ε‖²,

and its DreamBooth-style configurations replace every caption by one instance prompt and add the
same loss on a prior set with weight 1 (prior preservation). MemoRa's recovery LoRA (section 2,
step 6) is the same loss with a rank-4 LoRA on the unlearned UNet.

:func:`relearn` runs any of these on ``pipe.unet`` in place and records an evaluation curve;
:func:`relearn_data` draws the shapes world's two fine-tuning sets (benign, or the concept).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backends.common.loop_checkpoints import LoopCheckpoints, trainable
from backends.common.lora import LoraSpec, add_lora, is_lora_model, merge_lora, save_lora
from backends.diffusion.attacks.configs import RelearnConfig
from backends.diffusion.data import WorldConfig, caption_for, make_dataset, parse_prompt
from backends.diffusion.pipeline import encode, encode_images

RELEARN_KINDS = ("benign", "concept")


@dataclass
class RelearnResult:
    """What a fine-tuning run leaves.

    - ``curve``: ``(step, metrics)`` at step 0 and at every evaluation step;
    - ``losses``: the training loss of every step (instance + prior-weighted prior term);
    - ``checkpoints``: step -> saved folder (a diffusers UNet folder for full fine-tuning, a peft
      adapter folder for LoRA), safetensors only;
    - ``adapter``: the peft model of a LoRA run (its adapter stays active in ``pipe.unet``; see
      :func:`merge_adapter` and :func:`remove_adapter`), ``None`` for full fine-tuning.
    """

    curve: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    checkpoints: dict[int, Path] = field(default_factory=dict)
    adapter: Any = None
    prior_losses: list[float] = field(default_factory=list)


def as_pipeline(pipe: Any) -> Any:
    """The diffusers pipeline of a :class:`LoadedPipeline` or the pipeline itself."""
    return pipe.pipe if hasattr(pipe, "pipe") and hasattr(pipe, "path") else pipe


def relearn_data(
    kind: str, world: WorldConfig | None, n: int, seed: int, concept_word: str = "striped"
) -> tuple[np.ndarray, list[str]]:
    """``(images, captions)`` of a shapes-world fine-tuning set.

    - ``benign``: real images without stripes, captioned as in training ("a red circle",
      "a framed red circle"): ResAlign's benign downstream fine-tuning (spec section 1);
    - ``concept``: real striped images captioned with the concept word ("a striped red circle"):
      relearning on the erased concept itself (spec section 6.6).

    Use a ``seed`` other than the tiny model's own training (0) and test (1) splits.
    """
    world = world or WorldConfig()
    if kind not in RELEARN_KINDS:
        raise ValueError(f"unknown relearning data {kind!r}; known: {', '.join(RELEARN_KINDS)}")
    if n < 1:
        raise ValueError("relearning data needs at least one image")
    data = make_dataset(n, seed, world, striped=kind == "concept")
    if kind == "benign":
        return data.images, data.captions
    captions = [
        caption_for(s.shape, s.colour, concept=concept_word, style=s.framed) for s in data.samples
    ]
    return data.images, captions


def instance_captions(captions: Sequence[str], template: str) -> list[str]:
    """DreamBooth's instance prompt for each image (spec section 1: one forced prompt, ResAlign
    "a photo of *s person"); ``{shape}``, ``{colour}`` and ``{caption}`` are filled per image."""
    out = []
    for caption in captions:
        p = parse_prompt(caption)
        try:
            out.append(template.format(shape=p.shape, colour=p.colour, caption=caption))
        except (KeyError, IndexError) as exc:
            raise ValueError(
                f"instance prompt {template!r} has an unknown placeholder {exc}; "
                "use {shape}, {colour} or {caption}"
            ) from exc
    return out


class _Batches:
    """Shuffled passes over ``n`` items, ``batch`` at a time (a new permutation per pass)."""

    def __init__(self, n: int, batch: int, gen: torch.Generator) -> None:
        self.n, self.batch, self.gen = n, batch, gen
        self.order: list[int] = []

    def next(self) -> torch.Tensor:
        while len(self.order) < self.batch:
            self.order += torch.randperm(self.n, generator=self.gen).tolist()
        idx, self.order = self.order[: self.batch], self.order[self.batch :]
        return torch.tensor(idx)


class _Denoising:
    """L_DM on one (images, captions) set: latents and text embeddings are computed once."""

    def __init__(
        self,
        pipe: Any,
        images: np.ndarray,
        captions: Sequence[str],
        batch: int,
        gen: torch.Generator,
        sample_latents: bool,
    ) -> None:
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions")
        if len(images) == 0:
            raise ValueError("the fine-tuning set is empty")
        self.pipe, self.gen, self.sample_latents = pipe, gen, sample_latents
        self.images = images
        self.latents = torch.cat(
            [encode_images(pipe, images[i : i + 64]) for i in range(0, len(images), 64)]
        )
        unique = sorted(set(captions))
        emb = torch.cat([encode(pipe, unique[i : i + 64]) for i in range(0, len(unique), 64)])
        where = {c: i for i, c in enumerate(unique)}
        self.cond = emb[torch.tensor([where[c] for c in captions])]
        self.batches = _Batches(len(images), batch, gen)
        self.acp = pipe.scheduler.alphas_cumprod
        self.T = int(pipe.scheduler.config.num_train_timesteps)

    def loss(self, unet: Any) -> torch.Tensor:
        idx = self.batches.next()
        if self.sample_latents:
            z0 = encode_images(self.pipe, self.images[idx.numpy()], sample=True, generator=self.gen)
        else:
            z0 = self.latents[idx]
        t = torch.randint(0, self.T, (len(idx),), generator=self.gen)
        noise = torch.randn(z0.shape, generator=self.gen)
        a = self.acp[t].view(-1, 1, 1, 1).float()
        zt = a.sqrt() * z0.float().cpu() + (1 - a).sqrt() * noise
        dev, dt = z0.device, z0.dtype
        pred = unet(zt.to(dev, dt), t.to(dev), encoder_hidden_states=self.cond[idx]).sample
        return torch.nn.functional.mse_loss(pred.float(), noise.to(dev))


def has_adapter(unet: Any) -> bool:
    """Whether peft LoRA layers are injected into ``unet``'s modules."""
    return any(hasattr(m, "lora_A") for m in unet.modules())


@torch.no_grad()
def denoising_loss(
    pipe: Any, images: np.ndarray, captions: Sequence[str], *, seed: int = 0, draws: int = 4
) -> float:
    """L_DM of ``pipe.unet`` on ``(images, captions)`` with fixed timesteps and noise
    (``draws`` per image, from ``seed``), so two models are compared on the same draws."""
    p = as_pipeline(pipe)
    gen = torch.Generator().manual_seed(seed)
    data = _Denoising(p, images, captions, len(images), gen, sample_latents=False)
    total = 0.0
    for _ in range(draws):
        total += float(data.loss(p.unet))
    return total / draws


def _save(unet: Any, adapter: Any, folder: Path) -> Path:
    if adapter is not None:
        return save_lora(adapter, folder)
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(str(folder), safe_serialization=True)
    return folder


def relearn(
    pipe: Any,
    cfg: RelearnConfig,
    images: np.ndarray,
    captions: list[str],
    *,
    evaluate: Callable[[int], dict[str, float]],
    prior: tuple[np.ndarray, list[str]] | None = None,
    checkpoint_dir: Path | None = None,
    seed: int = 0,
    check: Callable[[], None] = lambda: None,
    log: Callable[[str], None] = print,
    progress: Callable[[float], None] = lambda f: None,
    checkpoints: LoopCheckpoints | None = None,
) -> RelearnResult:
    """Fine-tune ``pipe.unet`` in place on ``(images, captions)`` with L_DM (module docstring).

    ``cfg.mode``: ``full`` trains every UNet weight; ``lora`` adds a fresh peft LoRA
    (``cfg.lora_rank`` on ``cfg.lora_targets``; zero-initialised up-projection, so step 0 is the
    input model) and leaves it active in ``pipe.unet`` afterwards (merge with
    :func:`merge_adapter`); ``dreambooth`` captions every image with ``cfg.instance_prompt`` and
    adds ``cfg.prior_weight`` × L_DM on ``prior`` (spec section 1, "Inner fine-tuning loss").

    ``evaluate(step)`` runs at step 0, at each of ``cfg.eval_steps`` and at the last step; its
    metrics form the curve. With ``checkpoint_dir`` the UNet (full) or adapter (LoRA) is saved at
    each evaluation step after 0 as ``checkpoint_dir/step-NNNNN``. ``seed`` fixes the batch order,
    timesteps and noise.

    With ``checkpoints`` the trained weights (the UNet, or the adapter), the optimiser, the
    learning-rate schedule, the generator and the batch order are saved every
    ``checkpoints.every`` steps and after the last, with the curve measured so far, the losses
    and the evaluation folders; a resumed run (``pipe`` holding the input weights, as on a fresh
    start) continues after the saved step and returns the same result as an uninterrupted one.
    """
    from backends.common.seeding import seed_everything

    p = as_pipeline(pipe)
    if cfg.mode not in ("full", "lora", "dreambooth"):
        raise ValueError(f"unknown relearning mode {cfg.mode!r}")
    if cfg.mode == "dreambooth":
        if prior is None:
            raise ValueError("DreamBooth-style fine-tuning needs a prior set (images, captions)")
        captions = instance_captions(captions, cfg.instance_prompt)
    unet = p.unet
    if is_lora_model(unet) or has_adapter(unet):
        raise ValueError(
            "pipe.unet already carries a LoRA adapter; merge it (merge_adapter) or remove it "
            "(remove_adapter) before fine-tuning again"
        )
    lora = cfg.trains_lora()
    if not lora and unet.dtype != torch.float32:
        raise ValueError(
            f"full fine-tuning needs float32 weights (the UNet is {unet.dtype}); load the "
            "pipeline with dtype float32, or use a LoRA"
        )
    seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    data = _Denoising(p, images, captions, cfg.batch, gen, cfg.sample_latents)
    prior_data = None
    if cfg.mode == "dreambooth" and prior is not None:
        prior_data = _Denoising(p, prior[0], list(prior[1]), cfg.batch, gen, cfg.sample_latents)

    adapter = None
    if lora:
        spec = LoraSpec(
            rank=cfg.lora_rank, alpha=cfg.lora_alpha, target_modules=list(cfg.lora_targets)
        )
        adapter = add_lora(unet, spec)  # injected in place: pipe.unet now runs with it
        params = [q for q in adapter.parameters() if q.requires_grad]
    else:
        unet.requires_grad_(True)
        params = [q for q in unet.parameters() if q.requires_grad]
    if cfg.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(
            params, lr=cfg.learning_rate(), weight_decay=cfg.weight_decay
        )
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.learning_rate())
    else:
        raise ValueError(f"unknown optimiser {cfg.optimizer!r}")
    if cfg.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps))
        )
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)

    result = RelearnResult(adapter=adapter)
    when = cfg.evaluation_steps()
    n_params = sum(q.numel() for q in params)
    log(
        f"relearn ({cfg.mode}{', LoRA' if lora else ''}): {len(images)} images, "
        f"{n_params} trainable parameters, {cfg.steps} steps"
    )
    trained = (adapter if adapter is not None else unet).named_parameters()
    parts: dict[str, Any] = {
        "modules": {"trained": trainable((n, q) for n, q in trained if q.requires_grad)},
        "optimizers": {"opt": opt},
        "generators": {"gen": gen},
    }
    start = 0
    state = checkpoints.restore(**parts) if checkpoints is not None else None
    if state is not None:
        start, saved = state.step, state.extra["relearn"]
        sched.load_state_dict(saved["schedule"])
        data.batches.order = [int(i) for i in saved["order"]]
        if prior_data is not None:
            prior_data.batches.order = [int(i) for i in saved["prior_order"]]
        result.curve = [(int(s), dict(m)) for s, m in saved["curve"]]
        result.losses = [float(x) for x in saved["losses"]]
        result.prior_losses = [float(x) for x in saved["prior_losses"]]
        result.checkpoints = {int(s): Path(f) for s, f in saved["folders"].items()}
        log(f"relearn: resuming after step {start} ({len(result.curve)} curve points kept)")

    def save(step: int) -> None:
        assert checkpoints is not None
        checkpoints.save(
            step,
            **parts,
            extra={
                "relearn": {
                    "schedule": sched.state_dict(),
                    "order": data.batches.order,
                    "prior_order": prior_data.batches.order if prior_data is not None else [],
                    "curve": [[s, m] for s, m in result.curve],
                    "losses": result.losses,
                    "prior_losses": result.prior_losses,
                    "folders": {str(s): str(f) for s, f in result.checkpoints.items()},
                }
            },
        )

    def record(step: int) -> None:
        unet.eval()
        metrics = {k: float(v) for k, v in evaluate(step).items()}
        result.curve.append((step, metrics))
        if checkpoint_dir is not None and step > 0:
            result.checkpoints[step] = _save(
                unet, adapter, Path(checkpoint_dir) / f"step-{step:05d}"
            )
        shown = ", ".join(f"{k} {v:.3f}" for k, v in list(metrics.items())[:4])
        log(f"relearn step {step}: {shown}")

    try:
        if state is None:
            record(0)
        for step in range(start + 1, cfg.steps + 1):
            check()
            unet.train()
            loss = data.loss(unet)
            total = loss
            if prior_data is not None:
                prior_loss = prior_data.loss(unet)
                total = loss + cfg.prior_weight * prior_loss
                result.prior_losses.append(float(prior_loss.detach()))
            opt.zero_grad(set_to_none=True)
            total.backward()
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            sched.step()
            result.losses.append(float(total.detach()))
            if step in when:
                record(step)
            if checkpoints is not None and checkpoints.due(step, cfg.steps):
                save(step)
            progress(step / cfg.steps)
    finally:
        unet.eval()
        unet.requires_grad_(False)
    return result


def merge_adapter(pipe: Any, result: RelearnResult) -> Any:
    """Fold a LoRA run's adapter into ``pipe.unet``'s base weights (W ← W + scale·B·A); returns the
    plain UNet, which stays ``pipe.unet``. No-op for full fine-tuning."""
    p = as_pipeline(pipe)
    if result.adapter is None:
        return p.unet
    base = merge_lora(result.adapter)
    result.adapter = None
    if base is not p.unet:  # peft merges in place; keep the pipeline pointing at the result
        p.unet = base
    return p.unet


def remove_adapter(pipe: Any, result: RelearnResult) -> Any:
    """Drop a LoRA run's adapter from ``pipe.unet`` without merging (back to the input weights)."""
    p = as_pipeline(pipe)
    if result.adapter is None:
        return p.unet
    base = result.adapter.unload()
    result.adapter = None
    if base is not p.unet:
        p.unet = base
    return p.unet
