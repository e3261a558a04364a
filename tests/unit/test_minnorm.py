"""MinNorm-OG's math on cases with a known answer (spec section 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from backends.classifier.methods.minnorm_og import (
    output_gradients,
    project_model,
    project_out,
    projects,
    stratified,
)


def _overparameterised_regression(seed: int = 0) -> tuple[nn.Linear, np.ndarray, np.ndarray]:
    """A linear model (d = 40 weights + bias) interpolating 12 retain + 3 forget points, with a
    random component in the null space of all 15 points (so it is not the min-norm one)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(15, 40))
    y = rng.normal(size=15)
    xt = np.hstack([x, np.ones((15, 1))])
    theta, *_ = np.linalg.lstsq(xt, y, rcond=None)
    null = np.linalg.svd(xt)[2][15:].T  # basis of the null space of the 15 points
    theta = theta + null @ rng.normal(size=null.shape[1])
    assert np.allclose(xt @ theta, y)
    model = nn.Linear(40, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(theta[:40]).view(1, 40))
        model.bias.copy_(torch.from_numpy(theta[40:]))
    return model, x[:12], y[:12]


def test_one_projection_of_strength_1_is_the_min_norm_retain_interpolator() -> None:
    model, xr, yr = _overparameterised_regression()
    project_model(model, torch.from_numpy(xr), strength=1.0, task="regression")
    got = torch.cat([model.weight.detach().view(-1), model.bias.detach()]).numpy()
    want, *_ = np.linalg.lstsq(np.hstack([xr, np.ones((12, 1))]), yr, rcond=None)
    assert np.abs(got - want).max() < 1e-8


def test_strength_interpolates_between_theta_and_its_projection() -> None:
    model, xr, _ = _overparameterised_regression(1)
    theta = torch.cat([model.weight.detach().view(-1), model.bias.detach()])
    grads = output_gradients(model, torch.from_numpy(xr), "regression")
    full = project_out(theta, grads, 1.0)
    half = project_out(theta, grads, 0.3)
    assert torch.allclose(half, 0.7 * theta + 0.3 * full, atol=1e-12)
    # the update only moves theta orthogonally to G: outputs on the retain points are unchanged
    assert torch.allclose(grads @ half, grads @ theta, atol=1e-9)


def test_classifier_gradients_are_those_of_the_max_logit() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    got = output_gradients(model, x, "classification")
    for i in range(4):
        model.zero_grad()
        logits = model(x[i : i + 1])[0]
        logits[int(logits.argmax())].backward()
        want = torch.cat([p.grad.view(-1) for p in model.parameters()])
        assert torch.allclose(got[i], want, atol=1e-12)


def test_stratified_sample_takes_the_same_count_per_class() -> None:
    y = torch.tensor([0] * 30 + [1] * 10 + [2] * 20)
    idx = stratified(y, len(y), 30, torch.Generator().manual_seed(0))
    assert torch.bincount(y[idx]).tolist() == [10, 10, 10]
    assert len(set(idx.tolist())) == 30


def test_schedule_projects_every_t_proj_epochs_and_not_in_the_final_descent_epochs() -> None:
    assert [e for e in range(10) if projects(e, 10, 2, 3)] == [0, 2, 4, 6]
    assert [e for e in range(10) if projects(e, 10, 1, 0)] == list(range(10))


def test_bad_gradients_give_a_clear_error() -> None:
    with pytest.raises(FloatingPointError, match="not finite"):
        project_out(torch.zeros(3), torch.tensor([[float("nan"), 0.0, 0.0]]), 1.0)


def test_cnn_projection_moves_theta_orthogonally_to_the_max_logit_gradients() -> None:
    from backends.classifier.models import SmallCNN

    torch.manual_seed(0)
    model = SmallCNN(1, 8, [3, 4], 5).double()
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    grads = output_gradients(model, x, "classification")
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    project_model(model, x, strength=0.5)
    new = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert float((new - theta).norm()) > 1e-3  # the step is real
    # first order: the max logits of the projection points do not move
    assert torch.allclose(grads @ (new - theta), torch.zeros(6, dtype=torch.float64), atol=1e-10)
