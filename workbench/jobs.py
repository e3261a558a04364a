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
keeps its traceback and everything recorded before it.  The engine always finishes a run's
bookkeeping: a storage error while recording (a full disk) fails the run when the store can still
be written, and the waiting CLI or GUI is released either way (:meth:`Engine.storage_error`).
Starting and resuming a run are atomic claims on its row (:meth:`Project.claim_run`), so two
processes never run the same run.  Jobs that support resuming save
checkpoints (``ctx.checkpoint_dir`` / ``ctx.record_checkpoint``) and read ``ctx.resume`` when
restarted with :meth:`Engine.resume`.

Scheduling: runs wait in a FIFO queue and start when a worker is free and, for ``model_heavy``
jobs, when one of the heavy slots (default 1) is free.  The executor is anything with
``submit(fn)``: a :class:`concurrent.futures.ThreadPoolExecutor` headless, a Qt thread-pool adapter in
the GUI.  Listeners receive :class:`Event` objects on the worker thread; the GUI adapter forwards
them to the GUI thread through a Qt signal.

Isolation: with ``Engine(isolate=heavy_jobs)`` (what the GUI uses) a ``model_heavy`` run's job
function runs in a child process (:mod:`workbench.worker`, a ``multiprocessing`` spawn process), so
its Python work never holds the GIL of the process that draws the window.  The worker thread then
only relays: the child writes metrics, logs, artifacts and checkpoints to the store and sends its
events over a pipe; cancelling sends the child a message (and kills it when it has not stopped
after :attr:`Engine.cancel_grace_s`); a child that dies fails the run with its exit code or signal.

Launchers: with ``Engine(launcher=...)`` a remote launcher (Ray, Slurm; :mod:`workbench.launchers`)
runs every run on a cluster; the worker thread writes the run folder, submits it and ingests what
the job writes there into the store as it arrives (:mod:`workbench.remote`): only this process
writes SQLite.

The run's log says when the user cancelled, where the run stopped (its last step and checkpoint)
and, on resume, from which checkpoint it continued.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import pickle
import random
import shutil
import signal
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from workbench.artifacts import Artifact
from workbench.catalog import Catalog, CatalogError, ResolvedRef
from workbench.config import (
    ConfigError,
    check_seed,
    dataset_kinds,
    device_fields,
    part,
    to_dict,
)
from workbench.files import check_name
from workbench.launchers import Handle, Launcher, LauncherError, RunSpec
from workbench.registry import JobSpec, Registry, get_registry, resolve_entry
from workbench.request import CONFIG_VERSION_KEY, RunRequest
from workbench.store import Project, ProjectError, RunClaimError, is_storage_full, now
from workbench.versions import collect_versions

FINAL = ("completed", "failed", "cancelled", "interrupted")
_P = TypeVar("_P")


def _one_line(exc: BaseException, with_type: bool = True) -> str:
    """An exception as one line: storage errors keep their own words ("No space left on
    device: ..."), others are ``Type: message``."""
    if isinstance(exc, OSError) and is_storage_full(exc) and not isinstance(exc, ProjectError):
        return f"No space left on device: {exc.filename or exc.strerror or exc}"
    message = " ".join(str(exc).split()) or type(exc).__name__
    if not with_type or isinstance(exc, ProjectError):
        return message
    return f"{type(exc).__name__}: {message}"


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
    "RunRequest",
    "heavy_jobs",
]


def heavy_jobs(spec: JobSpec) -> bool:
    """The isolation policy of the GUI: ``model_heavy`` jobs run in a child process."""
    return spec.model_heavy


class _ChildFailed(Exception):
    """An isolated run's child process failed (its traceback) or died (its exit code)."""

    def __init__(self, text: str, error: str, storage_full: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.error = error
        self.storage_full = storage_full


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Cancelled(Exception):
    """Raised inside a job by :meth:`CancelToken.check` once the run has been cancelled."""


class EngineError(RuntimeError):
    """A run cannot be submitted or resumed (bad job, config, model or state).

    ``field`` names the input at fault (``"model"`` or ``"dataset"``) when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run is cancelled or ``timeout`` passes; True when cancelled (a job
        that waits for something can wait on this instead of sleeping)."""
        return self._event.wait(timeout)


class _LinkedCancel(CancelToken):
    """A child run's token: cancelled by itself or when its parent run is cancelled."""

    def __init__(self, parent: CancelToken) -> None:
        super().__init__()
        self._parent = parent

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or self._parent.cancelled

    def check(self) -> None:
        if self.cancelled:
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
        """Write what is buffered.  Rows leave the buffer only once written, so a failed write
        (a full disk) loses nothing: the next flush, or the engine's final one, retries them."""
        self._last_flush = time.monotonic()
        if self._metrics:
            self.project.add_metrics(self._metrics)
            self._metrics = []
        if self._logs:
            self.project.add_logs(self._logs)
            self._logs = []


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
        if resume is not None:  # the steps up to the checkpoint are done
            self._reporter.last_step = resume.step

    def part(self, part_cls: type[_P]) -> _P:
        """The ``part_cls`` part of this run's composed config, typed (``ctx.part(SetupConfig)``);
        the config itself when it is a ``part_cls``.  ``LookupError`` when it has no such part."""
        result: _P = part(self.config, part_cls)
        return result

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
        what an earlier run produced).  ``name`` must be a plain name (no separators): the model
        is written to ``models/<name>`` inside the project and nowhere else (``ValueError``)."""
        check_name(name, "model name")
        folder = self.project.model_dir(name)
        existing = self.project.model(name)
        if existing is not None and existing["source_run"] == self.run_id:
            return name
        # a folder kept from a model removed from the project (or renamed) is not overwritten
        if existing is None and not (folder.is_dir() and any(folder.iterdir())):
            return name
        unique = check_name(f"{name}-run{self.run_id}"[-128:].lstrip(".- "), "model name")
        why = f"run {existing['source_run']}" if existing else f"its folder {folder} is kept"
        self.log(f"a model named {name!r} already exists ({why}); using {unique!r}")
        return unique

    def register_model(
        self, name: str, kind: str, path: str | os.PathLike[str], meta: dict[str, Any] | None = None
    ) -> int:
        """Add a model this run produced to the project (it appears in the models pane)."""
        return self.project.add_model(
            name, self.spec.family, kind, str(path), source_run=self.run_id, meta=meta
        )

    def model_dir(self, name: str) -> Path:
        """``models/<name>`` inside the project, for a plain ``name`` (``ValueError`` else)."""
        return self.project.model_dir(name)

    def save_model(
        self,
        name: str,
        write: Callable[[Path], object],
        *,
        kind: str,
        meta: dict[str, Any] | None = None,
    ) -> Path:
        """Save a model this run produced into ``models/<name>`` and register it: the one way
        every family saves.  ``name`` becomes unique (:meth:`unique_model_name`), ``write(folder)``
        fills the folder (``save_pretrained`` and friends), then the model is registered under
        ``kind`` and the run's log says where it went.  When ``write`` fails, a folder it created
        is removed and nothing is registered, so a half-written model never appears in the pane."""
        name = self.unique_model_name(name)
        folder = self.model_dir(name)
        existed = folder.exists()
        try:
            write(folder)
        except BaseException:
            if not existed:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        self.register_model(name, kind, folder, meta)
        self.log(f"saved model {name} to {folder}")
        return folder

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
        inside = self.project.inside(path, what="checkpoint")
        self._reporter.flush()
        self.project.update_run(
            self.run_id, checkpoint=self.project.relpath(inside), checkpoint_step=int(step)
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
    # the final status as the engine decided it (the store may not have taken it: a full disk)
    final_status: str | None = None
    # a storage failure while recording the run, as one line ("No space left on device: ...")
    storage_error: str | None = None
    # the child process of an isolated run (its pid), once started
    child_pid: int | None = None
    # the launcher of a run on a cluster (None: it runs in this process or a child of it)
    remote: Launcher | None = None
    # its handle there, once submitted
    handle: Handle | None = None


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
        isolate: Callable[[JobSpec], bool] | None = None,
        cancel_grace_s: float = 10.0,
        child_niceness: int = 5,
        launcher: Launcher | None = None,
        remote_poll_s: float = 0.2,
    ) -> None:
        self.project = project
        # a remote launcher (Ray, Slurm) runs every run of this engine on a cluster and this
        # process ingests its run folder (None: runs execute here, the local launcher)
        self.launcher = launcher if launcher is not None and launcher.remote else None
        # how often a remote run's folder and state are polled
        self.remote_poll_s = remote_poll_s
        # which jobs run in a child process (None: every job on a worker thread, the headless way)
        self.isolate = isolate
        # how long a cancelled child process may take to stop before it is killed
        self.cancel_grace_s = cancel_grace_s
        # a child process's CPU priority below the GUI's (POSIX nice increment; 0: the same)
        self.child_niceness = child_niceness
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
    @property
    def catalog(self) -> Catalog:
        """The project's models and datasets plus the built-ins (:mod:`workbench.catalog`)."""
        return Catalog(self.project, self.registry)

    def resolve_model(self, ref: str | None, spec: JobSpec) -> ResolvedRef | None:
        """A model name in the project, a built-in model, or a folder path; else a clear error."""
        if not ref:
            if spec.needs_model and not spec.model_optional:
                raise EngineError(
                    f"job {spec.name} needs a {spec.needs_model} model; none was given", "model"
                )
            return None
        try:
            return self.catalog.resolve_model(
                ref, spec.needs_model or None, spec.name, folder_family=spec.family
            )
        except CatalogError as exc:
            raise EngineError(str(exc), "model") from None

    def resolve_dataset(self, ref: str | None, spec: JobSpec) -> ResolvedRef | None:
        if not ref:
            if spec.needs_dataset:
                raise EngineError(f"job {spec.name} needs a dataset; none was given", "dataset")
            return None
        try:
            resolved = self.catalog.resolve_dataset(ref)
        except CatalogError as exc:
            raise EngineError(str(exc), "dataset") from None
        if spec.needs_dataset and resolved.family != spec.needs_dataset:
            raise EngineError(
                f"dataset {ref!r} is a {resolved.family} dataset; job {spec.name} needs a "
                f"{spec.needs_dataset} dataset",
                "dataset",
            )
        kinds = dataset_kinds(spec.config)
        if kinds is not None and resolved.kind not in kinds:
            raise EngineError(
                f"job {spec.name} reads {', '.join(kinds)} datasets only; dataset {ref!r} is "
                f"of kind {resolved.kind!r}",
                "dataset",
            )
        return resolved

    def check_inputs(
        self,
        spec: JobSpec,
        typed: Any,
        model: ResolvedRef | None,
        dataset: ResolvedRef | None,
    ) -> None:
        """Run the job's ``submit_check`` on the typed config and resolved inputs.

        Raises ``ConfigError`` naming the field (the GUI highlights it) or ``EngineError``."""
        if not spec.submit_check:
            return
        try:
            check = resolve_entry(spec.submit_check)
        except (ImportError, LookupError) as exc:
            raise EngineError(f"job {spec.name}: its submit check cannot load ({exc})") from None
        try:
            check(typed, model, dataset)
        except ConfigError:
            raise
        except ValueError as exc:
            raise EngineError(f"job {spec.name}: {exc}") from None

    def check_devices(self, typed: Any) -> None:
        """Refuse at submit a device this machine does not have (``device: cuda`` without a GPU)."""
        for name, value in device_fields(typed):
            if value in ("auto", "cpu"):
                continue
            try:
                self.registry.check_device(value)
            except ValueError as exc:
                raise ConfigError(f"config field {name!r}: {exc}", name) from None

    # -- submitting ------------------------------------------------------------------------
    def submit(
        self,
        job: str | RunRequest,
        config: dict[str, Any] | None = None,
        *,
        seed: int = 0,
        model: str | None = None,
        dataset: str | None = None,
        parent_id: int | None = None,
    ) -> int:
        """Validate and queue a run; returns its id.  Raises ``EngineError``/``ConfigError``.

        ``job`` is a :class:`RunRequest` (then the other arguments but ``parent_id`` are not
        used) or a job name with its config, seed and inputs.  The request's config is brought
        to the job's current config version (:meth:`JobSpec.migrate_config`) and validated once
        here: the typed config it gives is what the job gets."""
        pending = self._prepare(job, config, seed, model, dataset, parent_id)
        self._enqueue(pending)
        return pending.run_id

    def run_child(self, request: RunRequest, parent: JobContext) -> tuple[int, str]:
        """Run ``request`` as a child run of ``parent`` (``parent_id``), now, on the calling
        thread (the parent job's worker), and return ``(run_id, final status)``.

        The child is validated and recorded exactly as :meth:`submit` would record it and runs
        through the same bookkeeping (an isolating engine runs a heavy child in its own
        process); it does not wait in the queue, so a parent that runs its children one by one
        never waits for a worker it holds itself.  Cancelling the parent cancels the child."""
        pending = self._prepare(request, None, 0, None, None, parent.run_id)
        pending.cancel = _LinkedCancel(parent.cancel_token)
        with self._lock:
            self._all[pending.run_id] = pending
            self._active[pending.run_id] = pending
        self._emit(Event(pending.run_id, "status", {"status": "queued", "text": "queued"}))
        self._execute(pending)
        return pending.run_id, pending.final_status or self._status_now(pending.run_id) or ""

    def _prepare(
        self,
        job: str | RunRequest,
        config: dict[str, Any] | None,
        seed: int,
        model: str | None,
        dataset: str | None,
        parent_id: int | None,
    ) -> _Pending:
        """Validate a request and create its run record (status queued)."""
        if isinstance(job, RunRequest):
            request = job
        else:
            request = RunRequest(
                job,
                seed,
                model,
                dataset,
                {} if config is None else config,
            )
        try:
            spec = self.registry.job(request.job)
        except LookupError as exc:
            raise EngineError(str(exc)) from None
        typed = spec.validate(spec.migrate_config(request.config, request.config_version))
        seed = check_seed(request.seed)
        self.check_devices(typed)
        self.project.check_writable()
        model_ref = self.resolve_model(request.model, spec)
        dataset_ref = self.resolve_dataset(request.dataset, spec)
        self.check_inputs(spec, typed, model_ref, dataset_ref)
        run_id = self.project.create_run(
            job=spec.name,
            kind=spec.kind,
            family=spec.family,
            method=spec.method or spec.name.rsplit(".", 1)[-1],
            config=to_dict(typed),
            seed=seed,
            # a folder given as the model is recorded by its absolute path (resume finds it)
            model=model_ref.recorded if model_ref else None,
            dataset=dataset_ref.recorded if dataset_ref else None,
            versions={**collect_versions(), CONFIG_VERSION_KEY: str(spec.config_version)},
            parent_id=parent_id,
        )
        return _Pending(run_id, spec, typed, seed, model_ref, dataset_ref, None)

    def resume(self, run_id: int) -> int:
        """Continue a cancelled, failed or interrupted run from its last checkpoint (same run id).

        The run is claimed atomically (``UPDATE ... WHERE status IN (...)``): when two processes
        resume the same run, one gets it and the other :class:`EngineError` "run N is already
        running"."""
        record = self.project.run(run_id)
        if record.malformed:
            raise EngineError(f"{record.describe_problems()}; it cannot be resumed")
        try:
            spec = self.registry.job(record.job)
        except LookupError as exc:  # the plugin that made the run is gone: same error as submit
            raise EngineError(str(exc)) from None
        if record.status in ("queued", "running"):
            raise EngineError(f"run {run_id} is already running")
        if record.status not in ("cancelled", "failed", "interrupted"):
            raise EngineError(f"run {run_id} is {record.status}; only a stopped run can be resumed")
        if not spec.supports_resume:
            raise EngineError(f"job {spec.name} cannot resume; start a new run instead")
        if self.launcher is not None:
            raise EngineError(
                f"runs resume on this machine only; choose the local launcher to resume run {run_id}"
            )
        if not record.checkpoint:
            raise EngineError(f"run {run_id} saved no checkpoint before it stopped; rerun it")
        try:
            path = self.project.inside(record.checkpoint, what=f"run {run_id}'s checkpoint")
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        checkpoint = Checkpoint(path, record.checkpoint_step or 0)
        if not checkpoint.path.exists():
            raise EngineError(f"run {run_id}'s checkpoint {checkpoint.path} is missing")
        # a run recorded with an older config version is migrated (the record stays as it was)
        old = RunRequest.from_record(record)
        typed = spec.validate(spec.migrate_config(old.config, old.config_version))
        seed = check_seed(record.seed)
        self.check_devices(typed)
        model_ref = self.resolve_model(record.model, spec)
        dataset_ref = self.resolve_dataset(record.dataset, spec)
        self.check_inputs(spec, typed, model_ref, dataset_ref)
        try:
            self.project.claim_run(
                run_id,
                ("cancelled", "failed", "interrupted"),
                delete_metrics_after=checkpoint.step,
                status="queued",
                status_text=f"resuming after step {checkpoint.step}",
                error=None,
                finished=None,
                pid=os.getpid(),
                host=socket.gethostname(),
            )
        except RunClaimError as exc:
            raise EngineError(str(exc)) from None
        if old.config_version != spec.config_version:
            self._log(
                run_id,
                f"its config (version {old.config_version}) was migrated to version "
                f"{spec.config_version} of {spec.name}'s config",
            )
        self._enqueue(_Pending(run_id, spec, typed, seed, model_ref, dataset_ref, checkpoint))
        return run_id

    def _enqueue(self, pending: _Pending) -> None:
        pending.remote = self.launcher
        with self._lock:
            self._queue.append(pending)
            self._all[pending.run_id] = pending
        self._emit(Event(pending.run_id, "status", {"status": "queued", "text": "queued"}))
        self._dispatch()

    def _dispatch(self) -> None:
        """Start queued runs while workers and heavy slots are free (FIFO among what fits)."""
        to_start = []
        with self._lock:
            heavy = sum(1 for p in self._active.values() if p.spec.model_heavy and not p.remote)
            for pending in list(self._queue):
                if len(self._active) >= self.max_workers:
                    break
                # a run on a cluster takes none of this machine's heavy slots
                if pending.spec.model_heavy and not pending.remote and heavy >= self.heavy_slots:
                    continue
                self._queue.remove(pending)
                self._active[pending.run_id] = pending
                heavy += pending.spec.model_heavy and not pending.remote
                to_start.append(pending)
        for pending in to_start:
            self.executor.submit(functools.partial(self._execute, pending))

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
            self.project.claim_run(run_id, ("queued",), **fields)
            self._emit(Event(run_id, "status", {"status": "running", "text": "starting"}))
            if pending.resume is not None:
                ctx.log(f"resumed from the checkpoint at step {pending.resume.step}")
            if pending.remote is not None:
                ctx.flush()
                self._run_remote(pending, ctx)
            elif self.isolate is not None and self.isolate(pending.spec):
                ctx.flush()
                self._run_child(pending, ctx)
            else:
                random.seed(pending.seed)
                fn = pending.spec.load_entry()
                result = fn(ctx)
                if result:
                    last = ctx._reporter.last_step
                    ctx.metrics({k: float(v) for k, v in result.items()}, step=last)
            ctx.progress(1.0)
        except Cancelled:
            status, text = "cancelled", "cancelled by the user"
            with suppress(Exception):
                ctx.log(self._stopped_at(pending, ctx))
        except _ChildFailed as exc:
            status, text, error = "failed", exc.text, exc.error
            if exc.storage_full:
                pending.storage_error = exc.text.split(": ", 1)[-1]
            with suppress(Exception):
                ctx.log(text, level="error")
        except RunClaimError as exc:  # someone else started or cancelled it: not ours to record
            status, text = "", str(exc)
        except BaseException as exc:  # SystemExit too: a run that stopped did not complete
            status, text = "failed", _one_line(exc)
            error = traceback.format_exc()
            if is_storage_full(exc):
                pending.storage_error = _one_line(exc, with_type=False)
            try:
                ctx.log(text, level="error")
            except Exception as log_exc:
                if is_storage_full(log_exc):
                    pending.storage_error = pending.storage_error or _one_line(log_exc, False)
        finally:
            try:
                if status:
                    status, text, error = self._record_end(pending, ctx, status, text, error)
                else:  # another process claimed the run: its status is theirs to record
                    status = self._status_now(run_id) or "cancelled"
            finally:
                # whatever happened above, the run is over for this engine: release the waiters
                pending.final_status = status
                with self._lock:
                    self._active.pop(run_id, None)
                pending.done.set()
                try:
                    self._emit(Event(run_id, "status", {"status": status, "text": text}))
                finally:
                    pending.notified.set()
                    self._dispatch()

    def _stopped_at(self, pending: _Pending, ctx: JobContext) -> str:
        """The log line of a cancelled run: its last step and the checkpoint a resume starts from."""
        line = f"cancelled after step {ctx._reporter.last_step}"
        if not pending.spec.supports_resume:
            return line
        step = self._checkpoint_step(pending.run_id)
        if step is None:
            return line + " (no checkpoint saved yet: resuming is not possible)"
        return line + f" (checkpoint at step {step}: resume continues from there)"

    def _checkpoint_step(self, run_id: int) -> int | None:
        try:
            record = self.project.run(run_id)
        except Exception:
            return None
        return record.checkpoint_step if record.checkpoint else None

    # -- isolated runs ---------------------------------------------------------------------
    def _run_child(self, pending: _Pending, ctx: JobContext) -> None:
        """Run the job in a spawned child process and relay its events (worker thread).

        Returns when the job completed; raises :class:`Cancelled` or :class:`_ChildFailed`."""
        from workbench import worker  # the child's entry point (imports nothing heavy)

        spec: JobSpec | None = pending.spec
        try:  # a config class made at run time does not pickle: the child looks the job up
            pickle.dumps(spec)
        except Exception:
            spec = None
        mp = multiprocessing.get_context("spawn")
        parent_conn, child_conn = mp.Pipe()
        process = mp.Process(
            target=worker.child_main,
            args=(
                child_conn,
                str(self.project.root),
                pending.run_id,
                pending.spec.name,
                spec,
                to_dict(pending.config),
                pending.seed,
                pending.model,
                pending.dataset,
                pending.resume,
                self.child_niceness,
            ),
            name=f"workbench-run-{pending.run_id}",
            daemon=True,
        )
        process.start()
        pending.child_pid = process.pid
        child_conn.close()
        outcome: tuple | None = None
        cancel_sent: float | None = None
        killed = False
        try:
            while outcome is None:
                if pending.cancel.cancelled and cancel_sent is None:
                    cancel_sent = time.monotonic()
                    with suppress(OSError, ValueError):
                        parent_conn.send(("cancel",))
                if (
                    cancel_sent is not None
                    and not killed
                    and time.monotonic() - cancel_sent > self.cancel_grace_s
                ):
                    process.kill()  # it did not stop in time: the user asked it to
                    killed = True
                try:
                    if not parent_conn.poll(0.05):
                        if not process.is_alive() and not parent_conn.poll(0):
                            break
                        continue
                    message = parent_conn.recv()
                except (EOFError, OSError):
                    break
                if message[0] == "events":
                    for type_, data in message[1]:
                        self._emit(Event(pending.run_id, type_, data))
                elif message[0] == "end":
                    outcome = message[1]
        finally:
            parent_conn.close()
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
        if outcome is None:  # the child died without a word
            if pending.cancel.cancelled:
                raise Cancelled()
            reason = _exit_reason(process.exitcode)
            text = (
                f"the job's process ended unexpectedly ({reason}); what it recorded before is kept"
            )
            raise _ChildFailed(text, f"{text}\nprocess {process.pid} ({process.name}): {reason}")
        ctx._reporter.last_step = max(ctx._reporter.last_step, int(outcome[1]))
        if outcome[0] == "cancelled":
            raise Cancelled()
        if outcome[0] == "failed":
            _kind, _last, text, error, storage_full = outcome
            raise _ChildFailed(text, error, storage_full)

    def _run_remote(self, pending: _Pending, ctx: JobContext) -> None:
        """Run the job on a cluster through ``pending.remote`` and ingest its run folder into the
        store as results arrive (worker thread); only this process writes the store.

        Returns when the job completed; raises :class:`Cancelled` or :class:`_ChildFailed`.  A
        cancel asks the launcher to stop the job (:meth:`Launcher.cancel`: the job's cancel
        file, then the cluster's own stop); a job whose cluster says it ended without its final
        status fails the run with the cluster's words and the end of the job's log."""
        from workbench.remote import FINAL_REMOTE, Ingester, run_folder_for, write_run_folder

        launcher = pending.remote
        assert launcher is not None
        run_id = pending.run_id
        if pending.resume is not None:
            raise EngineError("a run resumes on this machine only (the local launcher)")
        folder = run_folder_for(self.project.root, run_id, launcher.run_root)
        write_run_folder(
            folder,
            run_id=run_id,
            project_root=self.project.root,
            spec=pending.spec,
            config=to_dict(pending.config),
            seed=pending.seed,
            model=pending.model,
            dataset=pending.dataset,
        )
        if pending.cancel.cancelled:
            raise Cancelled()
        try:
            handle = launcher.submit(RunSpec(run_id=run_id, folder=folder))
        except LauncherError as exc:
            raise _ChildFailed(str(exc), str(exc)) from None
        pending.handle = handle
        (folder / "handle.json").write_text(handle.to_json(), encoding="utf-8")
        where = f"{launcher.describe()} as {handle.id}"
        ctx.log(f"submitted to {where}; run folder {folder}")
        ctx.flush()  # before the job's own lines, which the ingester writes directly
        ctx.status(f"submitted to {where}")

        def emit(type_: str, data: dict[str, Any]) -> None:
            self._emit(Event(run_id, type_, data))

        ingester = Ingester(self.project, run_id, folder, emit, f"{launcher.kind} {handle.id}")
        cancel_sent = False
        remote: dict[str, Any] | None = None
        state = None
        while True:
            remote = ingester.poll()
            if remote is not None and remote.get("status") in FINAL_REMOTE:
                break
            if pending.cancel.cancelled and not cancel_sent:
                cancel_sent = True
                with suppress(Exception):
                    launcher.cancel(handle)
            try:
                state = launcher.status(handle)
            except Exception as exc:  # the cluster is unreachable for a moment: keep polling
                state = None
                with suppress(Exception):
                    ctx.status(f"{launcher.describe()} not reachable: {_one_line(exc)}")
            if state is not None and state.final:
                remote = ingester.poll()  # what the job wrote before it ended
                break
            pending.cancel.wait(self.remote_poll_s)  # a cancel wakes the loop at once
        # the job wrote its end: let its process exit (the cluster frees what it held) before
        # the run is over here, for at most the cancel grace
        deadline = time.monotonic() + self.cancel_grace_s
        while (state is None or not state.final) and time.monotonic() < deadline:
            try:
                state = launcher.status(handle)
            except Exception:
                break
            if not state.final:
                time.sleep(self.remote_poll_s)
        ctx._reporter.last_step = max(ctx._reporter.last_step, ingester.last_step)
        final = (remote or {}).get("status")
        if final == "completed":
            return
        if final == "cancelled" or (final is None and pending.cancel.cancelled):
            raise Cancelled()
        if final == "failed":
            text = str(remote.get("status_text") or "the job failed") if remote else ""
            raise _ChildFailed(text, str((remote or {}).get("error") or text))
        said = state.text if state is not None else "ended"
        try:
            tail = "\n".join(launcher.logs(handle).splitlines()[-40:])
        except Exception as exc:
            tail = f"(its log could not be read: {_one_line(exc)})"
        text = f"the job on {where} ended without reporting its end ({said})"
        raise _ChildFailed(text, f"{text}\nrun folder: {folder}\nlast lines of its log:\n{tail}")

    def _record_end(
        self, pending: _Pending, ctx: JobContext, status: str, text: str, error: str | None
    ) -> tuple[str, str, str | None]:
        """Flush what the run reported and write its final status; on a storage error, fail the
        run with that error when the store still takes a write.  Never raises (except on
        KeyboardInterrupt and the like)."""
        run_id = pending.run_id
        try:
            ctx.flush()
        except Exception as exc:
            if status == "completed":
                status, text, error = "failed", _one_line(exc), traceback.format_exc()
            self._note_storage(pending, exc)
        try:
            self.project.update_run(
                run_id, status=status, status_text=text, error=error, finished=now()
            )
            return status, text, error
        except Exception as exc:
            self._note_storage(pending, exc)
            failure = _one_line(exc)
        # the final update failed: try once more, as a failure that says why
        status, text = "failed", failure
        error = (error or "") + f"\nrecording the end of the run failed: {failure}"
        try:
            with suppress(Exception):
                ctx.flush()
            self.project.update_run(
                run_id, status="failed", status_text=text, error=error, finished=now()
            )
        except Exception as exc:
            self._note_storage(pending, exc)
        return status, text, error

    def _note_storage(self, pending: _Pending, exc: BaseException) -> None:
        """Remember the first failure of the store while recording the run (what the CLI prints)."""
        if pending.storage_error is None:
            pending.storage_error = _one_line(exc, with_type=False)

    def _status_now(self, run_id: int) -> str | None:
        try:
            return self.project.run(run_id).status
        except Exception:
            return None

    def storage_error(self, run_id: int) -> str | None:
        """The storage failure (one line) met while recording ``run_id``, if any."""
        pending = self._all.get(run_id)
        return pending.storage_error if pending is not None else None

    def child_pid(self, run_id: int) -> int | None:
        """The pid of the child process that runs (or ran) an isolated run, else ``None``."""
        pending = self._all.get(run_id)
        return pending.child_pid if pending is not None else None

    def set_launcher(self, launcher: Launcher | None) -> None:
        """Where runs submitted from now on execute (a remote launcher, or ``None``/a local one:
        here); runs already queued or running keep theirs."""
        self.launcher = launcher if launcher is not None and launcher.remote else None

    def launcher_of(self, run_id: int) -> str | None:
        """The kind of launcher (``ray``, ``slurm``) a run of this engine went to; ``None`` for a
        run on this machine or one this engine does not hold."""
        pending = self._all.get(run_id)
        return pending.remote.kind if pending is not None and pending.remote else None

    def final_status(self, run_id: int) -> str | None:
        """The final status this engine gave ``run_id`` (even if the store did not take it)."""
        pending = self._all.get(run_id)
        return pending.final_status if pending is not None else None

    # -- control ---------------------------------------------------------------------------
    def cancel(self, run_id: int, reason: str = "by the user") -> bool:
        """Cancel a queued or running run; returns False if it is not in this engine.  The run's
        log says ``cancel requested <reason>``."""
        with self._lock:
            pending = self._all.get(run_id)
            if pending is None or pending.done.is_set():
                return False
            pending.cancel.cancel()
            queued = pending in self._queue
            if queued:
                self._queue.remove(pending)
        self._log(run_id, f"cancel requested {reason}")
        if queued:
            try:
                self.project.update_run(
                    run_id,
                    status="cancelled",
                    status_text="cancelled before it started",
                    finished=now(),
                )
            except Exception as exc:
                self._note_storage(pending, exc)
            finally:
                pending.final_status = "cancelled"
                pending.done.set()
                try:
                    self._emit(
                        Event(run_id, "status", {"status": "cancelled", "text": "cancelled"})
                    )
                finally:
                    pending.notified.set()
        return True

    def _log(self, run_id: int, message: str, level: str = "info") -> None:
        """Write one line to a run's log now (and tell the listeners); never raises."""
        try:
            self.project.add_logs(
                [{"run_id": run_id, "time": now(), "level": level, "message": message}]
            )
        except Exception:
            return
        self._emit(Event(run_id, "log", {"message": message, "level": level}))

    def wait(self, run_id: int, timeout: float | None = None) -> str:
        """Block until the run ends and listeners have seen its final status (or ``timeout``);
        returns its status."""
        pending = self._all.get(run_id)
        if pending is not None:
            pending.notified.wait(timeout)
            if pending.notified.is_set() and pending.final_status:
                stored = self._status_now(run_id)
                # the store may have missed the final write (a full disk): trust the engine
                return stored if stored in FINAL else pending.final_status
        return self.project.run(run_id).status

    def wait_for(self, run_id: int, timeout: float | None = None) -> bool:
        """Block until the run's final status has been seen by the listeners, or ``timeout``;
        True when it has ended (also for a run this engine does not hold)."""
        pending = self._all.get(run_id)
        return True if pending is None else pending.notified.wait(timeout)

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
                self.cancel(run_id, reason="as the project was closed")
        if wait:
            deadline = time.monotonic() + timeout
            for run_id in list(self._all):
                remaining = max(0.0, deadline - time.monotonic())
                self._all[run_id].done.wait(remaining)
        if self._own_executor and isinstance(self.executor, ThreadPoolExecutor):
            self.executor.shutdown(wait=wait)
