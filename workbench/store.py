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

Hardening (issue 10):

- Every write goes through :meth:`Project.transaction`, which refuses writes to a read-only project
  and turns storage failures into :class:`StorageFullError` ("No space left on device: ...") or
  :class:`CatalogueDamagedError`; nothing else writes the catalogue.
- Opening runs ``PRAGMA quick_check`` before the first write.  A damaged catalogue, or a folder the
  process cannot write, opens *read-only* (:attr:`Project.read_only_reason` says why in one line);
  a full disk is reported as a full disk, never as a damaged file.
- :meth:`Project.create` builds the catalogue under a temporary name and renames it into place, so
  ``new`` never leaves a half-made project.
- Names of things the project creates (models, runs, artifacts, checkpoints) are plain names
  (:func:`check_name`), resolved inside the project (:meth:`Project.model_dir`,
  :meth:`Project.inside`); paths recorded in the catalogue for artifacts and checkpoints are read
  only from inside the project.
- A malformed run row is decoded as far as possible and carries ``problems`` ("unreadable config")
  instead of breaking the listing.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.files import check_name
from workbench.lock import pid_alive


def _import_sqlite_utils() -> Any:
    """``sqlite_utils`` without pandas. sqlite-utils imports pandas whenever it is installed
    (``datasets`` installs it), only to store ``pandas.Timestamp`` values as TEXT, which the store
    never writes; that import costs about 1.2 s of every process that opens a project (job
    children, remote runs, the CLI). Hide pandas for this one import; later imports of pandas
    are untouched."""
    if "sqlite_utils" in sys.modules or "pandas" in sys.modules:
        import sqlite_utils as module

        return module
    sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        import sqlite_utils as module
    finally:
        del sys.modules["pandas"]
    return module


if TYPE_CHECKING:
    import sqlite_utils
else:
    sqlite_utils = _import_sqlite_utils()

__all__ = [
    "CATALOGUE",
    "SCHEMA_VERSION",
    "APP_ID",
    "CatalogueDamagedError",
    "Project",
    "ProjectError",
    "ProjectReadOnlyError",
    "ProjectVersionError",
    "RunClaimError",
    "StorageFullError",
    "check_name",
    "is_storage_full",
    "RunRecord",
    "RUN_STATUSES",
    "FINAL_STATUSES",
]

CATALOGUE = "workbench.sqlite"
APP_ID = "unlearning-workbench"
RUN_STATUSES = ("queued", "running", "completed", "failed", "cancelled", "interrupted")
FINAL_STATUSES = ("completed", "failed", "cancelled", "interrupted")
BUSY_TIMEOUT_MS = 10_000


MAX_NOTE_CHARS = 10_000
MAX_TAG_CHARS = 64


class ProjectError(RuntimeError):
    """The folder is not a usable project (missing, corrupted, not ours)."""


class ProjectVersionError(ProjectError):
    """The project was written by a newer version of the workbench."""


class ProjectReadOnlyError(ProjectError):
    """A write was attempted on a project opened read-only (read-only folder, damaged catalogue)."""


class StorageFullError(ProjectError):
    """The disk holding the project is full; the message starts with "No space left on device"."""


class CatalogueDamagedError(ProjectError):
    """The catalogue file is damaged (a page cannot be read)."""


class RunClaimError(ProjectError):
    """Another process or thread claimed the run first (it is already queued or running)."""


MAX_PROBED_IDS = 100_000  # rows read one by one when a damaged page hides the list of ids
MAX_SEED = 2**32 - 1  # seeds are 0..2^32-1 (what numpy's and torch's generators take)


def is_storage_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk is full (ENOSPC, or SQLite's "database or disk is full")."""
    if isinstance(exc, StorageFullError):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.Error) and "disk is full" in str(exc).lower()


def _is_read_only_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return True
    text = str(exc).lower()
    return isinstance(exc, sqlite3.Error) and ("readonly" in text or "read-only" in text)


def _is_damage_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and (
        "malformed" in text or "not a database" in text or "corrupt" in text
    )


def _writable(path: Path) -> bool:
    """Whether this process may write ``path`` (a folder or file); ro mounts count as not."""
    return os.access(path, os.W_OK)


def _write_hook(where: str) -> None:
    """Called before every write to a catalogue (a fault-injection point for tests)."""


def now() -> float:
    return time.time()


def _insert(db: sqlite_utils.Database, table: str, row: dict[str, Any]) -> int:
    """Insert one row into ``table`` and return its integer primary key."""
    pk = db.table(table).insert(row).last_pk
    if not isinstance(pk, int):
        raise ProjectError(f"inserting into {table!r} gave no integer id ({pk!r})")
    return pk


# -- schema and migrations --------------------------------------------------------------------


def _migration_1(db: sqlite_utils.Database) -> None:
    """The base schema."""
    db.table("models").create(
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
    db.table("datasets").create(
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
    db.table("runs").create(
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
    db.table("metrics").create(
        {"id": int, "run_id": int, "step": int, "name": str, "value": float, "time": float}, pk="id"
    )
    db.table("metrics").create_index(["run_id", "name", "step"])
    db.table("artifacts").create(
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
    db.table("artifacts").create_index(["run_id"])
    db.table("logs").create(
        {"id": int, "run_id": int, "time": float, "level": str, "message": str}, pk="id"
    )
    db.table("logs").create_index(["run_id"])


def _migration_2(db: sqlite_utils.Database) -> None:
    """Runs get a free-text note and tags, so a researcher can annotate what a run was for."""
    db.table("runs").add_column("note", str)
    db.table("runs").add_column("tags", str)


def _migration_3(db: sqlite_utils.Database) -> None:
    """Runs can be archived: hidden from the default listings, kept on disk and in the catalogue."""
    db.table("runs").add_column("archived", int, not_null_default=0)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migration_1,
    _migration_2,
    _migration_3,
]
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
    archived: bool = False

    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunRecord:
        """Decode a catalogue row.  A malformed field (config that is not a JSON object, a seed
        that is not a number, ...) gets a safe value and a line in :attr:`problems`, so one bad row
        never breaks a listing."""
        problems: list[str] = []

        def text(key: str, default: str | None = None) -> str | None:
            value = row.get(key)
            if value is None:
                return default
            return value if isinstance(value, str) else str(value)

        def number(key: str, kind: type = float) -> Any:
            value = row.get(key)
            if value is None:
                return None
            try:
                out = kind(value)
            except (TypeError, ValueError, OverflowError):
                problems.append(f"unreadable {key}")
                return None
            if kind is float and not math.isfinite(out):
                problems.append(f"unreadable {key}")
                return None
            return out

        def json_field(key: str, expected: type, label: str) -> Any:
            raw = row.get(key)
            if raw is None or raw == "":
                return expected()
            try:
                value = json.loads(raw)
            except (TypeError, ValueError, RecursionError):
                problems.append(f"unreadable {label}")
                return expected()
            if not isinstance(value, expected):
                problems.append(f"unreadable {label}")
                return expected()
            return value

        status = text("status", "")
        if status not in RUN_STATUSES:
            problems.append(f"unknown status {status!r}")
        job = text("job", "")
        if not job:
            problems.append("no job")
        seed = number("seed", int)
        tags = json_field("tags", list, "tags")
        return cls(
            id=int(row["id"]),
            job=job or "",
            kind=text("kind", "") or "",
            family=text("family", "") or "",
            method=text("method", "") or "",
            config=json_field("config", dict, "config"),
            seed=seed if seed is not None else 0,
            model=text("model"),
            dataset=text("dataset"),
            status=status or "",
            status_text=text("status_text"),
            progress=number("progress"),
            created=number("created") or 0.0,
            started=number("started"),
            finished=number("finished"),
            versions=json_field("versions", dict, "versions"),
            device=text("device"),
            parent_id=number("parent_id", int),
            error=text("error"),
            checkpoint=text("checkpoint"),
            checkpoint_step=number("checkpoint_step", int),
            note=text("note"),
            tags=[str(t) for t in tags],
            archived=bool(number("archived", int) or 0),
            problems=problems,
        )

    @classmethod
    def unreadable(cls, run_id: int, reason: str) -> RunRecord:
        """A stand-in for a row the catalogue could not return at all (a damaged page)."""
        return cls(
            id=run_id,
            job="",
            kind="",
            family="",
            method="",
            config={},
            seed=0,
            model=None,
            dataset=None,
            status="",
            status_text=None,
            progress=None,
            created=0.0,
            started=None,
            finished=None,
            versions={},
            device=None,
            parent_id=None,
            error=None,
            checkpoint=None,
            checkpoint_step=None,
            problems=[f"unreadable row ({reason})"],
        )

    @property
    def malformed(self) -> bool:
        return bool(self.problems)

    def describe_problems(self) -> str:
        """``"run 7: unreadable config"`` (empty when the row is well formed)."""
        return f"run {self.id}: {', '.join(self.problems)}" if self.problems else ""


def _metric_value(value: Any) -> float:
    """SQLite stores NaN as NULL; metric values are never written as NULL, so NULL means NaN.
    A value that is not a number (a malformed row) also reads as NaN rather than breaking a view."""
    if value is None:
        return float("nan")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return float("nan")


def _decode_text(raw: bytes) -> str:
    """TEXT as read from the catalogue: invalid UTF-8 (a damaged page) becomes U+FFFD instead of
    an exception in the middle of a listing."""
    return raw.decode("utf-8", "replace")


def _disk_full(path: Path) -> bool:
    """Whether the file system holding ``path`` has (almost) no space left."""
    try:
        return shutil.disk_usage(path).free < 64 * 1024
    except OSError:
        return False


def _storage_error(exc: BaseException, root: Path, doing: str) -> ProjectError:
    """``exc`` (an ``OSError`` or SQLite error) while ``doing`` something, as a project error."""
    if is_storage_full(exc):
        name = getattr(exc, "filename", None) or root
        return StorageFullError(f"No space left on device: {name} ({doing}: {exc})")
    if _is_read_only_error(exc):
        return ProjectReadOnlyError(f"project is read-only; runs cannot be added ({root}: {exc})")
    return ProjectError(f"{root}: {doing} failed ({type(exc).__name__}: {exc})")


class Project:
    """An open project folder.  Thread-safe: each thread gets its own SQLite connection.

    ``read_only_reason`` is ``None`` for a writable project, else the one-line reason it was opened
    read-only (the folder cannot be written, or the catalogue is damaged); every write then raises
    :class:`ProjectReadOnlyError` with that reason.
    """

    def __init__(self, root: Path, *, _connect: bool = True) -> None:
        self.root = Path(root).resolve()
        self.catalogue = self.root / CATALOGUE
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._conn_lock = threading.Lock()
        self.interrupted_on_open: list[int] = []
        self.read_only_reason: str | None = None
        self.damaged = False
        self._immutable = False

    @property
    def read_only(self) -> bool:
        return self.read_only_reason is not None

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | os.PathLike[str]) -> Project:
        """Create a new, empty project folder (the folder may exist but must hold no catalogue).

        The catalogue is built under a temporary name and renamed into place, so a failure (a full
        disk) leaves no half-made project: neither the catalogue nor a folder this call made.
        """
        root = Path(root)
        catalogue = root / CATALOGUE
        if catalogue.is_dir():
            raise ProjectError(f"{catalogue} is a folder; choose another project folder")
        if catalogue.exists():
            if catalogue.is_file() and catalogue.stat().st_size == 0:
                # an empty file (left by an interrupted `new` of an older version) holds nothing
                with suppress(OSError):
                    catalogue.unlink()
            else:
                raise ProjectError(f"{root} already holds a project; open it instead")
        if root.exists() and not root.is_dir():
            raise ProjectError(f"{root} is a file; a project is a folder")
        made: list[Path] = []
        probe = root
        while not probe.exists() and probe != probe.parent:
            made.append(probe)
            probe = probe.parent
        tmp = root / f".{CATALOGUE}.new-{os.getpid()}-{threading.get_ident()}"
        try:
            root.mkdir(parents=True, exist_ok=True)
            _write_hook("create")
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("pragma journal_mode = delete")
                db = sqlite_utils.Database(conn)
                conn.execute("begin immediate")
                db.table("meta").insert_all(
                    [
                        {"key": "app", "value": APP_ID},
                        {"key": "schema_version", "value": str(SCHEMA_VERSION)},
                        {"key": "created", "value": str(now())},
                    ],
                    pk="key",
                )
                for migration in MIGRATIONS:
                    migration(db)
                _write_hook("create")
                conn.execute("commit")
            finally:
                conn.close()
            _write_hook("create")
            if catalogue.exists():
                raise ProjectError(f"{root} already holds a project; open it instead")
            os.replace(tmp, catalogue)
        except BaseException as exc:
            for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
                with suppress(OSError):
                    leftover.unlink()
            for folder in made:  # innermost first; only folders this call made, only if empty
                with suppress(OSError):
                    folder.rmdir()
            if isinstance(exc, ProjectError):
                raise
            if isinstance(exc, (OSError, sqlite3.Error)):
                raise _storage_error(exc, root, "creating the project") from exc
            raise
        return cls.open(root)

    @classmethod
    def open(cls, root: str | os.PathLike[str], *, create: bool = False) -> Project:
        """Open an existing project; with ``create=True`` make it when the folder has none.

        A folder this process cannot write, or a catalogue that fails ``PRAGMA quick_check``, is
        opened read-only (see :attr:`read_only_reason`) instead of being refused.
        """
        root = Path(root)
        catalogue = root / CATALOGUE
        if catalogue.is_dir():
            raise ProjectError(f"{catalogue} is a folder, not a catalogue; choose another folder")
        if not catalogue.exists():
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
        if catalogue.stat().st_size == 0:
            raise ProjectError(
                f"{catalogue} is empty (0 bytes), probably left by a `workbench new` that was "
                "interrupted; it holds no data: run `workbench new` there again"
            )
        project = cls(root)
        if not (_writable(project.root) and _writable(project.catalogue)) or any(
            p.exists() and not _writable(p) for p in project._side_files()
        ):
            project.read_only_reason = (
                f"project is read-only; runs cannot be added ({project.root} cannot be written)"
            )
        version = project._read_version()
        if version > SCHEMA_VERSION:
            project.close()
            raise ProjectVersionError(
                f"{root} was written by a newer Unlearning Workbench (project schema {version}, "
                f"this version reads up to {SCHEMA_VERSION}). Upgrade the workbench to open it; "
                "the project was not modified."
            )
        problem = project._quick_check()
        if problem is not None:
            project.damaged = True
            project.read_only_reason = project._damage_message(problem)
        if project.read_only:
            if version < SCHEMA_VERSION:
                project.close()
                raise ProjectError(
                    f"{root} has project schema {version} and needs an upgrade, but "
                    f"{project.read_only_reason}"
                )
            return project
        try:
            if version < SCHEMA_VERSION:
                project._backup(version)
                project._migrate(from_version=version)
            project.interrupted_on_open = project._mark_interrupted()
        except BaseException:
            project.close()
            raise
        return project

    def _side_files(self) -> list[Path]:
        return [self.catalogue.with_name(CATALOGUE + s) for s in ("-wal", "-shm")]

    def _ro_connect(self) -> sqlite3.Connection:
        """A read-only connection (``immutable`` when even the WAL index cannot be opened)."""
        uri = f"file:{self.catalogue}?mode=ro" + ("&immutable=1" if self._immutable else "")
        conn = sqlite3.connect(uri, uri=True, timeout=5, check_same_thread=False)
        conn.text_factory = _decode_text
        return conn

    def _read_version(self) -> int:
        where = f"{self.catalogue}"
        try:
            try:
                conn = self._ro_connect()
                try:
                    rows = dict(conn.execute("select key, value from meta").fetchall())
                finally:
                    conn.close()
            except sqlite3.OperationalError as exc:
                if not self.read_only or _is_damage_error(exc) or "no such table" in str(exc):
                    raise
                # a read-only folder whose WAL index cannot be created: read the file as it is
                self._immutable = True
                conn = self._ro_connect()
                try:
                    rows = dict(conn.execute("select key, value from meta").fetchall())
                finally:
                    conn.close()
        except sqlite3.DatabaseError as exc:
            raise self._open_error(exc) from exc
        except UnicodeDecodeError as exc:
            raise ProjectError(
                f"{where} is not a readable Unlearning Workbench catalogue (its schema is "
                "damaged). The file was left untouched: restore it from a backup."
            ) from exc
        if rows.get("app") != APP_ID:
            raise ProjectError(
                f"{where} is an SQLite file but not an Unlearning Workbench project. "
                "The file was left untouched."
            )
        try:
            return int(rows["schema_version"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ProjectError(f"{where} has no valid schema version; it may be damaged.") from exc

    def _open_error(self, exc: sqlite3.DatabaseError) -> ProjectError:
        """The honest diagnosis of a catalogue that could not be read at open."""
        if is_storage_full(exc) or _disk_full(self.root):
            return StorageFullError(
                f"No space left on device: {self.root} is full, so {CATALOGUE} cannot be opened "
                f"({exc}); free some space and open it again (the file was not modified)"
            )
        if isinstance(exc, sqlite3.OperationalError) and not _is_damage_error(exc):
            if not os.access(self.catalogue, os.R_OK):
                return ProjectError(f"{self.catalogue} cannot be read (permission denied)")
            if "no such table" not in str(exc):
                return ProjectError(
                    f"{self.catalogue} could not be opened ({exc}); the file was left untouched"
                )
        return ProjectError(
            f"{self.catalogue} is not a readable Unlearning Workbench catalogue ({exc}). "
            "The file was left untouched: restore it from a backup or open another project."
        )

    def _quick_check(self) -> str | None:
        """``None`` when ``PRAGMA quick_check`` passes, else the first problem it names."""
        try:
            conn = self._ro_connect()
            try:
                rows = conn.execute("pragma quick_check").fetchall()
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            if is_storage_full(exc):
                raise self._open_error(exc) from exc
            return str(exc)
        except UnicodeDecodeError:  # SQLite's message names a damaged schema entry
            return "its schema is damaged"
        if rows == [("ok",)]:
            return None
        lines = [ln.strip() for r in rows for ln in str(r[0]).splitlines()]
        lines = [ln for ln in lines if ln and not ln.startswith("*** in database")]
        return lines[0][:200] if lines else "quick_check failed"

    def _damage_message(self, problem: str) -> str:
        backups = sorted(self.root.glob(f"{CATALOGUE}*.bak"))
        copy = self.root / f"{CATALOGUE}.damaged.bak"
        if not copy.exists() and _writable(self.root):
            try:
                shutil.copyfile(self.catalogue, copy)
                backups.insert(0, copy)
            except OSError:
                with suppress(OSError):
                    copy.unlink()
        where = f" backup: {backups[0]}" if backups else " (no backup could be written)"
        return (
            f"the catalogue {self.catalogue} is damaged ({problem}); the project is open "
            f"read-only and runs cannot be added;{where}"
        )

    def _backup(self, version: int) -> None:
        backup = self.root / f"{CATALOGUE}.schema{version}.bak"
        if not backup.exists():
            _write_hook("backup")
            src = sqlite3.connect(self.catalogue)
            dst = sqlite3.connect(backup)
            try:
                src.backup(dst)
            except sqlite3.Error as exc:
                dst.close()
                with suppress(OSError):
                    backup.unlink()
                raise _storage_error(exc, self.root, "backing up the catalogue") from exc
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
                    db.table("meta").upsert(
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
            pid = row["pid"]
            if same_host and (not isinstance(pid, int) or pid <= 0 or not pid_alive(pid)):
                stale.append(row["id"])
        if stale:
            with self.transaction() as db:
                for run_id in stale:
                    db.execute(
                        "update runs set status = 'interrupted', status_text = ?, finished = ? "
                        "where id = ? and status in ('queued', 'running')",
                        ["the process running it ended unexpectedly", now(), run_id],
                    )
        return stale

    # -- connections -----------------------------------------------------------------------
    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection to the catalogue (read-only for a read-only project)."""
        db = getattr(self._local, "db", None)
        if db is None:
            if self.read_only:
                conn = self._ro_connect()
            else:
                conn = sqlite3.connect(
                    self.catalogue, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
                )
                conn.text_factory = _decode_text
                try:
                    conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
                    conn.execute("pragma journal_mode = wal")
                    conn.execute("pragma synchronous = normal")
                except sqlite3.Error as exc:
                    conn.close()
                    raise self._translate(exc) from exc
            db = sqlite_utils.Database(conn)
            self._local.db = db
            with self._conn_lock:
                self._connections.append(conn)
        return db

    def _translate(self, exc: BaseException) -> BaseException:
        """A storage failure as the project error that says what happened (else ``exc``)."""
        if isinstance(exc, ProjectError):
            return exc
        if is_storage_full(exc):
            return _storage_error(exc, self.root, "writing the catalogue")
        if _is_read_only_error(exc):
            return ProjectReadOnlyError(
                f"project is read-only; runs cannot be added ({self.catalogue}: {exc})"
            )
        if _is_damage_error(exc):
            return CatalogueDamagedError(
                f"the catalogue {self.catalogue} is damaged ({exc}); nothing was written. "
                "Open the project again to get it read-only, and restore it from a backup"
            )
        return exc

    def check_writable(self) -> None:
        """Raise :class:`ProjectReadOnlyError` (with the reason) if the project is read-only."""
        if self.read_only_reason is not None:
            raise ProjectReadOnlyError(self.read_only_reason)

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction on this thread's connection: the single place that writes the
        catalogue.  Storage failures come out as :class:`StorageFullError`,
        :class:`ProjectReadOnlyError` or :class:`CatalogueDamagedError`."""
        self.check_writable()
        db = self.db
        try:
            _write_hook("begin")
            db.execute("begin immediate")
        except (sqlite3.Error, OSError) as exc:
            raise self._translate(exc) from exc
        try:
            yield db
            _write_hook("commit")
            db.execute("commit")
        except BaseException as exc:
            with suppress(sqlite3.Error):
                db.execute("rollback")
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from exc

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
        path = self.root / "runs" / str(int(run_id))
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._translate(exc) from exc
        return path

    def model_dir(self, name: str) -> Path:
        """The folder ``models/<name>`` of a model this project creates; ``ValueError`` unless
        ``name`` is a plain name whose folder resolves inside the project."""
        check_name(name, "model name")
        return self.inside(self.root / "models" / name, what=f"model {name!r}")

    def inside(self, stored: str | os.PathLike[str], *, what: str = "path") -> Path:
        """``stored`` (relative to the project, or absolute) as an absolute path, if it resolves
        inside the project folder (symbolic links followed); else ``ValueError``."""
        path = self.abspath(str(stored))
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise ValueError(
                f"{what} {str(stored)!r} lies outside the project {self.root}; "
                "the workbench reads and writes a project's own files only inside its folder"
            )
        return resolved

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
        return int(self.db.table("meta").get("schema_version")["value"])

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
        """Add (or replace) a model.  A model a run produced (``source_run``) must have a plain
        name and live inside the project; a model the user adds may be anywhere."""
        if source_run is not None:
            check_name(name, "model name")
            self.inside(path, what=f"model {name!r} folder")
        elif not isinstance(name, str) or not name.strip():
            raise ValueError("give the model a name")
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
                db.table("models").update(existing[0]["id"], row)
                return existing[0]["id"]
            return _insert(db, "models", row)

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
                db.table("datasets").update(existing[0]["id"], row)
                return existing[0]["id"]
            return _insert(db, "datasets", row)

    def datasets(self) -> list[dict[str, Any]]:
        return [self._decode(r) for r in self.db.query("select * from datasets order by id")]

    def rename_entry(self, table: str, old: str, new: str) -> int:
        """Rename model or dataset ``old`` (``table`` is ``models`` or ``datasets``) to ``new``;
        runs that name it are updated too, so they still rerun.  Returns how many runs were."""
        column = {"models": "model", "datasets": "dataset"}[table]
        new = new.strip() if isinstance(new, str) else ""
        if not new:
            raise ValueError("give a name")
        if new == old:
            return 0
        rows = list(self.db.query(f"select path from {table} where name = ?", [old]))
        if not rows:
            raise LookupError(f"no {column} named {old!r} in this project")
        if list(self.db.query(f"select id from {table} where name = ?", [new])):
            raise ValueError(f"this project already has a {column} named {new!r}")
        # a model a run wrote to models/<old> moves to models/<new>: the folder keeps the name,
        # and no later run that picks the old name can write into the renamed model's folder
        moved: tuple[Path, Path] | None = None
        if table == "models" and rows[0]["path"] == f"models/{old}":
            source, target = self.root / "models" / old, self.model_dir(new)
            if target.exists():
                raise ValueError(f"the folder {target} already exists; choose another name")
            if source.is_dir():
                source.rename(target)
                moved = (target, source)
        try:
            with self.transaction() as db:
                if moved is not None:
                    db.execute("update models set path = ? where name = ?", [f"models/{new}", old])
                db.execute(f"update {table} set name = ? where name = ?", [new, old])
                cursor = db.execute(f"update runs set {column} = ? where {column} = ?", [new, old])
                return int(cursor.rowcount or 0)
        except BaseException:
            if moved is not None:  # the catalogue still names the old folder: put it back
                moved[0].rename(moved[1])
            raise

    def remove_entry(self, table: str, name: str, *, delete_files: bool = False) -> Path | None:
        """Remove model or dataset ``name`` from the catalogue (runs that used it keep their
        record).  With ``delete_files`` its folder is deleted too, but only when it lies inside
        the project (``ValueError`` otherwise, and nothing is removed).  Returns the folder."""
        column = {"models": "model", "datasets": "dataset"}[table]
        rows = list(self.db.query(f"select * from {table} where name = ?", [name]))
        if not rows:
            raise LookupError(f"no {column} named {name!r} in this project")
        stored = rows[0]["path"] or ""
        folder = self.abspath(stored) if stored else None
        if delete_files and folder is not None:
            self.inside(stored, what=f"{column} {name!r} folder")
        with self.transaction() as db:
            db.execute(f"delete from {table} where name = ?", [name])
        if delete_files and folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return folder

    @staticmethod
    def _decode(row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        if "meta" in out:
            try:
                meta = json.loads(out["meta"] or "{}")
            except (TypeError, ValueError, RecursionError):
                meta = None
            if not isinstance(meta, dict):
                out["problems"] = ["unreadable meta"]
                meta = {}
            out["meta"] = meta
        for key in ("name", "path", "kind", "family"):
            if key in out and out[key] is not None and not isinstance(out[key], str):
                out[key] = str(out[key])
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
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer in 0..{MAX_SEED}, got {seed!r}")
        with self.transaction() as db:
            return _insert(
                db,
                "runs",
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
                },
            )

    def update_run(self, run_id: int, **fields: Any) -> None:
        if "status" in fields and fields["status"] not in RUN_STATUSES:
            raise ValueError(f"unknown run status {fields['status']!r}")
        for key in ("versions", "tags"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(fields[key])
        with self.transaction() as db:
            db.table("runs").update(run_id, fields)

    def claim_run(
        self,
        run_id: int,
        from_statuses: Iterable[str],
        *,
        delete_metrics_after: int | None = None,
        **fields: Any,
    ) -> None:
        """Atomically move a run out of one of ``from_statuses`` (``UPDATE ... WHERE id = ? AND
        status IN (...)``): exactly one of several processes claiming the same run succeeds; the
        others get :class:`RunClaimError`.  ``delete_metrics_after`` drops, in the same
        transaction, the metrics recorded after that step (a resume)."""
        statuses = list(from_statuses)
        if "status" in fields and fields["status"] not in RUN_STATUSES:
            raise ValueError(f"unknown run status {fields['status']!r}")
        columns = sorted(fields)
        assignments = ", ".join(f"[{c}] = ?" for c in columns)
        marks = ", ".join("?" for _ in statuses)
        with self.transaction() as db:
            cursor = db.execute(
                f"update runs set {assignments} where id = ? and status in ({marks})",
                [fields[c] for c in columns] + [run_id, *statuses],
            )
            if cursor.rowcount != 1:
                row = db.execute("select status from runs where id = ?", [run_id]).fetchone()
                if row is None:
                    raise RunClaimError(f"no run {run_id} in {self.root}")
                if row[0] in ("queued", "running"):
                    raise RunClaimError(f"run {run_id} is already running")
                raise RunClaimError(f"run {run_id} is {row[0]}; it cannot be started")
            if delete_metrics_after is not None:
                db.execute(
                    "delete from metrics where run_id = ? and step > ?",
                    [run_id, delete_metrics_after],
                )

    def run(self, run_id: int) -> RunRecord:
        try:
            row = self.db.table("runs").get(run_id)
        except sqlite_utils.db.NotFoundError:
            raise ProjectError(f"no run {run_id} in {self.root}") from None
        except sqlite3.DatabaseError as exc:
            if _is_damage_error(exc):
                return RunRecord.unreadable(run_id, str(exc))
            raise
        return RunRecord.from_row(row)

    def runs(self, *, status: Iterable[str] | None = None) -> list[RunRecord]:
        """Runs in id order.  A row that cannot be decoded is listed with its ``problems``; rows on
        a damaged page are listed as unreadable instead of breaking the listing."""
        sql = "select * from runs"
        params: list[Any] = []
        if status:
            statuses = list(status)
            sql += f" where status in ({', '.join('?' for _ in statuses)})"
            params = statuses
        try:
            return [RunRecord.from_row(r) for r in self.db.query(sql + " order by id", params)]
        except sqlite3.DatabaseError as exc:
            if not _is_damage_error(exc):
                raise
        # a damaged page: read what can be read, one row at a time
        ids: Iterable[int]
        try:
            ids = [r[0] for r in self.db.execute("select id from runs order by id").fetchall()]
        except sqlite3.DatabaseError as exc:
            # the ids themselves sit on the damaged page: probe every id up to the largest
            try:
                top = self.db.execute("select max(id) from runs").fetchone()[0]
            except sqlite3.DatabaseError:
                top = None
            if not isinstance(top, int):
                raise CatalogueDamagedError(
                    f"the catalogue {self.catalogue} is damaged ({exc}); its runs cannot be "
                    "listed. Restore it from a backup"
                ) from exc
            ids = range(1, min(top, MAX_PROBED_IDS) + 1)
        wanted = set(status) if status else None
        out = []
        for run_id in ids:
            try:
                record = self.run(run_id)
            except ProjectError:  # no such id (probing)
                continue
            if wanted is None or record.status in wanted or record.malformed:
                out.append(record)
        return out

    def delete_metrics_after(self, run_id: int, step: int) -> None:
        with self.transaction() as db:
            db.execute("delete from metrics where run_id = ? and step > ?", [run_id, step])

    # -- metrics, artifacts, logs ----------------------------------------------------------
    def add_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Insert many metric rows (``run_id, step, name, value, time``) in one transaction."""
        if rows:
            with self.transaction() as db:
                db.table("metrics").insert_all(rows)

    def add_logs(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self.transaction() as db:
                db.table("logs").insert_all(rows)

    def metrics(self, run_id: int, name: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "select cast(step as integer) as step, cast(name as text) as name, value, time "
            "from metrics where run_id = ?"
        )
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
            "select cast(name as text) as name, value from metrics where id in "
            "(select max(id) from metrics m where run_id = ? and step = "
            "(select max(step) from metrics where run_id = m.run_id and name = m.name) "
            "group by name) order by name",
            [run_id],
        )
        return {r["name"]: _metric_value(r["value"]) for r in rows}

    def add_artifact(
        self, run_id: int, kind: str, name: str, path: str, meta: dict[str, Any] | None = None
    ) -> int:
        """Catalogue an artifact; its files must lie inside the project (``ValueError`` else)."""
        self.inside(path, what=f"artifact {name!r}")
        with self.transaction() as db:
            return _insert(
                db,
                "artifacts",
                {
                    "run_id": run_id,
                    "kind": kind,
                    "name": name,
                    "path": self.relpath(path),
                    "meta": json.dumps(meta or {}),
                    "created": now(),
                },
            )

    def artifact_path(self, row: dict[str, Any]) -> Path:
        """The absolute path of a catalogued artifact; ``ValueError`` if the catalogue points
        outside the project (a crafted row): such a file is never read or shown."""
        return self.inside(row.get("path") or "", what=f"artifact {row.get('name')!r}")

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

    # -- run management: note, tags, archive, delete -------------------------------------------

    def set_note(self, run_id: int, note: str | None) -> None:
        """Replace a run's free-text note (``None`` or blank clears it)."""
        self.run(run_id)  # a clear error for an unknown id
        text = (note or "").strip()
        if len(text) > MAX_NOTE_CHARS:
            raise ValueError(f"a note holds at most {MAX_NOTE_CHARS} characters, got {len(text)}")
        self.update_run(int(run_id), note=text or None)

    def set_tags(self, run_id: int, tags: Iterable[str]) -> list[str]:
        """Replace a run's tags (trimmed, de-duplicated, order kept); returns them."""
        self.run(run_id)
        clean: list[str] = []
        for tag in tags:
            tag = str(tag).strip()
            if not tag:
                continue
            if len(tag) > MAX_TAG_CHARS or any(c in tag for c in ",\n\t"):
                raise ValueError(
                    f"tag {tag[:40]!r}: a tag is one word or phrase of at most {MAX_TAG_CHARS} "
                    "characters, without commas, tabs or newlines"
                )
            if tag not in clean:
                clean.append(tag)
        self.update_run(int(run_id), tags=clean)
        return clean

    def add_tags(self, run_id: int, tags: Iterable[str]) -> list[str]:
        return self.set_tags(run_id, [*(self.run(run_id).tags or []), *tags])

    def remove_tags(self, run_id: int, tags: Iterable[str]) -> list[str]:
        drop = {str(t).strip() for t in tags}
        return self.set_tags(run_id, [t for t in self.run(run_id).tags or [] if t not in drop])

    def archive_run(self, run_id: int, archived: bool = True) -> None:
        """Archive (hide from default listings) or unarchive a run; nothing is deleted."""
        record = self.run(run_id)
        if archived and record.status in ("queued", "running"):
            raise ProjectError(f"run {run_id} is {record.status}; cancel it before archiving it")
        self.update_run(int(run_id), archived=1 if archived else 0)

    def delete_run(self, run_id: int, *, force: bool = False) -> None:
        """Remove a run, its rows and its folder (models it registered stay).  A queued or running
        run is refused unless ``force`` (the engine's own clean-up)."""
        run_id = int(run_id)
        if not force:
            record = self.run(run_id)
            if record.status in ("queued", "running"):
                raise ProjectError(f"run {run_id} is {record.status}; cancel it before deleting it")
        with self.transaction() as db:
            for table in ("metrics", "artifacts", "logs"):
                db.execute(f"delete from {table} where run_id = ?", [run_id])
            db.execute("delete from runs where id = ?", [run_id])
        shutil.rmtree(self.root / "runs" / str(run_id), ignore_errors=True)
