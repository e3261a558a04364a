"""MinNorm-OG: unlearning under overparameterization (spec section 3, paper Alg. 1 + code).

Block, Mokhtari, Shakkottai, arXiv 2505.22601; the authors' ``MinNormOGUnlearner`` and ``proj``
(github.com/jacob-block/overparameterized-unlearning, ``common/unlearners/unlearners.py``,
``common/utils/misc_utils.py``), read, not copied.

With R = ||theta||^2 and R^ = lambda ||Delta||^2 the relaxed problem's solution is a step towards
the projection of theta onto the span G of the model's *output* gradients on retain points:

- G: per-sample gradients (``torch.func``: ``vmap(grad)``) of the output of ``n_pert`` retain
  points of the current retain batch, stratified by class: the max logit for a classifier (the
  predicted class held constant), the output itself for a regression model;
- a reduced QR of G in float64, ``P_G(theta) = Q Q^T theta``, and the update
  ``theta <- theta - lambda P_{G^perp}(theta)`` (``lambda <= 1``), then ``lambda <- gamma lambda``;
- the projection runs before the descent step of every step of the epochs ``e`` with
  ``e % T_Proj == 0``, except in the last ``T_GD`` epochs, which only descend; the descent is the
  retain loss (cross-entropy, or MSE for regression) on a retain batch;
- one epoch is one pass over the forget batches, each paired with a retain batch from the
  accessible retain subset (the forget examples themselves never enter the loss).

With a linear model and strength 1 one projection maps theta to the minimum-norm interpolator of
the retain set (the paper's section 4; ``tests/unit/test_minnorm.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from backends.classifier.methods.common import EpochLog, Stepper, data_on
from backends.classifier.methods.configs import MinNormOGConfig
from backends.classifier.setup import ClassifierSetup
from backends.common.method import Hooks, MethodResult, model_device, prepare


# -- the projection --------------------------------------------------------------------------------
def output_gradients(
    model: nn.Module, x: torch.Tensor, task: str = "classification"
) -> torch.Tensor:
    """Per-sample output gradients ``(n, d)`` (trainable parameters, in ``parameters()`` order).

    ``task="classification"``: the gradient of the largest logit, the predicted class being a
    constant; ``"regression"``: of the (scalar) output.  Computed with ``torch.func`` (``vmap``
    of ``grad`` of a ``functional_call``), in the model's current mode."""
    from torch.func import functional_call, grad, vmap

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', not {task!r}")

    def out(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        y = functional_call(model, {**p, **frozen, **buffers}, (xi.unsqueeze(0),))
        if task == "classification":
            return y.reshape(-1).max()  # its gradient is the arg-max logit's
        return y.reshape(())

    grads = vmap(grad(out), in_dims=(None, 0))(params, x)
    return torch.cat([grads[n].reshape(len(x), -1) for n in names], dim=1)


def project_out(theta: torch.Tensor, grads: torch.Tensor, strength: float) -> torch.Tensor:
    """``theta - strength * P_{G^perp}(theta)`` with G spanned by the rows of ``grads`` (n, d),
    through a reduced QR of the d x n matrix in float64 (returned in ``theta``'s dtype)."""
    if not (torch.isfinite(grads).all() and torch.isfinite(theta).all()):
        raise FloatingPointError(
            "MinNorm-OG: the parameters or the output gradients are not finite"
        )
    q, _ = torch.linalg.qr(grads.to(torch.float64).T, mode="reduced")
    t64 = theta.to(torch.float64)
    perp = t64 - q @ (q.T @ t64)
    return (t64 - strength * perp).to(theta.dtype)


def stratified(
    y: torch.Tensor | None, n: int, n_pert: int, generator: torch.Generator
) -> torch.Tensor:
    """``n_pert`` indices into a batch of ``n``: ``n_pert // classes`` per class present (as the
    authors' code) for labels ``y``, a random subset when ``y`` is None (regression)."""
    if y is None:
        return torch.randperm(n, generator=generator)[:n_pert]
    y_cpu = y.cpu()
    classes = torch.unique(y_cpu)
    per = max(1, n_pert // len(classes))
    parts = []
    for c in classes:
        idx = torch.nonzero(y_cpu == c).flatten()
        parts.append(idx[torch.randperm(len(idx), generator=generator)[:per]])
    return torch.cat(parts)


def project_model(
    model: nn.Module, x: torch.Tensor, strength: float, task: str = "classification"
) -> None:
    """One MinNorm-OG projection of ``model``'s trainable parameters, in place, G taken on ``x``."""
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()  # per-sample gradients: batch statistics (BatchNorm) would couple the samples
    grads = output_gradients(model, x, task)
    model.train(was_training)
    with torch.no_grad():
        theta = torch.cat([p.reshape(-1) for p in params])
        new = project_out(theta, grads, strength)
        at = 0
        for p in params:
            p.copy_(new[at : at + p.numel()].view_as(p))
            at += p.numel()


def projects(epoch: int, epochs: int, proj_every: int, gd_epochs: int) -> bool:
    """Whether epoch ``epoch`` (0-based) projects: not in the last ``gd_epochs``, every
    ``proj_every``-th epoch."""
    return epoch < epochs - gd_epochs and epoch % proj_every == 0


def minnorm_loop(
    stepper: Stepper,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    steps_per_epoch: int,
    cfg: MinNormOGConfig,
    seed: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    task: str,
    labels: torch.Tensor | None,
) -> int:
    """The schedule on retain data ``(x, target)``: ``cfg.epochs`` epochs of ``steps_per_epoch``
    retain batches, projecting before each step of a projecting epoch.  Returns the number of
    projections done.  Resumable through the stepper's checkpoints (the strength is recomputed
    from the projections done before the resumed epoch)."""
    model = stepper.model
    name = "MinNorm-OG"
    n = len(x)
    batch = min(cfg.batch_size, n)
    start = stepper.start_epoch(name)
    done_before = sum(
        steps_per_epoch
        for e in range(start)
        if projects(e, cfg.epochs, cfg.proj_every, cfg.gd_epochs)
    )
    strength = cfg.strength * cfg.strength_decay**done_before
    record = EpochLog(stepper.log, name)
    projections = done_before
    for epoch in range(start, cfg.epochs):
        g = torch.Generator().manual_seed(seed * 1_000_003 + 7_919 * epoch + 17)
        order = torch.cat(
            [torch.randperm(n, generator=g) for _ in range(math.ceil(steps_per_epoch * batch / n))]
        ).to(x.device)
        for step in range(steps_per_epoch):
            idx = order[step * batch : (step + 1) * batch]
            if projects(epoch, cfg.epochs, cfg.proj_every, cfg.gd_epochs):
                if stepper.check is not None:
                    stepper.check()
                pick = stratified(
                    None if labels is None else labels[idx], len(idx), cfg.n_pert, g
                ).to(x.device)
                project_model(model, x[idx][pick], strength, task)
                strength *= cfg.strength_decay
                projections += 1

            def loss(idx: torch.Tensor = idx) -> torch.Tensor:
                return loss_fn(model(x[idx]), target[idx])

            record.add(stepper(loss))
        record.end(epoch, cfg.epochs)
        stepper.end_epoch(name, epoch + 1, cfg.epochs)
    return projections


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: MinNormOGConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with MinNorm-OG (spec section 3)."""
    if not 0.0 <= cfg.strength <= 1.0:
        raise ValueError(
            f"strength must be in [0, 1] (the step towards the projection), not {cfg.strength}"
        )
    student = prepare(model, seed, train_all=True)
    data = data_on(setup, model_device(model))
    xr, yr = data.xr, data.yr
    if cfg.retain_fraction < 1.0:
        g = torch.Generator().manual_seed(seed * 1_000_003 + 5)
        keep = torch.randperm(len(yr), generator=g)[: max(1, round(cfg.retain_fraction * len(yr)))]
        xr, yr = xr[keep.to(xr.device)], yr[keep.to(yr.device)]
    stepper = Stepper(student, cfg.optimizer, cfg.lr, hooks)
    steps = math.ceil(len(data.xf) / cfg.batch_size)
    count = minnorm_loop(
        stepper,
        xr,
        yr,
        steps_per_epoch=steps,
        cfg=cfg,
        seed=seed,
        loss_fn=F.cross_entropy,
        task="classification",
        labels=yr,
    )
    student.eval()
    return MethodResult({"projections": float(count)})
