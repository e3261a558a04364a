"""The sine-poisoning experiment of MinNorm-OG (spec section 3, experiment 1), vectorised.

Everything follows the authors' code (github.com/jacob-block/overparameterized-unlearning,
``experiments/sin/``, ``common/unlearners/unlearners.py``, ``configs/sin/``), written anew:

- data per seed: 50 retain points ``x ~ U[-5pi, 5pi]``, ``y = sin x``; 5 forget points ``x ~ U``,
  ``y = 1.5``;
- model: 1 -> 300 -> 300 -> 1 MLP with SiLU (91,201 parameters), torch's default ``nn.Linear``
  initialisation; pretrained with full-batch AdamW (lr 1e-3, weight decay 0.01) for 100k epochs on
  retain + forget, cached in the project (``<project>/cache/classifier/sine/``);
- unlearning: one full-batch step per epoch with a fresh AdamW, the retain batch paired with the
  forget batch: Retrain (fresh initialisation, MSE on D_r), GD, GA (-MSE on D_f), NGD (GD plus
  ``sigma * N(0, 1)`` on the gradient), NegGrad+ (MSE_r - ga_coef MSE_f), l1-sparse (MSE_r +
  lambda_e ||theta||_1, lambda_0 = lambda then ``(2 - 2(e-1)/E) lambda``), Ridge (MSE_r +
  lambda gamma^e ||theta||^2) and MinNorm-OG (before the descent step of epoch e, when
  ``e < E - T_GD`` and ``e % T_Proj == 0``: ``theta <- theta - lambda P_{G^perp}(theta)``,
  ``lambda <- gamma lambda``);
- metric: ``sup |f(x) - sin x|`` over 1000 evenly spaced x in [-5pi, 5pi];
- hyperparameters: the official grid per budget; selected (a) the official way, on the mean of the
  reported metric over the same seeds (ties broken by the narrowest central range, as in
  ``common/parse_results.py``), and (b) honestly, by two-fold cross-fitting over seeds: the
  setting chosen on one half of the seeds is scored on the other half.

All configs x seeds of a budget train at once as stacked weights (``torch.bmm``); MinNorm-OG's
projection uses the closed form of the MLP's output gradients: the Gram matrix ``G^T G`` (float64,
from the per-sample back-propagated errors and activations) and ``G^T theta`` give
``P_G(theta) = G (G^T G)^{-1} G^T theta``, which equals the reduced-QR projection ``Q Q^T theta``
of :func:`backends.classifier.methods.minnorm_og.project_out` when G has full column rank (tested
in ``tests/backends/test_sine.py``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from backends.classifier.sine import SineConfig
from backends.common.devices import resolve_device

if TYPE_CHECKING:
    from workbench.jobs import JobContext

Params = list[torch.Tensor]  # [W1 (B,H,1), b1 (B,H), W2 (B,H,H), b2 (B,H), W3 (B,1,H), b3 (B,1)]
# B stacked models are one flat (B, d) tensor; :func:`unflat` gives the six views above
BETAS = (0.9, 0.999)
EPS = 1e-8
DIVERGED = 1e6  # a sup-error above this (or not finite) is reported as "diverges"


# -- data and models -------------------------------------------------------------------------------
@dataclass
class SineData:
    """Retain and forget points of each seed, stacked: ``(S, n, 1)``."""

    xr: torch.Tensor
    yr: torch.Tensor
    xf: torch.Tensor
    yf: torch.Tensor
    x_test: torch.Tensor  # (n_test,)

    def take(self, idx: torch.Tensor) -> SineData:
        return SineData(self.xr[idx], self.yr[idx], self.xf[idx], self.yf[idx], self.x_test)


def make_data(cfg: SineConfig, seeds: list[int], device: Any = "cpu") -> SineData:
    """The authors' data: x uniform on [-x_limit, x_limit]; y = sin x (retain), forget_value.
    Drawn on the CPU (the same points on every device), then moved to ``device``."""
    xr, xf = [], []
    for seed in seeds:
        g = torch.Generator().manual_seed(1_000_003 * seed + 11)
        lo, hi = -cfg.x_limit, cfg.x_limit
        xr.append(torch.rand(cfg.n_retain, 1, generator=g) * (hi - lo) + lo)
        xf.append(torch.rand(cfg.n_forget, 1, generator=g) * (hi - lo) + lo)
    xr_t, xf_t = torch.stack(xr).to(device), torch.stack(xf).to(device)
    x_test = torch.linspace(-cfg.x_limit, cfg.x_limit, cfg.n_test).to(device)
    return SineData(xr_t, torch.sin(xr_t), xf_t, torch.full_like(xf_t, cfg.forget_value), x_test)


def init_params(width: int, seeds: list[int], stream: int, device: Any = "cpu") -> Params:
    """torch's default ``nn.Linear`` initialisation (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
    weights and biases) of a 1-width-width-1 MLP per seed, stacked; ``stream`` separates the
    pretraining initialisation (0) from Retrain's fresh one (1)."""
    shapes = [((width, 1), 1), ((width,), 1), ((width, width), width), ((width,), width)]
    shapes += [((1, width), width), ((1,), width)]
    out: list[list[torch.Tensor]] = [[] for _ in shapes]
    for seed in seeds:
        g = torch.Generator().manual_seed(7_919 * seed + 104_729 * stream + 3)
        for k, (shape, fan_in) in enumerate(shapes):
            bound = 1.0 / math.sqrt(fan_in)
            out[k].append((torch.rand(shape, generator=g) * 2 - 1) * bound)
    return [torch.stack(parts).to(device) for parts in out]


def shapes(width: int) -> list[tuple[int, ...]]:
    """Shapes of one MLP's parameters, in ``nn.Linear`` order (weight (out, in), bias)."""
    return [(width, 1), (width,), (width, width), (width,), (1, width), (1,)]


def unflat(theta: torch.Tensor, width: int) -> Params:
    """Views of the flat ``(B, d)`` stacked parameters as the six ``(B, *shape)`` tensors."""
    out, at = [], 0
    for shape in shapes(width):
        n = math.prod(shape)
        out.append(theta[:, at : at + n].view(theta.shape[0], *shape))
        at += n
    return out


def flat(params: Params) -> torch.Tensor:
    return torch.cat([p.reshape(p.shape[0], -1) for p in params], dim=1)


def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
    """Outputs ``(B, n, 1)`` of B stacked MLPs on inputs ``(B, n, 1)``."""
    w1, b1, w2, b2, w3, b3 = params
    h = F.silu(torch.baddbmm(b1.unsqueeze(1), x, w1.transpose(1, 2)))
    h = F.silu(torch.baddbmm(b2.unsqueeze(1), h, w2.transpose(1, 2)))
    return torch.baddbmm(b3.unsqueeze(1), h, w3.transpose(1, 2))


def _per_model(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


class AdamW:
    """torch.optim.AdamW's update (decoupled weight decay, bias correction) on flat stacked
    parameters ``(B, d)``, one learning rate per model.

    The step is torch's fused CPU kernel (``torch._fused_adamw_``, one pass over the state), run
    once per distinct learning rate over the rows of the models that share it; it agrees with
    ``torch.optim.AdamW`` to float rounding (tested in ``tests/backends/test_sine.py``)."""

    def __init__(self, theta: torch.Tensor, lr: torch.Tensor, weight_decay: float) -> None:
        self.theta, self.wd, self.t = theta, weight_decay, 0
        self.lr = lr.view(-1, 1).to(theta.dtype)
        self.m = torch.zeros_like(theta)
        self.v = torch.zeros_like(theta)
        groups: dict[float, list[int]] = {}
        for row, value in enumerate(self.lr.view(-1).tolist()):
            groups.setdefault(float(value), []).append(row)
        self._groups = groups

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        self.t += 1
        grad = grad.contiguous()
        step = torch.tensor(float(self.t), device=self.theta.device)
        for lr, rows in self._groups.items():
            torch._fused_adamw_(
                [self.theta[r] for r in rows],
                [grad[r] for r in rows],
                [self.m[r] for r in rows],
                [self.v[r] for r in rows],
                [],
                [step] * len(rows),
                lr=lr,
                beta1=BETAS[0],
                beta2=BETAS[1],
                weight_decay=self.wd,
                eps=EPS,
                amsgrad=False,
                maximize=False,
            )


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-model mean squared error ``(B,)``."""
    return ((out - y) ** 2).mean(dim=(1, 2))


@torch.no_grad()
def weighted_sq_grad(
    theta: torch.Tensor, width: int, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-model loss ``sum_i w_i (f(x_i) - y_i)^2`` ``(B,)`` and its gradient, flat ``(B, d)``,
    by the MLP's closed-form back-propagation (no autograd: the flat-view gradients of autograd
    cost a full ``(B, d)`` zero-fill per parameter tensor).  ``x``, ``y``, ``w``: ``(B, n, 1)``.
    Equals autograd's gradient of the same loss to float rounding (tested)."""
    w1, b1, w2, b2, w3, b3 = unflat(theta, width)
    z1 = torch.baddbmm(b1.unsqueeze(1), x, w1.transpose(1, 2))
    a1 = F.silu(z1)
    z2 = torch.baddbmm(b2.unsqueeze(1), a1, w2.transpose(1, 2))
    a2 = F.silu(z2)
    res = torch.baddbmm(b3.unsqueeze(1), a2, w3.transpose(1, 2)) - y  # (B, n, 1)
    loss = (w * res * res).sum(dim=(1, 2))
    df = 2 * w * res
    grad = torch.empty_like(theta)
    g1, gb1, g2, gb2, g3, gb3 = unflat(grad, width)
    g3.copy_(torch.bmm(df.transpose(1, 2), a2))
    gb3.copy_(df.sum(1))
    dz2 = df * w3 * _silu_grad(z2)  # (B, n, H)
    g2.copy_(torch.bmm(dz2.transpose(1, 2), a1))
    gb2.copy_(dz2.sum(1))
    dz1 = torch.bmm(dz2, w2) * _silu_grad(z1)
    g1.copy_(torch.bmm(dz1.transpose(1, 2), x))
    gb1.copy_(dz1.sum(1))
    return loss, grad


@torch.no_grad()
def sup_error(params: Params, x_test: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-model ``sup_x |f(x) - sin x|`` and the functions on ``x_test`` (B, n_test)."""
    b = params[0].shape[0]
    x = x_test.view(1, -1, 1).expand(b, -1, 1)
    pred = forward(params, x)[..., 0]
    err = (pred - torch.sin(x_test)).abs().amax(dim=1)
    err = torch.where(torch.isfinite(err), err, torch.full_like(err, math.inf))
    return err.double().cpu().numpy(), pred.cpu().numpy()


# -- pretraining (cached) --------------------------------------------------------------------------
def pretrain_recipe(cfg: SineConfig, seeds: list[int]) -> dict[str, Any]:
    """What the pretrained models depend on, except the number of epochs."""
    keys = ("width", "n_retain", "n_forget", "forget_value", "x_limit")
    recipe = {k: getattr(cfg, k) for k in keys}
    extra = {"lr": cfg.pretrain_lr, "weight_decay": cfg.weight_decay, "seeds": seeds}
    return {**recipe, **extra, "version": 1}


def pretrain_dir(cfg: SineConfig, seeds: list[int], cache: Path) -> Path:
    text = json.dumps(pretrain_recipe(cfg, seeds), sort_keys=True)
    return cache / hashlib.sha256(text.encode()).hexdigest()[:16]


def _milestones(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        return {}
    return {int(f.stem.split("-")[1]): f for f in folder.glob("epoch-*.safetensors")}


def pretrain(
    cfg: SineConfig,
    seeds: list[int],
    cache: Path | None,
    *,
    check: Callable[[], None] | None = None,
    progress: Callable[[float], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> torch.Tensor:
    """The pretrained (poisoned) models of ``seeds``, flat ``(S, d)``: full-batch AdamW on
    retain + forget for ``cfg.pretrain_epochs`` epochs, all seeds at once.

    With a ``cache`` folder the state (weights and AdamW moments) is saved every 5,000 epochs as
    ``epoch-N.safetensors``; a later call with N epochs loads it, and one with more epochs
    continues from the latest milestone (constant learning rate, so a milestone of a longer
    pretraining is exactly a shorter one)."""
    folder = pretrain_dir(cfg, seeds, cache) if cache is not None else None
    done_at = _milestones(folder) if folder is not None else {}
    device = resolve_device(cfg.device)
    theta = flat(init_params(cfg.width, seeds, stream=0, device=device))
    opt = AdamW(theta, torch.full((len(seeds),), cfg.pretrain_lr), cfg.weight_decay)
    start = max((e for e in done_at if e <= cfg.pretrain_epochs), default=0)
    if start:
        state = load_file(str(done_at[start]))
        theta.copy_(state["theta"])
        opt.m.copy_(state["m"])
        opt.v.copy_(state["v"])
        opt.t = start
        if log is not None:
            log(f"pretraining: loaded the cached state at epoch {start}")
    if start == cfg.pretrain_epochs:
        return theta
    data = make_data(cfg, seeds, device)
    x = torch.cat([data.xr, data.xf], dim=1)
    y = torch.cat([data.yr, data.yf], dim=1)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "recipe.json").write_text(json.dumps(pretrain_recipe(cfg, seeds)))
    every = 5000
    t0 = time.perf_counter()
    weight = torch.full_like(x, 1.0 / x.shape[1])  # the mean squared error
    for epoch in range(start, cfg.pretrain_epochs):
        if check is not None and epoch % 100 == 0:
            check()
        per_model, grad = weighted_sq_grad(theta, cfg.width, x, y, weight)
        loss = per_model.sum()
        opt.step(grad)
        done = epoch + 1
        if done % every == 0 or done == cfg.pretrain_epochs:
            if progress is not None:
                progress(done / cfg.pretrain_epochs)
            if log is not None:
                log(
                    f"pretraining epoch {done}/{cfg.pretrain_epochs}: mean loss "
                    f"{float(loss.detach()) / len(seeds):.2e} ({time.perf_counter() - t0:.0f} s)"
                )
            if folder is not None:
                state = {"theta": theta, "m": opt.m, "v": opt.v}
                tmp = folder / f"tmp-{done}.safetensors"
                save_file({k: v.cpu().contiguous() for k, v in state.items()}, str(tmp))
                tmp.rename(folder / f"epoch-{done}.safetensors")
    return theta


# -- MinNorm-OG's projection in closed form --------------------------------------------------------
def _silu_grad(z: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    return s * (1 + z * (1 - s))


@torch.no_grad()
def project_mlp(params: Params, x: torch.Tensor, strength: torch.Tensor) -> Params:
    """``theta - strength * P_{G^perp}(theta)`` for B stacked MLPs, G = the output gradients on
    the points ``x`` (B, n, 1); float64.  Uses ``G^T G`` and ``G^T theta`` from the per-sample
    errors (never forms the d x n matrix G)."""
    w1, b1, w2, b2, w3, b3 = (p.double() for p in params)
    xd = x.double()
    z1 = torch.baddbmm(b1.unsqueeze(1), xd, w1.transpose(1, 2))
    a1 = F.silu(z1)
    z2 = torch.baddbmm(b2.unsqueeze(1), a1, w2.transpose(1, 2))
    a2 = F.silu(z2)
    d2 = w3 * _silu_grad(z2)  # (B, n, H): d f / d z2
    d1 = torch.bmm(d2, w2) * _silu_grad(z1)  # d f / d z1
    ones = torch.ones_like(z1[..., :1])
    a1e, xe = torch.cat([a1, ones], -1), torch.cat([xd, ones], -1)
    gram = (
        1.0
        + torch.bmm(a2, a2.transpose(1, 2))
        + torch.bmm(d2, d2.transpose(1, 2)) * torch.bmm(a1e, a1e.transpose(1, 2))
        + torch.bmm(d1, d1.transpose(1, 2)) * torch.bmm(xe, xe.transpose(1, 2))
    )
    # <g_i, theta>: the bias-augmented inputs of each layer meet the layer's pre-activation
    g_theta = b3 + (a2 * w3).sum(-1) + (d2 * z2).sum(-1) + (d1 * z1).sum(-1)
    c = torch.linalg.solve(gram, g_theta.unsqueeze(-1))  # (B, n, 1)
    p_w3 = (c * a2).sum(1, keepdim=True)
    p_b3 = c.sum(1)
    cd2, cd1 = c * d2, c * d1
    p_w2 = torch.bmm(cd2.transpose(1, 2), a1)
    p_b2 = cd2.sum(1)
    p_w1 = torch.bmm(cd1.transpose(1, 2), xd)
    p_b1 = cd1.sum(1)
    out = []
    for p, pg in zip((w1, b1, w2, b2, w3, b3), (p_w1, p_b1, p_w2, p_b2, p_w3, p_b3), strict=True):
        lam = strength.double().view(-1, *([1] * (p.dim() - 1)))
        out.append((p - lam * (p - pg)).to(params[0].dtype))
    return out


# -- the grid --------------------------------------------------------------------------------------
@dataclass
class Setting:
    """One method with one hyperparameter setting."""

    method: str
    lr: float
    hp: dict[str, float] = field(default_factory=dict)

    def label(self) -> str:
        parts = [f"lr={self.lr:g}"] + [f"{k}={v:g}" for k, v in self.hp.items()]
        return ", ".join(parts)


def grid(cfg: SineConfig, budget: int) -> list[Setting]:
    """The official grid of every chosen method at ``budget`` epochs (grid_utils.get_active_keys)."""
    lrs = cfg.lrs_short if budget <= 10 else cfg.lrs_long
    if budget <= 10:
        gds, pds = list(cfg.gd_epochs_short), list(cfg.proj_every_short)
    else:
        gd_f = cfg.gd_fractions_100 if budget <= 100 else cfg.gd_fractions_1000
        pd_f = cfg.proj_fractions_100 if budget <= 100 else cfg.proj_fractions_1000
        gds = [round(f * budget) for f in gd_f]
        pds = [max(1, round(f * budget)) for f in pd_f]
    out: list[Setting] = []
    for method in cfg.methods:
        if method in ("retrain", "gd", "ga"):
            out += [Setting(method, lr) for lr in lrs]
        elif method == "ngd":
            out += [Setting(method, lr, {"sigma": s}) for lr, s in product(lrs, cfg.noise_sigmas)]
        elif method == "neggrad_plus":
            out += [Setting(method, lr, {"ga_coef": g}) for lr, g in product(lrs, cfg.ga_coefs)]
        elif method == "l1_sparse":
            out += [Setting(method, lr, {"reg": r}) for lr, r in product(lrs, cfg.reg_coefs)]
        elif method == "ridge":
            out += [
                Setting(method, lr, {"reg": r, "decay": d})
                for lr, r, d in product(lrs, cfg.reg_coefs, cfg.reg_decays)
            ]
        elif method == "minnorm_og":
            regs = [r for r in cfg.reg_coefs if r <= 1]  # the strength must be <= 1
            out += [
                Setting(method, lr, {"reg": r, "decay": d, "gd_epochs": g, "proj_every": p})
                for lr, r, d, g, p in product(lrs, regs, cfg.reg_decays, gds, pds)
            ]
        else:
            raise ValueError(f"unknown sine method {method!r}; known: {', '.join(cfg.methods)}")
    return out


def run_settings(
    cfg: SineConfig,
    budget: int,
    settings: list[Setting],
    base: torch.Tensor,
    data: SineData,
    seeds: list[int],
    *,
    check: Callable[[], None] | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sup-errors ``(len(settings), S)`` and final functions ``(len(settings), S, n_test)`` of
    every setting on every seed (``base``: the pretrained models, flat ``(S, d)``),
    ``cfg.max_models`` stacked models at a time."""
    n_s = len(seeds)
    pairs = [(i, j) for i in range(len(settings)) for j in range(n_s)]
    errors = np.full((len(settings), n_s), math.inf)
    funcs = np.zeros((len(settings), n_s, len(data.x_test)), dtype=np.float32)
    fresh = flat(init_params(cfg.width, seeds, stream=1, device=base.device))
    for start in range(0, len(pairs), cfg.max_models):
        chunk = pairs[start : start + cfg.max_models]
        err, pred = _run_chunk(cfg, budget, settings, chunk, base, fresh, data, check)
        for (i, j), e, f in zip(chunk, err, pred, strict=True):
            errors[i, j], funcs[i, j] = e, f
        if progress is not None:
            progress(min(1.0, (start + len(chunk)) / len(pairs)))
    return errors, funcs


def _run_chunk(
    cfg: SineConfig,
    budget: int,
    settings: list[Setting],
    chunk: list[tuple[int, int]],
    base: torch.Tensor,
    fresh: torch.Tensor,
    data: SineData,
    check: Callable[[], None] | None,
) -> tuple[np.ndarray, np.ndarray]:
    sets = [settings[i] for i, _ in chunk]
    seed_idx = torch.tensor([j for _, j in chunk], device=base.device)
    dev = base.device
    is_retrain = torch.tensor([s.method == "retrain" for s in sets], device=dev).view(-1, 1)
    theta = torch.where(is_retrain, fresh[seed_idx], base[seed_idx]).clone()
    d = data.take(seed_idx)
    width = cfg.width

    def vec(fn: Callable[[Setting], float]) -> torch.Tensor:
        return torch.tensor([fn(s) for s in sets], dtype=torch.float32, device=dev)

    def forget_weight(s: Setting) -> float:
        return {"ga": -1.0, "neggrad_plus": -s.hp.get("ga_coef", 0.0)}.get(s.method, 0.0)

    lr = vec(lambda s: s.lr)
    retain_w = vec(lambda s: 0.0 if s.method == "ga" else 1.0)
    forget_w = vec(forget_weight)
    sigma = vec(lambda s: s.hp.get("sigma", 0.0)).view(-1, 1)
    l1_base = vec(lambda s: s.hp["reg"] if s.method == "l1_sparse" else 0.0)
    l2_base = vec(lambda s: s.hp["reg"] if s.method == "ridge" else 0.0)
    l2_decay = vec(lambda s: s.hp["decay"] if s.method == "ridge" else 1.0)
    minnorm = [k for k, s in enumerate(sets) if s.method == "minnorm_og"]
    strength = vec(lambda s: s.hp["reg"] if s.method == "minnorm_og" else 0.0)
    mn_decay = vec(lambda s: s.hp["decay"] if s.method == "minnorm_og" else 1.0)
    noise_gen = torch.Generator(device=dev).manual_seed(12_345 + budget)
    need_forget = bool((forget_w != 0).any())
    need_l1, need_l2 = bool((l1_base > 0).any()), bool((l2_base > 0).any())
    need_noise = bool((sigma > 0).any())
    n_r, n_f = d.xr.shape[1], d.xf.shape[1]
    w_r = (retain_w / n_r).view(-1, 1, 1).expand(-1, n_r, 1)
    if need_forget:
        xs, ys = torch.cat([d.xr, d.xf], 1), torch.cat([d.yr, d.yf], 1)
        ws = torch.cat([w_r, (forget_w / n_f).view(-1, 1, 1).expand(-1, n_f, 1)], 1)
    else:
        xs, ys, ws = d.xr, d.yr, w_r.contiguous()
    opt = AdamW(theta, lr, cfg.weight_decay)
    n_pert = min(cfg.n_pert, cfg.n_retain)
    for epoch in range(budget):
        if check is not None:
            check()
        due = [
            k
            for k in minnorm
            if epoch < budget - sets[k].hp["gd_epochs"] and epoch % sets[k].hp["proj_every"] == 0
        ]
        if due:
            idx = torch.tensor(due, device=dev)
            new = project_mlp(unflat(theta[idx], width), d.xr[idx][:, :n_pert], strength[idx])
            theta[idx] = flat(new)
            strength[idx] = strength[idx] * mn_decay[idx]
        # retain_w * MSE_r + forget_w * MSE_f in one pass: per-point weights on retain + forget
        _, grad = weighted_sq_grad(theta, width, xs, ys, ws)
        if need_l1:
            coef = l1_base if epoch == 0 else (2 - 2 * (epoch - 1) / budget) * l1_base
            grad += coef.view(-1, 1) * torch.sign(theta)
        if need_l2:
            grad += (2 * l2_base * l2_decay**epoch).view(-1, 1) * theta
        if need_noise:
            grad = grad + sigma * torch.randn(
                grad.shape, generator=noise_gen, device=dev, dtype=grad.dtype
            )
        opt.step(grad)
    return sup_error(unflat(theta, width), d.x_test)


# -- selection and intervals -----------------------------------------------------------------------
def median_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval of the median from order statistics: the widest symmetric pair
    (x_(k), x_(n+1-k)) whose binomial coverage is at least ``confidence`` (n = 6: min and max,
    96.9%)."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    k = 1
    for cand in range(n // 2, 0, -1):
        tail = sum(math.comb(n, i) for i in range(cand)) / 2**n  # P(Binomial(n, 1/2) < cand)
        if 1 - 2 * tail >= confidence:
            k = cand
            break
    return float(x[k - 1]), float(x[n - k])


def select_official(errors: np.ndarray) -> int:
    """The authors' choice (``grid_search.py`` + ``parse_results.py``): the setting(s) with the
    lowest mean sup-error over all seeds, then the narrowest central range.  It selects on the
    reported metric itself."""
    means = np.where(np.isfinite(errors).all(1), errors.mean(1), math.inf)
    best = np.flatnonzero(means == means.min())
    n = errors.shape[1]
    drop = n // 4
    srt = np.sort(errors[best], axis=1)
    central = srt[:, n - drop - 1] - srt[:, drop]
    return int(best[int(np.argmin(central))])


def select_heldout(errors: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Two-fold cross-fitting over seeds: the setting with the lowest mean on one half is scored
    on the other half.  Returns the held-out sup-error of every seed and the two choices."""
    n = errors.shape[1]
    half = np.arange(n) < n // 2
    out = np.zeros(n)
    chosen = []
    for fit in (half, ~half):
        sub = errors[:, fit]
        means = np.where(np.isfinite(sub).all(1), sub.mean(1), math.inf)
        k = int(np.argmin(means))
        out[~fit] = errors[k, ~fit]
        chosen.append(k)
    return out, chosen


def reselect(tables: list[dict[str, Any]], method: str) -> dict[str, Any]:
    """Both selections for ``method`` over the union of the settings of several
    ``sine_errors_<E>`` tables (runs that split one budget's grid, e.g. by decay): the medians,
    their intervals and the chosen settings, as the job itself would report them."""
    labels: list[str] = []
    rows: list[list[float]] = []
    columns = None
    for table in tables:
        if columns is not None and table["columns"] != columns:
            raise ValueError("the tables' seeds differ; only runs over the same seeds combine")
        columns = table["columns"]
        for row in table["rows"]:
            if row[0] == method and row[1] not in labels:
                labels.append(row[1])
                rows.append([float(v) for v in row[2:]])
    if not rows:
        raise ValueError(f"no {method} settings in these tables")
    errors = np.asarray(rows)
    k = select_official(errors)
    held, chosen = select_heldout(errors)
    return {
        "settings": len(labels),
        "official": float(np.median(errors[k])),
        "official_ci": median_interval(errors[k]),
        "official_setting": labels[k],
        "heldout": float(np.median(held)),
        "heldout_ci": median_interval(held),
        "heldout_settings": [labels[c] for c in chosen],
    }


# -- the job ---------------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    return "diverges" if not math.isfinite(v) or v > DIVERGED else f"{v:.2f}"


def run(ctx: JobContext) -> dict[str, float]:
    """The ``classifier.sine_minnorm`` job: pretrain (cached), every method's grid at every
    budget, the two selections, metrics ``<method>/sup_error_<E>`` (official) and
    ``<method>/sup_error_<E>_heldout``, the table and the functions for the sine view."""
    from workbench.artifacts import SineFunctions, Table

    cfg: SineConfig = ctx.config
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    seeds = [ctx.seed + k for k in range(cfg.seeds)]
    cache = ctx.project.root / "cache" / "classifier" / "sine"
    ctx.status("pretraining (cached after the first run)")
    t0 = time.perf_counter()
    base = pretrain(
        cfg,
        seeds,
        cache,
        check=ctx.check,
        progress=lambda f: ctx.progress(0.4 * f, 1.0, "pretraining"),
        log=ctx.log,
    )
    ctx.log(f"pretrained models ready in {time.perf_counter() - t0:.0f} s")
    data = make_data(cfg, seeds, base.device)
    orig_err, orig_f = sup_error(unflat(base, cfg.width), data.x_test)
    with torch.no_grad():  # does the original interpolate (the paper's premise)?
        fit_r = mse(forward(unflat(base, cfg.width), data.xr), data.yr).cpu().numpy()
        fit_f = mse(forward(unflat(base, cfg.width), data.xf), data.yf).cpu().numpy()
    for k, seed in enumerate(seeds):
        ctx.log(
            f"seed {seed}: original retain MSE {fit_r[k]:.2e}, forget MSE {fit_f[k]:.2e}, "
            f"sup-error {orig_err[k]:.2f}"
        )
    zero_err = float(np.abs(np.sin(data.x_test.cpu().numpy())).max())
    ctx.metrics(
        {
            "original/sup_error": float(np.median(orig_err)),
            "zero_predictor/sup_error": zero_err,
            "original/retain_mse": float(np.median(fit_r)),
            "original/forget_mse": float(np.median(fit_f)),
        }
    )
    results: dict[str, float] = {"original/sup_error": float(np.median(orig_err))}
    rows: list[list[Any]] = []
    x = data.x_test.cpu().numpy()
    series: dict[str, tuple[list[float], list[float]]] = {
        "sin x": (x.tolist(), np.sin(x).tolist()),
        "original": (x.tolist(), orig_f[0].tolist()),
        "forget points": (data.xf[0, :, 0].tolist(), data.yf[0, :, 0].tolist()),
        "retain points": (data.xr[0, :, 0].tolist(), data.yr[0, :, 0].tolist()),
    }
    budgets = sorted(cfg.budgets)
    for b_i, budget in enumerate(budgets):
        settings = grid(cfg, budget)
        ctx.status(f"{budget} epochs: {len(settings)} settings x {len(seeds)} seeds")
        t1 = time.perf_counter()
        lo, hi = 0.4 + 0.6 * b_i / len(budgets), 0.4 + 0.6 * (b_i + 1) / len(budgets)
        errors, funcs = run_settings(
            cfg,
            budget,
            settings,
            base,
            data,
            seeds,
            check=ctx.check,
            progress=lambda f, lo=lo, hi=hi: ctx.progress(lo + (hi - lo) * f, 1.0, "grid"),
        )
        ctx.log(f"{budget} epochs: {len(settings)} settings in {time.perf_counter() - t1:.0f} s")
        ctx.artifact(  # every setting's sup-error on every seed: selections can be redone later
            f"sine_errors_{budget}",
            Table(
                columns=["method", "setting", *(f"seed {s}" for s in seeds)],
                rows=[
                    [st.method, st.label(), *(float(e) for e in errors[i])]
                    for i, st in enumerate(settings)
                ],
                title=f"Sup-error of every setting at {budget} epochs, per seed",
            ),
        )
        for method in cfg.methods:
            idx = [i for i, s in enumerate(settings) if s.method == method]
            err = errors[idx]
            k = select_official(err)
            held, chosen = select_heldout(err)
            off = err[k]
            name = f"{method}/sup_error_{budget}"
            med_off, med_held = float(np.median(off)), float(np.median(held))
            ctx.metrics({name: med_off, f"{name}_heldout": med_held})
            results[name], results[f"{name}_heldout"] = med_off, med_held
            ci_off, ci_held = median_interval(off), median_interval(held)
            rows.append(
                [
                    method,
                    budget,
                    _fmt(med_off),
                    f"[{_fmt(ci_off[0])}, {_fmt(ci_off[1])}]",
                    settings[idx[k]].label(),
                    _fmt(med_held),
                    f"[{_fmt(ci_held[0])}, {_fmt(ci_held[1])}]",
                    " ; ".join(settings[idx[c]].label() for c in chosen),
                    "yes" if ci_off[1] < zero_err else "no",
                    "yes" if ci_held[1] < zero_err else "no",
                    len(idx),
                ]
            )
            ctx.log(
                f"{budget} epochs {method}: official {_fmt(med_off)} {ci_off} "
                f"({settings[idx[k]].label()}); held-out {_fmt(med_held)} {ci_held}"
            )
            f0 = funcs[idx[k], 0]
            if np.isfinite(f0).all() and np.abs(f0).max() < DIVERGED:
                series[f"{method} @{budget}"] = (x.tolist(), f0.tolist())
    ctx.artifact(
        "sine_table",
        Table(
            columns=[
                "method",
                "epochs",
                "median (official)",
                "95% CI",
                "setting (official)",
                "median (held-out)",
                "95% CI (held-out)",
                "settings (held-out folds)",
                "beats zero (official)",
                "beats zero (held-out)",
                "grid size",
            ],
            rows=rows,
            title=f"Median sup-error over {len(seeds)} seeds; predicting 0 scores {zero_err:.2f}",
        ),
    )
    ctx.artifact(
        "sine_functions",
        SineFunctions(
            series=series,
            x_label="x",
            y_label="f(x)",
            title=f"Seed {seeds[0]}: functions after unlearning (official selection)",
        ),
    )
    ctx.artifact("sine_config", _config_text(cfg))
    return results


def _config_text(cfg: SineConfig) -> Any:
    from workbench.artifacts import Text

    return Text(json.dumps(asdict(cfg), indent=1))


if __name__ == "__main__":
    # python -m backends.classifier.sine_run reselect METHOD ERRORS_JSON [ERRORS_JSON ...]
    import sys

    if len(sys.argv) < 4 or sys.argv[1] != "reselect":
        raise SystemExit(
            "usage: python -m backends.classifier.sine_run reselect METHOD "
            "runs/N/artifacts/sine_errors_E.json [...]"
        )
    found = reselect([json.loads(Path(f).read_text()) for f in sys.argv[3:]], sys.argv[2])
    print(json.dumps(found, indent=1))
