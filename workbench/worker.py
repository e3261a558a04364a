"""The child process side of a run the engine isolates (``Engine(isolate=...)``, what the GUI uses
for ``model_heavy`` jobs): it runs the job with the project's catalogue open in this process, so the
job's Python work never holds the GUI process's GIL.

:func:`child_main` is the target of a ``multiprocessing`` *spawn* process.  The job writes its
metrics, logs, artifacts, checkpoints and progress to the SQLite store itself (as a job on a thread
does); the events it reports travel to the parent over a pipe in batches (every
:data:`SEND_SECONDS`), and the parent's engine re-emits them to its listeners.  Messages:

- parent to child: ``("cancel",)``; the pipe closing (the parent died) cancels too.
- child to parent: ``("events", [(type, data), ...])``, then one ``("end", outcome)`` where outcome is
  ``("done", last_step)``, ``("cancelled", last_step)`` or
  ``("failed", last_step, one_line, traceback, storage_full)``.

The parent records the run's status; a child that dies without sending ``end`` (killed, crashed in
native code) is recorded by the parent as failed with the exit code or signal.
"""

from __future__ import annotations

import os
import random
import threading
import traceback
from contextlib import suppress
from pathlib import Path
from typing import Any

from workbench.jobs import Cancelled, CancelToken, Checkpoint, Event, JobContext, ResolvedRef
from workbench.registry import JobSpec, get_registry
from workbench.store import Project, is_storage_full

__all__ = ["child_main", "SEND_SECONDS"]

SEND_SECONDS = 0.05


class _Relay:
    """Buffers the job's events and sends them to the parent in batches from a sender thread."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="workbench-relay", daemon=True)
        self._thread.start()

    def emit(self, event: Event) -> None:
        with self._lock:
            self._events.append((event.type, event.data))

    def _loop(self) -> None:
        while not self._stop.wait(SEND_SECONDS):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            events, self._events = self._events, []
        if events:
            self.send(("events", events))

    def send(self, message: tuple) -> None:
        with self._send_lock, suppress(OSError, ValueError):  # the parent is gone: nothing to tell
            self.conn.send(message)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()


class _ChildEngine:
    """What a :class:`JobContext` needs of an engine: the project and an event sink."""

    def __init__(self, project: Project, relay: _Relay) -> None:
        self.project = project
        self._relay = relay

    def _emit(self, event: Event) -> None:
        self._relay.emit(event)


def _listen(conn: Any, token: CancelToken) -> None:
    """Cancel the job when the parent says so or goes away."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            token.cancel()
            return
        if message and message[0] == "cancel":
            token.cancel()


def child_main(
    conn: Any,
    root: str,
    run_id: int,
    job: str,
    spec: JobSpec | None,
    config: dict[str, Any],
    seed: int,
    model: ResolvedRef | None,
    dataset: ResolvedRef | None,
    resume: Checkpoint | None,
    niceness: int = 0,
) -> None:
    """Run one job in this (child) process; see the module docstring for the protocol.

    ``niceness`` lowers this process's CPU priority (POSIX), so that on a machine with few cores
    the GUI process gets the CPU first and training takes what is left."""
    if niceness > 0 and hasattr(os, "nice"):
        with suppress(OSError):
            os.nice(niceness)
    relay = _Relay(conn)
    token = CancelToken()
    threading.Thread(
        target=_listen, args=(conn, token), name="workbench-cancel", daemon=True
    ).start()
    project: Project | None = None
    ctx: JobContext | None = None
    try:
        project = Project(Path(root))
        if spec is None:  # the parent's spec did not pickle: the plugins registered it by name
            spec = get_registry().job(job)
        typed = spec.validate(config)
        ctx = JobContext(
            engine=_ChildEngine(project, relay),  # type: ignore[arg-type]
            run_id=run_id,
            spec=spec,
            config=typed,
            seed=seed,
            model=model,
            dataset=dataset,
            cancel=token,
            resume=resume,
        )
        random.seed(seed)
        fn = spec.load_entry()
        result = fn(ctx)
        if result:
            ctx.metrics({k: float(v) for k, v in result.items()}, step=ctx._reporter.last_step)
        ctx.flush()
        outcome: tuple = ("done", ctx._reporter.last_step)
    except Cancelled:
        if ctx is not None:
            with suppress(Exception):
                ctx.flush()
        outcome = ("cancelled", ctx._reporter.last_step if ctx else 0)
    except BaseException as exc:  # SystemExit too: the parent records a failed run
        from workbench.jobs import _one_line

        if ctx is not None:
            with suppress(Exception):
                ctx.flush()
        last = ctx._reporter.last_step if ctx else 0
        outcome = ("failed", last, _one_line(exc), traceback.format_exc(), is_storage_full(exc))
    relay.close()
    relay.send(("end", outcome))
    if project is not None:
        with suppress(Exception):
            project.close()
    with suppress(OSError):
        conn.close()
