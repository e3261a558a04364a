"""Test helpers shared by the engine and launcher tests: wait for an engine's events, read a
run's log messages."""

from __future__ import annotations

import threading
from collections.abc import Callable

from workbench.jobs import Engine, Event
from workbench.store import Project

TIMEOUT = 60.0


class EngineEvents:
    """Collects an engine's events; ``wait_for(pred)`` blocks until one matches (no sleeps)."""

    def __init__(self, engine: Engine, timeout: float = TIMEOUT) -> None:
        self.events: list[Event] = []
        self.timeout = timeout
        self._cond = threading.Condition()
        engine.add_listener(self._on)

    def _on(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[Event], bool]) -> Event:
        with self._cond:
            found = self._cond.wait_for(lambda: any(pred(e) for e in self.events), self.timeout)
            assert found, "no such event"
            return next(e for e in self.events if pred(e))


def log_messages(project: Project, run_id: int) -> list[str]:
    return [row["message"] for row in project.logs(run_id)]
