"""What the classifier unlearning methods share: copying, seeding, batching, steps and losses.

- :func:`prepare` seeds torch, deep-copies the model (the caller's model is never touched) and
  puts the copy in training mode;
- :func:`data_on` moves the set-up's forget / retain tensors to the model's device;
- :func:`epoch_batches` and :func:`mixed_batches` shuffle deterministically from (seed, epoch);
  mixed batches pair a retain batch with a forget batch, the forget set cycling (re-shuffled at
  each wrap) so a small forget set is seen several times per retain epoch;
- :class:`Stepper` is one optimisation step: ``check()``, zero grad, loss, backward, optional
  gradient mask (SalUn), step;
- :class:`EpochCheckpoints` makes an epoch loop resumable: the loops ask the stepper where to
  start (:meth:`Stepper.start_epoch`) and tell it when an epoch ends (:meth:`Stepper.end_epoch`),
  which saves the student, the optimiser, the step count and the torch RNG every ``every`` epochs
  (``backends/common/checkpoint.py``).  Batches are drawn from generators seeded by (seed, epoch)
  and every method's set-up (labels, masks, targets) is recomputed from the original model, so a
  run resumed after epoch k ends bit-identical to an uninterrupted one;
- losses: :func:`kl_teacher_student`, :func:`soft_cross_entropy`; labels:
  :func:`random_wrong_labels`.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from backends.classifier.setup import ClassifierSetup
from backends.classifier.training import epoch_permutation, make_optimizer
from backends.common.checkpoint import CheckpointError, load_state, save_state

Check = Callable[[], None] | None
Log = Callable[[str], None] | None


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameter-less module)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def prepare(model: nn.Module, seed: int) -> nn.Module:
    """Seed torch with ``seed`` and return a trainable deep copy of ``model``."""
    torch.manual_seed(seed)
    student = copy.deepcopy(model)
    for p in student.parameters():
        p.requires_grad_(True)
    student.train()
    return student


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in evaluation mode with no gradients (a teacher or reference)."""
    ref = copy.deepcopy(model)
    for p in ref.parameters():
        p.requires_grad_(False)
    ref.eval()
    return ref


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


# -- checkpoints -----------------------------------------------------------------------------------
class EpochCheckpoints:
    """Where and how often a method's epoch loop saves its state, and what it resumes from.

    ``path``: the checkpoint file (rewritten in place, atomically); ``every``: save after every
    ``every``-th epoch and after the last one; ``resume``: a checkpoint of the same method and
    config to continue from (``None``: start at epoch 0); ``on_save(path, epochs_done)`` is called
    after each save (a job records the checkpoint with it).  ``seconds`` is the time the loop
    spent before the resumed checkpoint (0 on a fresh run), so a resumed run reports the total.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        every: int = 1,
        *,
        resume: str | os.PathLike[str] | None = None,
        on_save: Callable[[Path, int], None] | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"checkpoint every {every} epochs: must be at least 1")
        self.path = Path(path)
        self.every = int(every)
        self.resume = Path(resume) if resume is not None else None
        self.on_save = on_save
        self.seconds = 0.0
        self._t0 = time.perf_counter()

    def restore(self, name: str, model: nn.Module, stepper: Stepper) -> int:
        """Load the student and optimiser from :attr:`resume`; the number of epochs done."""
        if self.resume is None:
            return 0
        state = load_state(
            self.resume, modules={"student": model}, optimizers={"optimizer": stepper.optimizer}
        )
        if state.extra.get("method") != name:
            raise CheckpointError(
                f"{self.resume} is a checkpoint of {state.extra.get('method')!r}, not of {name!r}"
            )
        stepper.steps = int(state.extra["steps"])
        self.seconds = float(state.extra.get("seconds", 0.0))
        self._t0 = time.perf_counter()
        return state.step

    def save(self, name: str, model: nn.Module, stepper: Stepper, done: int, total: int) -> None:
        """Save after epoch ``done`` of ``total`` when it is due."""
        if done % self.every and done != total:
            return
        seconds = self.seconds + time.perf_counter() - self._t0
        extra = {"method": name, "steps": stepper.steps, "epochs": total, "seconds": seconds}
        save_state(
            self.path,
            step=done,
            modules={"student": model},
            optimizers={"optimizer": stepper.optimizer},
            extra=extra,
        )
        if self.on_save is not None:
            self.on_save(self.path, done)


# -- optimisation ----------------------------------------------------------------------------------
class Stepper:
    """One optimisation step at a time: ``check()`` first (it raises to cancel), then the loss,
    backward, an optional 0/1 gradient mask per parameter, and the optimiser's step.

    With ``checkpoints`` the epoch loops resume: :meth:`start_epoch` restores ``model`` and the
    optimiser from a checkpoint, :meth:`end_epoch` saves them (see :class:`EpochCheckpoints`)."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: str,
        lr: float,
        check: Check = None,
        masks: dict[str, torch.Tensor] | None = None,
        checkpoints: EpochCheckpoints | None = None,
    ) -> None:
        self.model = model
        self.params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.optimizer = make_optimizer([p for _, p in self.params], optimizer, lr)
        self.check = check
        self.masks = masks
        self.checkpoints = checkpoints
        self.steps = 0

    def start_epoch(self, name: str) -> int:
        """The first epoch to run: 0, or the epochs done by the checkpoint resumed from."""
        if self.checkpoints is None:
            return 0
        return self.checkpoints.restore(name, self.model, self)

    def end_epoch(self, name: str, done: int, total: int) -> None:
        """Epoch ``done`` (1-based) of ``total`` finished: checkpoint when due."""
        if self.checkpoints is not None:
            self.checkpoints.save(name, self.model, self, done, total)

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
    student: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: float,
    epochs: int,
    batch_size: int,
    stepper: Stepper,
    seed: int,
    log: Log,
    name: str,
    penalty: Callable[[float], torch.Tensor] | None = None,
) -> None:
    """Minimise ``weight * CE(x, target)`` (+ ``penalty(progress)``) over one set, ``epochs``
    shuffled passes.  ``weight = -1`` is gradient ascent; ``progress`` runs from 0 to 1 over the
    steps (for decaying regularisers)."""
    n = len(x)
    total = epochs * math.ceil(n / batch_size)
    record = EpochLog(log, name)
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
    student: nn.Module,
    data: Data,
    forget_target: torch.Tensor,
    *,
    forget_weight: float,
    retain_weight: float,
    epochs: int,
    batch_size: int,
    stepper: Stepper,
    seed: int,
    log: Log,
    name: str,
) -> None:
    """Minimise ``forget_weight * CE(x_f, forget_target) + retain_weight * CE(x_r, y_r)`` on mixed
    batches (:func:`mixed_batches`), ``epochs`` passes over the retain set.  ``forget_target`` is
    integer labels (true labels for NegGrad+, random wrong ones for RL / SalUn) or soft target rows
    (RWFT / TRW); a negative ``forget_weight`` ascends the forget loss."""
    record = EpochLog(log, name)
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
