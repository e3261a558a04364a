"""Influence of training points on a validation set, for any family's torch model (spec section 4).

Spec: ``/work/shared/specs/classifier-and-llm-methods.md`` section 4 ("When unlearning is free"),
step 1: score every forget point ``z`` by its influence on a validation set ``V``,
``s(z) = mean_{t in V} |I(z, t)|`` with Koh & Liang's ``I(z, t) = -∇ℓ(t)ᵀ H⁻¹ ∇ℓ(z)``, and
provide the cheaper estimators next to it.  Estimators (:data:`ESTIMATORS`):

- ``exact``: the Hessian ``H`` of the training objective, built column by column from
  Hessian-vector products, damped (``H + λI``) and solved directly (small models: a few thousand
  parameters; :class:`FlatModel` picks which parameters, e.g. the last layer);
- ``cg``: the same ``(H + λI)⁻¹ ∇ℓ(t)`` by conjugate gradients on Hessian-vector products;
- ``lissa``: the same by LiSSA's truncated Neumann series
  ``(1/s) Σ_k (I - (H + λI)/s)^k v`` (Agarwal et al.; Koh & Liang section 3), full-batch or
  stochastic (mini-batch Hessian-vector products);
- ``grad_norm``: ``‖∇ℓ(z)‖`` ("lowest gradients"): by Cauchy-Schwarz
  ``|I(z, t)| ≤ ‖∇ℓ(t)‖ ‖H⁻¹‖ ‖∇ℓ(z)‖``, so a small gradient bounds the influence on any
  test point;
- ``less``: LESS-like similarity (Xia et al. 2024), gradients randomly projected to ``k``
  dimensions, ``s(z) = mean_t |cos(P∇ℓ(z), P∇ℓ(t))|``.  LESS's Adam preconditioning needs the
  optimiser state of training, which a saved model does not carry; plain gradients are used and
  the cosine discards the gradient's size (so low cosine is not low influence).

The objective whose Hessian is used is ``mean_i ℓ(z_i; θ) + (l2 / 2)‖θ‖²`` over the training
points given (``l2`` is a real regulariser of the training, as in the logistic-regression test;
``damping`` is added only to make ``H`` invertible).  The predicted change of the validation loss
``L_V`` when ``z`` is removed from ``n`` training points is ``-I(z, V) / n``.

Family-agnostic: a model is any ``nn.Module`` and a per-example loss ``loss(outputs, targets)``
(``reduction='none'``); per-example gradients use ``torch.func`` (``vmap(grad(...))``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from backends.common.pruning import AGGREGATES, ESTIMATORS

__all__ = [
    "AGGREGATES",
    "ESTIMATORS",
    "FlatModel",
    "InfluenceResult",
    "cg_solve",
    "exact_solve",
    "gradient_scores",
    "influence_scores",
    "last_layer",
    "less_scores",
    "lissa_solve",
    "spearman",
]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def last_layer(model: nn.Module) -> list[str]:
    """Names of the trainable parameters of the model's last module that has any (the output
    layer's weight and bias for the workbench MLP and CNN)."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if not names:
        raise ValueError("the model has no trainable parameters")
    owner = names[-1].rpartition(".")[0]
    return [n for n in names if n.rpartition(".")[0] == owner]


class FlatModel:
    """Chosen parameters of ``model`` as one flat vector ``θ`` (the others frozen), and the
    per-example losses as a function of ``θ``.

    ``params``: parameter names (``None``: every trainable one; :func:`last_layer` for the output
    layer).  ``dtype``: the precision of the computation (float64 by default: the exact solve and
    the comparisons between estimators need it).  ``l2``: the training objective's own L2 term."""

    def __init__(
        self,
        model: nn.Module,
        loss: Loss,
        params: Sequence[str] | None = None,
        *,
        l2: float = 0.0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.model = model.eval()
        self.loss = loss
        self.l2 = float(l2)
        self.dtype = dtype
        named = dict(model.named_parameters())
        chosen = (
            list(params) if params is not None else [n for n, p in named.items() if p.requires_grad]
        )
        unknown = [n for n in chosen if n not in named]
        if unknown or not chosen:
            raise ValueError(
                f"unknown parameter(s) {unknown or chosen}; the model has {', '.join(named)}"
            )
        self.names = chosen
        self.shapes = [named[n].shape for n in chosen]
        self.numels = [named[n].numel() for n in chosen]
        self.device = next(iter(named.values())).device
        self.theta = torch.cat([named[n].detach().reshape(-1) for n in chosen]).to(dtype)
        self.fixed = {
            n: t.detach().to(dtype) if t.is_floating_point() else t.detach()
            for n, t in [*named.items(), *model.named_buffers()]
            if n not in chosen
        }

    @property
    def dim(self) -> int:
        return int(self.theta.numel())

    def _params(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(theta, self.numels)
        return {
            **self.fixed,
            **{n: p.reshape(s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)},
        }

    def _x(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, self.dtype) if x.is_floating_point() else x.to(self.device)

    def losses(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example losses ``ℓ(z_i; θ)`` (no L2 term)."""
        out = functional_call(self.model, self._params(theta), (self._x(x),))
        return self.loss(out, y.to(self.device))

    def objective(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``mean_i ℓ(z_i; θ) + (l2/2)‖θ‖²``."""
        return self.losses(theta, x, y).mean() + 0.5 * self.l2 * theta.dot(theta)

    def per_example_grads(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """``(n, d)``: ``∇_θ ℓ(z_i; θ)`` for each example (the loss alone, no L2 term)."""

        def single(theta: torch.Tensor, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
            return self.losses(theta, xi[None], yi[None])[0]

        g = vmap(grad(single), in_dims=(None, 0, 0))
        return torch.cat(
            [g(self.theta, x[i : i + chunk], y[i : i + chunk]) for i in range(0, len(x), chunk)]
        )

    def hvp_fn(
        self, x: torch.Tensor, y: torch.Tensor, chunk: int = 4096
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``v -> H v`` for the objective on ``(x, y)``, exact; ``v`` may be one vector ``(d,)``
        or a batch ``(k, d)``.  The gradient's graph is built once (per chunk of data) and kept,
        so each product is one double-backward pass."""
        n = len(x)
        theta = self.theta.clone().requires_grad_(True)
        grads = []
        with torch.enable_grad():
            for i in range(0, n, chunk):
                loss = self.losses(theta, x[i : i + chunk], y[i : i + chunk]).sum() / n
                grads.append(torch.autograd.grad(loss, theta, create_graph=True)[0])

        def hvp(v: torch.Tensor) -> torch.Tensor:
            out = self.l2 * v
            for g in grads:
                out = (
                    out
                    + torch.autograd.grad(
                        g, theta, v, retain_graph=True, is_grads_batched=v.dim() == 2
                    )[0]
                )
            return out

        return hvp

    def hessian(self, x: torch.Tensor, y: torch.Tensor, block: int = 128) -> torch.Tensor:
        """The ``(d, d)`` Hessian of the objective, ``block`` columns at a time (symmetrised)."""
        hvp = self.hvp_fn(x, y)
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        cols = [hvp(eye[i : i + block]) for i in range(0, self.dim, block)]
        h = torch.cat(cols).T
        return 0.5 * (h + h.T)


# -- inverse Hessian-vector products ----------------------------------------------------------------


def exact_solve(hessian: torch.Tensor, vectors: torch.Tensor, damping: float) -> torch.Tensor:
    """``(H + λI)⁻¹ v`` for each row ``v`` of ``vectors (m, d)`` by a direct solve.  Raises
    ``ValueError`` when ``H + λI`` is not positive definite (raise ``damping``)."""
    a = hessian + damping * torch.eye(len(hessian), dtype=hessian.dtype, device=hessian.device)
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) != 0:
        low = float(torch.linalg.eigvalsh(hessian)[0])
        raise ValueError(
            f"the damped Hessian is not positive definite (smallest eigenvalue of H is {low:.3g}); "
            f"use a damping above {max(-low, 0.0):.3g}"
        )
    return torch.cholesky_solve(vectors.T, chol).T


def cg_solve(
    hvp: Callable[[torch.Tensor], torch.Tensor],
    vectors: torch.Tensor,
    damping: float,
    *,
    tol: float = 1e-10,
    max_iter: int = 500,
) -> tuple[torch.Tensor, int]:
    """``(H + λI)⁻¹ v`` for each row of ``vectors (m, d)`` by conjugate gradients (all rows at
    once, each with its own step sizes), until every relative residual is below ``tol``.
    Returns the solutions and the iterations run."""
    b = vectors
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = (r * r).sum(1)
    stop = tol**2 * (b * b).sum(1).clamp_min(1e-300)
    iters = 0
    for step in range(1, max_iter + 1):
        iters = step
        ap = hvp(p) + damping * p
        alpha = rs / (p * ap).sum(1).clamp_min(1e-300)
        x = x + alpha[:, None] * p
        r = r - alpha[:, None] * ap
        rs_new = (r * r).sum(1)
        if bool((rs_new <= stop).all()):
            break
        p = r + (rs_new / rs.clamp_min(1e-300))[:, None] * p
        rs = rs_new
    return x, iters


def lissa_solve(
    hvp: Callable[[torch.Tensor], torch.Tensor],
    vectors: torch.Tensor,
    damping: float,
    *,
    scale: float,
    depth: int = 1000,
    repeats: int = 1,
    batch_hvp: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``(H + λI)⁻¹ v`` by LiSSA: ``h₀ = v``, ``h_j = v + h_{j-1} - (H + λI) h_{j-1} / s``,
    result ``h_depth / s`` (the Neumann series of ``((H + λI)/s)⁻¹``), averaged over ``repeats``.

    It converges when ``s`` exceeds the largest eigenvalue of ``H + λI``, at the rate
    ``1 - (λ_min + λ)/s`` per step.  ``batch_hvp(v, step)``: a stochastic mini-batch
    Hessian-vector product used instead of ``hvp`` (LiSSA's usual form); ``hvp`` otherwise."""
    if scale <= 0:
        raise ValueError(f"LiSSA scale {scale} must be positive")
    total = torch.zeros_like(vectors)
    step = 0
    for _ in range(repeats):
        h = vectors.clone()
        for _ in range(depth):
            hv = batch_hvp(h, step) if batch_hvp is not None else hvp(h)
            h = vectors + h - (hv + damping * h) / scale
            step += 1
        total = total + h / scale
    return total / repeats


def largest_eigenvalue(
    hvp: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    dtype: torch.dtype,
    device: torch.device,
    iters: int = 50,
    seed: int = 0,
) -> float:
    """The largest eigenvalue of a positive semi-definite ``H`` by power iteration (LiSSA's
    scale is set above it)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(dim, generator=g, dtype=dtype).to(device)
    v = v / v.norm()
    value = 0.0
    for _ in range(iters):
        w = hvp(v)
        value = float(v.dot(w))
        norm = w.norm()
        if float(norm) == 0.0:
            return 0.0
        v = w / norm
    return value


# -- scores ----------------------------------------------------------------------------------------


def less_scores(
    train_grads: torch.Tensor, val_grads: torch.Tensor, dim: int, seed: int
) -> torch.Tensor:
    """``mean_t |cos(P g_z, P g_t)|`` with a seeded Gaussian projection ``P`` to ``dim``
    dimensions (LESS without the Adam preconditioner)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(train_grads.shape[1], dim, generator=g, dtype=train_grads.dtype)
    p = p.to(train_grads.device) / math.sqrt(dim)
    a = nn.functional.normalize(train_grads @ p, dim=1)
    b = nn.functional.normalize(val_grads @ p, dim=1)
    return (a @ b.T).abs().mean(1)


def gradient_scores(
    estimator: str,
    point_grads: torch.Tensor,
    val_grads: torch.Tensor | None = None,
    *,
    less_dim: int = 256,
    seed: int = 0,
    chunk: int = 65_536,
) -> np.ndarray:
    """The Hessian-free estimators on precomputed gradients (rows: one point each), for models
    whose per-example gradients are not a ``vmap`` away (a language model's fact: the mean NLL
    of its several texts): ``grad_norm`` is ``‖g_z‖``; ``less`` is ``mean_t |cos(P g_z, P g_t)|``
    with a seeded Gaussian projection ``P`` drawn ``chunk`` parameter rows at a time, so a
    million-parameter model never holds the whole ``d x k`` matrix."""
    if estimator == "grad_norm":
        return point_grads.norm(dim=1).cpu().numpy()
    if estimator != "less":
        raise ValueError(f"gradient_scores computes grad_norm or less, not {estimator!r}")
    if val_grads is None:
        raise ValueError("the less estimator needs the validation gradients")
    g = torch.Generator().manual_seed(seed)
    d = point_grads.shape[1]
    pz = torch.zeros(len(point_grads), less_dim, dtype=point_grads.dtype)
    pv = torch.zeros(len(val_grads), less_dim, dtype=val_grads.dtype)
    for start in range(0, d, chunk):
        stop = min(d, start + chunk)
        p = torch.randn(stop - start, less_dim, generator=g, dtype=point_grads.dtype)
        pz += point_grads[:, start:stop].cpu() @ p
        pv += val_grads[:, start:stop].cpu() @ p
    a = nn.functional.normalize(pz, dim=1)
    b = nn.functional.normalize(pv, dim=1)
    return (a @ b.T).abs().mean(1).numpy()


def spearman(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """Spearman rank correlation (``scipy.stats.spearmanr``)."""
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a, dtype=float), np.asarray(b, dtype=float)).statistic)


@dataclass
class InfluenceResult:
    """Scores of the scored points (higher: more influence), the estimator and its cost.

    ``matrix``: ``I(z, t)`` for every scored point and validation point (Hessian estimators with
    ``aggregate='mean_abs'``), ``total``: ``I(z, V)`` on the summed validation loss (with
    ``aggregate='total'``); ``info``: iterations, LiSSA's scale, parameters used."""

    estimator: str
    scores: np.ndarray
    seconds: float
    matrix: np.ndarray | None = None
    total: np.ndarray | None = None
    info: dict[str, float] = field(default_factory=dict)


def influence_scores(
    flat: FlatModel,
    train: tuple[torch.Tensor, torch.Tensor],
    points: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor],
    estimator: str,
    *,
    damping: float = 0.01,
    aggregate: str = "mean_abs",
    cg_tol: float = 1e-10,
    cg_max_iter: int = 500,
    lissa_depth: int = 1000,
    lissa_repeats: int = 1,
    lissa_batch: int = 0,
    less_dim: int = 256,
    seed: int = 0,
    hessian: torch.Tensor | None = None,
    check: Callable[[], None] | None = None,
) -> InfluenceResult:
    """Score each of ``points`` by its influence on ``validation`` under the objective on
    ``train`` (spec section 4, step 1) with ``estimator`` (one of :data:`ESTIMATORS`).

    ``aggregate``: ``mean_abs`` scores ``mean_t |I(z, t)|`` (one inverse-HVP per validation
    point); ``total`` scores ``|I(z, V)|`` with ``I(z, V) = -(Σ_t ∇ℓ(t))ᵀ H⁻¹ ∇ℓ(z)``, the influence
    on the summed validation loss (one inverse-HVP).  ``lissa_batch``: 0 for full-batch
    Hessian-vector products, else the mini-batch size of stochastic LiSSA.  ``hessian``: a
    precomputed Hessian of the objective (``exact``)."""
    if estimator not in ESTIMATORS:
        raise ValueError(
            f"unknown influence estimator {estimator!r}; known: {', '.join(ESTIMATORS)}"
        )
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}; known: {', '.join(AGGREGATES)}")
    t0 = time.perf_counter()
    info: dict[str, float] = {"parameters": float(flat.dim)}
    gz = flat.per_example_grads(*points)
    if check is not None:
        check()
    if estimator == "grad_norm":
        scores = gz.norm(dim=1)
        return InfluenceResult(estimator, scores.cpu().numpy(), time.perf_counter() - t0, info=info)
    gv = flat.per_example_grads(*validation)
    if estimator == "less":
        scores = less_scores(gz, gv, less_dim, seed)
        return InfluenceResult(estimator, scores.cpu().numpy(), time.perf_counter() - t0, info=info)
    rhs = gv.sum(0, keepdim=True) if aggregate == "total" else gv
    if estimator == "exact":
        h = hessian if hessian is not None else flat.hessian(*train)
        if check is not None:
            check()
        solved = exact_solve(h, rhs, damping)
    elif estimator == "cg":
        solved, iters = cg_solve(
            flat.hvp_fn(*train), rhs, damping, tol=cg_tol, max_iter=cg_max_iter
        )
        info["cg_iterations"] = float(iters)
    else:
        hvp = flat.hvp_fn(*train)
        top = largest_eigenvalue(hvp, flat.dim, flat.dtype, flat.device, seed=seed)
        scale = 1.1 * (top + damping)
        info["lissa_scale"] = scale
        batch_hvp = None
        if lissa_batch:
            x, y = train
            g = torch.Generator().manual_seed(seed)

            def batch_hvp(v: torch.Tensor, step: int) -> torch.Tensor:
                idx = torch.randint(0, len(x), (lissa_batch,), generator=g)
                return flat.hvp_fn(x[idx], y[idx])(v)

        solved = lissa_solve(
            hvp,
            rhs,
            damping,
            scale=scale,
            depth=lissa_depth,
            repeats=lissa_repeats,
            batch_hvp=batch_hvp,
        )
    matrix = -(gz @ solved.T)  # I(z, t) = -∇ℓ(t)ᵀ (H + λI)⁻¹ ∇ℓ(z)
    if aggregate == "total":
        total = matrix[:, 0]
        return InfluenceResult(
            estimator,
            total.abs().cpu().numpy(),
            time.perf_counter() - t0,
            total=total.cpu().numpy(),
            info=info,
        )
    return InfluenceResult(
        estimator,
        matrix.abs().mean(1).cpu().numpy(),
        time.perf_counter() - t0,
        matrix=matrix.cpu().numpy(),
        info=info,
    )
