"""The sine-poisoning experiment of MinNorm-OG (spec section 3): its pieces on known answers and
one tiny run through the engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from backends.classifier import sine_run as sr
from backends.classifier.methods.minnorm_og import output_gradients, project_out
from backends.classifier.sine import SineConfig
from workbench.jobs import Engine
from workbench.registry import Registry
from workbench.store import Project


def _module_of(params: sr.Params, k: int) -> nn.Module:
    """Model ``k`` of stacked parameters as an ``nn.Sequential`` (float64)."""
    w1, b1, w2, b2, w3, b3 = (p[k].double() for p in params)
    width = w1.shape[0]
    net = nn.Sequential(nn.Linear(1, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU())
    net.append(nn.Linear(width, 1))
    with torch.no_grad():
        for lin, (w, b) in zip(
            [net[0], net[2], net[4]], [(w1, b1), (w2, b2), (w3, b3)], strict=True
        ):
            lin.weight.copy_(w)
            lin.bias.copy_(b)
    return net.double()


def test_stacked_forward_matches_each_model() -> None:
    params = sr.init_params(7, [0, 1, 2], stream=0)
    x = torch.linspace(-3, 3, 11).view(1, -1, 1).expand(3, -1, 1)
    out = sr.forward(params, x)
    for k in range(3):
        want = _module_of(params, k)(x[k].double()).float()
        assert torch.allclose(out[k], want, atol=1e-5)


def test_stacked_adamw_is_torch_adamw_per_model() -> None:
    torch.manual_seed(0)
    theta = torch.randn(2, 5)
    lr = torch.tensor([1e-2, 3e-3])
    opt = sr.AdamW(theta, lr, 0.01)
    refs = [theta[k].clone().requires_grad_(True) for k in range(2)]
    ref_opts = [torch.optim.AdamW([refs[k]], lr=float(lr[k]), weight_decay=0.01) for k in range(2)]
    for _ in range(4):
        grad = torch.randn(2, 5)
        opt.step(grad)
        for k in range(2):
            refs[k].grad = grad[k].clone()
            ref_opts[k].step()
    for k in range(2):
        assert torch.allclose(theta[k], refs[k].detach(), atol=1e-7)


def test_closed_form_gradient_is_autograds() -> None:
    """The hand back-propagation of the weighted squared error (retain + ascended forget points)
    equals autograd's gradient of the same loss."""
    torch.manual_seed(0)
    theta = sr.flat(sr.init_params(6, [0, 1, 2], stream=0)).double()
    x, y = torch.randn(3, 7, 1).double(), torch.randn(3, 7, 1).double()
    w = torch.rand(3, 7, 1).double() - 0.3  # negative weights: the ascended forget points
    loss, grad = sr.weighted_sq_grad(theta, 6, x, y, w)
    leaf = theta.clone().requires_grad_(True)
    want = (w * (sr.forward(sr.unflat(leaf, 6), x) - y) ** 2).sum(dim=(1, 2))
    (want_grad,) = torch.autograd.grad(want.sum(), leaf)
    assert torch.allclose(loss, want.detach(), atol=1e-12)
    assert torch.allclose(grad, want_grad, atol=1e-12)


def test_closed_form_projection_equals_the_qr_projection_of_the_method() -> None:
    params = sr.init_params(16, [0, 1], stream=0)
    data = sr.make_data(SineConfig(n_retain=9), [0, 1])
    strength = torch.tensor([1.0, 0.4])
    got = sr.flat(sr.project_mlp([p.double() for p in params], data.xr.double(), strength))
    for k in range(2):
        net = _module_of(params, k)
        grads = output_gradients(net, data.xr[k].double(), "regression")
        theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        want = project_out(theta, grads, float(strength[k]))
        assert torch.allclose(got[k], want, atol=1e-8)


def test_grids_are_the_official_ones() -> None:
    cfg = SineConfig()
    for budget, sizes in ((10, 162), (100, 72), (1000, 162)):
        settings = sr.grid(cfg, budget)
        count = {m: sum(s.method == m for s in settings) for m in cfg.methods}
        assert count == {
            "retrain": 3,
            "gd": 3,
            "ga": 3,
            "ngd": 9,
            "neggrad_plus": 12,
            "l1_sparse": 9,
            "ridge": 27,
            "minnorm_og": sizes,
        }
    long = [s.hp for s in sr.grid(cfg, 1000) if s.method == "minnorm_og"]
    assert sorted({h["gd_epochs"] for h in long}) == [100, 200, 500]
    assert sorted({h["proj_every"] for h in long}) == [10, 50, 100]
    assert sorted({h["reg"] for h in long}) == [0.1, 1.0]  # strength 3 is not a valid step


def test_official_selection_uses_the_mean_then_the_central_range() -> None:
    errors = np.array(
        [
            [1.0, 1.0, 1.0, 1.0],  # mean 1, central range 0
            [0.5, 0.5, 1.5, 1.5],  # mean 1, central range 1
            [0.2, 0.2, 9.0, 9.0],  # mean 4.6
            [0.1, np.inf, 0.1, 0.1],  # diverged on one seed
        ]
    )
    assert sr.select_official(errors) == 0
    held, chosen = sr.select_heldout(errors)
    # fold 1 (seeds 0, 1) picks row 2 (mean 0.2), scored on seeds 2, 3: 9.0; fold 2 (seeds 2, 3)
    # picks row 3 (finite there, mean 0.1), which diverged on seed 1: scored inf there
    assert chosen == [2, 3]
    assert held.tolist() == [0.1, np.inf, 9.0, 9.0]


def test_median_interval_from_order_statistics() -> None:
    assert sr.median_interval(np.array([3.0, 1.0, 2.0, 6.0, 5.0, 4.0])) == (1.0, 6.0)
    # n = 20: the 6th and 15th order statistics cover the median with >= 95%
    assert sr.median_interval(np.arange(20.0)) == (5.0, 14.0)


def test_tiny_sine_job_records_both_selections_and_caches_pretraining(project: Project) -> None:
    torch.set_num_threads(1)
    registry = Registry()
    registry.load_plugins()
    engine = Engine(project, registry=registry)
    config = {
        "seeds": 2,
        "width": 8,
        "n_retain": 6,
        "n_forget": 2,
        "n_test": 50,
        "pretrain_epochs": 30,
        "budgets": [10],
        "methods": ["retrain", "ga", "minnorm_og"],
        "lrs_short": [1e-2],
        "reg_decays": [0.6, 0.9],
        "gd_epochs_short": [2],
        "proj_every_short": [1],
        "n_pert": 6,
    }
    try:
        first = engine.submit("classifier.sine_minnorm", config, seed=0)
        assert engine.wait(first, 120) == "completed", project.run(first).error
    finally:
        engine.shutdown()
    final = project.final_metrics(first)
    for method in ("retrain", "ga", "minnorm_og"):
        assert f"{method}/sup_error_10" in final
        assert f"{method}/sup_error_10_heldout" in final
    assert final["zero_predictor/sup_error"] == pytest.approx(1.0, abs=1e-3)
    kinds = {a["name"]: a["kind"] for a in project.artifacts(first)}
    assert kinds["sine_functions"] == "sine_functions"
    # every setting's per-seed errors are kept; the official number is the median of its row
    row = next(a for a in project.artifacts(first) if a["name"] == "sine_errors_10")
    table = json.loads(project.artifact_path(row).read_text())
    assert table["columns"] == ["method", "setting", "seed 0", "seed 1"]
    (retrain_row,) = [r for r in table["rows"] if r[0] == "retrain"]
    assert float(np.median(retrain_row[2:])) == pytest.approx(final["retrain/sup_error_10"])
    # re-selecting over the table (or over it split in two) gives the job's own numbers
    half = {**table, "rows": table["rows"][: len(table["rows"]) // 2]}
    rest = {**table, "rows": table["rows"][len(table["rows"]) // 2 :]}
    for tables in ([table], [half, rest]):
        again = sr.reselect(tables, "minnorm_og")
        assert again["official"] == pytest.approx(final["minnorm_og/sup_error_10"])
        assert again["heldout"] == pytest.approx(final["minnorm_og/sup_error_10_heldout"])
    cached = list((project.root / "cache" / "classifier" / "sine").glob("*/epoch-30.safetensors"))
    assert len(cached) == 1
    # the recorded functions are the pretrained model's on the test grid
    theta = sr.pretrain(
        SineConfig(
            **{
                k: v
                for k, v in config.items()
                if k in ("width", "n_retain", "n_forget", "pretrain_epochs")
            }
        ),
        [0, 1],
        cached[0].parents[1],
    )
    err, _ = sr.sup_error(sr.unflat(theta, 8), torch.linspace(-15.708, 15.708, 50))
    assert final["original/sup_error"] == pytest.approx(float(np.median(err)), rel=1e-6)


def test_sine_view_shows_one_budget_and_hides_unchecked_methods(qtbot) -> None:  # noqa: ANN001
    from PySide6.QtCore import Qt

    from ui.views.sine_view import SineView
    from workbench.artifacts import SineFunctions

    x = [-1.0, 0.0, 1.0]
    series = {
        "sin x": (x, [-0.8, 0.0, 0.8]),
        "original": (x, [0.0, 1.5, 0.0]),
        "retrain @10": (x, [0.1, 0.1, 0.1]),
        "minnorm_og @10": (x, [0.2, 0.2, 0.2]),
        "minnorm_og @100": (x, [0.3, 0.3, 0.3]),
        "forget points": ([0.0], [1.5]),
    }
    view = SineView(SineFunctions(series=series, x_label="x", y_label="f(x)"))
    qtbot.addWidget(view)
    assert view.current_names() == [
        "sin x",
        "original",
        "retrain @10",
        "minnorm_og @10",
        "forget points",
    ]
    view.budget.setCurrentIndex(1)  # 100 epochs
    assert "minnorm_og @100" in view.plot.items and "retrain @10" not in view.plot.items
    minnorm = view.methods.findItems("minnorm_og", Qt.MatchFlag.MatchExactly)[0]
    minnorm.setCheckState(Qt.CheckState.Unchecked)
    assert "minnorm_og @100" not in view.plot.items
    assert "forget points" in view.plot.items  # the poisoned points stay marked
