"""The job engine: runs registered jobs on background threads and streams what they report.

Protocol for a job function (registered as ``"module:function"``)::

    def run(ctx: JobContext) -> dict[str, float] | None:
        for step in range(...):
            ctx.check()                       # raises Cancelled when the user cancelled
            ...
            ctx.metric("loss", loss, step)    # buffered, written to the store in batches
            ctx.progress(step + 1, total)
        ctx.artifact("roc", Curves(...))      # written to runs/<id>/ and catalogued
        return {"accuracy": acc}              # final metrics

The engine owns the run record: queued -> running -> completed | failed | cancelled.  A failure
keeps its traceback and everything recorded before it.  Jobs that support resuming save
checkpoints (``ctx.checkpoint_dir`` / ``ctx.record_checkpoint``) and read ``ctx.resume`` when
restarted with :meth:`Engine.resume`.

Scheduling: runs wait in a FIFO queue and start when a worker is free and, for ``model_heavy``
jobs, when one of the heavy slots (default 1) is free.  The executor is anything with
``submit(fn)``: a :class:`concurrent.futures.ThreadPoolExecutor` headless, a Qt thread-pool adapter in
the GUI.  Listeners receive :class:`Event` objects on the worker thread; the GUI adapter forwards
them to the GUI thread through a Qt signal.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from workbench.artifacts import Artifact
from workbench.config import ConfigError, to_dict
from workbench.registry import JobSpec, Registry, get_registry
from workbench.store import Project, now
from workbench.versions import collect_versions

__all__ = [
    "Cancelled",
    "CancelToken",
    "Checkpoint",
    "Engine",
    "EngineError",
    "Event",
    "Executor",
    "JobContext",
    "ResolvedRef",
]


class Cancelled(Exception):
    """Raised inside a job by :meth:`CancelToken.check` once the run has been cancelled."""


class EngineError(RuntimeError):
    """A run cannot be submitted or resumed (bad job, config, model or state)."""


class CancelToken:
    """Cooperative cancellation, checked by jobs at every step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


@dataclass(frozen=True)
class Event:
    """Something a run reported: ``type`` is status, progress, metric, artifact, log or checkpoint."""

    run_id: int
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Checkpoint:
    """Where a resumable job left off: the path it recorded and the step it had completed."""

    path: Path
    step: int


@dataclass(frozen=True)
class ResolvedRef:
    """A model or dataset a run uses, resolved to a name, family, kind and absolute path."""

    name: str
    family: str
    kind: str
    path: Path | None
    builtin: bool
    meta: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    def submit(self, fn: Callable[[], Any], /) -> Any: ...


class _Reporter:
    """Buffers metrics and log lines and writes them in batches; forwards events to listeners."""

    FLUSH_SECONDS = 0.5
    FLUSH_ROWS = 500
    PROGRESS_SECONDS = 0.1

    def __init__(self, engine: Engine, run_id: int) -> None:
        self.engine = engine
        self.project = engine.project
        self.run_id = run_id
        self._metrics: list[dict[str, Any]] = []
        self._logs: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._last_progress_write = 0.0
        self.last_step = 0

    def emit(self, type_: str, **data: Any) -> None:
        self.engine._emit(Event(self.run_id, type_, data))

    def metric(self, name: str, value: float, step: int) -> None:
        value = float(value)
        self.last_step = max(self.last_step, step)
        self._metrics.append(
            {"run_id": self.run_id, "step": int(step), "name": name, "value": value, "time": now()}
        )
        self.emit("metric", name=name, value=value, step=int(step))
        self._maybe_flush()

    def log(self, message: str, level: str = "info") -> None:
        self._logs.append(
            {"run_id": self.run_id, "time": now(), "level": level, "message": message}
        )
        self.emit("log", message=message, level=level)
        self._maybe_flush()

    def progress(self, fraction: float, text: str | None = None) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        t = time.monotonic()
        if t - self._last_progress_write >= self.PROGRESS_SECONDS or fraction >= 1.0:
            self._last_progress_write = t
            fields: dict[str, Any] = {"progress": fraction}
            if text is not None:
                fields["status_text"] = text
            self.flush()
            self.project.update_run(self.run_id, **fields)
            self.emit("progress", progress=fraction, text=text)

    def _maybe_flush(self) -> None:
        if (
            len(self._metrics) + len(self._logs) >= self.FLUSH_ROWS
            or time.monotonic() - self._last_flush >= self.FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        metrics, logs = self._metrics, self._logs
        self._metrics, self._logs = [], []
        self.project.add_metrics(metrics)
        self.project.add_logs(logs)
        self._last_flush = time.monotonic()


class JobContext:
    """What a job function gets: its typed config, seed, inputs, a reporter and a cancel token."""

    def __init__(
        self,
        *,
        engine: Engine,
        run_id: int,
        spec: JobSpec,
        config: Any,
        seed: int,
        model: ResolvedRef | None,
        dataset: ResolvedRef | None,
        cancel: CancelToken,
        resume: Checkpoint | None,
    ) -> None:
        self.engine = engine
        self.project: Project = engine.project
        self.run_id = run_id
        self.spec = spec
        self.config = config
        self.seed = seed
        self.model = model
        self.dataset = dataset
        self.cancel_token = cancel
        self.resume = resume
        self._reporter = _Reporter(engine, run_id)

    # -- cancellation ----------------------------------------------------------------------
    def check(self) -> None:
        """Raise :class:`Cancelled` if the run was cancelled; call it at every step."""
        self.cancel_token.check()

    @property
    def cancelled(self) -> bool:
        return self.cancel_token.cancelled

    # -- reporting -------------------------------------------------------------------------
    def progress(self, done: float, total: float = 1.0, text: str | None = None) -> None:
        self._reporter.progress(done / total if total else 0.0, text)

    def status(self, text: str) -> None:
        self.project.update_run(self.run_id, status_text=text)
        self._reporter.emit("status", status="running", text=text)

    def metric(self, name: str, value: float, step: int = 0) -> None:
        self._reporter.metric(name, value, step)

    def metrics(self, values: dict[str, float], step: int = 0) -> None:
        for name, value in values.items():
            self._reporter.metric(name, value, step)

    def log(self, message: str, level: str = "info") -> None:
        self._reporter.log(message, level)

    def artifact(self, name: str, artifact: Artifact) -> Path:
        """Save an artifact under the run's folder and catalogue it; returns its path."""
        folder = self.run_dir / "artifacts"
        folder.mkdir(parents=True, exist_ok=True)
        path, meta = artifact.save(folder, name)
        self._reporter.flush()
        self.project.add_artifact(self.run_id, artifact.kind, name, str(path), meta)
        self._reporter.emit("artifact", kind=artifact.kind, name=name, path=str(path))
        return path

    def set_device(self, device: str) -> None:
        self.project.update_run(self.run_id, device=device)

    def unique_model_name(self, name: str) -> str:
        """``name``, or ``name-run<id>`` when another run's model already has it (never overwrite
        what an earlier run produced)."""
        existing = self.project.model(name)
        if existing is None or existing["source_run"] == self.run_id:
            return name
        unique = f"{name}-run{self.run_id}"
        self.log(
            f"a model named {name!r} already exists (run {existing['source_run']}); using {unique!r}"
        )
        return unique

    def register_model(
        self, name: str, kind: str, path: str | os.PathLike[str], meta: dict[str, Any] | None = None
    ) -> int:
        """Add a model this run produced to the project (it appears in the models pane)."""
        return self.project.add_model(
            name, self.spec.family, kind, str(path), source_run=self.run_id, meta=meta
        )

    # -- files and checkpoints -------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.project.run_dir(self.run_id)

    @property
    def checkpoint_dir(self) -> Path:
        path = self.run_dir / "checkpoints"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def record_checkpoint(self, path: str | os.PathLike[str], step: int) -> None:
        """Note that the state after ``step`` is saved at ``path`` (resume starts after it)."""
        self._reporter.flush()
        self.project.update_run(
            self.run_id, checkpoint=self.project.relpath(path), checkpoint_step=int(step)
        )
        self._reporter.emit("checkpoint", path=str(path), step=int(step))

    def flush(self) -> None:
        self._reporter.flush()


@dataclass
class _Pending:
    run_id: int
    spec: JobSpec
    config: Any
    seed: int
    model: ResolvedRef | None
    dataset: ResolvedRef | None
    resume: Checkpoint | None
    cancel: CancelToken = field(default_factory=CancelToken)
    done: threading.Event = field(default_factory=threading.Event)
    # set once listeners have seen the final status event (what wait() waits for)
    notified: threading.Event = field(default_factory=threading.Event)


class Engine:
    """Submits, schedules, runs and cancels jobs for one project."""

    def __init__(
        self,
        project: Project,
        *,
        executor: Executor | None = None,
        max_workers: int = 2,
        heavy_slots: int = 1,
        registry: Registry | None = None,
    ) -> None:
        self.project = project
        self.registry = registry or get_registry()
        self._own_executor = executor is None
        self.executor: Executor = executor or ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="workbench-job"
        )
        self.max_workers = max_workers
        self.heavy_slots = heavy_slots
        self._lock = threading.RLock()
        self._queue: deque[_Pending] = deque()
        self._active: dict[int, _Pending] = {}
        self._all: dict[int, _Pending] = {}
        self._listeners: list[Callable[[Event], None]] = []

    # -- listeners -------------------------------------------------------------------------
    def add_listener(self, callback: Callable[[Event], None]) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[Event], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _emit(self, event: Event) -> None:
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:  # a broken view must not kill the job
                traceback.print_exc()

    # -- resolving inputs ------------------------------------------------------------------
    def resolve_model(self, ref: str | None, spec: JobSpec) -> ResolvedRef | None:
        """A model name in the project, a built-in model, or a folder path; else a clear error."""
        if not ref:
            if spec.needs_model:
                raise EngineError(
                    f"job {spec.name} needs a {spec.needs_model} model; none was given"
                )
            return None
        row = self.project.model(ref)
        if row is not None:
            path = self.project.abspath(row["path"]) if row["path"] else None
            if path is not None and not path.exists():
                raise EngineError(
                    f"model {ref!r} points to {path}, which does not exist any more; "
                    "move it back or register the model again"
                )
            return ResolvedRef(ref, row["family"], row["kind"], path, row["builtin"], row["meta"])
        for kind in self.registry.model_kinds.values():
            for name, builtin_path in kind.builtin:
                if name == ref:
                    return ResolvedRef(name, kind.family, kind.name, Path(builtin_path), True)
        path = Path(ref).expanduser()
        if not path.exists():
            raise EngineError(
                f"model {ref!r} is neither a model of this project nor an existing folder; "
                "check the path or add the model to the project first"
            )
        family = spec.needs_model or spec.family
        errors = []
        for kind in self.registry.model_kinds.values():
            if kind.family != family:
                continue
            try:
                kind.check_path(str(path))
            except ValueError as exc:
                errors.append(f"{kind.title}: {exc}")
                continue
            return ResolvedRef(path.name, family, kind.name, path.resolve(), False)
        detail = "; ".join(errors) or f"no {family} model kind is registered"
        raise EngineError(f"{path} is not a model this job can load ({detail})")

    def resolve_dataset(self, ref: str | None, spec: JobSpec) -> ResolvedRef | None:
        if not ref:
            if spec.needs_dataset:
                raise EngineError(f"job {spec.name} needs a dataset; none was given")
            return None
        if ref in self.registry.datasets:
            ds = self.registry.datasets[ref]
            if not ds.builtin:
                raise EngineError(
                    f"{ref!r} is a kind of dataset, not a dataset: add your folder to the project "
                    f"first (workbench add-dataset NAME PATH --kind {ref}, or File > Add dataset)"
                )
            return ResolvedRef(ds.name, ds.family, ds.name, None, True, dict(ds.info))
        for row in self.project.datasets():
            if row["name"] == ref:
                path = self.project.abspath(row["path"]) if row["path"] else None
                return ResolvedRef(
                    ref, row["family"], row["kind"], path, row["builtin"], row["meta"]
                )
        known = sorted(self.registry.datasets) + [d["name"] for d in self.project.datasets()]
        raise EngineError(f"unknown dataset {ref!r}; known datasets: {', '.join(known) or 'none'}")

    # -- submitting ------------------------------------------------------------------------
    def submit(
        self,
        job: str,
        config: dict[str, Any] | None = None,
        *,
        seed: int = 0,
        model: str | None = None,
        dataset: str | None = None,
        parent_id: int | None = None,
    ) -> int:
        """Validate and queue a run; returns its id.  Raises ``EngineError``/``ConfigError``."""
        try:
            spec = self.registry.job(job)
        except LookupError as exc:
            raise EngineError(str(exc)) from None
        typed = spec.validate(config)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}", "seed")
        model_ref = self.resolve_model(model, spec)
        dataset_ref = self.resolve_dataset(dataset, spec)
        run_id = self.project.create_run(
            job=spec.name,
            kind=spec.kind,
            family=spec.family,
            method=spec.method or spec.name.rsplit(".", 1)[-1],
            config=to_dict(typed),
            seed=seed,
            model=model_ref.name if model_ref else None,
            dataset=dataset_ref.name if dataset_ref else None,
            versions=collect_versions(),
            parent_id=parent_id,
        )
        self._enqueue(_Pending(run_id, spec, typed, seed, model_ref, dataset_ref, None))
        return run_id

    def resume(self, run_id: int) -> int:
        """Continue a cancelled, failed or interrupted run from its last checkpoint (same run id)."""
        record = self.project.run(run_id)
        try:
            spec = self.registry.job(record.job)
        except LookupError as exc:  # the plugin that made the run is gone: same error as submit
            raise EngineError(str(exc)) from None
        if record.status not in ("cancelled", "failed", "interrupted"):
            raise EngineError(f"run {run_id} is {record.status}; only a stopped run can be resumed")
        if not spec.supports_resume:
            raise EngineError(f"job {spec.name} cannot resume; start a new run instead")
        if not record.checkpoint:
            raise EngineError(f"run {run_id} saved no checkpoint before it stopped; rerun it")
        checkpoint = Checkpoint(
            self.project.abspath(record.checkpoint), record.checkpoint_step or 0
        )
        if not checkpoint.path.exists():
            raise EngineError(f"run {run_id}'s checkpoint {checkpoint.path} is missing")
        typed = spec.validate(record.config)
        model_ref = self.resolve_model(record.model, spec)
        dataset_ref = self.resolve_dataset(record.dataset, spec)
        self.project.delete_metrics_after(run_id, checkpoint.step)
        self.project.update_run(
            run_id,
            status="queued",
            status_text=f"resuming after step {checkpoint.step}",
            error=None,
            finished=None,
            pid=os.getpid(),
        )
        self._enqueue(
            _Pending(run_id, spec, typed, record.seed, model_ref, dataset_ref, checkpoint)
        )
        return run_id

    def _enqueue(self, pending: _Pending) -> None:
        with self._lock:
            self._queue.append(pending)
            self._all[pending.run_id] = pending
        self._emit(Event(pending.run_id, "status", {"status": "queued", "text": "queued"}))
        self._dispatch()

    def _dispatch(self) -> None:
        """Start queued runs while workers and heavy slots are free (FIFO among what fits)."""
        to_start = []
        with self._lock:
            heavy = sum(1 for p in self._active.values() if p.spec.model_heavy)
            for pending in list(self._queue):
                if len(self._active) >= self.max_workers:
                    break
                if pending.spec.model_heavy and heavy >= self.heavy_slots:
                    continue
                self._queue.remove(pending)
                self._active[pending.run_id] = pending
                heavy += pending.spec.model_heavy
                to_start.append(pending)
        for pending in to_start:
            self.executor.submit(lambda p=pending: self._execute(p))

    # -- running ---------------------------------------------------------------------------
    def _execute(self, pending: _Pending) -> None:
        run_id = pending.run_id
        ctx = JobContext(
            engine=self,
            run_id=run_id,
            spec=pending.spec,
            config=pending.config,
            seed=pending.seed,
            model=pending.model,
            dataset=pending.dataset,
            cancel=pending.cancel,
            resume=pending.resume,
        )
        status, error, text = "completed", None, "done"
        try:
            if pending.cancel.cancelled:
                raise Cancelled()
            fields: dict[str, Any] = {
                "status": "running",
                "pid": os.getpid(),
                "host": socket.gethostname(),  # a resumed run may come from another machine
                "status_text": "starting",
            }
            if pending.resume is None:
                fields["started"] = now()
            self.project.update_run(run_id, **fields)
            self._emit(Event(run_id, "status", {"status": "running", "text": "starting"}))
            random.seed(pending.seed)
            fn = pending.spec.load_entry()
            if pending.resume is not None:
                ctx.log(f"resuming from checkpoint after step {pending.resume.step}")
            result = fn(ctx)
            if result:
                ctx.metrics({k: float(v) for k, v in result.items()}, step=ctx._reporter.last_step)
            ctx.progress(1.0)
        except Cancelled:
            status, text = "cancelled", "cancelled by the user"
        except BaseException as exc:  # SystemExit too: a run that stopped did not complete
            status, text = "failed", f"{type(exc).__name__}: {exc}"
            error = traceback.format_exc()
            try:
                ctx.log(text, level="error")
            except Exception:
                traceback.print_exc()
        finally:
            try:
                ctx.flush()
            finally:
                self.project.update_run(
                    run_id, status=status, status_text=text, error=error, finished=now()
                )
                with self._lock:
                    self._active.pop(run_id, None)
                pending.done.set()
                self._emit(Event(run_id, "status", {"status": status, "text": text}))
                pending.notified.set()
                self._dispatch()

    # -- control ---------------------------------------------------------------------------
    def cancel(self, run_id: int) -> bool:
        """Cancel a queued or running run; returns False if it is not in this engine."""
        with self._lock:
            pending = self._all.get(run_id)
            if pending is None or pending.done.is_set():
                return False
            pending.cancel.cancel()
            queued = pending in self._queue
            if queued:
                self._queue.remove(pending)
        if queued:
            self.project.update_run(
                run_id,
                status="cancelled",
                status_text="cancelled before it started",
                finished=now(),
            )
            pending.done.set()
            self._emit(Event(run_id, "status", {"status": "cancelled", "text": "cancelled"}))
            pending.notified.set()
        return True

    def wait(self, run_id: int, timeout: float | None = None) -> str:
        """Block until the run ends and listeners have seen its final status (or ``timeout``);
        returns its status."""
        pending = self._all.get(run_id)
        if pending is not None:
            pending.notified.wait(timeout)
        return self.project.run(run_id).status

    def is_active(self, run_id: int) -> bool:
        with self._lock:
            pending = self._all.get(run_id)
            return pending is not None and not pending.done.is_set()

    def active_runs(self) -> list[int]:
        with self._lock:
            return [rid for rid, p in self._all.items() if not p.done.is_set()]

    def shutdown(self, *, cancel: bool = True, wait: bool = True, timeout: float = 30.0) -> None:
        """Cancel (optionally) what is queued or running and wait for the workers to stop."""
        if cancel:
            for run_id in self.active_runs():
                self.cancel(run_id)
        if wait:
            deadline = time.monotonic() + timeout
            for run_id in list(self._all):
                remaining = max(0.0, deadline - time.monotonic())
                self._all[run_id].done.wait(remaining)
        if self._own_executor and isinstance(self.executor, ThreadPoolExecutor):
            self.executor.shutdown(wait=wait)
