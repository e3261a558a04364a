"""The one unlearn / erase job of every family: a template with family hooks.

Every family's unlearning job does the same thing::

    seed -> load (model, data) -> measure before -> apply the method (resumable)
         -> measure after -> save -> before / after artifacts

:func:`run_unlearn_job` is that sequence, with the job's progress fractions; the family fills in
an :class:`UnlearnSteps` (what to load, how to measure, save and draw). The method is called
through the one contract of :mod:`backends.common.method`: it edits the model it is given, so a
family that still needs the original after the method (to compare) copies it in
:attr:`UnlearnSteps.working`; one that does not (diffusion: the pipeline is measured before and
reloaded from disk if needed) passes it as it is.

Saving is the family's ``UnlearnSteps.save`` hook, which writes through the core ``ctx.save_model``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backends.common.method import Hooks, MethodResult, hooks_from
from backends.common.methods import MethodInfo
from backends.common.seeding import seed_everything

if TYPE_CHECKING:
    from workbench.jobs import JobContext

__all__ = ["PROGRESS", "UnlearnSteps", "run_unlearn_job"]

# the job's progress at each stage; the method reports within (apply, after)
PROGRESS = {"before": 0.05, "apply": 0.3, "after": 0.75, "save": 0.95}


def _same(model: Any) -> Any:
    return model


def _no_result(_after: Any) -> dict[str, float]:
    return {}


@dataclass
class UnlearnSteps:
    """A family's part of the unlearn job (all called once, in this order).

    - ``load()`` -> ``(model, data)``: the model and the method's data object;
    - ``before(model)`` -> what was measured on the original (anything the family keeps);
    - ``working(model)`` -> the model the method edits: ``model`` itself (default) or a copy when
      the original is still needed, or a wrapped model (LoRA);
    - ``finish(model)`` -> the model to measure and save (default: as it is; LoRA merges here);
    - ``after(model, before, result, seconds)`` -> what was measured on the unlearned model (the
      family records its metrics here);
    - ``save(model)``: register the unlearned model in the project;
    - ``artifacts(before, after)``: the before / after tables and plots;
    - ``result(after)`` -> the job's return value (default ``{}``).
    """

    load: Callable[[], tuple[Any, Any]]
    before: Callable[[Any], Any]
    after: Callable[[Any, Any, MethodResult, float], Any]
    save: Callable[[Any], None]
    artifacts: Callable[[Any, Any], None]
    working: Callable[[Any], Any] = _same
    finish: Callable[[Any], Any] = _same
    result: Callable[[Any], dict[str, float]] = _no_result
    measuring: str = "measuring the original"
    verb: str = "unlearning"


def run_unlearn_job(
    ctx: JobContext,
    steps: UnlearnSteps,
    info: MethodInfo,
    cfg: Any,
    *,
    checkpoint_every: int | None,
    checkpoint_file: str = "state.safetensors",
) -> dict[str, float]:
    """Seed, load, measure, apply ``info``'s method with ``cfg`` (resuming from ``ctx.resume``
    with ``checkpoint_every``; ``None``: a method without checkpoints), measure, save, draw."""
    seed_everything(ctx.seed)
    model, data = steps.load()
    ctx.progress(PROGRESS["before"], text=steps.measuring)
    before = steps.before(model)
    work = steps.working(model)
    hooks: Hooks = hooks_from(
        ctx,
        checkpoint_every=checkpoint_every,
        checkpoint_file=checkpoint_file,
        progress=(PROGRESS["apply"], PROGRESS["after"]),
    )
    ctx.progress(PROGRESS["apply"], text=f"{steps.verb} with {info.name}")
    t0 = time.perf_counter()
    result = info.load()(work, data, cfg, hooks, seed=ctx.seed)
    earlier = hooks.checkpoints.seconds if hooks.checkpoints is not None else 0.0
    seconds = earlier + time.perf_counter() - t0
    unlearned = steps.finish(work)
    ctx.progress(PROGRESS["after"], text="measuring the unlearned model")
    after = steps.after(unlearned, before, result, seconds)
    ctx.progress(PROGRESS["save"], text="saving")
    steps.save(unlearned)
    steps.artifacts(before, after)
    return steps.result(after)
