"""Vectorised ensembles: K small classifiers trained at once with stacked weights.

Shadow models (U-LiRA, Apollo) and retrained references (MIA-NN) are many copies of one small
architecture trained on different subsets.  Instead of a Python loop over models, their weights are
stacked (``torch.func.stack_module_state``) and one ``vmap`` of ``functional_call`` runs all K
forward/backward passes in a single batched call.  Adam and SGD are element-wise, so one optimiser
over the stacked tensors is exactly K independent optimisers.

Each model k trains on its own member set (a boolean row of ``membership``); in every epoch model
k sees a fresh permutation of its members, cycled so that all models take the same number of
steps of ``batch_size`` examples.  Batch norm (ResNet-18) works too: its running statistics are
stacked buffers, updated per model in training and used by :meth:`Ensemble.predict`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from backends.classifier.training import TrainSpec, make_optimizer


class Ensemble:
    """K models of one architecture as stacked parameters."""

    def __init__(
        self, base: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]
    ) -> None:
        self.base = copy.deepcopy(base).to("meta")
        self.params = params
        self.buffers = buffers

    @classmethod
    def from_models(cls, models: list[nn.Module]) -> Ensemble:
        params, buffers = stack_module_state(models)
        return cls(models[0], params, buffers)

    @classmethod
    def fresh(
        cls, factory: Callable[[], nn.Module], k: int, seed: int, device: torch.device
    ) -> Ensemble:
        """K freshly initialised models; model i is initialised from ``seed * 1000 + i``."""
        models = []
        for i in range(k):
            torch.manual_seed(seed * 1000 + i)
            models.append(factory().to(device))
        return cls.from_models(models)

    def __len__(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def _call(
        self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def logits(self, x: torch.Tensor, *, per_model: bool = False) -> torch.Tensor:
        """Logits ``(K, N, classes)``: the same ``x (N, ...)`` for every model, or with
        ``per_model=True`` a different batch per model, ``x (K, N, ...)``."""
        in_dims = (0, 0, 0 if per_model else None)
        return vmap(self._call, in_dims=in_dims)(self.params, self.buffers, x)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
        """Logits ``(K, N, classes)`` without gradients, in batches of examples, in evaluation
        mode (a model with batch norm, such as ResNet-18, uses its running statistics)."""
        was_training = self.base.training
        self.base.eval()
        try:
            parts = [self.logits(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        finally:
            self.base.train(was_training)
        return torch.cat(parts, dim=1)

    def model(self, i: int) -> nn.Module:
        """Model ``i`` as an ordinary module (a copy; changing it leaves the ensemble as it is)."""
        module = copy.deepcopy(self.base).to_empty(device=next(iter(self.params.values())).device)
        state = {k: v[i].detach().clone() for k, v in {**self.params, **self.buffers}.items()}
        module.load_state_dict(state)
        return module

    def subset(self, idx: np.ndarray | list[int]) -> Ensemble:
        """The models ``idx`` as a new ensemble (views of the same tensors, not copies)."""
        sel = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        dev = next(iter(self.params.values())).device
        sel = sel.to(dev)
        return Ensemble(
            self.base,
            {k: v.index_select(0, sel) for k, v in self.params.items()},
            {k: v.index_select(0, sel) for k, v in self.buffers.items()},
        )

    def models(self) -> list[nn.Module]:
        return [self.model(i) for i in range(len(self))]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Stacked tensors, ready for safetensors (keys ``params.*`` and ``buffers.*``)."""
        out = {f"params.{k}": v.detach().cpu().contiguous() for k, v in self.params.items()}
        out.update({f"buffers.{k}": v.detach().cpu().contiguous() for k, v in self.buffers.items()})
        return out

    @classmethod
    def from_state_dict(
        cls, base: nn.Module, state: dict[str, torch.Tensor], device: torch.device
    ) -> Ensemble:
        params = {k[7:]: v.to(device) for k, v in state.items() if k.startswith("params.")}
        buffers = {k[8:]: v.to(device) for k, v in state.items() if k.startswith("buffers.")}
        return cls(base, params, buffers)


def train_ensemble(
    factory: Callable[[], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    membership: np.ndarray,
    spec: TrainSpec,
    seed: int,
    check: Callable[[], None] | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> Ensemble:
    """Train ``len(membership)`` models; model k on the examples where ``membership[k]`` is True.

    ``x, y`` hold the whole pool the membership rows index into.
    """
    membership = np.asarray(membership, dtype=bool)
    k, n = membership.shape
    if n != len(y):
        raise ValueError(f"membership has {n} columns for {len(y)} examples")
    counts = membership.sum(1)
    if counts.min() == 0:
        raise ValueError("every ensemble member needs at least one training example")
    device = x.device
    ens = Ensemble.fresh(factory, k, seed, device)
    ens.base.train()
    for p in ens.params.values():
        p.requires_grad_(True)
    optimizer = make_optimizer(
        list(ens.params.values()), spec.optimizer, spec.lr, spec.weight_decay, spec.momentum
    )
    members = [torch.as_tensor(np.flatnonzero(row), device=device) for row in membership]
    steps = max(1, math.ceil(float(counts.mean()) / spec.batch_size))
    loss_fn = nn.CrossEntropyLoss()
    rng = torch.Generator().manual_seed(seed)
    for epoch in range(spec.epochs):
        # a cycled permutation of each model's members, cut into `steps` batches
        order = []
        for m in members:
            perm = m[torch.randperm(len(m), generator=rng).to(device)]
            reps = math.ceil(steps * spec.batch_size / len(m))
            order.append(perm.repeat(reps)[: steps * spec.batch_size])
        index = torch.stack(order).view(k, steps, spec.batch_size)
        for s in range(steps):
            if check is not None:
                check()
            batch = index[:, s]  # (K, B)
            logits = ens.logits(x[batch], per_model=True)  # (K, B, C)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y[batch].reshape(-1)) * k
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if on_epoch is not None:
            on_epoch(epoch + 1)
    for p in ens.params.values():
        p.requires_grad_(False)
    return ens


def train_loop(
    factory: Callable[[], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    membership: np.ndarray,
    spec: TrainSpec,
    seed: int,
) -> list[nn.Module]:
    """The same training as :func:`train_ensemble`, one model after another (the baseline the
    benchmark compares against, and a cross-check in tests)."""
    from backends.classifier.training import train_epochs

    models = []
    for i, row in enumerate(np.asarray(membership, dtype=bool)):
        torch.manual_seed(seed * 1000 + i)
        model = factory().to(x.device)
        idx = torch.as_tensor(np.flatnonzero(row), device=x.device)
        optimizer = make_optimizer(
            model.parameters(), spec.optimizer, spec.lr, spec.weight_decay, spec.momentum
        )
        train_epochs(
            model,
            optimizer,
            x[idx],
            y[idx],
            start_epoch=0,
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            seed=seed + i,
        )
        models.append(model.eval())
    return models


def half_membership(n_models: int, n_examples: int, seed: int) -> np.ndarray:
    """Each example in exactly half of the models (LiRA's balanced in/out design)."""
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((n_models, n_examples)), axis=0)
    return order < n_models // 2
