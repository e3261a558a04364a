"""The project store: one folder, one SQLite catalogue, artifact files beside it.

Layout of a project folder (every path stored in the catalogue is relative to it, so the folder can
be moved or zipped)::

    project/
      workbench.sqlite        the catalogue (WAL mode; safe to share between the GUI and a CLI run)
      runs/<id>/              artifacts and checkpoints of run <id>
      models/                 models produced by runs (Hugging Face style folders)

The schema is versioned (``meta.schema_version``) and upgraded by :data:`MIGRATIONS` when an older
project is opened (after a backup copy of the catalogue).  A catalogue written by a newer version
is refused with :class:`ProjectVersionError`; a file that is not a catalogue with
:class:`ProjectError`.  Neither case writes to the file.

Connections are per thread (SQLite objects cannot cross threads); all of them use WAL and a busy
timeout so that a GUI and a ``workbench run`` in another process can write the same project.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

__all__ = [
    "CATALOGUE",
    "SCHEMA_VERSION",
    "APP_ID",
    "Project",
    "ProjectError",
    "ProjectVersionError",
    "RunRecord",
    "RUN_STATUSES",
    "FINAL_STATUSES",
]

CATALOGUE = "workbench.sqlite"
APP_ID = "unlearning-workbench"
RUN_STATUSES = ("queued", "running", "completed", "failed", "cancelled", "interrupted")
FINAL_STATUSES = ("completed", "failed", "cancelled", "interrupted")
BUSY_TIMEOUT_MS = 10_000


class ProjectError(RuntimeError):
    """The folder is not a usable project (missing, corrupted, not ours)."""


class ProjectVersionError(ProjectError):
    """The project was written by a newer version of the workbench."""


def now() -> float:
    return time.time()


# -- schema and migrations --------------------------------------------------------------------


def _migration_1(db: sqlite_utils.Database) -> None:
    """The base schema."""
    db["models"].create(
        {
            "id": int,
            "name": str,
            "family": str,
            "kind": str,
            "path": str,
            "builtin": int,
            "source_run": int,
            "meta": str,
            "created": float,
        },
        pk="id",
    )
    db["datasets"].create(
        {
            "id": int,
            "name": str,
            "family": str,
            "kind": str,
            "path": str,
            "builtin": int,
            "meta": str,
            "created": float,
        },
        pk="id",
    )
    db["runs"].create(
        {
            "id": int,
            "job": str,
            "kind": str,
            "family": str,
            "method": str,
            "config": str,
            "seed": int,
            "model": str,
            "dataset": str,
            "status": str,
            "status_text": str,
            "progress": float,
            "created": float,
            "started": float,
            "finished": float,
            "versions": str,
            "device": str,
            "parent_id": int,
            "error": str,
            "pid": int,
            "host": str,
            "checkpoint": str,
            "checkpoint_step": int,
        },
        pk="id",
    )
    db["metrics"].create(
        {"id": int, "run_id": int, "step": int, "name": str, "value": float, "time": float}, pk="id"
    )
    db["metrics"].create_index(["run_id", "name", "step"])
    db["artifacts"].create(
        {
            "id": int,
            "run_id": int,
            "kind": str,
            "name": str,
            "path": str,
            "meta": str,
            "created": float,
        },
        pk="id",
    )
    db["artifacts"].create_index(["run_id"])
    db["logs"].create(
        {"id": int, "run_id": int, "time": float, "level": str, "message": str}, pk="id"
    )
    db["logs"].create_index(["run_id"])


def _migration_2(db: sqlite_utils.Database) -> None:
    """Runs get a free-text note and tags, so a researcher can annotate what a run was for."""
    db["runs"].add_column("note", str)
    db["runs"].add_column("tags", str)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migration_1, _migration_2]
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass
class RunRecord:
    """A run as read from the catalogue (JSON columns decoded)."""

    id: int
    job: str
    kind: str
    family: str
    method: str
    config: dict[str, Any]
    seed: int
    model: str | None
    dataset: str | None
    status: str
    status_text: str | None
    progress: float | None
    created: float
    started: float | None
    finished: float | None
    versions: dict[str, str]
    device: str | None
    parent_id: int | None
    error: str | None
    checkpoint: str | None
    checkpoint_step: int | None
    note: str | None = None
    tags: list[str] | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunRecord:
        return cls(
            id=row["id"],
            job=row["job"],
            kind=row["kind"],
            family=row["family"],
            method=row["method"],
            config=json.loads(row["config"] or "{}"),
            seed=row["seed"],
            model=row["model"],
            dataset=row["dataset"],
            status=row["status"],
            status_text=row["status_text"],
            progress=row["progress"],
            created=row["created"],
            started=row["started"],
            finished=row["finished"],
            versions=json.loads(row["versions"] or "{}"),
            device=row["device"],
            parent_id=row["parent_id"],
            error=row["error"],
            checkpoint=row["checkpoint"],
            checkpoint_step=row["checkpoint_step"],
            note=row.get("note"),
            tags=json.loads(row["tags"]) if row.get("tags") else [],
        )


def _metric_value(value: float | None) -> float:
    """SQLite stores NaN as NULL; metric values are never written as NULL, so NULL means NaN."""
    return float("nan") if value is None else value


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Project:
    """An open project folder.  Thread-safe: each thread gets its own SQLite connection."""

    def __init__(self, root: Path, *, _connect: bool = True) -> None:
        self.root = Path(root).resolve()
        self.catalogue = self.root / CATALOGUE
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._conn_lock = threading.Lock()
        self.interrupted_on_open: list[int] = []

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | os.PathLike[str]) -> Project:
        """Create a new, empty project folder (the folder may exist but must hold no catalogue)."""
        root = Path(root)
        if (root / CATALOGUE).exists():
            raise ProjectError(f"{root} already holds a project; open it instead")
        root.mkdir(parents=True, exist_ok=True)
        project = cls(root)
        db = project.db
        db["meta"].insert_all(
            [
                {"key": "app", "value": APP_ID},
                {"key": "schema_version", "value": "0"},
                {"key": "created", "value": str(now())},
            ],
            pk="key",
        )
        project._migrate(from_version=0)
        return project

    @classmethod
    def open(cls, root: str | os.PathLike[str], *, create: bool = False) -> Project:
        """Open an existing project; with ``create=True`` make it when the folder has none."""
        root = Path(root)
        if not (root / CATALOGUE).exists():
            if create:
                return cls.create(root)
            if root.is_file():
                raise ProjectError(
                    f"{root} is a file; a project is a folder holding {CATALOGUE}. "
                    "Choose the project folder instead."
                )
            raise ProjectError(
                f"no project at {root}: the folder has no {CATALOGUE}. "
                "Create a new project there or choose another folder."
            )
        project = cls(root)
        version = project._read_version()
        if version > SCHEMA_VERSION:
            project.close()
            raise ProjectVersionError(
                f"{root} was written by a newer Unlearning Workbench (project schema {version}, "
                f"this version reads up to {SCHEMA_VERSION}). Upgrade the workbench to open it; "
                "the project was not modified."
            )
        if version < SCHEMA_VERSION:
            project._backup(version)
            project._migrate(from_version=version)
        project.interrupted_on_open = project._mark_interrupted()
        return project

    def _read_version(self) -> int:
        where = f"{self.catalogue}"
        try:
            conn = sqlite3.connect(f"file:{self.catalogue}?mode=ro", uri=True, timeout=5)
            try:
                rows = dict(conn.execute("select key, value from meta").fetchall())
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise ProjectError(
                f"{where} is not a readable Unlearning Workbench catalogue ({exc}). "
                "The file was left untouched: restore it from a backup or open another project."
            ) from exc
        if rows.get("app") != APP_ID:
            raise ProjectError(
                f"{where} is an SQLite file but not an Unlearning Workbench project. "
                "The file was left untouched."
            )
        try:
            return int(rows["schema_version"])
        except (KeyError, ValueError) as exc:
            raise ProjectError(f"{where} has no valid schema version; it may be damaged.") from exc

    def _backup(self, version: int) -> None:
        backup = self.root / f"{CATALOGUE}.schema{version}.bak"
        if not backup.exists():
            src = sqlite3.connect(self.catalogue)
            dst = sqlite3.connect(backup)
            try:
                src.backup(dst)
            finally:
                src.close()
                dst.close()

    def _migrate(self, from_version: int) -> None:
        db = self.db
        for version in range(from_version, SCHEMA_VERSION):
            # One real transaction per step (the connection is in autocommit mode, where
            # ``with conn:`` commits each statement on its own): a failing step rolls back whole.
            try:
                with self.transaction():
                    MIGRATIONS[version](db)
                    db["meta"].upsert(
                        {"key": "schema_version", "value": str(version + 1)}, pk="key"
                    )
            except Exception as exc:
                self.close()
                backup = self.root / f"{CATALOGUE}.schema{from_version}.bak"
                where = f"; the project as it was is in {backup}" if backup.exists() else ""
                raise ProjectError(
                    f"{self.catalogue}: upgrading from schema {version} to {version + 1} failed "
                    f"({type(exc).__name__}: {exc}); that step was rolled back{where}"
                ) from exc

    def _mark_interrupted(self) -> list[int]:
        """Runs left queued/running by a process that no longer exists become ``interrupted``."""
        host = socket.gethostname()
        stale = []
        for row in self.db.query(
            "select id, pid, host from runs where status in ('queued', 'running')"
        ):
            same_host = row["host"] in (None, host)
            if same_host and (row["pid"] is None or not _pid_alive(row["pid"])):
                stale.append(row["id"])
        if stale:
            with self.db.conn:
                for run_id in stale:
                    self.db["runs"].update(
                        run_id,
                        {
                            "status": "interrupted",
                            "status_text": "the process running it ended unexpectedly",
                            "finished": now(),
                        },
                    )
        return stale

    # -- connections -----------------------------------------------------------------------
    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection to the catalogue."""
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(
                self.catalogue, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("pragma journal_mode = wal")
            conn.execute("pragma synchronous = normal")
            db = sqlite_utils.Database(conn)
            self._local.db = db
            with self._conn_lock:
                self._connections.append(conn)
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction on this thread's connection."""
        db = self.db
        db.execute("begin immediate")
        try:
            yield db
        except BaseException:
            db.execute("rollback")
            raise
        else:
            db.execute("commit")

    def close(self) -> None:
        with self._conn_lock:
            for conn in self._connections:
                with suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths -----------------------------------------------------------------------------
    def run_dir(self, run_id: int) -> Path:
        path = self.root / "runs" / str(run_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def relpath(self, path: str | os.PathLike[str]) -> str:
        """A path relative to the project root when it lies inside; absolute otherwise."""
        p = Path(path).resolve()
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return str(p)

    def abspath(self, stored: str) -> Path:
        p = Path(stored)
        return p if p.is_absolute() else self.root / p

    @property
    def schema_version(self) -> int:
        return int(self.db["meta"].get("schema_version")["value"])

    # -- models and datasets ---------------------------------------------------------------
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
        with self.transaction() as db:
            existing = list(db.query("select id from models where name = ?", [name]))
            row = {
                "name": name,
                "family": family,
                "kind": kind,
                "path": self.relpath(path) if not builtin else path,
                "builtin": int(builtin),
                "source_run": source_run,
                "meta": json.dumps(meta or {}),
                "created": now(),
            }
            if existing:
                db["models"].update(existing[0]["id"], row)
                return existing[0]["id"]
            return db["models"].insert(row).last_pk

    def models(self) -> list[dict[str, Any]]:
        return [self._decode(r) for r in self.db.query("select * from models order by id")]

    def model(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db.query("select * from models where name = ?", [name]))
        return self._decode(rows[0]) if rows else None

    def add_dataset(
        self,
        name: str,
        family: str,
        kind: str,
        path: str = "",
        *,
        builtin: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> int:
        with self.transaction() as db:
            existing = list(db.query("select id from datasets where name = ?", [name]))
            row = {
                "name": name,
                "family": family,
                "kind": kind,
                "path": self.relpath(path) if path else "",
                "builtin": int(builtin),
                "meta": json.dumps(meta or {}),
                "created": now(),
            }
            if existing:
                db["datasets"].update(existing[0]["id"], row)
                return existing[0]["id"]
            return db["datasets"].insert(row).last_pk

    def datasets(self) -> list[dict[str, Any]]:
        return [self._decode(r) for r in self.db.query("select * from datasets order by id")]

    @staticmethod
    def _decode(row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        if "meta" in out:
            out["meta"] = json.loads(out["meta"] or "{}")
        if "builtin" in out:
            out["builtin"] = bool(out["builtin"])
        return out

    # -- runs ------------------------------------------------------------------------------
    def create_run(
        self,
        *,
        job: str,
        kind: str,
        family: str,
        method: str,
        config: dict[str, Any],
        seed: int,
        model: str | None = None,
        dataset: str | None = None,
        versions: dict[str, str] | None = None,
        parent_id: int | None = None,
        status: str = "queued",
    ) -> int:
        with self.transaction() as db:
            return (
                db["runs"]
                .insert(
                    {
                        "job": job,
                        "kind": kind,
                        "family": family,
                        "method": method,
                        "config": json.dumps(config, sort_keys=True),
                        "seed": seed,
                        "model": model,
                        "dataset": dataset,
                        "status": status,
                        "progress": 0.0,
                        "created": now(),
                        "versions": json.dumps(versions or {}),
                        "parent_id": parent_id,
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                    }
                )
                .last_pk
            )

    def update_run(self, run_id: int, **fields: Any) -> None:
        if "status" in fields and fields["status"] not in RUN_STATUSES:
            raise ValueError(f"unknown run status {fields['status']!r}")
        for key in ("versions", "tags"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(fields[key])
        with self.transaction() as db:
            db["runs"].update(run_id, fields)

    def run(self, run_id: int) -> RunRecord:
        try:
            row = self.db["runs"].get(run_id)
        except sqlite_utils.db.NotFoundError:
            raise ProjectError(f"no run {run_id} in {self.root}") from None
        return RunRecord.from_row(row)

    def runs(self, *, status: Iterable[str] | None = None) -> list[RunRecord]:
        sql = "select * from runs"
        params: list[Any] = []
        if status:
            statuses = list(status)
            sql += f" where status in ({', '.join('?' for _ in statuses)})"
            params = statuses
        return [RunRecord.from_row(r) for r in self.db.query(sql + " order by id", params)]

    def delete_metrics_after(self, run_id: int, step: int) -> None:
        with self.transaction() as db:
            db.execute("delete from metrics where run_id = ? and step > ?", [run_id, step])

    # -- metrics, artifacts, logs ----------------------------------------------------------
    def add_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Insert many metric rows (``run_id, step, name, value, time``) in one transaction."""
        if rows:
            with self.transaction() as db:
                db["metrics"].insert_all(rows)

    def add_logs(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self.transaction() as db:
                db["logs"].insert_all(rows)

    def metrics(self, run_id: int, name: str | None = None) -> list[dict[str, Any]]:
        sql = "select step, name, value, time from metrics where run_id = ?"
        params: list[Any] = [run_id]
        if name:
            sql += " and name = ?"
            params.append(name)
        rows = list(self.db.query(sql + " order by name, step, id", params))
        for row in rows:
            row["value"] = _metric_value(row["value"])
        return rows

    def metric_series(self, run_id: int) -> dict[str, tuple[list[int], list[float]]]:
        series: dict[str, tuple[list[int], list[float]]] = {}
        for row in self.metrics(run_id):
            xs, ys = series.setdefault(row["name"], ([], []))
            xs.append(row["step"])
            ys.append(row["value"])
        return series

    def final_metrics(self, run_id: int) -> dict[str, float]:
        """Each metric's value at its last recorded step."""
        rows = self.db.query(
            "select name, value from metrics where id in "
            "(select max(id) from metrics m where run_id = ? and step = "
            "(select max(step) from metrics where run_id = m.run_id and name = m.name) "
            "group by name) order by name",
            [run_id],
        )
        return {r["name"]: _metric_value(r["value"]) for r in rows}

    def add_artifact(
        self, run_id: int, kind: str, name: str, path: str, meta: dict[str, Any] | None = None
    ) -> int:
        with self.transaction() as db:
            return (
                db["artifacts"]
                .insert(
                    {
                        "run_id": run_id,
                        "kind": kind,
                        "name": name,
                        "path": self.relpath(path),
                        "meta": json.dumps(meta or {}),
                        "created": now(),
                    }
                )
                .last_pk
            )

    def artifacts(self, run_id: int) -> list[dict[str, Any]]:
        return [
            self._decode(r)
            for r in self.db.query("select * from artifacts where run_id = ? order by id", [run_id])
        ]

    def logs(self, run_id: int) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "select time, level, message from logs where run_id = ? order by id", [run_id]
            )
        )

    def delete_run(self, run_id: int) -> None:
        """Remove a run, its rows and its folder (models it registered stay)."""
        with self.transaction() as db:
            for table in ("metrics", "artifacts", "logs"):
                db.execute(f"delete from {table} where run_id = ?", [run_id])
            db.execute("delete from runs where id = ?", [run_id])
        shutil.rmtree(self.root / "runs" / str(run_id), ignore_errors=True)
