"""What the resume tests of the model families share: a stop after N steps at function level,
and a run through the real engine cancelled on its first checkpoint, then resumed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench.jobs import Engine, Event
from workbench.store import Project

WAIT = 300


class Stop(Exception):
    """Raised by :func:`stop_after`'s check: a cancel in the middle of a loop."""


def stop_after(calls: int) -> Callable[[], None]:
    """A ``check`` that raises :class:`Stop` on its ``calls + 1``-th call (before that step)."""
    seen = [0]

    def check() -> None:
        seen[0] += 1
        if seen[0] > calls:
            raise Stop()

    return check


def plain_and_resumed(
    engine: Engine, project: Project, job: str, config: dict[str, Any], **submit: Any
) -> tuple[int, int, int]:
    """``(uninterrupted run, resumed run, step of the checkpoint it was cancelled on)``: the same
    submission run once to the end and once cancelled on its first checkpoint event (an engine
    listener), then continued with ``Engine.resume``; both completed."""
    plain = engine.submit(job, config, **submit)
    assert engine.wait(plain, WAIT) == "completed", project.run(plain).error
    fired: list[int] = []

    def cancel_on_first_checkpoint(event: Event) -> None:
        if event.type == "checkpoint" and not fired:
            fired.append(event.data["step"])
            engine.cancel(event.run_id)

    engine.add_listener(cancel_on_first_checkpoint)
    run_id = engine.submit(job, config, **submit)
    assert engine.wait(run_id, WAIT) == "cancelled"
    assert len(fired) == 1 and project.run(run_id).checkpoint_step == fired[0]
    assert engine.resume(run_id) == run_id
    assert engine.wait(run_id, WAIT) == "completed", project.run(run_id).error
    return plain, run_id, fired[0]
