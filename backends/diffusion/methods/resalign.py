"""ResAlign: safety-driven unlearning that survives downstream fine-tuning (spec
``diffusion-methods.md`` section 1; official code ``AntigoneRandy/ResAlign``, ``src/train/``).

θ is a LoRA (peft, :mod:`backends.common.lora`) on every attention projection
(``to_q``/``to_k``/``to_v``/``to_out.0``) of a working copy of the UNet; the base is frozen.  Each
outer step:

1. draw ``inner_sample_k`` fine-tuning scenarios (lr, steps, optimiser, mode, dataset) from the
   grid the config spans (``meta_config`` / ``meta_data`` off: the first value of each list);
2. per scenario, simulate the downstream fine-tune θ* from θ without keeping a graph
   (:meth:`Trainer.simulate`: GD, Adam with or without the official quirks, full fine-tuning of
   the merged UNet projected back to rank r by truncated SVD, DreamBooth-style with prior
   preservation);
3. the outer objective (1−λ)·L_h(θ) + λ·L_h(θ*) + α·R(θ), with L_h gradient ascent on the
   denoising loss of harmful images (or the ESD-style loss) and R the distillation to the frozen
   original on retain images; its direct gradient d and b = λ∇L_h(θ*) go into the Moreau-envelope
   fixed point (:func:`~.hypergrad.fixed_point_hypergradient`, K vector-Jacobian steps, η halving,
   fallback to d; every halving and fallback is a metric);
4. θ.grad = meta_rate · mean of the scenarios' hypergradients; one AdamW step; the merged weights
   W₀ + scale·B·A are written into ``pipe.unet`` (so the pipeline is the merged model after every
   step and at the end, and saves as a normal pipeline folder).

The images are latents the original model generates from the concept's prompts (as SalUn's D_f
and D_r): D_harm from the forget prompts, D_ret from the retain prompts, the benign fine-tuning
sets from the anchor (benign) prompts.  Second-order steps need the classic attention processor
(diffusers' SDPA has no double backward on CPU): it is set on the working copy only, so
``pipe.unet``'s processors are never switched.  The decisions on the official code's quirks are in
``docs/methods/resalign.md``.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from backends.common.lora import LoraSpec, add_lora
from backends.common.method import Hooks, MethodResult, frozen_copy
from backends.diffusion.concepts import Concept
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
from backends.diffusion.methods.configs import ResAlignConfig
from backends.diffusion.methods.hypergrad import (
    HypergradResult,
    fixed_point_hypergradient,
    global_norm,
    hvp_at,
    low_rank_factors,
)
from backends.diffusion.pipeline import ddpm_noise, encode

ATTENTION_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
Tensors = list[torch.Tensor]


# -- the adapter θ -----------------------------------------------------------------------------
class Adapter:
    """θ: a peft LoRA on every attention projection of a working copy of ``unet`` (classic
    attention processor, base frozen), evaluated at any θ′ with :meth:`eps` (a functional call)."""

    def __init__(self, unet: Any, cfg: ResAlignConfig, gen: torch.Generator) -> None:
        from diffusers.models.attention_processor import AttnProcessor
        from peft.tuners.lora import LoraLayer

        work: Any = copy.deepcopy(unet)
        work.requires_grad_(False)
        work.set_attn_processor(AttnProcessor())
        spec = LoraSpec(rank=cfg.rank, alpha=cfg.lora_alpha, target_modules=ATTENTION_TARGETS)
        self.peft = add_lora(work, spec)
        self.net: nn.Module = self.peft.base_model.model
        self.rank = cfg.rank
        self.names = [n for n, p in self.net.named_parameters() if p.requires_grad]
        self.params: dict[str, nn.Parameter] = dict(
            (n, p) for n, p in self.net.named_parameters() if p.requires_grad
        )
        self.layers: dict[str, Any] = {
            n: m for n, m in self.net.named_modules() if isinstance(m, LoraLayer)
        }
        if not self.layers:
            raise ValueError("the UNet has no attention projections (to_q/to_k/to_v/to_out.0)")
        if cfg.lora_init == "official":
            with torch.no_grad():
                for n, p in self.params.items():
                    std = cfg.lora_down_std if ".lora_A." in n else cfg.lora_up_std
                    p.copy_(torch.randn(p.shape, generator=gen) * std)

    def theta(self) -> Tensors:
        """The current θ, detached copies in :attr:`names` order."""
        return [self.params[n].detach().clone() for n in self.names]

    def eps(
        self, theta: Sequence[torch.Tensor], x: torch.Tensor, t: Any, cond: torch.Tensor
    ) -> Any:
        """ε_θ′(x, t, cond) with the adapter's weights replaced by ``theta``."""
        weights = dict(zip(self.names, theta, strict=True))
        out = torch.func.functional_call(self.net, weights, (x, t), {"encoder_hidden_states": cond})
        return out.sample

    def _pair(self, layer: str) -> tuple[int, int]:
        return (
            self.names.index(f"{layer}.lora_A.default.weight"),
            self.names.index(f"{layer}.lora_B.default.weight"),
        )

    def deltas(self, theta: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """ΔW = scale·B·A of every adapted projection at ``theta``."""
        out = {}
        for layer, module in self.layers.items():
            a, b = self._pair(layer)
            out[layer] = module.scaling["default"] * (theta[b] @ theta[a])
        return out

    @torch.no_grad()
    def write(self, theta: Sequence[torch.Tensor], target: Any) -> None:
        """Merge: ``target``'s projection weights become W₀ + scale·B·A at ``theta``."""
        for layer, delta in self.deltas(theta).items():
            base = self.layers[layer].base_layer.weight
            target.get_submodule(layer).weight.copy_(base + delta.to(base.dtype))

    @torch.no_grad()
    def from_deltas(self, deltas: dict[str, torch.Tensor]) -> Tensors:
        """θ whose ΔW is the truncated SVD of ``deltas`` (up = U_r S_r / scale, down = V_rᵀ)."""
        theta = self.theta()
        for layer, delta in deltas.items():
            a, b = self._pair(layer)
            up, down = low_rank_factors(delta, self.rank)
            theta[b] = (up / self.layers[layer].scaling["default"]).to(theta[b].dtype)
            theta[a] = down.to(theta[a].dtype)
        return theta


# -- data ------------------------------------------------------------------------------------------
@dataclass
class ImageSet:
    """Generated latents with the text embedding of each one's prompt (and of its anchor)."""

    latents: torch.Tensor
    cond: torch.Tensor
    anchor: torch.Tensor | None = None


@dataclass
class Batch:
    """One noised minibatch: x_t, t, ε, the prompts' embeddings (and the anchors')."""

    x: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor
    cond: torch.Tensor
    anchor: torch.Tensor | None = None


def draw(pipe: Any, data: ImageSet, size: int, gen: torch.Generator) -> Batch:
    idx = pick(len(data.latents), size, gen)
    x, t, noise = ddpm_noise(pipe, data.latents[idx], gen)
    anchor = data.anchor[idx] if data.anchor is not None else None
    return Batch(x, t, noise, data.cond[idx], anchor)


def dataset_prompts(concept: Concept, name: str) -> list[str]:
    """The prompts of a fine-tuning dataset (``RESALIGN_DATASETS``): the benign (anchor) pool, a
    third of it, or the concept's forget prompts."""
    pool = list(concept.anchor_prompts or concept.retain_prompts)
    if name == "concept":
        prompts = list(concept.forget_prompts)
    elif name == "benign":
        prompts = pool
    elif name in ("benign1", "benign2", "benign3"):
        prompts = pool[int(name[-1]) - 1 :: 3]
    else:
        raise ValueError(f"unknown ResAlign fine-tuning dataset {name!r}")
    if not prompts:
        raise ValueError(f"ResAlign's fine-tuning dataset {name!r} has no prompts")
    return prompts


def make_set(
    pipe: Any,
    prompts: Sequence[str],
    n: int,
    seed: int,
    cfg: ResAlignConfig,
    check: Callable[[], None],
    anchors: Sequence[str] | None = None,
    unet: nn.Module | None = None,
) -> ImageSet:
    """``n`` latents generated by ``unet`` (default: the pipeline's, which must still be the
    original), cycling through ``prompts``."""
    chosen = [prompts[i % len(prompts)] for i in range(n)]
    seeds = [seed + i for i in range(n)]
    kept = pipe.unet
    pipe.unet = unet if unet is not None else kept
    try:
        z = generate_latents(
            pipe, chosen, seeds, steps=cfg.sample_steps, guidance=cfg.sample_guidance, check=check
        )
    finally:
        pipe.unet = kept
    anchor = None
    if anchors is not None:
        anchor = encode(pipe, [anchors[i % len(anchors)] for i in range(n)])
    return ImageSet(z, encode(pipe, chosen), anchor)


# -- scenarios ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """One simulated downstream fine-tune."""

    lr: float
    steps: int
    optimizer: str
    mode: str
    dataset: str


def scenario_grid(cfg: ResAlignConfig) -> list[Scenario]:
    """Every scenario the config spans; ``meta_config`` / ``meta_data`` off keep the first value of
    the config lists / the dataset list."""

    def first_or_all(values: Sequence[Any], meta: bool) -> list[Any]:
        if not values:
            raise ValueError("ResAlign: every scenario list needs at least one value")
        return list(values) if meta else [values[0]]

    lrs = first_or_all(cfg.ft_lrs, cfg.meta_config)
    steps = first_or_all(cfg.ft_steps, cfg.meta_config)
    opts = first_or_all(cfg.ft_optimizers, cfg.meta_config)
    modes = first_or_all(cfg.ft_modes, cfg.meta_config)
    sets = first_or_all(cfg.datasets, cfg.meta_data)
    return [Scenario(*c) for c in itertools.product(lrs, steps, opts, modes, sets)]


@dataclass
class AdamState:
    step: int
    m: Tensors
    v: Tensors


def adam_update(
    theta: Tensors, grads: Tensors, state: AdamState, lr: float, quirks: bool
) -> Tensors:
    """One Adam step (β 0.9/0.999, ε 1e-8).  ``quirks``: the official ``DifferentiableAdam``,
    whose bias-corrected m̂/v̂ also get the step size lr·√(1−β2^k)/(1−β1^k) (bias correction
    twice; at k = 1 the step is about 0.32·lr)."""
    b1, b2, eps = 0.9, 0.999, 1e-8
    state.step += 1
    k = state.step
    c1, c2 = 1 - b1**k, 1 - b2**k
    size = lr * math.sqrt(c2) / c1 if quirks else lr
    out = []
    for i, (p, g) in enumerate(zip(theta, grads, strict=True)):
        state.m[i] = b1 * state.m[i] + (1 - b1) * g
        state.v[i] = b2 * state.v[i] + (1 - b2) * g * g
        out.append(p - size * (state.m[i] / c1) / ((state.v[i] / c2).sqrt() + eps))
    return out


# -- the trainer ---------------------------------------------------------------------------------
@dataclass
class StepReport:
    """What one scenario's hypergradient left: its gradient and numbers for the metrics."""

    grad: Tensors
    loss_h: float
    loss_h_star: float
    retain: float
    hyper: HypergradResult | None
    seconds: dict[str, float]


class Trainer:
    """The pieces of one outer step on ``pipe`` (the original, still unchanged, when built)."""

    def __init__(
        self,
        pipe: Any,
        concept: Concept,
        cfg: ResAlignConfig,
        hooks: Hooks,
        gen: torch.Generator,
        seed: int,
    ) -> None:
        self.pipe, self.cfg, self.hooks, self.gen = pipe, cfg, hooks, gen
        self.grid = scenario_grid(cfg)
        if not concept.forget_prompts:
            raise ValueError("ResAlign needs the concept's forget prompts (its harmful images)")
        check = hooks.check
        base = int(seed) * 1_000_003
        anchors = concept.anchor_prompts or None
        self.harm = make_set(
            pipe, concept.forget_prompts, cfg.harm_images, base, cfg, check, anchors
        )
        if cfg.loss_mode == "esd" and anchors is None:
            raise ValueError("ResAlign's esd loss needs the concept's anchor prompts")
        retain_prompts = concept.retain_prompts or concept.anchor_prompts
        if not retain_prompts:
            raise ValueError("ResAlign needs retain (benign) prompts for R(θ)")
        self.retain = make_set(pipe, retain_prompts, cfg.retain_images, base + 100_000, cfg, check)
        self.concept, self.base = concept, base
        self.sets: dict[str, ImageSet] = {}  # fine-tuning sets, generated when first needed
        self.instance = encode(pipe, [cfg.instance_prompt])
        unet = pipe.unet
        self.original: Any = frozen_copy(unet)
        self.adapter = Adapter(unet, cfg, gen)
        self.adam: dict[Scenario, AdamState] = {}
        self.counts = {"fallbacks": 0, "halvings": 0, "scenarios": 0}  # cumulative, checkpointed
        self.clock: Callable[[], float] = time.perf_counter  # of StepReport.seconds
        self._scratch: Any = None

    def dataset(self, name: str) -> ImageSet:
        """The fine-tuning set ``name``, generated by the original UNet on first use (its seeds
        depend on the name only, so a resumed run sees the same images)."""
        if name not in self.sets:
            from backends.diffusion.methods.configs import RESALIGN_DATASETS

            prompts = dataset_prompts(self.concept, name)
            seed = self.base + 200_000 + 10_000 * RESALIGN_DATASETS.index(name)
            self.sets[name] = make_set(
                self.pipe,
                prompts,
                self.cfg.finetune_images,
                seed,
                self.cfg,
                self.hooks.check,
                unet=self.original,
            )
        return self.sets[name]

    # losses -------------------------------------------------------------------------------------
    def harm_loss(self, theta: Sequence[torch.Tensor], b: Batch) -> torch.Tensor:
        """L_h: −L_DM on harmful images (ga) or the ESD-style loss (esd)."""
        pred = self.adapter.eps(theta, b.x, b.t, b.cond)
        if self.cfg.loss_mode == "ga":
            return -F.mse_loss(pred.float(), b.noise.float())
        with torch.no_grad():
            e_c = self.original(b.x, b.t, encoder_hidden_states=b.cond).sample
            e_a = self.original(b.x, b.t, encoder_hidden_states=b.anchor).sample
            target = e_c - self.cfg.negative_guidance * (e_c - e_a)
        return F.mse_loss(pred.float(), target.float())

    def retain_loss(self, theta: Sequence[torch.Tensor], b: Batch) -> torch.Tensor:
        """R: ‖ε_θ(x_t, c) − ε_0(x_t, c)‖² on retain images."""
        with torch.no_grad():
            target = self.original(b.x, b.t, encoder_hidden_states=b.cond).sample
        return F.mse_loss(self.adapter.eps(theta, b.x, b.t, b.cond).float(), target.float())

    def ft_batches(self, sc: Scenario) -> list[tuple[Batch, float]]:
        """Fresh minibatches of a scenario's fine-tuning loss with their weights (DreamBooth: the
        instance prompt on the instance images, plus the prior set with ``prior_weight``)."""
        data = self.dataset(sc.dataset)
        b = draw(self.pipe, data, self.cfg.batch_size, self.gen)
        if sc.mode != "dreambooth":
            return [(b, 1.0)]
        b.cond = self.instance.expand(len(b.x), -1, -1)
        prior = draw(self.pipe, self.dataset("benign"), self.cfg.batch_size, self.gen)
        return [(b, 1.0), (prior, self.cfg.prior_weight)]

    def ft_loss(self, theta: Sequence[torch.Tensor], batches: list[tuple[Batch, float]]) -> Any:
        """L_FT = Σ weight·L_DM over the scenario's minibatches."""
        total = torch.zeros((), device=batches[0][0].x.device)
        for b, w in batches:
            if w:
                pred = self.adapter.eps(theta, b.x, b.t, b.cond).float()
                total = total + w * F.mse_loss(pred, b.noise.float())
        return total

    # the simulated fine-tune ----------------------------------------------------------------------
    def simulate(self, sc: Scenario, theta: Tensors) -> Tensors:
        """θ* after ``sc.steps`` steps of the scenario's fine-tune from θ; no graph is kept."""
        if sc.mode == "full":
            return self._simulate_full(sc, theta)
        quirks = self.cfg.adam_quirks
        state = None
        if sc.optimizer == "adam":
            state = self.adam.get(sc) if quirks else None
            if state is None:
                zeros = [torch.zeros_like(p) for p in theta]
                state = AdamState(0, zeros, [torch.zeros_like(p) for p in theta])
                if quirks:
                    self.adam[sc] = state
        cur = [p.detach().clone() for p in theta]
        for _ in range(sc.steps):
            self.hooks.check()
            leaves = [p.requires_grad_(True) for p in cur]
            loss = self.ft_loss(leaves, self.ft_batches(sc))
            grads = torch.autograd.grad(loss, leaves)
            with torch.no_grad():
                if state is None:
                    cur = [p - sc.lr * g for p, g in zip(leaves, grads, strict=True)]
                else:
                    cur = adam_update(
                        [p.detach() for p in leaves], list(grads), state, sc.lr, quirks
                    )
        return [p.detach() for p in cur]

    def _simulate_full(self, sc: Scenario, theta: Tensors) -> Tensors:
        """Full fine-tuning of the UNet merged at θ (explicitly θ, not whatever the official code
        had loaded), then each projection's ΔW back to rank r by truncated SVD."""
        if self._scratch is None:
            self._scratch = copy.deepcopy(self.original)
        net = self._scratch
        with torch.no_grad():
            for p, q in zip(net.parameters(), self.original.parameters(), strict=True):
                p.copy_(q)
        self.adapter.write(theta, net)
        net.requires_grad_(True)
        net.train()
        params = list(net.parameters())
        if sc.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.AdamW(params, lr=sc.lr)
        else:
            opt = torch.optim.SGD(params, lr=sc.lr)
        try:
            for _ in range(sc.steps):
                self.hooks.check()
                loss = torch.zeros((), device=self.original.device)
                for b, w in self.ft_batches(sc):
                    pred = net(b.x, b.t, encoder_hidden_states=b.cond).sample.float()
                    loss = loss + w * F.mse_loss(pred, b.noise.float())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            with torch.no_grad():
                deltas = {
                    layer: net.get_submodule(layer).weight
                    - self.original.get_submodule(layer).weight
                    for layer in self.adapter.layers
                }
                return self.adapter.from_deltas(deltas)
        finally:
            net.requires_grad_(False)
            net.eval()
            for p in params:
                p.grad = None

    # one scenario's hypergradient --------------------------------------------------------------------
    def scenario_gradient(self, sc: Scenario | None, lam: float, alpha: float) -> StepReport:
        """d + (I + γH)⁻¹·λ∇L_h(θ*) for scenario ``sc`` (``None``: the direct gradient only)."""
        cfg, secs = self.cfg, {"inner": 0.0, "hypergradient": 0.0, "retain": 0.0}
        theta = self.adapter.theta()
        hb = draw(self.pipe, self.harm, cfg.batch_size, self.gen)
        rb = draw(self.pipe, self.retain, cfg.retain_batch, self.gen)
        t0 = self.clock()
        leaves = [p.requires_grad_(True) for p in theta]
        loss_h = self.harm_loss(leaves, hb)
        retain = self.retain_loss(leaves, rb)
        direct = torch.autograd.grad((1 - lam) * loss_h + alpha * retain, leaves)
        secs["retain"] = self.clock() - t0
        if sc is None:
            return StepReport(list(direct), loss_h.item(), math.nan, retain.item(), None, secs)
        t0 = self.clock()
        star = self.simulate(sc, theta)
        secs["inner"] = self.clock() - t0
        self.hooks.check()
        t0 = self.clock()
        star_leaves = [p.clone().requires_grad_(True) for p in star]
        loss_star = self.harm_loss(star_leaves, hb)
        b = [lam * g for g in torch.autograd.grad(loss_star, star_leaves)]
        fixed = self.ft_batches(sc)
        hvp = hvp_at(lambda th: self.ft_loss(th, fixed), star)
        hyper = fixed_point_hypergradient(
            hvp,
            direct,
            b,
            steps=cfg.fixed_point_steps,
            gamma=cfg.prox_gamma,
            max_norm=cfg.max_grad_norm,
            max_retries=cfg.max_retries,
        )
        secs["hypergradient"] = self.clock() - t0
        return StepReport(hyper.grad, loss_h.item(), loss_star.item(), retain.item(), hyper, secs)

    def sample_scenarios(self) -> list[Scenario]:
        k = min(self.cfg.inner_sample_k, len(self.grid))
        order = torch.randperm(len(self.grid), generator=self.gen)[:k].tolist()
        return [self.grid[i] for i in order]


class ResAlignState(LoopState):
    """:class:`LoopState` plus the official inner Adam's per-scenario states (``adam_quirks``),
    saved as checkpoint tensors, so a resumed run continues bit-identically."""

    def __init__(self, trainer: Trainer, opt: torch.optim.Optimizer) -> None:
        super().__init__(trainer.hooks.checkpoints, trainer.adapter.params, opt, trainer.gen)
        self.trainer = trainer

    def restore(self) -> tuple[int, list[float]]:
        state = self.checkpoints.restore(**self.parts) if self.checkpoints else None
        if state is None:
            return 0, []
        self.trainer.adam = {}
        for j, (lr, steps, opt, mode, dataset, step) in enumerate(state.extra.get("adam", [])):
            sc = Scenario(float(lr), int(steps), str(opt), str(mode), str(dataset))
            n = len(self.trainer.adapter.names)
            device = self.trainer.adapter.params[self.trainer.adapter.names[0]].device
            m = [state.tensors[f"adam.{j}.m.{i}"].to(device) for i in range(n)]
            v = [state.tensors[f"adam.{j}.v.{i}"].to(device) for i in range(n)]
            self.trainer.adam[sc] = AdamState(int(step), m, v)
        self.trainer.counts.update({k: int(v) for k, v in state.extra.get("counts", {}).items()})
        return state.step, [float(x) for x in state.extra.get("losses", [])]

    def step_done(self, step: int, total: int, losses: list[float]) -> None:
        if self.checkpoints is None:
            return
        tensors: dict[str, torch.Tensor] = {}
        keys = []
        for j, (sc, st) in enumerate(self.trainer.adam.items()):
            keys.append([sc.lr, sc.steps, sc.optimizer, sc.mode, sc.dataset, st.step])
            for i, (m, v) in enumerate(zip(st.m, st.v, strict=True)):
                tensors[f"adam.{j}.m.{i}"], tensors[f"adam.{j}.v.{i}"] = m, v
        self.checkpoints.step_done(
            step,
            total,
            **self.parts,
            tensors=tensors,
            extra={"losses": losses[-self.keep :], "adam": keys, "counts": self.trainer.counts},
        )


def alpha_at(cfg: ResAlignConfig, step: int) -> float:
    """α of outer step ``step`` (0-based): ``alpha`` in the first half, then the official sigmoid
    ramp s = 1/(1 + e^(−10(p − 0.5))), p = (e − E/2)/(E/2), to ``alpha_end``."""
    half = 0.5 * cfg.iterations
    p = min(max((step - half) / half, 0.0), 1.0) if half > 0 else 0.0
    if step <= half:
        return cfg.alpha
    s = 1.0 / (1.0 + math.exp(-10.0 * (p - 0.5)))
    return cfg.alpha + (cfg.alpha_end - cfg.alpha) * s


def unlearn(
    pipe: Any,
    data: DiffusionData,
    cfg: ResAlignConfig,
    hooks: Hooks,
    *,
    seed: int = 0,
) -> MethodResult:
    """Erase ``data.concept`` from ``pipe.unet`` in place with ResAlign (spec section 1): the LoRA
    θ is trained and merged into the UNet's attention projections after every outer step.  Returns
    ``loss`` (mean outer loss of the last 10 steps), ``seconds``, ``parameters_trained`` (LoRA
    entries), ``parameters_changed``, ``hypergrad_fallbacks``, ``eta_halvings`` and
    ``scenarios`` (simulated fine-tunes).  Metrics per step: ``resalign/loss_h``,
    ``resalign/loss_h_star``, ``resalign/retain``, ``hypergrad/norm``, ``hypergrad/eta_halvings``
    and ``hypergrad/fallbacks`` (cumulative).  Checkpoints hold θ, the outer AdamW, the generator
    and the official inner Adam states; a resumed run (``pipe`` holding the original weights, as on
    a fresh start) ends bit-identical to an uninterrupted one."""
    pipe = unwrap(pipe)
    unet = pipe.unet
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    trainer = Trainer(pipe, data.concept, cfg, hooks, gen, seed)
    adapter = trainer.adapter
    targets = {f"{layer}.weight": unet.get_submodule(layer).weight for layer in adapter.layers}
    before = snapshot(targets)
    steps = Steps("resalign", cfg.iterations, hooks)
    losses: list[float] = []
    counts = trainer.counts
    params = [adapter.params[n] for n in adapter.names]
    try:
        opt = torch.optim.AdamW(
            params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=cfg.weight_decay
        )
        loop = ResAlignState(trainer, opt)
        start, losses = loop.restore()
        lam = cfg.lam
        for i in range(start, cfg.iterations):
            steps.begin()
            alpha = alpha_at(cfg, i)
            chosen: list[Scenario | None] = (
                list(trainer.sample_scenarios()) if cfg.hypergradient else [None]
            )
            reports = [trainer.scenario_gradient(sc, lam, alpha) for sc in chosen]
            steps.check()
            mean = [
                cfg.meta_rate * torch.stack([r.grad[j] for r in reports]).mean(0)
                for j in range(len(params))
            ]
            opt.zero_grad(set_to_none=True)
            for p, g in zip(params, mean, strict=True):
                p.grad = g.to(p.dtype)
            opt.step()
            opt.zero_grad(set_to_none=True)
            adapter.write(adapter.theta(), unet)
            hypers = [r.hyper for r in reports if r.hyper is not None]
            counts["fallbacks"] += sum(h.fallback for h in hypers)
            counts["halvings"] += sum(h.halvings for h in hypers)
            counts["scenarios"] += len(hypers)
            loss_h = sum(r.loss_h for r in reports) / len(reports)
            loss_star = sum(r.loss_h_star for r in reports) / len(reports)
            retain = sum(r.retain for r in reports) / len(reports)
            outer = (1 - lam) * loss_h + alpha * retain + (lam * loss_star if hypers else 0.0)
            losses.append(outer)
            hooks.metric("resalign/loss_h", loss_h, i + 1)
            hooks.metric("resalign/retain", retain, i + 1)
            hooks.metric("resalign/outer", outer, i + 1)
            hooks.metric("hypergrad/norm", global_norm(mean) / max(cfg.meta_rate, 1e-12), i + 1)
            if hypers:
                hooks.metric("resalign/loss_h_star", loss_star, i + 1)
                hooks.metric("hypergrad/fallbacks", counts["fallbacks"], i + 1)
                hooks.metric("hypergrad/eta_halvings", counts["halvings"], i + 1)
            steps.end(i, {"loss_h": loss_h, "retain": retain, "fallbacks": counts["fallbacks"]})
            loop.step_done(i + 1, cfg.iterations, losses)
        adapter.write(adapter.theta(), unet)
    finally:
        finish(unet)
        for p in params:
            p.grad = None
    return loop_result(
        losses,
        steps,
        before,
        unet,
        trained=adapter.params,
        hypergrad_fallbacks=float(counts["fallbacks"]),
        eta_halvings=float(counts["halvings"]),
        scenarios=float(counts["scenarios"]),
    )
