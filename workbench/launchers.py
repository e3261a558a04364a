"""Launchers: where a run executes.  One interface, three implementations.

- :class:`LocalLauncher`: this machine, through the :class:`~workbench.jobs.Engine` (worker threads,
  and child processes for heavy jobs in the GUI), exactly as before launchers existed;
- :class:`RayLauncher`: a Ray cluster, through Ray Jobs (``ray.job_submission``);
- :class:`SlurmLauncher`: a Slurm cluster, through submitit (``cluster="local"`` runs the same code
  path on this machine, which is what the tests use).

Every launcher answers :meth:`Launcher.submit` (a :class:`RunSpec` to a :class:`Handle`),
:meth:`Launcher.status`, :meth:`Launcher.logs` and :meth:`Launcher.cancel`.  A remote launcher runs
``python -m workbench.remote RUN_FOLDER`` on the cluster; the engine of the process that owns the
project writes the run folder, submits it, and ingests what the job writes there into the SQLite
catalogue as it arrives (:mod:`workbench.remote`).  Ray and submitit are imported only inside their
launchers: the workbench needs neither unless a project uses them.

The choice lives in the project's settings (``<project>/settings.json``, key ``launcher``), read
and checked by :func:`load_settings` / :meth:`LauncherSettings.validate`.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from workbench.remote import request_cancel

if TYPE_CHECKING:
    from workbench.jobs import Engine
    from workbench.request import RunRequest

__all__ = [
    "KINDS",
    "SETTINGS_FILE",
    "Handle",
    "LaunchState",
    "Launcher",
    "LauncherError",
    "LauncherSettings",
    "LocalLauncher",
    "RayLauncher",
    "RunSpec",
    "SlurmLauncher",
    "load_settings",
    "make_launcher",
    "save_settings",
]

KINDS = ("local", "ray", "slurm")
SETTINGS_FILE = "settings.json"
STATES = ("pending", "running", "completed", "failed", "cancelled", "unknown")


class LauncherError(RuntimeError):
    """A launcher cannot be used: bad settings, a missing package, a cluster that refused."""


@dataclass(frozen=True)
class RunSpec:
    """What a launcher runs: a run request (the local launcher submits it to its engine), or, for a
    remote launcher, a run the owner already recorded (``run_id``) and wrote to ``folder``."""

    request: RunRequest | None = None
    run_id: int | None = None
    folder: Path | None = None


@dataclass(frozen=True)
class Handle:
    """A launched run: the launcher's kind, its id there (a run id, a Ray submission id, a Slurm
    job id) and the project's run id."""

    launcher: str
    id: str
    run_id: int | None = None
    folder: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Handle:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class LaunchState:
    """A launched run's state as its launcher sees it: one of :data:`STATES`, and the launcher's
    own words (``RUNNING``, ``SUCCEEDED``, ``CANCELLED by 1234``...)."""

    state: str
    text: str = ""

    @property
    def final(self) -> bool:
        return self.state in ("completed", "failed", "cancelled")


class Launcher(ABC):
    """Where runs execute; see the module docstring."""

    kind: str = ""
    remote: bool = True
    # where the engine writes run folders (a path the cluster sees); None: <project>/remote
    run_root: str | None = None

    @abstractmethod
    def submit(self, spec: RunSpec) -> Handle:
        """Start ``spec``; returns at once with its handle (``LauncherError`` when refused)."""

    @abstractmethod
    def status(self, handle: Handle) -> LaunchState:
        """The launched run's state now."""

    @abstractmethod
    def logs(self, handle: Handle) -> str:
        """What the launched run printed (or logged) so far."""

    @abstractmethod
    def cancel(self, handle: Handle) -> None:
        """Ask the launched run to stop (a cooperative stop first; the cluster kills it after its
        own grace period)."""

    def describe(self) -> str:
        return self.kind


# -- local ---------------------------------------------------------------------------------------


class LocalLauncher(Launcher):
    """This machine: the engine's worker threads (and child processes), unchanged."""

    kind = "local"
    remote = False

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def submit(self, spec: RunSpec) -> Handle:
        if spec.request is None:
            raise LauncherError("the local launcher runs a request; this spec has none")
        run_id = self.engine.submit(spec.request)
        return Handle(self.kind, str(run_id), run_id)

    def status(self, handle: Handle) -> LaunchState:
        status = self.engine.project.run(int(handle.id)).status
        state = {"queued": "pending", "interrupted": "failed"}.get(status, status)
        return LaunchState(state if state in STATES else "unknown", status)

    def logs(self, handle: Handle) -> str:
        return "".join(f"{row['message']}\n" for row in self.engine.project.logs(int(handle.id)))

    def cancel(self, handle: Handle) -> None:
        self.engine.cancel(int(handle.id))


# -- remote --------------------------------------------------------------------------------------


def _command(python: str, folder: Path) -> list[str]:
    return [python, "-m", "workbench.remote", str(folder)]


def _need(spec: RunSpec) -> Path:
    if spec.folder is None:
        raise LauncherError("a remote launcher runs a run folder; this spec has none")
    return Path(spec.folder)


def _missing(package: str, kind: str) -> LauncherError:
    return LauncherError(
        f"the {kind} launcher needs the Python package {package!r}, which is not installed: "
        f"pip install {shlex.quote(package)} (or choose the local launcher in the project settings)"
    )


def _optional(module: str, package: str, kind: str) -> Any:
    """Import ``module`` of an optional package (by name: neither the core's imports nor mypy
    depend on it), or say which pip package the ``kind`` launcher needs."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise _missing(package, kind) from None


RAY_STATES = {
    "PENDING": "pending",
    "RUNNING": "running",
    "SUCCEEDED": "completed",
    "FAILED": "failed",
    "STOPPED": "cancelled",
}


class RayLauncher(Launcher):
    """A Ray cluster through Ray Jobs: ``address`` is the dashboard's HTTP address
    (``http://head:8265``).  The entrypoint is ``<python> -m workbench.remote RUN_FOLDER``, so the
    cluster must have the workbench installed and see the run folder (a shared filesystem);
    ``env`` adds environment variables to the job (its ``runtime_env``)."""

    kind = "ray"

    def __init__(
        self, address: str, *, python: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.address = address
        self.python = python or sys.executable
        self.env = dict(env or {})
        self._client: Any = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"ray at {self.address}"

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                jobs = _optional("ray.job_submission", "ray[default]", "ray")
                try:
                    self._client = jobs.JobSubmissionClient(self.address)
                except Exception as exc:
                    raise LauncherError(
                        f"cannot reach the Ray cluster at {self.address}: "
                        f"{' '.join(str(exc).split())}"
                    ) from None
            return self._client

    def submit(self, spec: RunSpec) -> Handle:
        folder = _need(spec)
        entrypoint = shlex.join(_command(self.python, folder))
        runtime_env: dict[str, Any] = {"env_vars": self.env} if self.env else {}
        try:
            job_id = self.client.submit_job(
                entrypoint=entrypoint,
                runtime_env=runtime_env or None,
                metadata={"workbench_run": str(spec.run_id or "")},
            )
        except LauncherError:
            raise
        except Exception as exc:
            raise LauncherError(
                f"the Ray cluster at {self.address} refused the job: {' '.join(str(exc).split())}"
            ) from None
        return Handle(self.kind, str(job_id), spec.run_id, str(folder))

    def status(self, handle: Handle) -> LaunchState:
        info = self.client.get_job_info(handle.id)
        raw = str(getattr(info.status, "value", info.status))
        text = raw + (f": {info.message}" if getattr(info, "message", None) else "")
        return LaunchState(RAY_STATES.get(raw, "unknown"), text)

    def logs(self, handle: Handle) -> str:
        return str(self.client.get_job_logs(handle.id))

    def cancel(self, handle: Handle) -> None:
        if handle.folder:
            request_cancel(Path(handle.folder))
        # Ray sends SIGTERM (the job cancels itself), then SIGKILL after its grace period
        self.client.stop_job(handle.id)


SLURM_FINAL = {
    "COMPLETED": "completed",
    "FINISHED": "completed",
    "CANCELLED": "cancelled",
    "INTERRUPTED": "cancelled",
    "PREEMPTED": "cancelled",
    "FAILED": "failed",
    "TIMEOUT": "failed",
    "OUT_OF_MEMORY": "failed",
    "NODE_FAIL": "failed",
    "BOOT_FAIL": "failed",
    "DEADLINE": "failed",
}
SLURM_LIVE = {"PENDING": "pending", "REQUEUED": "pending", "CONFIGURING": "pending"}


class SlurmLauncher(Launcher):
    """A Slurm cluster through submitit: ``folder`` holds submitit's job files (logs, pickles)
    and must be on the shared filesystem; ``cluster`` is ``"slurm"`` or ``"local"`` (submitit's
    local executor: the same code path on this machine) or ``None`` (submitit picks);
    ``partition``, ``timeout_min``, ``gpus_per_node``, ``cpus_per_task`` and ``extra`` (any other
    ``slurm_*`` parameter) go to ``executor.update_parameters``."""

    kind = "slurm"

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        cluster: str | None = "slurm",
        partition: str | None = None,
        timeout_min: int = 60,
        gpus_per_node: int = 0,
        cpus_per_task: int = 1,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.cluster = cluster
        self.partition = partition
        self.timeout_min = timeout_min
        self.gpus_per_node = gpus_per_node
        self.cpus_per_task = cpus_per_task
        self.extra = dict(extra or {})
        self._jobs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        where = f" partition {self.partition}" if self.partition else ""
        return f"slurm ({self.cluster or 'auto'}{where})"

    def _executor(self) -> Any:
        submitit = _optional("submitit", "submitit", "slurm")
        executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        params: dict[str, Any] = {
            "timeout_min": self.timeout_min,
            "gpus_per_node": self.gpus_per_node,
            "cpus_per_task": self.cpus_per_task,
            "name": "workbench",
        }
        if self.partition:
            params["slurm_partition"] = self.partition
        params.update(self.extra)
        executor.update_parameters(**params)
        return executor

    def submit(self, spec: RunSpec) -> Handle:
        from workbench.remote import run_folder

        folder = _need(spec)
        try:
            job = self._executor().submit(run_folder, str(folder))
        except LauncherError:
            raise
        except Exception as exc:
            raise LauncherError(
                f"submitit ({self.cluster or 'auto'}) refused the job: {' '.join(str(exc).split())}"
            ) from None
        with self._lock:
            self._jobs[str(job.job_id)] = job
        return Handle(self.kind, str(job.job_id), spec.run_id, str(folder))

    def _job(self, handle: Handle) -> Any:
        with self._lock:
            job = self._jobs.get(handle.id)
        if job is None:  # another process submitted it: a Slurm job can be found by its id
            submitit = _optional("submitit", "submitit", "slurm")
            job = submitit.SlurmJob(folder=self.folder, job_id=handle.id)
            with self._lock:
                self._jobs[handle.id] = job
        return job

    def status(self, handle: Handle) -> LaunchState:
        raw = str(self._job(handle).state).upper()
        head = raw.split()[0] if raw else "UNKNOWN"
        if head in SLURM_FINAL:
            return LaunchState(SLURM_FINAL[head], raw)
        if head == "RUNNING" or head == "COMPLETING":
            return LaunchState("running", raw)
        return LaunchState(SLURM_LIVE.get(head, "unknown"), raw)

    def logs(self, handle: Handle) -> str:
        job = self._job(handle)
        return (job.stdout() or "") + (job.stderr() or "")

    def cancel(self, handle: Handle) -> None:
        if handle.folder:
            request_cancel(Path(handle.folder))
        self._job(handle).cancel(check=False)


# -- settings ------------------------------------------------------------------------------------


@dataclass
class LauncherSettings:
    """A project's launcher choice (``<project>/settings.json``, key ``launcher``).

    - ``kind``: ``local``, ``ray`` or ``slurm``;
    - ``ray_address``: the Ray dashboard's address, ``http://HOST:8265``;
    - ``slurm_folder``: submitit's folder (default ``<project>/remote/submitit``);
      ``slurm_cluster``: ``slurm``, ``local`` (submitit's local executor) or ``auto``;
      ``slurm_partition``, ``slurm_timeout_min``, ``slurm_gpus_per_node``, ``slurm_cpus_per_task``;
    - ``run_root``: where run folders go (default ``<project>/remote``): a path the cluster sees;
    - ``python``: the interpreter on the cluster (default: this one), ``env``: variables for it.
    """

    kind: str = "local"
    ray_address: str = ""
    slurm_folder: str = ""
    slurm_cluster: str = "slurm"
    slurm_partition: str = ""
    slurm_timeout_min: int = 60
    slurm_gpus_per_node: int = 0
    slurm_cpus_per_task: int = 1
    run_root: str = ""
    python: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def validate(self) -> LauncherSettings:
        """Itself when usable; else :class:`LauncherError` naming the setting and the fix."""
        if self.kind not in KINDS:
            raise LauncherError(
                f"launcher {self.kind!r} is not one of {', '.join(KINDS)} (setting 'kind')"
            )
        if self.kind == "ray":
            url = urlparse(self.ray_address.strip())
            if not self.ray_address.strip():
                raise LauncherError(
                    "the ray launcher needs the cluster's address (setting 'ray_address'), "
                    "e.g. http://head-node:8265 (the Ray dashboard's address)"
                )
            if url.scheme not in ("http", "https") or not url.hostname:
                raise LauncherError(
                    f"ray_address {self.ray_address!r} is not an http(s) address; give the Ray "
                    "dashboard's address, e.g. http://head-node:8265"
                )
        if self.kind == "slurm":
            if self.slurm_cluster not in ("slurm", "local", "debug", "auto"):
                raise LauncherError(
                    f"slurm_cluster {self.slurm_cluster!r} is not one of slurm, local, debug, auto"
                )
            for name in ("slurm_timeout_min", "slurm_cpus_per_task"):
                value = getattr(self, name)
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise LauncherError(
                        f"{name} must be a whole number of at least 1, got {value!r}"
                    )
            gpus = self.slurm_gpus_per_node
            if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 0:
                raise LauncherError(f"slurm_gpus_per_node must be 0 or more, got {gpus!r}")
        if not isinstance(self.env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()
        ):
            raise LauncherError("env must map variable names to strings")
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LauncherSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LauncherError(
                f"unknown launcher setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        settings = cls(**data)
        for f in fields(cls):  # a hand-edited file: a number given as text
            value = getattr(settings, f.name)
            if f.type == "int" and isinstance(value, str):
                try:
                    setattr(settings, f.name, int(value))
                except ValueError:
                    raise LauncherError(f"{f.name} must be a whole number, got {value!r}") from None
        return settings.validate()


def _settings_path(project_root: str | os.PathLike[str]) -> Path:
    return Path(project_root) / SETTINGS_FILE


def load_settings(project_root: str | os.PathLike[str]) -> LauncherSettings:
    """The project's launcher settings (local when it has none); ``LauncherError`` when invalid."""
    path = _settings_path(project_root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return LauncherSettings()
    except (OSError, ValueError) as exc:
        raise LauncherError(f"{path} cannot be read: {exc}") from None
    launcher = data.get("launcher", {}) if isinstance(data, dict) else None
    if not isinstance(launcher, dict):
        raise LauncherError(f"{path}: 'launcher' must be a mapping of settings")
    return LauncherSettings.from_dict(launcher)


def save_settings(project_root: str | os.PathLike[str], settings: LauncherSettings) -> Path:
    """Validate and write the launcher settings (other keys of the file are kept)."""
    settings.validate()
    path = _settings_path(project_root)
    data: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            data = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            data = {}
    data["launcher"] = asdict(settings)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def make_launcher(
    settings: LauncherSettings, project_root: str | os.PathLike[str]
) -> Launcher | None:
    """The remote launcher the settings choose (``None`` for local: the engine runs it itself)."""
    settings.validate()
    launcher: Launcher
    if settings.kind == "ray":
        launcher = RayLauncher(
            settings.ray_address.strip(), python=settings.python or None, env=settings.env
        )
    elif settings.kind == "slurm":
        folder = settings.slurm_folder or str(Path(project_root) / "remote" / "submitit")
        launcher = SlurmLauncher(
            folder,
            cluster=None if settings.slurm_cluster == "auto" else settings.slurm_cluster,
            partition=settings.slurm_partition or None,
            timeout_min=settings.slurm_timeout_min,
            gpus_per_node=settings.slurm_gpus_per_node,
            cpus_per_task=settings.slurm_cpus_per_task,
        )
    else:
        return None
    launcher.run_root = settings.run_root or None
    return launcher
