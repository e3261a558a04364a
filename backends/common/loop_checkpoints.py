"""Checkpoints of a training loop inside a job: when to save, where, and what to restore.

A thin layer over :mod:`backends.common.checkpoint` (the one file format) for loops that live in
method functions (diffusion erasures, relearning, LLM unlearning): the job builds a
:class:`LoopCheckpoints` from its context (:meth:`LoopCheckpoints.for_job`) and hands it to the
method, which calls :meth:`~LoopCheckpoints.restore` once its set-up is done and
:meth:`~LoopCheckpoints.step_done` after every step::

    state = checkpoints.restore(modules=..., optimizers=..., generators=...) if checkpoints else None
    start = state.step if state else 0
    for step in range(start + 1, total + 1):
        ...
        if checkpoints:
            checkpoints.step_done(step, total, modules=..., optimizers=..., generators=...)

:func:`trainable` wraps the parameters a loop trains (a LoRA adapter, a subset of a UNet) as one
module, so a checkpoint holds those and not the frozen rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends.common.checkpoint import ResumeState, load_state, save_state

if TYPE_CHECKING:
    from torch import nn

    from workbench.jobs import JobContext

__all__ = ["LoopCheckpoints", "trainable"]

STATE_FILE = "state.safetensors"


@dataclass
class LoopCheckpoints:
    """Save a loop's state after every ``every`` steps and after its last one; restore it.

    ``path`` is the checkpoint file (overwritten atomically each time), ``resume`` the file to
    restore from (``None``: a fresh run) and ``record(path, step)`` what to call after a save
    (the job's ``ctx.record_checkpoint``), with the step plus ``offset`` (a job that runs several
    loops in a row records one growing step).  ``modules`` and ``extra`` are saved with every
    checkpoint besides what the loop passes (a job's state around the loop).  ``seconds`` is the
    time the loop ran before the checkpoint it resumed from (saved with every checkpoint), so
    :meth:`elapsed` reports a resumed run's total."""

    path: Path
    every: int
    resume: Path | None = None
    record: Callable[[Path, int], None] | None = None
    offset: int = 0
    modules: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def elapsed(self) -> float:
        """Seconds the loop has run: before the resumed checkpoint plus since then."""
        return self.seconds + time.perf_counter() - self._t0

    @classmethod
    def for_job(cls, ctx: JobContext, every: int, name: str = STATE_FILE) -> LoopCheckpoints:
        """Checkpoints in the run's checkpoint folder, resuming from ``ctx.resume`` if set."""
        if every < 1:
            raise ValueError(f"checkpoint every {every} steps: must be at least 1")
        return cls(
            path=Path(ctx.checkpoint_dir) / name,
            every=int(every),
            resume=Path(ctx.resume.path) if ctx.resume is not None else None,
            record=ctx.record_checkpoint,
        )

    def restore(self, **parts: Any) -> ResumeState | None:
        """Restore ``modules`` / ``optimizers`` / ``generators`` (keywords of
        :func:`~backends.common.checkpoint.load_state`) from :attr:`resume`; ``None`` when there
        is nothing to resume."""
        if self.resume is None:
            return None
        state = load_state(self.resume, **parts)
        self.seconds = float(state.extra.get("seconds", 0.0))
        self._t0 = time.perf_counter()
        return state

    def due(self, step: int, total: int) -> bool:
        """Whether the state after ``step`` of ``total`` steps is saved."""
        return step == total or (self.every > 0 and step % self.every == 0)

    def save(
        self,
        step: int,
        *,
        modules: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        **parts: Any,
    ) -> Path:
        """Write the state after ``step`` steps (keywords of
        :func:`~backends.common.checkpoint.save_state`) and record it as ``offset + step``."""
        all_modules = {**self.modules, **(modules or {})}
        all_extra = {**self.extra, **(extra or {}), "seconds": self.elapsed()}
        path = save_state(self.path, step=step, modules=all_modules, extra=all_extra, **parts)
        if self.record is not None:
            self.record(path, self.offset + step)
        return path

    def step_done(self, step: int, total: int, **parts: Any) -> None:
        """:meth:`save` when :meth:`due`."""
        if self.due(step, total):
            self.save(step, **parts)


def trainable(named: Iterable[tuple[str, nn.Parameter]]) -> nn.Module:
    """One module holding the given parameters (the same objects, not copies), so that
    ``save_state`` writes them and ``load_state`` restores them in place.  Dots in the names
    become ``:`` (module attribute names cannot hold dots)."""
    from torch import nn

    module = nn.Module()
    module.params = nn.ParameterDict({name.replace(".", ":"): p for name, p in named})
    return module
