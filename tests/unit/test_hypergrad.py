"""ResAlign's hypergradient math on cases with a known answer (spec ``diffusion-methods.md``
section 1, "Hypergradient via the Moreau envelope" and "Minimal faithful CPU-scale version": the
quadratic toy), and the truncated-SVD projection of the ``full`` scenario (Eckart–Young)."""

from __future__ import annotations

import math

import pytest
import torch

from backends.diffusion.methods.hypergrad import (
    SavedTensorMeter,
    fixed_point_hypergradient,
    hvp_at,
    low_rank_factors,
    truncated_svd,
)

D = torch.float64


def _spd(eigenvalues: list[float], seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=gen, dtype=D))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=D)) @ q.T


def _toy(eigenvalues: list[float], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Inner L_FT(x) = ½x'Ax − b'x (Hessian A), outer linear c'x*: the exact hypergradient
    of the proximal point is d + (I + γA)⁻¹c."""
    gen = torch.Generator().manual_seed(seed + 1)
    n = len(eigenvalues)
    a = _spd(eigenvalues, seed)
    return a, *(torch.randn(n, generator=gen, dtype=D) for _ in range(3))


@pytest.mark.parametrize("gamma", [1.0, 2.0])
def test_the_fixed_point_matches_the_closed_form_on_a_quadratic(gamma: float) -> None:
    a, b_lin, c, d = _toy([0.05, 0.1, 0.2, 0.3, 0.45, 0.6])
    x_star = torch.linalg.solve(
        torch.eye(6, dtype=D) + gamma * a, torch.zeros(6, dtype=D) + gamma * b_lin
    )
    hvp = hvp_at(lambda th: 0.5 * th[0] @ a @ th[0] - b_lin @ th[0], [x_star])
    out = fixed_point_hypergradient(hvp, [d], [c], steps=300, gamma=gamma)
    exact = d + torch.linalg.solve(torch.eye(6, dtype=D) + gamma * a, c)
    assert not out.fallback and out.halvings == 0
    assert torch.allclose(out.grad[0], exact, atol=1e-8)


def test_five_steps_give_the_official_truncated_neumann_series() -> None:
    a, _, c, d = _toy([0.1, 0.3, 0.5, 0.7])
    out = fixed_point_hypergradient(lambda v: [a @ v[0]], [d], [c], steps=5)
    neumann = sum(torch.linalg.matrix_power(-a, j) @ c for j in range(5))
    assert out.iterations == 5
    assert torch.allclose(out.grad[0], d + neumann, atol=1e-12)
    # and it is NOT yet the exact solve: K = 5 truncates
    exact = d + torch.linalg.solve(torch.eye(4, dtype=D) + a, c)
    assert not torch.allclose(out.grad[0], exact, atol=1e-3)


def test_a_stiff_hessian_halves_eta_until_the_iteration_converges() -> None:
    # eigenvalues up to 10: J = (1 − η)I − ηA has spectral radius < 1 only for η < 2/11, so
    # η = 1, 0.5, 0.25 diverge and η = 0.125 is the first that converges
    a, _, c, d = _toy([0.2, 1.0, 4.0, 10.0], seed=3)
    out = fixed_point_hypergradient(lambda v: [a @ v[0]], [d], [c], steps=400)
    assert (out.halvings, out.diverged, out.capped, out.eta) == (3, 3, 0, 0.125)
    assert not out.fallback
    exact = d + torch.linalg.solve(torch.eye(4, dtype=D) + a, c)
    assert torch.allclose(out.grad[0], exact, atol=1e-8)


def test_the_norm_cap_halves_eta_then_falls_back_to_the_direct_gradient() -> None:
    a, _, c, d = _toy([0.1, 0.2, 0.3], seed=5)
    cap = float(d.norm()) * 0.5  # even the direct gradient alone is above it
    out = fixed_point_hypergradient(lambda v: [a @ v[0]], [d], [c], max_norm=cap, max_retries=5)
    assert out.fallback and out.capped == 6 and out.diverged == 0
    assert torch.equal(out.grad[0], d)
    # a cap between ‖d‖ and the full hypergradient's norm is met after a few halvings
    full = fixed_point_hypergradient(lambda v: [a @ v[0]], [d], [c])
    mid = 0.5 * (float(d.norm()) + full.norm) if full.norm > float(d.norm()) else full.norm
    capped = fixed_point_hypergradient(lambda v: [a @ v[0]], [d], [c], max_norm=mid)
    assert not capped.fallback and capped.norm <= mid


def test_the_svd_projection_is_the_best_rank_r_approximation() -> None:
    gen = torch.Generator().manual_seed(7)
    m = torch.randn(12, 9, generator=gen, dtype=D)
    up, down = low_rank_factors(m, 3)
    approx = up @ down
    assert up.shape == (12, 3) and down.shape == (3, 9)
    assert int(torch.linalg.matrix_rank(approx)) <= 3
    s = torch.linalg.svdvals(m)
    # Eckart–Young: the squared error is the sum of the discarded squared singular values
    assert math.isclose(float((m - approx).pow(2).sum()), float(s[3:].pow(2).sum()), rel_tol=1e-9)
    u, s_, vh = torch.linalg.svd(m, full_matrices=False)
    assert torch.allclose(approx, u[:, :3] @ torch.diag(s_[:3]) @ vh[:3], atol=1e-10)
    # any other rank-3 matrix is worse
    other = torch.randn(12, 3, generator=gen, dtype=D) @ torch.randn(3, 9, generator=gen, dtype=D)
    assert float((m - other).pow(2).sum()) > float((m - approx).pow(2).sum())
    assert torch.allclose(truncated_svd(m, 9), m, atol=1e-10)
    up5, down5 = low_rank_factors(torch.randn(3, 4, generator=gen), 5)  # rank above min(out, in)
    assert up5.shape == (3, 5) and down5.shape == (5, 4)


def test_the_saved_tensor_tracker_sees_an_unrolled_graph_grow() -> None:
    """Positive control of the memory test in tests/backends/test_resalign.py: differentiating
    through unrolled inner steps keeps every step's graph, and the tracker sees it grow."""
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(64, 64, generator=gen) * 0.1
    x = torch.randn(32, 64, generator=gen)

    def unrolled(steps: int) -> int:
        tracker = SavedTensorMeter()
        with tracker.hooks():
            w = w0.clone().requires_grad_(True)
            cur = w
            for _ in range(steps):
                loss = torch.tanh(x @ cur).pow(2).sum()
                (g,) = torch.autograd.grad(loss, cur, create_graph=True)
                cur = cur - 0.01 * g
            torch.autograd.grad(cur.sum(), w)
        return tracker.peak

    assert unrolled(6) > 2 * unrolled(2)
