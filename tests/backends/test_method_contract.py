"""The one method contract (``backends/common/method.py``) and the unlearn-job template
(``backends/common/unlearn_job.py``): a toy method added to the classifier family the way
``docs/architecture.md`` "Adding a method" says (its own function, a config, one catalogue entry)
runs through the real engine and the template on the digits set-up, with nothing else changed.

The toy method pushes the forget class's output bias down by ``shift``: with a large shift the
unlearned model never predicts that class, so its forget accuracy is exactly 0, while the
original keeps its own (the template edits a copy, because the classifier job compares both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from backends.classifier.methods import METHODS
from backends.classifier.setup import ClassifierSetup
from backends.common import fields
from backends.common.method import Hooks, MethodResult, hooks_from, prepare
from backends.common.methods import MethodInfo
from workbench.config import param
from workbench.jobs import Engine
from workbench.registry import Registry
from workbench.store import Project


# -- 1. the method's config: shared field helpers plus its own constants ------------------------------
@dataclass
class ToyConfig:
    """Toy: lower the forget class's output bias (a test of the contract, not a method)."""

    shift: float = param(50.0, "How far the forget class's bias is lowered.", range=(0.0, 1e6))
    epochs: int = fields.epochs(1, "Unused (every method has one).")
    lr: float = fields.lr(1e-3)


# -- 2. the method: edit the model given, in place; report through the hooks ---------------------------
def unlearn(
    model: nn.Module, setup: ClassifierSetup, cfg: ToyConfig, hooks: Hooks, *, seed: int
) -> MethodResult:
    """Toy (no spec section): lower the forget class's logit by ``cfg.shift``."""
    prepare(model, seed, train_all=True)
    hooks.check()
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.bias[setup.forget_class] -= cfg.shift
    hooks.log(f"toy: lowered class {setup.forget_class} by {cfg.shift}")
    hooks.metric("toy/shift", cfg.shift)
    hooks.progress(1.0, "toy done")
    model.eval()
    return MethodResult({"shift": cfg.shift})


# -- 3. one catalogue entry ---------------------------------------------------------------------------
TOY = MethodInfo(
    "toy",
    "Toy",
    "Lower the forget class's bias.",
    ToyConfig,
    f"{__name__}:unlearn",
    "none (a test)",
)

FAST = {
    "train_epochs": 10,
    "references": 2,
    "attacks": ["svc_mia"],
    "n_bootstrap": 20,
    "device": "cpu",
    "shift": 50.0,
}


def test_hooks_with_no_arguments_do_nothing() -> None:
    hooks = Hooks()
    hooks.check()
    hooks.log("ignored")
    hooks.progress(0.5, "ignored")
    hooks.metric("ignored", 1.0, 2)
    assert hooks.checkpoints is None


class _Ctx:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.resume = None

    def check(self) -> None:
        self.calls.append(("check", None))

    def log(self, message: str) -> None:
        self.calls.append(("log", message))

    def progress(self, fraction: float, text: str | None = None) -> None:
        self.calls.append(("progress", (round(fraction, 6), text)))

    def metric(self, name: str, value: float, step: int = 0) -> None:
        self.calls.append(("metric", (name, value, step)))


def test_hooks_from_a_context_map_progress_into_the_jobs_range() -> None:
    ctx = _Ctx()
    hooks = hooks_from(ctx, progress=(0.3, 0.75))
    hooks.check()
    hooks.log("hello")
    hooks.progress(0.5, "half")
    hooks.metric("loss", 2, 3)
    assert ctx.calls == [
        ("check", None),
        ("log", "hello"),
        ("progress", (0.525, "half")),
        ("metric", ("loss", 2.0, 3)),
    ]
    assert hooks.checkpoints is None  # no checkpoint_every: a method without checkpoints


def test_a_toy_method_added_to_the_catalogue_runs_through_the_template(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)
    monkeypatch.setitem(METHODS, "toy", TOY)
    registry = Registry()
    registry.load_plugins()  # the classifier plugin makes one job per catalogued method
    assert "classifier.unlearn.toy" in registry.jobs
    engine = Engine(project, registry=registry)
    try:
        run_id = engine.submit("classifier.unlearn.toy", FAST, seed=3, dataset="digits")
        assert engine.wait(run_id, 300) == "completed", project.run(run_id).error
    finally:
        engine.shutdown()
    final = project.final_metrics(run_id)
    assert final["forget_acc"] == 0.0  # the forget class is never predicted any more
    assert final["toy/shift"] == 50.0  # the method's own metric, through the hooks
    logs = [row["message"] for row in project.logs(run_id)]
    assert "toy: lowered class 3 by 50.0" in logs
    # the saved model is the edited one: its class-3 bias is 50 below the original's
    from backends.common.safe_load import load_state_dict

    saved = load_state_dict(
        project.abspath(project.model(f"toy-run{run_id}")["path"]) / "model.safetensors"
    )
    biases = [k for k in saved if k.endswith("bias")]
    assert biases, saved.keys()
    last = saved[biases[-1]]
    assert last.shape[0] == 10
    assert float(last[3]) < float(last[torch.arange(10) != 3].min()) - 40.0
