"""Plain supervised training and evaluation of classifiers (shared by jobs, references, methods).

Shuffling uses a generator seeded by (seed, epoch), so a run resumed from a checkpoint continues
exactly as an uninterrupted one, and two runs with the same seed are identical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class TrainSpec:
    """How to train a classifier from scratch or fine-tune it."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    momentum: float = 0.9


def make_optimizer(
    params: object, optimizer: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.9
) -> torch.optim.Optimizer:
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)  # type: ignore[arg-type]
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)  # type: ignore[arg-type]
    raise ValueError(f"unknown optimiser {optimizer!r}; choose adam or sgd")


def epoch_permutation(n: int, seed: int, epoch: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).to(device)


def train_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    start_epoch: int,
    epochs: int,
    batch_size: int,
    seed: int,
    on_epoch: Callable[[int, float], None] | None = None,
    check: Callable[[], None] | None = None,
) -> None:
    """Cross-entropy training from ``start_epoch`` to ``epochs``; ``on_epoch(done, mean_loss)``."""
    loss_fn = nn.CrossEntropyLoss()
    n = len(y)
    for epoch in range(start_epoch, epochs):
        perm = epoch_permutation(n, seed, epoch, x.device)
        model.train()
        total = 0.0
        for start in range(0, n, batch_size):
            if check is not None:
                check()
            idx = perm[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        if on_epoch is not None:
            on_epoch(epoch + 1, total / n)


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: TrainSpec,
    seed: int,
    check: Callable[[], None] | None = None,
) -> nn.Module:
    """Train ``model`` in place on (x, y) with ``spec``; returns it."""
    optimizer = make_optimizer(
        model.parameters(), spec.optimizer, spec.lr, spec.weight_decay, spec.momentum
    )
    train_epochs(
        model,
        optimizer,
        x,
        y,
        start_epoch=0,
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        seed=seed,
        check=check,
    )
    model.eval()
    return model


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Logits for ``x`` in evaluation mode, in batches."""
    model.eval()
    if len(x) == 0:
        return torch.empty(0, 0)
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy; NaN for an empty set."""
    if len(y) == 0:
        return float("nan")
    return float((predict_logits(model, x).argmax(1) == y).float().mean())


def per_class_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> np.ndarray:
    """Accuracy on each class (NaN where the class has no example)."""
    pred = predict_logits(model, x).argmax(1).cpu().numpy()
    truth = y.cpu().numpy()
    out = np.full(k, np.nan)
    for c in range(k):
        mask = truth == c
        if mask.any():
            out[c] = float((pred[mask] == c).mean())
    return out
