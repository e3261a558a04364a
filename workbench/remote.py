"""Run folders: how a run on another machine (a Ray cluster, a Slurm node) reports to the project.

A remote run never opens the project's SQLite catalogue: SQLite's locking is not safe on a network
filesystem (NFS, Lustre, SMB), so two machines writing one catalogue can corrupt it.  Instead the
owning process (the GUI or CLI that has the project open) writes a *run folder*, the cluster runs
:func:`run_folder` on it (``python -m workbench.remote FOLDER`` or ``workbench remote-run FOLDER``),
the job writes what it reports into plain files there, and the owner's :class:`Ingester` copies
what arrives into the catalogue while the run goes on.  Only the owner writes SQLite.

The folder (``<project>/remote/<run id>/`` unless the project settings name a shared path)::

    run.json          written by the owner: job, config, seed, inputs, run id (readable)
    inputs.pkl        written by the owner: the job's spec and resolved inputs (pickled)
    cancel            written by the owner to ask the job to stop (any content)
    metrics.jsonl     appended by the job: {"step", "name", "value", "time"} per line
    logs.jsonl        appended by the job: {"time", "level", "message"}
    artifacts.jsonl   appended by the job: {"kind", "name", "path", "meta"}; files in artifacts/
    models.jsonl      appended by the job: {"name", "family", "kind", "path", "meta"}; models/
    status.json       replaced (atomically) by the job: status, progress, status_text, error...

Lines are appended whole (one ``write`` each) and the ingester reads only complete lines, so a
line that is being written is read on the next poll.  The job writes its final ``status.json``
after everything else; the ingester reads ``status.json`` *before* the other files, so when it
sees a final status it has every line the job wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any

from workbench.files import check_name

__all__ = [
    "FINAL_REMOTE",
    "FolderProject",
    "Ingester",
    "RemoteCatalogueError",
    "main",
    "read_status",
    "request_cancel",
    "run_folder",
    "run_folder_for",
    "write_run_folder",
]

FORMAT = 1
FINAL_REMOTE = ("completed", "failed", "cancelled")
CANCEL_POLL_S = 0.1  # how often a remote run looks for the owner's cancel file


class RemoteCatalogueError(AttributeError):
    """A job asked for the project's catalogue (other runs, models) while running remotely."""


def _now() -> float:
    return time.time()


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append whole JSON lines in one write (a reader never sees half a batch as whole lines)."""
    if not rows:
        return
    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically (write a sibling, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def read_status(folder: Path) -> dict[str, Any] | None:
    """The job's ``status.json`` (``None`` before the job wrote one)."""
    try:
        data = json.loads((Path(folder) / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def request_cancel(folder: Path) -> None:
    """Ask the job running on ``folder`` to stop (it checks for the file every 0.1 s)."""
    (Path(folder) / "cancel").write_text(f"{_now()}\n", encoding="utf-8")


def run_folder_for(project_root: Path, run_id: int, shared_root: str | None = None) -> Path:
    """Where run ``run_id`` of a project writes: ``<project>/remote/<id>`` or, with a shared
    path, ``<shared>/<project name>-<hash of its path>/<id>`` (two projects never collide)."""
    root = Path(project_root).resolve()
    if not shared_root:
        return root / "remote" / str(int(run_id))
    tag = hashlib.sha1(str(root).encode()).hexdigest()[:8]
    return Path(shared_root).expanduser().resolve() / f"{root.name}-{tag}" / str(int(run_id))


def write_run_folder(
    folder: Path,
    *,
    run_id: int,
    project_root: Path,
    spec: Any,
    config: dict[str, Any],
    seed: int,
    model: Any,
    dataset: Any,
) -> Path:
    """Create the run folder of a run the owner is about to launch (owner side)."""
    folder = Path(folder)
    if folder.exists():  # a folder left from an earlier attempt of this run id: start clean
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    try:  # a config class made at run time does not pickle: the remote side looks the job up
        spec_blob: Any = pickle.dumps(spec)
    except Exception:
        spec_blob = None
    with open(folder / "inputs.pkl", "wb") as fh:
        pickle.dump({"spec": spec_blob, "model": model, "dataset": dataset}, fh)

    def ref(value: Any) -> Any:
        if value is None:
            return None
        out = asdict(value)
        out["path"] = str(out["path"]) if out.get("path") is not None else None
        return out

    _write_json(
        folder / "run.json",
        {
            "format": FORMAT,
            "run_id": int(run_id),
            "job": spec.name,
            "config": config,
            "seed": int(seed),
            "model": ref(model),
            "dataset": ref(dataset),
            "project": str(project_root),
            "created": _now(),
        },
    )
    return folder


# -- the remote side ------------------------------------------------------------------------------


class FolderProject:
    """What a :class:`~workbench.jobs.JobContext` needs of a project, written to a run folder.

    It stands in for :class:`~workbench.store.Project` inside a remote run: metrics, logs,
    artifacts, models and the run's status go to files; reading the catalogue (other runs, the
    project's models) raises :class:`RemoteCatalogueError`."""

    def __init__(self, folder: Path) -> None:
        self.root = Path(folder).resolve()
        self._lock = threading.Lock()
        self._status: dict[str, Any] = {}

    # -- paths ---------------------------------------------------------------------------------
    def run_dir(self, run_id: int) -> Path:
        return self.root

    def model_dir(self, name: str) -> Path:
        check_name(name, "model name")
        return self.inside(self.root / "models" / name, what=f"model {name!r}")

    def inside(self, stored: str | os.PathLike[str], *, what: str = "path") -> Path:
        path = Path(stored)
        resolved = (path if path.is_absolute() else self.root / path).resolve()
        if not resolved.is_relative_to(self.root):
            raise ValueError(f"{what} {str(stored)!r} lies outside the run folder {self.root}")
        return resolved

    def relpath(self, path: str | os.PathLike[str]) -> str:
        return self.inside(path).relative_to(self.root).as_posix()

    def check_writable(self) -> None:
        return None

    # -- what the job reports ------------------------------------------------------------------
    def add_metrics(self, rows: list[dict[str, Any]]) -> None:
        _append(
            self.root / "metrics.jsonl",
            [{k: v for k, v in r.items() if k != "run_id"} for r in rows],
        )

    def add_logs(self, rows: list[dict[str, Any]]) -> None:
        _append(
            self.root / "logs.jsonl", [{k: v for k, v in r.items() if k != "run_id"} for r in rows]
        )

    def add_artifact(
        self, run_id: int, kind: str, name: str, path: str, meta: dict[str, Any] | None = None
    ) -> int:
        rel = self.relpath(path)
        _append(
            self.root / "artifacts.jsonl",
            [{"kind": kind, "name": name, "path": rel, "meta": meta or {}, "time": _now()}],
        )
        return 0

    def add_model(
        self,
        name: str,
        family: str,
        kind: str,
        path: str,
        *,
        builtin: bool = False,
        source_run: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> int:
        rel = self.relpath(path)
        _append(
            self.root / "models.jsonl",
            [{"name": name, "family": family, "kind": kind, "path": rel, "meta": meta or {}}],
        )
        return 0

    def model(self, name: str) -> dict[str, Any] | None:
        return None  # the owner makes the name unique when it ingests the model

    # -- the run's own metrics (a job may read back what it reported) -------------------------
    def metrics(self, run_id: int, name: str | None = None) -> list[dict[str, Any]]:
        """The metrics this run reported so far, ordered like :meth:`Project.metrics`."""
        try:
            lines = (self.root / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        rows = []
        for i, line in enumerate(lines):
            with suppress(ValueError):
                row = json.loads(line)
                if name is None or row.get("name") == name:
                    rows.append({**row, "_order": i})
        rows.sort(key=lambda r: (r["name"], int(r["step"]), r["_order"]))
        return [{k: v for k, v in r.items() if k != "_order"} for r in rows]

    def metric_series(self, run_id: int) -> dict[str, tuple[list[int], list[float]]]:
        series: dict[str, tuple[list[int], list[float]]] = {}
        for row in self.metrics(run_id):
            xs, ys = series.setdefault(row["name"], ([], []))
            xs.append(int(row["step"]))
            ys.append(float(row["value"]))
        return series

    def final_metrics(self, run_id: int) -> dict[str, float]:
        last: dict[str, tuple[int, float]] = {}
        for row in self.metrics(run_id):  # by step, then in the order written: the last wins
            last[row["name"]] = (int(row["step"]), float(row["value"]))
        return {k: v for k, (_, v) in sorted(last.items())}

    def update_run(self, run_id: int, **fields: Any) -> None:
        with self._lock:
            self._status.update(fields)
            self._status["updated"] = _now()
            _write_json(self.root / "status.json", dict(self._status))

    def __getattr__(self, name: str) -> Any:
        raise RemoteCatalogueError(
            f"this job reads the project's catalogue (Project.{name}), which a remote run "
            "cannot open; run it with the local launcher"
        )


class _FolderEngine:
    """What a :class:`~workbench.jobs.JobContext` needs of an engine, for a remote run."""

    def __init__(self, project: FolderProject) -> None:
        self.project = project

    @property
    def registry(self) -> Any:
        from workbench.registry import get_registry

        return get_registry()

    def _emit(self, event: Any) -> None:
        return None  # the owner rebuilds the events from the folder's files

    def run_child(self, request: Any, parent: Any) -> Any:
        raise RemoteCatalogueError(
            "a job with child runs needs the project's catalogue; run it with the local launcher"
        )


def _watch_cancel(folder: Path, token: Any, stop: threading.Event) -> None:
    while not stop.wait(CANCEL_POLL_S):
        if (folder / "cancel").exists():
            token.cancel()
            return


def run_folder(folder: str | os.PathLike[str]) -> str:
    """Run the job of a run folder in this process (the cluster side); returns its final status
    (``completed``, ``failed`` or ``cancelled``), which it also writes to ``status.json``.

    SIGTERM and SIGINT (what ``ray job stop``, ``scancel`` and submitit's cancel send) and the
    owner's ``cancel`` file cancel the job through its cancel token."""
    from workbench.jobs import Cancelled, CancelToken, JobContext, _one_line

    root = Path(folder).resolve()
    info = json.loads((root / "run.json").read_text(encoding="utf-8"))
    run_id = int(info["run_id"])
    project = FolderProject(root)
    token = CancelToken()
    stop = threading.Event()
    threading.Thread(
        target=_watch_cancel, args=(root, token, stop), name="workbench-cancel", daemon=True
    ).start()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            with suppress(ValueError, OSError):
                previous[signum] = signal.signal(signum, lambda *_: token.cancel())
    project.update_run(
        run_id, status="running", progress=0.0, status_text="starting", pid=os.getpid(),
        host=socket.gethostname(), started=_now(),
    )  # fmt: skip
    ctx = None
    status, text, error = "completed", "done", None
    try:
        with open(root / "inputs.pkl", "rb") as fh:
            inputs = pickle.load(fh)
        spec = pickle.loads(inputs["spec"]) if inputs.get("spec") else None
        if spec is None:
            from workbench.registry import get_registry

            spec = get_registry().job(info["job"])
        typed = spec.validate(info["config"])
        ctx = JobContext(
            engine=_FolderEngine(project),  # type: ignore[arg-type]
            run_id=run_id,
            spec=spec,
            config=typed,
            seed=int(info["seed"]),
            model=inputs.get("model"),
            dataset=inputs.get("dataset"),
            cancel=token,
            resume=None,
        )
        random.seed(int(info["seed"]))
        if token.cancelled:
            raise Cancelled()
        result = spec.load_entry()(ctx)
        if result:
            ctx.metrics({k: float(v) for k, v in result.items()}, step=ctx._reporter.last_step)
    except Cancelled:
        status, text = "cancelled", "cancelled by the user"
    except BaseException as exc:  # SystemExit too: a run that stopped did not complete
        status, text, error = "failed", _one_line(exc), traceback.format_exc()
    finally:
        stop.set()
        last = ctx._reporter.last_step if ctx is not None else 0
        if ctx is not None:
            try:
                ctx.flush()
            except Exception as exc:
                if status == "completed":
                    status, text, error = "failed", _one_line(exc), traceback.format_exc()
        for signum, handler in previous.items():
            with suppress(ValueError, OSError, TypeError):
                signal.signal(signum, handler)
        # last: the owner reads status.json first, so every line above is in when it sees this
        project.update_run(
            run_id, status=status, status_text=text, error=error, last_step=last, finished=_now()
        )
    return status


def main(argv: list[str] | None = None) -> int:
    """``python -m workbench.remote FOLDER``: run one run folder; exit 0 unless it failed."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m workbench.remote RUN_FOLDER", file=sys.stderr)
        return 2
    status = run_folder(args[0])
    print(f"workbench remote run {args[0]}: {status}")
    return 1 if status == "failed" else 0


# -- the owner side -------------------------------------------------------------------------------


class Ingester:
    """Copies what a run folder's job reported into the project's catalogue (owner side only).

    :meth:`poll` reads the lines added since the last poll, writes them to SQLite, copies
    artifacts and models into the project and calls ``emit(type, data)`` for each, like the
    engine's events; it returns the job's status (``None`` before it wrote one)."""

    FILES = ("metrics", "logs", "artifacts", "models")

    def __init__(
        self,
        project: Any,
        run_id: int,
        folder: Path,
        emit: Callable[[str, dict[str, Any]], None] = lambda type_, data: None,
        label: str = "",
    ) -> None:
        self.project = project
        # put before the job's status text ("slurm 5345: epoch 3"): where the run executes
        self.label = label
        self.run_id = run_id
        self.folder = Path(folder)
        self.emit = emit
        self._offsets = dict.fromkeys(self.FILES, 0)
        self._status_seen: dict[str, Any] = {}
        self.last_step = 0

    def _new_lines(self, name: str) -> list[dict[str, Any]]:
        path = self.folder / f"{name}.jsonl"
        try:
            with open(path, "rb") as fh:
                fh.seek(self._offsets[name])
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # only whole lines: a line being written waits
        self._offsets[name] += end
        rows = []
        for line in data[:end].splitlines():
            with suppress(ValueError):
                row = json.loads(line)
                if isinstance(row, dict):
                    rows.append(row)
        return rows

    def poll(self) -> dict[str, Any] | None:
        status = read_status(self.folder)  # first: see the module docstring
        metrics = self._new_lines("metrics")
        if metrics:
            rows: list[dict[str, Any]] = [
                {
                    "run_id": self.run_id,
                    "step": int(r.get("step", 0)),
                    "name": str(r["name"]),
                    "value": float(r["value"]),
                    "time": float(r.get("time", _now())),
                }
                for r in metrics
                if "name" in r and "value" in r
            ]
            self.project.add_metrics(rows)
            for r in rows:
                self.last_step = max(self.last_step, int(r["step"]))
                self.emit("metric", {"name": r["name"], "value": r["value"], "step": r["step"]})
        logs = self._new_lines("logs")
        if logs:
            rows = [
                {
                    "run_id": self.run_id,
                    "time": float(r.get("time", _now())),
                    "level": str(r.get("level", "info")),
                    "message": str(r.get("message", "")),
                }
                for r in logs
            ]
            self.project.add_logs(rows)
            for r in rows:
                self.emit("log", {"message": r["message"], "level": r["level"]})
        for row in self._new_lines("artifacts"):
            self._artifact(row)
        for row in self._new_lines("models"):
            self._model(row)
        if status is not None:
            self._status(status)
        return status

    def _source(self, rel: str, what: str) -> Path:
        path = (self.folder / rel).resolve()
        if not path.is_relative_to(self.folder.resolve()):
            raise ValueError(f"{what} {rel!r} lies outside the run folder {self.folder}")
        return path

    def _artifact(self, row: dict[str, Any]) -> None:
        name, rel = str(row["name"]), str(row["path"])
        source = self._source(rel, f"artifact {name!r}")
        target = self.project.run_dir(self.run_id) / rel
        if source != target.resolve():  # a run folder outside the project: copy in
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
        self.project.add_artifact(self.run_id, str(row["kind"]), name, str(target), row.get("meta"))
        self.emit("artifact", {"kind": row["kind"], "name": name, "path": str(target)})

    def _model(self, row: dict[str, Any]) -> None:
        name = check_name(str(row["name"]), "model name")
        source = self._source(str(row["path"]), f"model {name!r}")
        existing = self.project.model(name)
        folder = self.project.model_dir(name)
        taken = (existing is not None and existing["source_run"] != self.run_id) or (
            existing is None and folder.is_dir() and any(folder.iterdir())
        )
        if taken:
            name = check_name(f"{name}-run{self.run_id}"[-128:].lstrip(".- "), "model name")
            folder = self.project.model_dir(name)
        shutil.copytree(source, folder, dirs_exist_ok=True)
        self.project.add_model(
            name, str(row["family"]), str(row["kind"]), str(folder),
            source_run=self.run_id, meta=row.get("meta"),
        )  # fmt: skip
        self.project.add_logs(
            [
                {
                    "run_id": self.run_id,
                    "time": _now(),
                    "level": "info",
                    "message": f"ingested model {name} into {folder}",
                }
            ]
        )

    def _status(self, status: dict[str, Any]) -> None:
        changed = {k: v for k, v in status.items() if self._status_seen.get(k) != v}
        self._status_seen = dict(status)
        with suppress(TypeError, ValueError):
            self.last_step = max(self.last_step, int(status.get("last_step") or 0))
        fields: dict[str, Any] = {}
        if "progress" in changed and status.get("status") not in FINAL_REMOTE:
            with suppress(TypeError, ValueError):
                fields["progress"] = min(max(float(status["progress"]), 0.0), 1.0)
        if "status_text" in changed and status.get("status") not in FINAL_REMOTE:
            text = str(status["status_text"])
            fields["status_text"] = f"{self.label}: {text}" if self.label else text
        if "device" in changed and status.get("device"):
            fields["device"] = str(status["device"])
        if fields:
            self.project.update_run(self.run_id, **fields)
        if "progress" in fields or "status_text" in fields:
            self.emit(
                "progress",
                {"progress": fields.get("progress", status.get("progress", 0.0)),
                 "text": fields.get("status_text")},
            )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
