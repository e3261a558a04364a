"""The generic math of ResAlign's hypergradient (spec ``diffusion-methods.md`` section 1,
"Hypergradient via the Moreau envelope" and the official ``src/train/hypergrad.py``).

The simulated fine-tune θ* is read as the proximal point of the fine-tuning loss,

    θ*(θ) ∈ argmin_θ′ L_FT(θ′) + ½γ⁻¹‖θ′ − θ‖²,

whose first-order condition gives dθ*/dθ = (I + γH)⁻¹ with H = ∇²L_FT(θ*).  The outer gradient is

    g = d + (I + γH)⁻¹ b,     d = ∂L_out/∂θ (direct),  b = ∂L_out/∂θ* (= λ∇L_h(θ*)).

:func:`fixed_point_hypergradient` solves the system the official way: one gradient step on the
proximal loss, Φ(θ′, θ) = θ′ − η(∇L_FT(θ′) + (θ′ − θ)/γ), and K vector-Jacobian steps
v_k = (∂Φ/∂θ′)ᵀ v_{k−1} + b from v_0 = 0; the indirect part is (∂Φ/∂θ)ᵀ v_K = (η/γ)·v_K.  With
∂Φ/∂θ′ = (1 − η/γ)·I − η·H only Hessian-vector products at θ* are needed, so the graph of ∇L_FT is
built once (whatever the number of inner steps, which are never unrolled) and reused for every
step and every retry.  Safeguards: when the mean over tensors of ‖Jv‖/‖v‖ exceeds 1 (divergence)
or ‖g‖ exceeds ``max_norm``, η is halved and the iteration restarts; after ``max_retries`` halvings
the direct gradient d alone is returned and the result says so (``fallback``).

:func:`hvp_at` builds the Hessian-vector product of any loss at a point; :func:`truncated_svd`
and :func:`low_rank_factors` project a full weight change back to rank r (the ``full`` scenario).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

Tensors = list[torch.Tensor]


@dataclass
class HypergradResult:
    """One hypergradient: ``grad`` (per tensor), the step ``eta`` it was found with, how many
    times η was ``halvings`` halved (``diverged`` for ‖Jv‖/‖v‖ > 1, ``capped`` for the norm cap),
    whether it ``fallback``-ed to the direct gradient, the fixed-point ``iterations`` of the
    accepted attempt and the global ``norm`` of ``grad``."""

    grad: Tensors
    eta: float
    halvings: int
    diverged: int
    capped: int
    fallback: bool
    iterations: int
    norm: float


def global_norm(tensors: Sequence[torch.Tensor]) -> float:
    """‖(t_1, …, t_n)‖₂ over all entries."""
    return math.sqrt(sum(float(t.detach().double().pow(2).sum()) for t in tensors))


def hvp_at(
    loss_fn: Callable[[Tensors], torch.Tensor], point: Sequence[torch.Tensor]
) -> Callable[[Tensors], Tensors]:
    """``v ↦ H v`` with H the Hessian of ``loss_fn`` at ``point``: ∇loss is built once with a graph
    (``create_graph``) and each call is one vector-Jacobian product through it."""
    leaves = [p.detach().clone().requires_grad_(True) for p in point]
    with torch.enable_grad():
        grads = torch.autograd.grad(loss_fn(leaves), leaves, create_graph=True)

    def hvp(v: Tensors) -> Tensors:
        out = torch.autograd.grad(grads, leaves, grad_outputs=v, retain_graph=True)
        return [o.detach() for o in out]

    return hvp


def fixed_point_hypergradient(
    hvp: Callable[[Tensors], Tensors],
    direct: Sequence[torch.Tensor],
    b: Sequence[torch.Tensor],
    *,
    steps: int = 5,
    gamma: float = 1.0,
    eta: float = 1.0,
    max_norm: float = math.inf,
    max_retries: int = 5,
    tol: float = 1e-10,
) -> HypergradResult:
    """``d + (η/γ)·v_K`` with v_K from K = ``steps`` fixed-point steps (module docstring), η halved on
    divergence or on ‖g‖ > ``max_norm``; the direct gradient after ``max_retries`` halvings."""
    if steps < 1:
        raise ValueError("the fixed-point iteration needs at least one step")
    if gamma <= 0 or eta <= 0:
        raise ValueError("gamma and eta must be positive")
    direct = [d.detach() for d in direct]
    b = [x.detach() for x in b]
    diverged = capped = 0
    for attempt in range(max_retries + 1):
        v = [torch.zeros_like(x) for x in b]
        bad, done = False, 0
        for k in range(steps):
            if k == 0:
                jv = [torch.zeros_like(x) for x in b]
            else:
                hv = hvp(v)
                jv = [(1.0 - eta / gamma) * vi - eta * hi for vi, hi in zip(v, hv, strict=True)]
                ratios = [
                    float(j.norm() / vi.norm())
                    for j, vi in zip(jv, v, strict=True)
                    if float(vi.norm()) > 0
                ]
                if ratios and sum(ratios) / len(ratios) > 1.0:
                    bad = True
                    break
            new = [j + bi for j, bi in zip(jv, b, strict=True)]
            done = k + 1
            residual = global_norm([n - o for n, o in zip(new, v, strict=True)])
            v = new
            if k > 0 and residual < tol:
                break
        if bad:
            diverged += 1
            eta *= 0.5
            continue
        grad = [d + (eta / gamma) * vi for d, vi in zip(direct, v, strict=True)]
        norm = global_norm(grad)
        if not math.isfinite(norm) or norm > max_norm:
            capped += 1
            eta *= 0.5
            continue
        return HypergradResult(grad, eta, attempt, diverged, capped, False, done, norm)
    return HypergradResult(
        [d.clone() for d in direct],
        eta,
        max_retries + 1,
        diverged,
        capped,
        True,
        0,
        global_norm(direct),
    )


def truncated_svd(delta: torch.Tensor, rank: int) -> torch.Tensor:
    """The best rank-``rank`` approximation of the matrix ``delta`` (Eckart–Young): U_r S_r V_rᵀ."""
    up, down = low_rank_factors(delta, rank)
    return up @ down


def low_rank_factors(delta: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(up, down)`` with up = U_r S_r (out × r) and down = V_rᵀ (r × in), the official split of
    the truncated SVD (``models.py`` SVD extraction); ``up @ down`` is the best rank-r
    approximation.  A rank above min(out, in) is padded with zero columns and rows."""
    if delta.dim() != 2:
        raise ValueError(f"low_rank_factors needs a matrix, got shape {tuple(delta.shape)}")
    if rank < 1:
        raise ValueError("rank must be at least 1")
    work = delta if delta.dtype == torch.float64 else delta.float()
    u, s, vh = torch.linalg.svd(work, full_matrices=False)
    r = min(rank, s.numel())
    up = u[:, :r] * s[:r]
    down = vh[:r]
    if r < rank:
        up = torch.cat([up, up.new_zeros(up.shape[0], rank - r)], 1)
        down = torch.cat([down, down.new_zeros(rank - r, down.shape[1])], 0)
    return up.to(delta.dtype), down.to(delta.dtype)


class SavedTensorMeter:
    """The bytes of the tensors autograd keeps saved for backward, live and at their peak, inside
    ``with meter.hooks():`` (a device-independent memory measure: an unrolled inner loop grows
    it with every step, the fixed-point hypergradient must not)."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0

    def _free(self, size: int) -> None:
        self.live -= size

    def _pack(self, t: torch.Tensor) -> _Saved:
        import weakref

        size = t.numel() * t.element_size()
        self.live += size
        self.peak = max(self.peak, self.live)
        box = _Saved(t)
        weakref.finalize(box, self._free, size)
        return box

    @staticmethod
    def _unpack(box: _Saved) -> torch.Tensor:
        return box.tensor

    def hooks(self) -> torch.autograd.graph.saved_tensors_hooks:
        return torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)


class _Saved:
    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


__all__ = [
    "HypergradResult",
    "SavedTensorMeter",
    "fixed_point_hypergradient",
    "global_norm",
    "hvp_at",
    "low_rank_factors",
    "truncated_svd",
]
