"""The ``workbench`` command: the same engine as the GUI, with no Qt.

Commands::

    workbench run CONFIG [KEY=VALUE ...] --project DIR [--gpus N]
                                             run a job from a YAML/JSON config (see below); with
                                             N > 1 GPUs through `accelerate launch`
    workbench resume RUN --project DIR       continue a stopped run from its last checkpoint
    workbench runs --project DIR [--json] [--archived] [--tag T]... [--status S]...
                                             list runs (archived ones only with --archived)
    workbench show RUN --project DIR [--json]
    workbench export RUN --project DIR       print a config that reruns RUN
    workbench note RUN TEXT --project DIR    set a run's note ('' clears it)
    workbench tag RUN TAG... [--remove] --project DIR
    workbench archive RUN... [--undo] --project DIR
    workbench delete RUN... [--yes] --project DIR
    workbench jobs [--json]                  the registry, with each job's config schema
    workbench new DIR                        create an empty project
    workbench add-dataset NAME PATH --project DIR [--kind image-folder]
    workbench add-model NAME PATH --project DIR
    workbench demo [--project DIR] [--family NAME]
    workbench gui [PATH | --project DIR] [--demo]

A run config file (what ``export`` prints and ``run`` reads)::

    job: classifier.train_mlp
    seed: 0
    model: null          # a project model name, a built-in model or a folder
    dataset: digits
    config: {epochs: 30}
    config_version: 1    # optional: the job's config version it was written for (1 if absent)

It is a :class:`workbench.request.RunRequest`; an older config version is migrated at submit.
``KEY=VALUE`` after the config overrides it: ``seed=3``, ``model=NAME``, ``dataset=NAME``, and
``FIELD=VALUE`` or ``config.FIELD=VALUE`` for a config field (``lr=1e-3``, ``hidden=[64,32]``;
a list replaces the file's list); ``job`` cannot be overridden.  The result is validated exactly
like the file.

Exit codes: 0 success; 1 the run failed, the disk is full ("No space left on device: ..."),
or a deletion was declined at its prompt; 2 bad input (config, project, arguments, a read-only or
damaged project, a run already running, an unknown run id); 130 cancelled by Ctrl-C, which
always ends the command within a second.  Errors are one line on
stderr, never a traceback.  The ``--json`` outputs are a stable contract: ``runs``
prints a list of objects with at least ``id, job, method, status, created, archived, tags, note``
(archived runs only with ``--archived``); ``show`` an object with at least ``id, status, config,
seed, metrics, artifacts, archived, tags, note``.  A change to several runs (``archive``,
``delete``) checks them all first: a refused change changes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import threading
import time
import typing
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from workbench import __version__
from workbench.config import ConfigError, check_seed, to_dict
from workbench.request import RequestError, RunRequest
from workbench.store import (
    CATALOGUE,
    RUN_STATUSES,
    Project,
    ProjectError,
    RunRecord,
    StorageFullError,
    is_storage_full,
)

DEFAULT_DEMO_PROJECT = "demo-project"
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 1, 2, 130
SUMMARY_METRICS = 12  # final metrics printed after a run (an experiment records hundreds)
CTRL_C_GRACE_SECONDS = 0.6  # a cancelled run gets this long to stop before the CLI exits anyway


_WARNINGS: list[str] = []


class CliError(Exception):
    """Bad input: printed as one line, exit code 2 (or ``code``)."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


class _ForcedExit(Exception):
    """Ctrl-C and the run did not stop within the grace time: exit now, without joining workers."""


# -- run files --------------------------------------------------------------------------------


def read_run_file(path: str | Path) -> dict[str, Any]:
    """Read and check a run config (YAML or JSON); returns a dict with the keys of
    ``workbench.request.RUN_FILE_KEYS``
    (:meth:`RunRequest.from_file`; a file without ``config_version`` is version 1).

    The file must be a regular UTF-8 file of at most 4 MiB; every problem is one :class:`CliError`.
    """
    return _read_request(path).to_dict()


def _read_request(path: str | Path) -> RunRequest:
    try:
        return RunRequest.from_file(path)
    except RequestError as exc:
        raise CliError(str(exc)) from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def apply_overrides(request: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``request`` (a :func:`read_run_file` dict) with ``KEY=VALUE`` overrides applied
    (:meth:`RunRequest.apply_overrides`).  Nothing is validated here: the engine validates the
    result exactly like a config file."""
    return _override(RunRequest(**request), overrides).to_dict()


def _override(request: RunRequest, overrides: list[str]) -> RunRequest:
    try:
        return request.apply_overrides(overrides, _job_fields)
    except RequestError as exc:
        raise CliError(str(exc)) from None


def _job_fields(job: Any) -> dict[str, Any]:
    """The job's config fields by name (empty for an unknown job: submit reports it)."""
    try:
        return {f.name: f for f in _registry().job(str(job)).schema}
    except LookupError:
        return {}


# -- progress ------------------------------------------------------------------------------


class ProgressPrinter:
    """A one-line terminal progress bar (or sparse plain lines when stderr is not a terminal)."""

    WIDTH = 30

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last: dict[str, float] = {}
        self.text = ""
        self.fraction = 0.0
        self._printed_decile = -1
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            if event.type == "metric":
                self.last[event.data["name"]] = event.data["value"]
                return
            if event.type == "progress":
                self.fraction = event.data["progress"]
                self.text = event.data.get("text") or self.text
            elif event.type == "status":
                self.text = event.data.get("text") or self.text
            elif event.type == "log" and event.data.get("level") == "error":
                return
            else:
                return
            self._draw()

    def _draw(self) -> None:
        filled = int(self.fraction * self.WIDTH)
        shown = list(self.last.items())[-3:]
        metrics = "  ".join(f"{k}={v:.4g}" for k, v in shown)
        line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.fraction:4.0%} {self.text}  {metrics}"
        if self.tty:
            self.stream.write("\r" + line[:160].ljust(160))
            self.stream.flush()
        else:
            decile = int(self.fraction * 10)
            if decile != self._printed_decile:
                self._printed_decile = decile
                self.stream.write(line + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _wait_with_ctrl_c(engine: Any, run_id: int) -> str:
    """Wait for the run; Ctrl-C cancels it cooperatively and gives it
    :data:`CTRL_C_GRACE_SECONDS` to stop.  A run that does not stop in time (a job stuck outside
    its cancellation checks) is marked cancelled when the catalogue allows and the command exits
    anyway (:class:`_ForcedExit`): Ctrl-C always ends the CLI within a second."""
    try:
        while not engine.wait_for(run_id, timeout=0.1):  # Ctrl-C is seen between waits
            pass
    except KeyboardInterrupt:
        sys.stderr.write("\ncancelling...\n")
        sys.stderr.flush()
        deadline = time.monotonic() + CTRL_C_GRACE_SECONDS
        try:
            engine.cancel(run_id)
            stopped = engine.wait_for(run_id, timeout=max(0.0, deadline - time.monotonic()))
        except KeyboardInterrupt:  # a second Ctrl-C: do not wait at all
            stopped = False
        except Exception:
            stopped = False
        if not stopped:
            _mark_cancelled_quickly(engine.project, run_id)
            raise _ForcedExit(
                f"run {run_id} cancelled (the job did not stop within "
                f"{CTRL_C_GRACE_SECONDS:g} s; the command exits without waiting for it)"
            ) from None
    return engine.final_status(run_id) or engine.project.run(run_id).status


def _mark_cancelled_quickly(project: Project, run_id: int) -> None:
    """Best effort, bounded: record the run as cancelled from a fresh connection that waits at
    most 0.2 s for the lock (a stuck job may hold it); if that fails the next open of the project
    marks the run interrupted, since this process is about to end."""
    try:
        conn = sqlite3.connect(project.catalogue, timeout=0.2, isolation_level=None)
        try:
            conn.execute(
                "update runs set status = 'cancelled', status_text = ?, finished = ? "
                "where id = ? and status in ('queued', 'running')",
                ["cancelled by Ctrl-C (the job did not stop in time)", time.time(), run_id],
            )
        finally:
            conn.close()
    except sqlite3.Error:
        pass


def _finish(project: Project, run_id: int, status: str, storage_error: str | None = None) -> int:
    if storage_error and status != "cancelled":
        print(f"run {run_id} {status}: {storage_error}", file=sys.stderr)
        return EXIT_FAILED
    try:
        record = project.run(run_id)
    except Exception as exc:  # a store that cannot be read back after the run
        print(f"run {run_id} {status}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_FAILED if status != "cancelled" else EXIT_CANCELLED
    if status == "completed":
        metrics = project.final_metrics(run_id)
        shown = list(metrics.items())[:SUMMARY_METRICS]
        summary = ", ".join(f"{k}={v:.4g}" for k, v in shown)
        more = len(metrics) - len(shown)
        if more > 0:
            summary += f" (+{more} more: workbench show {run_id})"
        print(f"run {run_id} completed: {summary}")
        return 0
    if status == "cancelled":
        print(f"run {run_id} cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    error_lines = (record.error or "").strip().splitlines()
    reason = record.status_text or (error_lines[-1] if error_lines else "unknown error")
    print(f"run {run_id} {status}: {' '.join(reason.split())}", file=sys.stderr)
    return EXIT_FAILED


def _registry() -> Any:
    from workbench.registry import get_registry

    return get_registry()


ISOLATE_ENV = "WORKBENCH_ISOLATE"  # "1": model-heavy jobs run in a child process, as in the GUI


def _engine(project: Project) -> Any:
    """The engine of a command (runs on this machine; :func:`_remote_launcher` may add one).  With
    ``WORKBENCH_ISOLATE=1`` it isolates heavy jobs the GUI's way (``packaging/check_bundle.py``
    uses it to check that a frozen app can start that process)."""
    from workbench.jobs import Engine, heavy_jobs

    isolate = heavy_jobs if os.environ.get(ISOLATE_ENV) == "1" else None
    return Engine(project, isolate=isolate)


def _remote_launcher(project: Project, launcher: str | None) -> Any:
    """The remote launcher a command's runs go to: ``launcher`` is a launcher kind, ``"settings"``
    (the project's choice) or ``None`` (this machine); ``None`` when they run here."""
    if launcher is None:
        return None
    from dataclasses import replace

    from workbench.launchers import LauncherError, load_settings, make_launcher

    try:
        settings = load_settings(project.root)
        if launcher != "settings":
            settings = replace(settings, kind=launcher).validate()
        return make_launcher(settings, project.root)
    except LauncherError as exc:
        raise CliError(
            f"{' '.join(str(exc).split())} (set it with `workbench launcher KEY=VALUE "
            f"--project {project.root}`)"
        ) from None


def submit_and_wait(
    project: Project, request: RunRequest | dict[str, Any], *, quiet: bool = False
) -> tuple[int, str]:
    """Submit one run request and block until it ends; returns (run id, status)."""
    run_id, status, _ = _submit_and_wait(project, request, quiet=quiet)
    return run_id, status


def _submit_and_wait(
    project: Project,
    request: RunRequest | dict[str, Any],
    *,
    quiet: bool = False,
    resume: int | None = None,
    launcher: str | None = None,
) -> tuple[int, str, str | None]:
    """Submit (or resume) a run and wait for it: (run id, status, storage error or None)."""
    from workbench.jobs import EngineError

    if project.read_only_reason:
        raise CliError(project.read_only_reason)
    remote = _remote_launcher(project, launcher)  # a bad setting is refused before any engine
    engine = _engine(project)
    if remote is not None:
        engine.set_launcher(remote)
    printer = ProgressPrinter() if not quiet else None
    if printer:
        engine.add_listener(printer)
    forced = False
    try:
        try:
            if resume is not None:
                run_id = engine.resume(resume)
            else:
                if not isinstance(request, RunRequest):  # a dict: the current config version
                    request = RunRequest(**(request or {}))
                run_id = engine.submit(request)
        except (EngineError, ConfigError, ValueError) as exc:
            raise CliError(" ".join(str(exc).split())) from None
        try:
            status = _wait_with_ctrl_c(engine, run_id)
        except _ForcedExit:
            forced = True
            raise
        return run_id, status, engine.storage_error(run_id)
    finally:
        if printer:
            printer.close()
        if not forced:
            engine.shutdown(timeout=CTRL_C_GRACE_SECONDS)


# -- commands ------------------------------------------------------------------------------


def _open(path: str, *, create: bool = False, warn: bool = True) -> Project:
    try:
        project = Project.open(path, create=create)
    except StorageFullError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    except ProjectError as exc:
        raise CliError(" ".join(str(exc).split())) from None
    except OSError as exc:
        if is_storage_full(exc):
            raise CliError(
                f"No space left on device: {exc.filename or path}", EXIT_FAILED
            ) from None
        raise CliError(f"{path}: {exc.strerror or exc}") from None
    if warn and project.read_only_reason:
        _WARNINGS.append(project.read_only_reason)  # printed once, if the command succeeds
    return project


def _iso(ts: float | None) -> str | None:
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None
    except (OverflowError, OSError, ValueError, TypeError):
        return None


def _run_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 < value < 2**63:
        raise CliError(f"run ids are positive numbers; got {_short(text)} (see `workbench runs`)")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    request = _read_request(args.config)
    if args.seed is not None:
        try:
            request = request.replace(seed=check_seed(args.seed, "--seed"))
        except ConfigError as exc:
            raise CliError(str(exc)) from None
    if args.overrides:
        seed = request.seed
        request = _override(request, args.overrides)
        if args.seed is not None and request.seed != seed:
            raise CliError(f"--seed {args.seed} and seed={request.seed} disagree; give it once")
    if args.gpus is not None:
        request = _override(request, [f"gpus={args.gpus}"])
    launched = _multi_gpu(args, request)
    if launched is not None:
        return launched
    with _open(args.project, create=True, warn=False) as project:
        run_id, status, storage = _submit_and_wait(
            project, request, quiet=args.quiet, launcher=args.launcher or "settings"
        )
        return _finish(project, run_id, status, storage)


def cmd_launcher(args: argparse.Namespace) -> int:
    """Show or change the project's launcher settings (``KEY=VALUE`` arguments change them)."""
    from dataclasses import asdict

    import yaml

    from workbench.launchers import LauncherError, LauncherSettings, load_settings, save_settings

    with _open(args.project, warn=False) as project:
        try:
            settings = load_settings(project.root)
            if args.settings:
                data = asdict(settings)
                for item in args.settings:
                    key, sep, value = item.partition("=")
                    if not sep:
                        raise CliError(f"{_short(item)}: give settings as KEY=VALUE")
                    data[key.strip()] = yaml.safe_load(value) if value.strip() else ""
                    if isinstance(data[key.strip()], (int, float)) and key.strip() in (
                        "ray_address", "slurm_partition", "slurm_folder", "run_root", "python"
                    ):  # fmt: skip
                        data[key.strip()] = value
                settings = LauncherSettings.from_dict(data)
                save_settings(project.root, settings)
        except LauncherError as exc:
            raise CliError(" ".join(str(exc).split())) from None
        if args.json:
            print(json.dumps(asdict(settings), indent=2, sort_keys=True))
        else:
            for key, value in asdict(settings).items():
                print(f"{key}: {json.dumps(value) if isinstance(value, dict) else value}")
    return 0


def cmd_remote_run(args: argparse.Namespace) -> int:
    """Run one run folder here (what a Ray or Slurm job executes); exit 0 unless it failed."""
    from workbench.remote import run_folder

    folder = Path(args.folder)
    if not (folder / "run.json").is_file():
        raise CliError(f"{args.folder} is not a run folder (it has no run.json)")
    status = run_folder(folder)
    print(f"remote run {folder}: {status}")
    return EXIT_FAILED if status == "failed" else 0


def _multi_gpu(args: argparse.Namespace, request: RunRequest) -> int | None:
    """A run on several GPUs (:mod:`workbench.accelerate_launch`); ``None``: run it here as usual.

    Asked for (``gpus`` > 1) outside a launch: check it as submit would, then re-run this command
    through ``accelerate launch`` and return its exit code. In a launched process: rank 0 runs it
    here (the one writer of the project); any other rank runs it in a throw-away project."""
    from workbench import accelerate_launch as launch
    from workbench.jobs import EngineError

    if launch.is_launched_child():
        if launch.launch_rank()[0] == 0:
            return None
        with launch.scratch_project(args.project, request.model, request.dataset) as scratch:
            _, status, _ = _submit_and_wait(scratch, request, quiet=True)
        return 0 if status == "completed" else EXIT_FAILED
    gpus = launch.requested_gpus(request)
    if gpus <= 1:
        return None
    try:
        with _open(args.project, create=True, warn=False) as project:
            launch.check_request(project, request)
    except (EngineError, ConfigError, LookupError, ValueError) as exc:
        raise CliError(" ".join(str(exc).split())) from None
    argv = launch.without_gpus_flag(args.argv) + ([f"gpus={args.gpus}"] if args.gpus else [])
    return launch.launch(["workbench.cli", *argv], gpus)


def cmd_resume(args: argparse.Namespace) -> int:
    run_id = _run_id(args.run)
    with _open(args.project, warn=False) as project:
        try:
            project.run(run_id)
        except ProjectError as exc:
            raise CliError(str(exc)) from None
        _, status, storage = _submit_and_wait(project, {}, resume=run_id)
        return _finish(project, run_id, status, storage)


def run_summary(record: RunRecord) -> dict[str, Any]:
    """The ``runs --json`` object of a run; a malformed row carries ``problems``."""
    out = {
        "id": record.id,
        "job": record.job,
        "kind": record.kind,
        "family": record.family,
        "method": record.method,
        "status": record.status,
        "seed": record.seed,
        "model": record.model,
        "dataset": record.dataset,
        "created": _iso(record.created),
        "finished": _iso(record.finished),
        "parent_id": record.parent_id,
        "archived": record.archived,
        "tags": list(record.tags or []),
        "note": record.note,
    }
    if record.problems:
        out["problems"] = list(record.problems)
    return out


NOTE_PREVIEW_CHARS = 40  # of a run's note in the `runs` table


def cmd_runs(args: argparse.Namespace) -> int:
    with _open(args.project) as project:
        records = project.runs(status=args.status or None)
    wanted_tags = set(args.tag or [])
    records = [r for r in records if wanted_tags <= set(r.tags or [])]
    hidden = 0 if args.archived else sum(r.archived for r in records)
    rows = [run_summary(r) for r in records if args.archived or not r.archived]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        filtered = args.status or wanted_tags
        print("no runs match" if filtered else "no runs yet", end="")
        print(f" ({hidden} archived: --archived shows them)" if hidden else "")
        return 0
    print(f"{'id':>4}  {'status':<11} {'job':<28} {'seed':>4}  {'created':<25}  tags, note")
    for r in rows:
        if r.get("problems"):
            print(f"{r['id']:>4}  malformed   run {r['id']}: {', '.join(r['problems'])}")
            continue
        print(
            f"{r['id']:>4}  {_cell(r['status']):<11} {_cell(r['job']):<28} "
            f"{_cell(r['seed']):>4}  {r['created'] or '':<25}  {_extras(r)}".rstrip()
        )
    if hidden:
        print(f"({hidden} archived run{'s' if hidden > 1 else ''} hidden: --archived shows them)")
    return 0


def _extras(row: dict[str, Any]) -> str:
    """The last column of the ``runs`` table: [archived], #tags and the note's first line."""
    parts = ["[archived]"] if row.get("archived") else []
    parts += [f"#{_cell(t)}" for t in row.get("tags") or []]
    note = " ".join((row.get("note") or "").split())
    if note:
        short = note if len(note) <= NOTE_PREVIEW_CHARS else note[: NOTE_PREVIEW_CHARS - 3] + "..."
        parts.append(f'"{_cell(short)}"')
    return " ".join(parts)


def _cell(value: Any) -> str:
    """A table cell: one line, no control characters."""
    return "".join(c if c.isprintable() else "?" for c in str(value))


def run_details(project: Project, run_id: int) -> dict[str, Any]:
    record = project.run(run_id)
    out = run_summary(record)
    out.update(
        {
            "config": record.config,
            "metrics": project.final_metrics(run_id),
            "artifacts": [
                {"kind": a["kind"], "name": a["name"], "path": a["path"]}
                for a in project.artifacts(run_id)
            ],
            "versions": record.versions,
            "device": record.device,
            "started": _iso(record.started),
            "status_text": record.status_text,
            "error": record.error,
            "checkpoint": record.checkpoint,
            "checkpoint_step": record.checkpoint_step,
            "project": str(project.root),
            "log": [
                {"time": _iso(row["time"]), "level": row["level"], "message": row["message"]}
                for row in project.logs(run_id)
            ],
        }
    )
    if record.problems:
        out["problems"] = list(record.problems)
    return out


SHOW_LOG_LINES = 20  # log lines `workbench show` prints (the newest; --json prints all)


def cmd_report(args: argparse.Namespace) -> int:
    """``workbench report RUN [RUN ...] --out report.html`` (:mod:`workbench.report`)."""
    from workbench.report import write_report

    run_ids = _run_ids(args.runs)
    with _open(args.project) as project:
        try:
            written = write_report(project, run_ids, args.out)
        except ProjectError as exc:
            raise CliError(str(exc)) from None
    print(
        f"wrote {written[0]} and {len(written) - 1} table files in {written[-1].parent}"
        if len(written) > 1
        else f"wrote {written[0]}"
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    run_id = _run_id(args.run)
    with _open(args.project) as project:
        try:
            details = run_details(project, run_id)
        except ProjectError as exc:
            raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(details, indent=2))
        return 0
    if details.get("problems"):
        print(f"run {details['id']}: {', '.join(details['problems'])} (shown as far as readable)")
    archived = ", archived" if details["archived"] else ""
    print(f"run {details['id']}: {_cell(details['job'])} [{_cell(details['status'])}{archived}]")
    if details["tags"]:
        print(f"  tags: {', '.join(_cell(t) for t in details['tags'])}")
    if details["note"]:
        print(
            "  note:\n" + "\n".join("    " + _cell(line) for line in details["note"].splitlines())
        )
    print(f"  seed {details['seed']}, model {details['model']}, dataset {details['dataset']}")
    print(
        f"  created {details['created']}, finished {details['finished']}, device {details['device']}"
    )
    print("  config:")
    for k, v in details["config"].items():
        print(f"    {_cell(k)}: {_cell(v)}")
    print("  metrics:")
    for k, v in details["metrics"].items():
        print(f"    {_cell(k)}: {v:.6g}")
    print("  artifacts:")
    for a in details["artifacts"]:
        print(f"    {_cell(a['kind']):<11} {_cell(a['path'])}")
    log = details["log"]
    if log:
        shown = log[-SHOW_LOG_LINES:]
        more = (
            f", the last {len(shown)} of {len(log)}: --json has all"
            if len(log) > len(shown)
            else ""
        )
        print(f"  log{more}:")
        for row in shown:
            print(f"    {row['time']} {_cell(row['level']):<7} {_cell(row['message'])}")
    if details["error"]:
        print("  error:\n" + "\n".join("    " + line for line in details["error"].splitlines()))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    run_id = _run_id(args.run)
    with _open(args.project) as project:
        try:
            record = project.run(run_id)
        except ProjectError as exc:
            raise CliError(str(exc)) from None
    if record.problems:
        raise CliError(f"{record.describe_problems()}; it cannot be exported")
    text = RunRequest.from_record(record).to_text(args.format)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_export_model(args: argparse.Namespace) -> int:
    from workbench.exporters import ExportError, export_model
    from workbench.registry import get_registry

    run_id = _run_id(args.run) if args.run is not None else None
    options: dict[str, str] = {}
    for item in args.option or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--option takes KEY=VALUE; got {_short(item)}")
        options[key.strip()] = value
    with _open(args.project, warn=False) as project:
        try:
            written = export_model(
                project,
                get_registry(),
                args.out,
                run_id=run_id,
                model=args.model,
                format=args.format,
                options=options,
            )
        except ProjectError as exc:
            raise CliError(str(exc)) from None
        except (ExportError, ValueError, LookupError) as exc:
            raise CliError(" ".join(str(exc).split())) from None
    print(f"exported to {written}")
    return 0


# -- run management: note, tag, archive, delete ---------------------------------------------


def _run_ids(texts: list[str]) -> list[int]:
    """Run ids from the command line, each once, in the order given."""
    return list(dict.fromkeys(_run_id(t) for t in texts))


def _records(project: Project, run_ids: list[int]) -> list[RunRecord]:
    """The runs, all of them or an error: a change to several runs starts only once every id
    is known, so a refused change changes nothing."""
    project.check_writable()
    try:
        return [project.run(run_id) for run_id in run_ids]
    except ProjectError as exc:
        raise CliError(str(exc)) from None


def _refuse_active(records: list[RunRecord], doing: str) -> None:
    for record in records:
        if record.status in ("queued", "running"):
            raise CliError(
                f"run {record.id} is {record.status}; cancel it before {doing} it "
                "(nothing was changed)"
            )


def _listed(run_ids: list[int]) -> str:
    return f"run{'s' if len(run_ids) > 1 else ''} {', '.join(map(str, run_ids))}"


def cmd_note(args: argparse.Namespace) -> int:
    run_id = _run_id(args.run)
    with _open(args.project, warn=False) as project:
        _records(project, [run_id])
        try:
            project.set_note(run_id, args.text)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        note = project.run(run_id).note
    print(f"run {run_id}: note {'set' if note else 'cleared'}")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    run_id = _run_id(args.run)
    if any(not t.strip() for t in args.tags):
        raise CliError("a tag cannot be empty")
    with _open(args.project, warn=False) as project:
        _records(project, [run_id])
        try:
            if args.remove:
                tags = project.remove_tags(run_id, args.tags)
            else:
                tags = project.add_tags(run_id, args.tags)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    shown = ", ".join(_cell(t) for t in tags) if tags else "(none)"
    print(f"run {run_id} tags: {shown}")
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    run_ids = _run_ids(args.runs)
    with _open(args.project, warn=False) as project:
        records = _records(project, run_ids)
        if not args.undo:
            _refuse_active(records, "archiving")
        for run_id in run_ids:
            project.archive_run(run_id, archived=not args.undo)
    if args.undo:
        print(f"unarchived {_listed(run_ids)}")
    else:
        print(f"archived {_listed(run_ids)} (hidden from `workbench runs`; --archived shows them)")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    run_ids = _run_ids(args.runs)
    with _open(args.project, warn=False) as project:
        _refuse_active(_records(project, run_ids), "deleting")
        if not args.yes:
            if sys.stdin is None or not sys.stdin.isatty():
                raise CliError(
                    f"not deleted: deleting {_listed(run_ids)} needs confirmation and stdin is "
                    "not a terminal; pass --yes"
                )
            question = (
                f"delete {_listed(run_ids)} with their metrics, logs and files "
                "(models they produced stay)? [y/N] "
            )
            if not _confirm(question):
                raise CliError(f"not deleted: {_listed(run_ids)} kept", EXIT_FAILED)
        for run_id in run_ids:
            project.delete_run(run_id)
    print(f"deleted {_listed(run_ids)}")
    return 0


def _confirm(question: str) -> bool:
    """Ask on the terminal (the question on stderr); only ``y`` or ``yes`` is a yes."""
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def cmd_jobs(args: argparse.Namespace) -> int:
    from workbench.registry import get_registry

    registry = get_registry()
    data = registry.to_json()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    for job in data["jobs"]:
        print(f"{job['name']}  ({job['kind']}, {job['family']}): {job['title']}")
        for f in job["config"]:
            allowed = ""
            if "choices" in f:
                allowed = f" one of {f['choices']}"
            elif "range" in f:
                allowed = f" in {f['range']}"
            print(f"    {f['name']}: {f['type']} = {f['default']!r}{allowed}  {f['help']}")
    for err in data["plugin_errors"]:
        print(f"warning: {err}", file=sys.stderr)
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    try:
        Project.create(args.dir).close()
    except StorageFullError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    except ProjectError as exc:
        raise CliError(str(exc)) from None
    print(f"created project {Path(args.dir).resolve()}")
    return 0


def cmd_add_dataset(args: argparse.Namespace) -> int:
    from workbench.registry import add_dataset_to_project, get_registry

    with _open(args.project, warn=False) as project:
        project.check_writable()
        try:
            add_dataset_to_project(project, get_registry(), args.kind, args.name, args.path)
        except (ValueError, LookupError) as exc:
            raise CliError(" ".join(str(exc).split())) from None
    print(f"added dataset {args.name} ({args.kind}) from {Path(args.path).resolve()}")
    return 0


def cmd_add_model(args: argparse.Namespace) -> int:
    from workbench.registry import add_model_to_project, get_registry

    with _open(args.project, warn=False) as project:
        project.check_writable()
        try:
            _, kind = add_model_to_project(
                project, get_registry(), args.name, args.path, allow_pickle=args.allow_pickle
            )
            allowed = bool((project.model(args.name) or {}).get("meta", {}).get("allow_pickle"))
        except (ValueError, LookupError) as exc:
            raise CliError(" ".join(str(exc).split())) from None
    print(f"added model {args.name} ({kind}) from {Path(args.path).resolve()}")
    if allowed:
        print(
            "warning: pickle weights allowed for this model; they are read with "
            "torch.load(weights_only=True), which refuses pickles that need code"
        )
    elif args.allow_pickle:
        print(f"note: --allow-pickle has no effect for {kind} models (safetensors only)")
    return 0


def run_demo(
    project_dir: str, family: str = "classifier", *, quiet: bool = False
) -> tuple[Path, list[int]]:
    """Create (or reuse) a demo project and run the family's demo runs that it lacks."""
    from workbench.registry import get_registry

    registry = get_registry()
    if family not in registry.demos:
        known = ", ".join(sorted(registry.demos)) or "none"
        raise CliError(f"no demo for family {family!r}; families with a demo: {known}")
    demo = registry.demos[family]
    run_ids = []
    with _open(project_dir, create=True) as project:
        done = {
            (r.job, json.dumps(r.config, sort_keys=True))
            for r in project.runs(status=["completed"])
        }
        for run in demo.runs:
            request = RunRequest(**run)
            # the typed config only tells whether the project has this run (submit validates)
            typed = registry.job(request.job).validate(request.config)
            key = (request.job, json.dumps(to_dict(typed), sort_keys=True))
            if key in done:
                continue
            run_id, status = submit_and_wait(project, request, quiet=quiet)
            if status != "completed":
                raise CliError(
                    f"demo run {run_id} ended {status}: {project.run(run_id).status_text}"
                )
            run_ids.append(run_id)
        root = project.root
    return root, run_ids


def cmd_demo(args: argparse.Namespace) -> int:
    root, run_ids = run_demo(args.project, args.family, quiet=args.quiet)
    if run_ids:
        print(f"demo project {root}: ran {', '.join(map(str, run_ids))}")
    else:
        print(f"demo project {root} is up to date")
    print(f"next: workbench show {run_ids[-1] if run_ids else 1} --project {args.project} --json")
    return 0


def _frontend(name: str) -> Any:
    """The GUI entry point, found as a plugin so the core never imports the Qt layer."""
    import importlib

    target = "ui.app:main"
    for ep in metadata.entry_points(group="unlearning_workbench.frontends"):
        if ep.name == name:
            target = ep.value
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def gui_project(args: argparse.Namespace) -> str | None:
    """The project folder ``workbench gui`` opens: PATH or ``--project`` (not both), else
    ``$WORKBENCH_PROJECT``, else ``None`` (the app reopens the most recent project).  PATH may be
    the project's catalogue file (what a file manager hands the desktop entry's ``%f``)."""
    if args.path and args.project:
        raise CliError(
            f"give the project folder once: PATH ({args.path}) or --project ({args.project}), "
            "not both"
        )
    target = args.path or args.project or os.environ.get("WORKBENCH_PROJECT") or None
    if args.demo:
        return target or DEFAULT_DEMO_PROJECT  # the demo creates it
    if target is None:
        return None
    path = Path(target)
    if path.is_file():
        if path.name != CATALOGUE:
            raise CliError(f"{target} is a file; a project is a folder (with a {CATALOGUE})")
        path = path.parent
    elif not path.exists():
        raise CliError(f"{target} does not exist; `workbench new {target}` creates a project there")
    return str(path)


def cmd_gui(args: argparse.Namespace) -> int:
    project = gui_project(args)
    if args.demo:
        run_demo(project or DEFAULT_DEMO_PROJECT, args.family)  # gui_project gave the demo's
    return int(_frontend("gui")(project=project) or 0)


# -- entry ------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (exit 2), like every other error of the command."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {' '.join(message.split())} (see {self.prog} --help)\n")


RUN_HELP = "a run id (see `workbench runs`)"


def build_parser() -> argparse.ArgumentParser:
    """The ``workbench`` argument parser; every argument of every command has a help text."""
    parser = _Parser(
        prog="workbench",
        description="Unlearning Workbench: unlearn, attack, inspect, keep every run.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do (COMMAND --help: more)"
    )
    env_project = os.environ.get("WORKBENCH_PROJECT")

    def add_project(p: argparse.ArgumentParser, default: str | None = env_project) -> None:
        p.add_argument(
            "--project",
            default=default,
            required=default is None,
            help="project folder (default: $WORKBENCH_PROJECT)",
        )

    def add_json(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument(
            "--json", action="store_true", help=f"print {what} as JSON (a stable format)"
        )

    p = sub.add_parser(
        "run",
        help="run a job from a YAML or JSON config, with KEY=VALUE overrides",
        description="Run a job from a config file; KEY=VALUE arguments override it and are "
        "validated like the file: seed=3, model=NAME, dataset=NAME, and FIELD=VALUE (or "
        "config.FIELD=VALUE) for a field of the job's config (`workbench jobs` lists them). "
        "Values are YAML: lr=1e-3, methods=[ga,rl]. The job itself cannot be overridden.",
    )
    p.add_argument("config", help="run config file (.yaml or .json), e.g. from `workbench export`")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override the file: seed=3, model=NAME, dataset=NAME, FIELD=VALUE or "
        "config.FIELD=VALUE (a list replaces the file's list)",
    )
    add_project(p)
    p.add_argument("--seed", type=int, help="override the config's seed (same as seed=N)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--launcher",
        choices=("local", "ray", "slurm"),
        help="where the run executes (default: the project's setting, see `workbench launcher`)",
    )
    p.add_argument(
        "--gpus",
        type=int,
        help="train on N GPUs (same as gpus=N; N > 1 launches one process per GPU through "
        "`accelerate launch`)",
    )
    p.set_defaults(func=cmd_run, extra_dest="overrides")

    p = sub.add_parser(
        "launcher",
        help="show or set where the project's runs execute (local, ray, slurm)",
        description="Show the project's launcher settings, or change them with KEY=VALUE: "
        "kind=ray ray_address=http://HEAD:8265, or kind=slurm slurm_partition=NAME "
        "slurm_folder=/shared/submitit run_root=/shared/runs (see docs/launchers.md).",
    )
    p.add_argument("settings", nargs="*", metavar="KEY=VALUE", help="a setting to change")
    add_project(p)
    add_json(p, "the settings")
    p.set_defaults(func=cmd_launcher)

    p = sub.add_parser(
        "remote-run",
        help="run one run folder on this machine (what a Ray or Slurm job executes)",
    )
    p.add_argument("folder", help="the run folder the project's owner wrote")
    p.set_defaults(func=cmd_remote_run)

    p = sub.add_parser("resume", help="continue a stopped run from its last checkpoint")
    p.add_argument("run", help="the stopped run's id (see `workbench runs`)")
    add_project(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser(
        "runs", help="list the runs of a project (archived ones hidden unless --archived)"
    )
    add_project(p)
    add_json(p, "the list")
    p.add_argument("--archived", action="store_true", help="list archived runs too (marked)")
    p.add_argument(
        "--tag",
        action="append",
        metavar="TAG",
        help="only runs with this tag (repeat: runs with all the tags)",
    )
    p.add_argument(
        "--status",
        action="append",
        choices=RUN_STATUSES,
        metavar="STATUS",
        help=f"only runs with this status (repeat: any of them); one of {', '.join(RUN_STATUSES)}",
    )
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("show", help="a run's config, status, final metrics and artifacts")
    p.add_argument("run", help=RUN_HELP)
    add_project(p)
    add_json(p, "the run")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "report", help="a run, runs side by side or a matrix as one self-contained HTML file"
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help=RUN_HELP + "; several: a comparison")
    add_project(p)
    p.add_argument("--out", default="report.html", help="the HTML file (default report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="print a config that reruns a run")
    p.add_argument("run", help=RUN_HELP)
    add_project(p)
    p.add_argument(
        "--format", choices=("yaml", "json"), default="yaml", help="yaml (default) or json"
    )
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "export-model",
        help="write the model a run produced in a format other tools load",
        description="Export the model a run produced (or a project model, --model) through the "
        "exporter its family registers for its kind: an LLM as a save_pretrained folder with a "
        "model card, ... The destination must be new or empty.",
    )
    p.add_argument("run", nargs="?", help="the run whose model to export (see `workbench runs`)")
    p.add_argument("--out", required=True, help="destination (a new or empty folder, or a file)")
    p.add_argument("--model", help="the model's name in the project (when the run made several)")
    p.add_argument("--format", help="export format (default: the first one of the model's kind)")
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="an option of the exporter (repeatable), e.g. dtype=float16",
    )
    add_project(p)
    p.set_defaults(func=cmd_export_model)

    p = sub.add_parser("note", help="set a run's note (an empty TEXT clears it)")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("text", metavar="TEXT", help="the note (quote it); '' clears the note")
    add_project(p)
    p.set_defaults(func=cmd_note)

    p = sub.add_parser("tag", help="add tags to a run (or remove them with --remove)")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("tags", nargs="+", metavar="TAG", help="tags: words or phrases, no commas")
    p.add_argument("--remove", action="store_true", help="remove these tags instead of adding")
    add_project(p)
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser(
        "archive", help="hide runs from `workbench runs` and the app (nothing is deleted)"
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run ids (see `workbench runs`)")
    p.add_argument("--undo", action="store_true", help="unarchive the runs")
    add_project(p)
    p.set_defaults(func=cmd_archive)

    p = sub.add_parser("delete", help="delete runs with their metrics, logs and files")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run ids (see `workbench runs`)")
    p.add_argument(
        "--yes", action="store_true", help="do not ask (needed when stdin is not a terminal)"
    )
    add_project(p)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("jobs", help="the registered jobs and their config schemas")
    add_json(p, "the registry")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("new", help="create an empty project folder")
    p.add_argument("dir", help="the folder to create (it must not hold a project yet)")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser(
        "add-dataset", help="add a dataset folder (e.g. images by class) to a project"
    )
    p.add_argument("name", help="the dataset's name in the project (what configs refer to)")
    p.add_argument("path", help="the dataset folder (for image-folder: one sub-folder per class)")
    p.add_argument("--kind", default="image-folder", help="dataset kind (workbench jobs --json)")
    add_project(p)
    p.set_defaults(func=cmd_add_dataset)

    p = sub.add_parser(
        "add-model", help="add a model folder (workbench or Hugging Face) to a project"
    )
    p.add_argument("name", help="the model's name in the project (what configs refer to)")
    p.add_argument("path", help="the model folder (a workbench model or a Hugging Face folder)")
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="accept pickle weights (.bin/.pt/.pth/.ckpt) for this model: only for files you "
        "trust; they are read with torch.load(weights_only=True), never with arbitrary code",
    )
    add_project(p)
    p.set_defaults(func=cmd_add_model)

    p = sub.add_parser("demo", help="create a demo project with completed runs (headless)")
    add_project(p, default=env_project or DEFAULT_DEMO_PROJECT)
    p.add_argument("--family", default="classifier", help="classifier (default), llm or diffusion")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("gui", help="open the desktop app (on PATH or --project, if given)")
    p.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="project folder to open (or its workbench.sqlite); the same as --project",
    )
    p.add_argument(
        "--project",
        default=None,
        help="project folder to open (default: $WORKBENCH_PROJECT, else the most recent)",
    )
    p.add_argument("--demo", action="store_true", help="build the demo project first and open it")
    p.add_argument("--family", default="classifier", help="demo family (with --demo)")
    p.set_defaults(func=cmd_gui)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a command line.  ``run``'s KEY=VALUE overrides may also follow ``--project DIR``;
    anything else unrecognised is a usage error (exit 2)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what a multi-GPU run relaunches
    dest = getattr(args, "extra_dest", None)
    if dest and extra and not any(a.startswith("-") for a in extra):
        setattr(args, dest, [*getattr(args, dest), *extra])
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _error(message: str) -> None:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command.  Every failure is one ``error:`` line on stderr, never a traceback (set
    ``WORKBENCH_DEBUG=1`` to get the traceback of an unexpected one)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    _WARNINGS.clear()
    try:
        code = int(args.func(args) or 0)
        if code == 0 and _WARNINGS:
            print(f"warning: {' '.join(_WARNINGS[0].split())}", file=sys.stderr)
        return code
    except CliError as exc:
        _error(str(exc))
        return exc.code
    except _ForcedExit as exc:
        print(str(exc), file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(EXIT_CANCELLED)  # worker threads are stuck in the job: do not join them
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_CANCELLED
    except BrokenPipeError:
        return 0
    except StorageFullError as exc:
        _error(str(exc))
        return EXIT_FAILED
    except ProjectError as exc:  # read-only, damaged, a lost claim
        _error(str(exc))
        return EXIT_BAD_INPUT
    except sqlite3.DatabaseError as exc:
        if is_storage_full(exc):
            _error(f"No space left on device: {getattr(args, 'project', '')} ({exc})")
            return EXIT_FAILED
        _error(
            f"the project's catalogue could not be read ({exc}); it may be damaged: "
            "restore it from a backup"
        )
        return EXIT_BAD_INPUT
    except UnicodeDecodeError:  # SQLite's error message quotes bytes of a damaged schema
        _error(
            "the project's catalogue could not be read (a damaged schema); restore it from a backup"
        )
        return EXIT_BAD_INPUT
    except OSError as exc:
        if is_storage_full(exc):
            _error(f"No space left on device: {exc.filename or exc}")
            return EXIT_FAILED
        _error(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
        return EXIT_BAD_INPUT
    except Exception as exc:  # a bug: still one line, with a way to get the traceback
        if os.environ.get("WORKBENCH_DEBUG"):
            raise
        _error(f"unexpected {type(exc).__name__}: {exc} (set WORKBENCH_DEBUG=1 for the traceback)")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
