"""The one method contract of every family (light: torch is imported inside the functions).

A method is a function::

    unlearn(model, data, cfg, hooks, *, seed) -> MethodResult

- ``model``: the family's model (a classifier ``nn.Module``, a causal LM, a diffusion pipeline).
  The method EDITS IT IN PLACE; a caller that still needs the original passes a copy
  (:func:`unlearned_copy`), so a large model is copied only when it must be.
- ``data``: the family's data object (the classifier's ``ClassifierSetup``, the LLM's
  ``LLMData``, the diffusion ``DiffusionData``).
- ``cfg``: the method's typed config dataclass (its fields built with :mod:`.fields`).
- ``hooks``: a :class:`Hooks`: ``check()`` at every step (it raises to cancel), ``log(msg)``,
  ``progress(fraction, text)`` within the method, ``metric(name, value, step)`` and the loop's
  checkpoints (:class:`~backends.common.loop_checkpoints.LoopCheckpoints`, ``None``: no
  checkpoints). ``Hooks()`` does nothing (tests and scripts); :func:`hooks_from` builds it from a
  job context.
- the result is a :class:`MethodResult`: a few numbers (final loss, parameters changed, ...).

The shared preamble lives here once: :data:`Check` / :data:`Log` (optional callables),
:func:`model_device`, :func:`prepare` (seed torch, training mode), :func:`frozen_copy` (a frozen
reference) and :func:`unlearned_copy`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backends.common.loop_checkpoints import STATE_FILE, LoopCheckpoints

if TYPE_CHECKING:
    import torch
    from torch import nn

    from workbench.jobs import JobContext

__all__ = [
    "Check",
    "Hooks",
    "Log",
    "MethodResult",
    "frozen_copy",
    "hooks_from",
    "model_device",
    "prepare",
    "unlearned_copy",
]

Check = Callable[[], None] | None
Log = Callable[[str], None] | None


def _nothing(*_args: Any, **_kw: Any) -> None:
    return None


@dataclass
class Hooks:
    """What a method may call back: all optional, ``Hooks()`` is a valid no-op.

    ``on_check`` raises to cancel; ``on_log(msg)``; ``on_progress(fraction, text)`` with the
    fraction of the method done (0..1); ``on_metric(name, value, step)``; ``checkpoints`` saves and
    restores the method's loop (see :mod:`backends.common.loop_checkpoints`)."""

    on_check: Callable[[], None] | None = None
    on_log: Callable[[str], None] | None = None
    on_progress: Callable[[float, str | None], None] | None = None
    on_metric: Callable[[str, float, int], None] | None = None
    checkpoints: LoopCheckpoints | None = None

    def check(self) -> None:
        """Raise to cancel (nothing without ``on_check``); call it at every step."""
        if self.on_check is not None:
            self.on_check()

    def log(self, message: str) -> None:
        if self.on_log is not None:
            self.on_log(message)

    def progress(self, fraction: float, text: str | None = None) -> None:
        if self.on_progress is not None:
            self.on_progress(fraction, text)

    def metric(self, name: str, value: float, step: int = 0) -> None:
        if self.on_metric is not None:
            self.on_metric(name, float(value), int(step))


def hooks_from(
    ctx: JobContext,
    *,
    checkpoint_every: int | None = None,
    checkpoint_file: str = STATE_FILE,
    progress: tuple[float, float] = (0.0, 1.0),
) -> Hooks:
    """Hooks reporting to a job context: cancel, log, metrics, progress mapped into
    ``progress = (start, end)`` of the job, and (with ``checkpoint_every``) checkpoints in the
    run's checkpoint folder resuming from ``ctx.resume``."""
    start, end = progress

    def on_progress(fraction: float, text: str | None = None) -> None:
        ctx.progress(start + (end - start) * fraction, text=text)

    checkpoints = None
    if checkpoint_every is not None:
        checkpoints = LoopCheckpoints.for_job(ctx, checkpoint_every, checkpoint_file)
    return Hooks(
        on_check=ctx.check,
        on_log=ctx.log,
        on_progress=on_progress,
        on_metric=ctx.metric,
        checkpoints=checkpoints,
    )


@dataclass
class MethodResult:
    """What a method returns besides the model it edited: a few numbers (``stats``)."""

    stats: dict[str, float] = field(default_factory=dict)


# -- the shared preamble ---------------------------------------------------------------------------
def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameter-less module)."""
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def prepare(model: nn.Module, seed: int, *, train_all: bool = False) -> nn.Module:
    """Seed torch with ``seed`` and put ``model`` (edited in place) in training mode.

    ``train_all`` turns on every parameter's gradient; otherwise the ``requires_grad`` flags are
    kept (a LoRA-wrapped model trains its adapters only) and a model with none is refused."""
    import torch

    torch.manual_seed(seed)
    if train_all:
        for p in model.parameters():
            p.requires_grad_(True)
    model.train()
    if not train_all and not any(p.requires_grad for p in model.parameters()):
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    return model


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in evaluation mode with no gradients (a teacher, a reference, ε_0)."""
    ref = copy.deepcopy(model)
    ref.requires_grad_(False)
    return ref.eval()


def unlearned_copy(
    unlearn: Callable[..., MethodResult],
    model: Any,
    data: Any,
    cfg: Any,
    hooks: Hooks | None = None,
    *,
    seed: int,
) -> Any:
    """Run ``unlearn`` on a deep copy of ``model`` (kept unchanged) and return the copy."""
    work = copy.deepcopy(model)
    unlearn(work, data, cfg, hooks if hooks is not None else Hooks(), seed=seed)
    return work
