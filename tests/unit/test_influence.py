"""Influence estimators (backends/common/influence.py, spec section 4) on cases with known answers:
exact influence against leave-one-out retraining of L2-regularised logistic regression, and CG
and LiSSA against the exact inverse Hessian-vector product."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torch import nn

from backends.common.influence import (
    FlatModel,
    cg_solve,
    exact_solve,
    influence_scores,
    last_layer,
    lissa_solve,
    spearman,
)

N_TRAIN, N_VAL, DIM, L2 = 30, 40, 4, 0.05


def _bce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(out[:, 0], y, reduction="none")


def _logistic_data() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    w = rng.normal(size=DIM)
    x = rng.normal(size=(N_TRAIN + N_VAL, DIM))
    y = (rng.random(N_TRAIN + N_VAL) < 1 / (1 + np.exp(-x @ w))).astype(float)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """argmin mean_i BCE(x_i [w; b], y_i) + (L2/2)(|w|² + b²), by L-BFGS to machine precision
    (numpy and scipy only: independent of the code under test)."""
    xb = np.hstack([x, np.ones((len(x), 1))])

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = xb @ theta
        p = 1 / (1 + np.exp(-z))
        loss = np.mean(np.logaddexp(0, z) - y * z) + 0.5 * L2 * theta @ theta
        return loss, xb.T @ (p - y) / len(y) + L2 * theta

    res = minimize(
        f,
        np.zeros(DIM + 1),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-13, "ftol": 0, "maxiter": 10_000},
    )
    return res.x


def _val_loss(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    z = np.hstack([x, np.ones((len(x), 1))]) @ theta
    return float(np.sum(np.logaddexp(0, z) - y * z))


def test_exact_influence_matches_leave_one_out_retraining() -> None:
    xt, yt, xv, yv = _logistic_data()
    theta = _fit(xt, yt)
    actual = np.array(
        [
            _val_loss(_fit(np.delete(xt, i, 0), np.delete(yt, i)), xv, yv)
            - _val_loss(theta, xv, yv)
            for i in range(N_TRAIN)
        ]
    )
    model = nn.Linear(DIM, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(theta[:DIM])[None])
        model.bias.copy_(torch.from_numpy(theta[DIM:]))
    flat = FlatModel(model, _bce, l2=L2)
    train = (torch.from_numpy(xt), torch.from_numpy(yt))
    val = (torch.from_numpy(xv), torch.from_numpy(yv))
    res = influence_scores(flat, train, train, val, "exact", damping=0.0, aggregate="total")
    predicted = -res.total / N_TRAIN  # removing z changes the validation loss by -I(z, V)/n
    assert np.array_equal(np.sign(predicted), np.sign(actual))
    assert spearman(predicted, actual) > 0.9
    assert np.array_equal(res.scores, np.abs(res.total))


def _small_mlp() -> tuple[FlatModel, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    x = torch.randn(64, 5)
    y = torch.randint(0, 3, (64,))
    flat = FlatModel(
        model, lambda o, t: nn.functional.cross_entropy(o, t, reduction="none"), last_layer(model)
    )
    return flat, (x, y)


def test_cg_and_lissa_agree_with_the_exact_inverse_hvp() -> None:
    flat, (x, y) = _small_mlp()
    assert flat.names == ["2.weight", "2.bias"] and flat.dim == 27
    h = flat.hessian(x, y)
    v = flat.per_example_grads(x[:5], y[:5])
    damping = 0.05
    exact = exact_solve(h, v, damping)
    assert torch.allclose((h + damping * torch.eye(27, dtype=h.dtype)) @ exact.T, v.T, atol=1e-10)
    hvp = flat.hvp_fn(x, y)
    cg, iters = cg_solve(hvp, v, damping, tol=1e-12)
    assert iters <= 27 + 5
    assert torch.allclose(cg, exact, rtol=1e-7, atol=1e-9)
    top = float(torch.linalg.eigvalsh(h)[-1])
    lissa = lissa_solve(hvp, v, damping, scale=1.1 * (top + damping), depth=400)
    assert float((lissa - exact).norm() / exact.norm()) < 1e-3
    # a scale below the top eigenvalue diverges instead of converging: the rate rule matters
    bad = lissa_solve(hvp, v, damping, scale=0.3 * top, depth=200)
    assert float((bad - exact).norm() / exact.norm()) > 1.0


def test_hessian_estimators_rank_points_alike_and_the_proxies_are_not_identities() -> None:
    flat, (x, y) = _small_mlp()
    train, points, val = (x, y), (x[:20], y[:20]), (x[40:], y[40:])
    got = {
        e: influence_scores(flat, train, points, val, e, damping=0.05, lissa_depth=400).scores
        for e in ("exact", "cg", "lissa", "grad_norm", "less")
    }
    np.testing.assert_allclose(got["cg"], got["exact"], rtol=1e-7)
    np.testing.assert_allclose(got["lissa"], got["exact"], rtol=1e-2)
    assert spearman(got["lissa"], got["exact"]) > 0.99
    # the gradient norm bounds |I|: |I(z,t)| <= |g_t| |(H+λI)^-1| |g_z| for every pair
    h = flat.hessian(x, y)
    inv_norm = 1.0 / float(torch.linalg.eigvalsh(h)[0] + 0.05)
    gv = flat.per_example_grads(*val).norm(dim=1).mean().item()
    assert np.all(got["exact"] <= got["grad_norm"] * inv_norm * gv + 1e-12)
    assert np.all(got["less"] <= 1.0)


def test_bad_estimator_and_indefinite_hessian_give_clear_errors() -> None:
    flat, (x, y) = _small_mlp()
    with pytest.raises(ValueError, match="unknown influence estimator 'nope'"):
        influence_scores(flat, (x, y), (x, y), (x, y), "nope")
    h = -torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="not positive definite.*damping above 1"):
        exact_solve(h, torch.ones(1, 3, dtype=torch.float64), 0.0)
