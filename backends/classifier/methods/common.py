"""What the classifier unlearning methods share: batching, steps and losses.

The method contract (``unlearn(model, setup, cfg, hooks, *, seed) -> MethodResult``, editing
``model`` in place) and its preamble (``prepare``, ``frozen_copy``, ``model_device``) are
:mod:`backends.common.method`'s, as for every family.

- :func:`data_on` moves the set-up's forget / retain tensors to the model's device;
- :func:`epoch_batches` and :func:`mixed_batches` shuffle deterministically from (seed, epoch);
  mixed batches pair a retain batch with a forget batch, the forget set cycling (re-shuffled at
  each wrap) so a small forget set is seen several times per retain epoch;
- :class:`Stepper` is one optimisation step: ``check()``, zero grad, loss, backward, optional
  gradient mask (SalUn), step;
- the hooks' checkpoints (:class:`~backends.common.loop_checkpoints.LoopCheckpoints`, one step =
  one epoch) make an epoch loop resumable: the loops ask the stepper where to start
  (:meth:`Stepper.start_epoch`) and tell it when an epoch ends (:meth:`Stepper.end_epoch`), which
  saves the student, the optimiser, the step count and the torch RNG every ``every`` epochs
  (``backends/common/checkpoint.py``).  Batches are drawn from generators seeded by (seed, epoch)
  and every method's set-up (labels, masks, targets) is recomputed from the original model, so a
  run resumed after epoch k ends bit-identical to an uninterrupted one;
- losses: :func:`kl_teacher_student`, :func:`soft_cross_entropy`; labels:
  :func:`random_wrong_labels`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from backends.classifier.setup import ClassifierSetup
from backends.classifier.training import epoch_permutation, make_optimizer
from backends.common.checkpoint import CheckpointError
from backends.common.method import Hooks, Log


@dataclass
class Data:
    """Forget and retain tensors on the model's device."""

    xf: torch.Tensor
    yf: torch.Tensor
    xr: torch.Tensor
    yr: torch.Tensor

    @property
    def device(self) -> torch.device:
        return self.xr.device


def data_on(
    setup: ClassifierSetup,
    device: torch.device,
    *,
    need_forget: bool = True,
    need_retain: bool = True,
) -> Data:
    """The set-up's forget and retain tensors moved to ``device`` (clear errors when empty)."""
    xf, yf = setup.forget
    xr, yr = setup.retain
    if need_forget and len(yf) == 0:
        raise ValueError("the forget set is empty; nothing to unlearn")
    if need_retain and len(yr) == 0:
        raise ValueError("the retain set is empty; this method needs retain examples")
    return Data(xf.to(device), yf.to(device), xr.to(device), yr.to(device))


@torch.no_grad()
def logits_of(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Evaluation-mode logits of ``x`` in batches, restoring the model's previous mode."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


# -- batching --------------------------------------------------------------------------------------
def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, device: torch.device
) -> Iterator[torch.Tensor]:
    """Index batches covering a (seed, epoch)-shuffled permutation of ``range(n)`` once."""
    perm = epoch_permutation(n, seed, epoch, device)
    for start in range(0, n, batch_size):
        yield perm[start : start + batch_size]


def cycled_indices(n: int, count: int, seed: int, device: torch.device) -> torch.Tensor:
    """``count`` indices into ``range(n)``: shuffled passes, re-shuffled at each wrap."""
    generator = torch.Generator().manual_seed(seed)
    passes = math.ceil(count / n)
    return torch.cat([torch.randperm(n, generator=generator) for _ in range(passes)])[:count].to(
        device
    )


def mixed_batches(
    n_forget: int, n_retain: int, batch_size: int, seed: int, epoch: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(forget, retain) index batches for one retain epoch.

    The retain set is covered once (batches of ``batch_size``); each step also gets up to
    ``batch_size`` forget indices drawn from shuffled passes over the forget set.
    """
    steps = math.ceil(n_retain / batch_size)
    fb = min(batch_size, n_forget)
    forget = cycled_indices(n_forget, steps * fb, seed * 1_000_003 + 7919 * (epoch + 1), device)
    for step, r_idx in enumerate(epoch_batches(n_retain, batch_size, seed, epoch, device)):
        yield forget[step * fb : (step + 1) * fb], r_idx


# -- optimisation ----------------------------------------------------------------------------------
class Stepper:
    """One optimisation step at a time: ``check()`` first (it raises to cancel), then the loss,
    backward, an optional 0/1 gradient mask per parameter, and the optimiser's step.

    With the hooks' ``checkpoints`` the epoch loops resume: :meth:`start_epoch` restores
    ``model`` and the optimiser from a checkpoint, :meth:`end_epoch` saves them every
    ``checkpoints.every`` epochs and after the last."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: str,
        lr: float,
        hooks: Hooks,
        masks: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.model = model
        self.params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.optimizer = make_optimizer([p for _, p in self.params], optimizer, lr)
        self.check = hooks.on_check
        self.log = hooks.on_log
        self.masks = masks
        self.checkpoints = hooks.checkpoints
        self.steps = 0

    def _parts(self) -> dict[str, Any]:
        return {"modules": {"student": self.model}, "optimizers": {"optimizer": self.optimizer}}

    def start_epoch(self, name: str) -> int:
        """The first epoch to run: 0, or the epochs done by the checkpoint resumed from (which
        must be one of the method ``name``)."""
        state = self.checkpoints.restore(**self._parts()) if self.checkpoints else None
        if state is None:
            return 0
        if state.extra.get("method") != name:
            raise CheckpointError(
                f"{self.checkpoints.resume} is a checkpoint of {state.extra.get('method')!r}, "
                f"not of {name!r}"
            )
        self.steps = int(state.extra["steps"])
        return state.step

    def end_epoch(self, name: str, done: int, total: int) -> None:
        """Epoch ``done`` (1-based) of ``total`` finished: checkpoint when due."""
        if self.checkpoints is not None and self.checkpoints.due(done, total):
            extra = {"method": name, "steps": self.steps, "epochs": total}
            self.checkpoints.save(done, extra=extra, **self._parts())

    def __call__(self, loss_fn: Callable[[], torch.Tensor]) -> float:
        if self.check is not None:
            self.check()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():  # also inside a caller's no_grad block
            loss = loss_fn()
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the unlearning loss became {float(loss)} at step {self.steps + 1}; "
                    "lower the learning rate or the number of epochs"
                )
            loss.backward()
        if self.masks is not None:
            for name, p in self.params:
                if p.grad is not None and name in self.masks:
                    p.grad.mul_(self.masks[name])
        self.optimizer.step()
        self.steps += 1
        return float(loss.detach())


class EpochLog:
    """Mean loss of an epoch, sent to ``log`` as one line."""

    def __init__(self, log: Log, method: str) -> None:
        self.log, self.method = log, method
        self.total, self.count = 0.0, 0

    def add(self, loss: float) -> None:
        self.total += loss
        self.count += 1

    def end(self, epoch: int, epochs: int, what: str = "loss") -> None:
        if self.log is not None and self.count:
            self.log(
                f"{self.method} epoch {epoch + 1}/{epochs}: {what} {self.total / self.count:.4f}"
            )
        self.total, self.count = 0.0, 0


# -- losses and labels -----------------------------------------------------------------------------
def kl_teacher_student(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """KL(teacher || student) of the temperature-softened distributions, batch mean, times T^2."""
    t = temperature
    log_p_student = F.log_softmax(student_logits / t, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / t, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * (t * t)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of -sum_j q_j log p_j: KL(q || p) up to the (constant) entropy of the target q."""
    return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()


def random_wrong_labels(
    y: torch.Tensor, num_classes: int, seed: int, forget_class: int | None = None
) -> torch.Tensor:
    """A uniformly random label != y for each example (and != ``forget_class`` when given)."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(len(y), num_classes, generator=generator).to(y.device)
    scores[torch.arange(len(y), device=y.device), y] = -1.0
    if forget_class is not None:
        scores[:, forget_class] = -1.0
    if len(y) and bool((scores.max(1).values < 0).any()):
        raise ValueError(f"no wrong label to draw: {num_classes} classes are too few")
    return scores.argmax(1)


def require_class_forget(setup: ClassifierSetup, method: str) -> int:
    """The forget class; a clear error for sample (random / index) forget sets."""
    if setup.forget_class is None:
        raise ValueError(
            f"{method} needs a class forget set (forget one whole class); this set-up forgets "
            f"{setup.forget_set.describe()}. Use a class forget set, or a sample-unlearning "
            "method (FT, GA, NegGrad+, RL, SCRUB, SalUn, l1-sparse, Boundary Shrink)."
        )
    return int(setup.forget_class)


# -- the shared loops ------------------------------------------------------------------------------
def target_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy to hard labels (integer ``target``) or to soft targets (float rows)."""
    if target.is_floating_point():
        return soft_cross_entropy(logits, target)
    return F.cross_entropy(logits, target)


def single_set_epochs(
    stepper: Stepper,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: float,
    epochs: int,
    batch_size: int,
    seed: int,
    name: str,
    penalty: Callable[[float], torch.Tensor] | None = None,
) -> None:
    """Minimise ``weight * CE(x, target)`` (+ ``penalty(progress)``) over one set, ``epochs``
    shuffled passes.  ``weight = -1`` is gradient ascent; ``progress`` runs from 0 to 1 over the
    steps (for decaying regularisers).  The model is ``stepper.model``; epochs log through the
    stepper's hooks."""
    student = stepper.model
    n = len(x)
    total = epochs * math.ceil(n / batch_size)
    record = EpochLog(stepper.log, name)
    for epoch in range(stepper.start_epoch(name), epochs):
        for idx in epoch_batches(n, batch_size, seed, epoch, x.device):
            progress = stepper.steps / total

            def loss_fn(idx: torch.Tensor = idx, progress: float = progress) -> torch.Tensor:
                loss = weight * target_loss(student(x[idx]), target[idx])
                if penalty is not None:
                    loss = loss + penalty(progress)
                return loss

            record.add(stepper(loss_fn))
        record.end(epoch, epochs)
        stepper.end_epoch(name, epoch + 1, epochs)


def mixed_epochs(
    stepper: Stepper,
    data: Data,
    forget_target: torch.Tensor,
    *,
    forget_weight: float,
    retain_weight: float,
    epochs: int,
    batch_size: int,
    seed: int,
    name: str,
) -> None:
    """Minimise ``forget_weight * CE(x_f, forget_target) + retain_weight * CE(x_r, y_r)`` on mixed
    batches (:func:`mixed_batches`), ``epochs`` passes over the retain set.  ``forget_target`` is
    integer labels (true labels for NegGrad+, random wrong ones for RL / SalUn) or soft target rows
    (RWFT / TRW); a negative ``forget_weight`` ascends the forget loss.  The model is
    ``stepper.model``."""
    student = stepper.model
    record = EpochLog(stepper.log, name)
    n_f, n_r = len(data.xf), len(data.xr)
    for epoch in range(stepper.start_epoch(name), epochs):
        for f_idx, r_idx in mixed_batches(n_f, n_r, batch_size, seed, epoch, data.device):

            def loss_fn(f_idx: torch.Tensor = f_idx, r_idx: torch.Tensor = r_idx) -> torch.Tensor:
                forget = target_loss(student(data.xf[f_idx]), forget_target[f_idx])
                retain = F.cross_entropy(student(data.xr[r_idx]), data.yr[r_idx])
                return forget_weight * forget + retain_weight * retain

            record.add(stepper(loss_fn))
        record.end(epoch, epochs)
        stepper.end_epoch(name, epoch + 1, epochs)
