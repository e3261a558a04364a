"""Qt adapters for the job engine: a thread-pool executor and a throttled event bridge.

:class:`QtExecutor` runs the engine's work on a :class:`QThreadPool`.  :class:`EngineBridge` is the
engine listener: it is called on worker threads, queues events, and re-emits them on the GUI thread
at most every :attr:`EngineBridge.interval_ms`, so a job that reports thousands of metrics per second
cannot flood the event loop (progress events of one run are coalesced to the latest).
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, QTimer, Signal, Slot

from workbench.jobs import Event

__all__ = ["QtExecutor", "EngineBridge", "Loader"]


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__()
        self._fn = fn
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            self._fn()
        except Exception:  # the engine records failures itself; never kill a pool thread
            traceback.print_exc()


class QtExecutor:
    """An engine executor: ``submit(fn)`` runs ``fn`` on a private :class:`QThreadPool`."""

    def __init__(self, max_threads: int = 2) -> None:
        self.pool = QThreadPool()
        self.pool.setMaxThreadCount(max_threads)
        self.pool.setExpiryTimeout(2000)

    def submit(self, fn: Callable[[], Any], /) -> None:
        self.pool.start(_Task(fn))

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Wait for running tasks to end; returns False if some were still running."""
        done = self.pool.waitForDone(timeout_ms)
        self.pool.clear()
        return done


class Loader(QObject):
    """Runs loading functions off the GUI thread and hands their results back on it.

    ``load(token, fn)`` runs ``fn()`` on a private pool; ``loaded(token, result)`` (or
    ``failed(token, exception)``) is then emitted on the GUI thread.  Callers compare ``token`` with
    what they show now and drop results that arrive for a selection that is no longer current.
    """

    loaded = Signal(object, object)
    failed = Signal(object, object)
    _done = Signal(object, object, bool)

    def __init__(self, parent: QObject | None = None, max_threads: int = 2) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.pool.setExpiryTimeout(5000)
        self._done.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def load(self, token: Any, fn: Callable[[], Any]) -> None:
        done = self._done

        def work() -> None:
            try:
                result, ok = fn(), True
            except Exception as exc:  # delivered to the GUI thread, which decides what to show
                result, ok = exc, False
            with contextlib.suppress(RuntimeError):  # the loader was deleted while this ran
                done.emit(token, result, ok)

        self.pool.start(_Task(work))

    @Slot(object, object, bool)
    def _deliver(self, token: Any, result: Any, ok: bool) -> None:
        (self.loaded if ok else self.failed).emit(token, result)

    def wait(self, timeout_ms: int = 30_000) -> bool:
        return self.pool.waitForDone(timeout_ms)


class EngineBridge(QObject):
    """Forwards engine events from worker threads to the GUI thread, in throttled batches.

    ``event`` fires once per event and ``batch`` once per flush with the list; connect views that
    redraw to ``batch`` so they redraw once per flush.
    """

    event = Signal(object)
    batch = Signal(object)
    _wake = Signal()

    def __init__(self, parent: QObject | None = None, interval_ms: int = 50) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._lock = threading.Lock()
        self._pending: list[Event] = []
        self._woken = False
        self._last_flush = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush)
        self._wake.connect(self._on_wake, Qt.ConnectionType.QueuedConnection)

    def post(self, event: Event) -> None:
        """The engine listener (any thread): queue the event and wake the GUI thread once."""
        with self._lock:
            self._pending.append(event)
            if self._woken:
                return
            self._woken = True
        self._wake.emit()

    @Slot()
    def _on_wake(self) -> None:
        if self._timer.isActive():
            return
        since = (time.monotonic() - self._last_flush) * 1000
        self._timer.start(int(max(0.0, self.interval_ms - since)))

    @Slot()
    def flush(self) -> None:
        """Emit what is queued now (GUI thread)."""
        with self._lock:
            events, self._pending = self._pending, []
            self._woken = False
        self._last_flush = time.monotonic()
        if not events:
            return
        events = _coalesce(events)
        for ev in events:
            self.event.emit(ev)
        self.batch.emit(events)

    def stop(self) -> None:
        self._timer.stop()
        with self._lock:
            self._pending.clear()


def _coalesce(events: list[Event]) -> list[Event]:
    """Keep every event except superseded progress events (only a run's latest one stays)."""
    last_progress: dict[int, int] = {}
    for i, ev in enumerate(events):
        if ev.type == "progress":
            last_progress[ev.run_id] = i
    if len(last_progress) == sum(1 for e in events if e.type == "progress"):
        return events
    return [
        ev
        for i, ev in enumerate(events)
        if ev.type != "progress" or last_progress.get(ev.run_id) == i
    ]
