"""Issue 10: every fault and bad-input case that failed, as a test that failed before the fix.

Storage faults are injected at the store's single write point (``workbench.store._write_hook``,
called before every ``begin`` and ``commit``) as the errors a full disk really raises
(``sqlite3.OperationalError("database or disk is full")``, ``OSError(ENOSPC)``).  CLI cases run
in-process through :func:`workbench.cli.main` (fast), except Ctrl-C, which needs a real process
and a real SIGINT.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit import fixture_jobs as fj
from workbench import cli
from workbench import store as store_mod
from workbench.config import ConfigError
from workbench.jobs import Engine, EngineError
from workbench.registry import ModelKindSpec, Registry, add_dataset_to_project, add_model_to_project
from workbench.store import Project, ProjectError, StorageFullError

REPO = Path(__file__).resolve().parents[2]
WAIT = 30.0
FULL = "database or disk is full"


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    fj.reset()
    yield
    for gate in fj.GATES.values():
        gate.release.set()
    fj.reset()


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


def write_run(path: Path, **data: Any) -> Path:
    base = {"job": "classifier.train_mlp", "seed": 0, "dataset": "digits", "config": {}}
    base.update(data)
    path.write_text(json.dumps(base))
    return path


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


# -- 1. nothing is written outside the project ------------------------------------------------


@pytest.mark.parametrize("name", ["../../../../elsewhere/x", "/tmp/abs-model", "..", "a/b", "a\\b"])
def test_model_name_that_is_a_path_is_refused_at_submit(project: Project, name: str) -> None:
    engine = Engine(project)
    with pytest.raises(ConfigError, match="plain name"):
        engine.submit("classifier.train_mlp", {"model_name": name}, dataset="digits")
    assert project.runs() == []
    engine.shutdown()


def test_crafted_catalogue_row_then_resume_writes_nothing_outside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "sent" / "project"
    project = Project.create(root)
    run_id = project.create_run(
        job="classifier.train_mlp",
        kind="train",
        family="classifier",
        method="train",
        config={"epochs": 1, "model_name": "../../../elsewhere/x"},
        seed=0,
        dataset="digits",
    )
    ckpt = project.run_dir(run_id) / "checkpoints" / "last.safetensors"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"\0" * 16)
    project.update_run(run_id, status="failed", checkpoint=project.relpath(ckpt), checkpoint_step=0)
    project.close()
    before = files_under(tmp_path)
    code, _, err = run_cli(capsys, "resume", str(run_id), "--project", str(root))
    assert code == 2
    assert "plain name" in one_error_line(err)
    assert not (tmp_path / "elsewhere").exists()
    outside = {p for p in files_under(tmp_path) - before if not p.is_relative_to(root)}
    assert outside == set()


def test_crafted_checkpoint_outside_the_project_is_not_read(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "p")
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    run_id = project.create_run(
        job="test.counter", kind="experiment", family="test", method="m", config={}, seed=0
    )
    engine = Engine(project, registry=fj.make_registry())
    for stored in (str(secret), "../secret.json"):
        project.update_run(run_id, status="failed", checkpoint=stored, checkpoint_step=1)
        with pytest.raises(EngineError, match="outside the project"):
            engine.resume(run_id)
    engine.shutdown()
    project.close()


def test_the_single_write_points_refuse_paths_outside(project: Project, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    run_id = project.create_run(job="j", kind="train", family="f", method="m", config={}, seed=0)
    with pytest.raises(ValueError, match="plain name"):
        project.model_dir("../x")
    with pytest.raises(ValueError, match="outside the project"):
        project.add_model("m", "f", "k", str(outside), source_run=run_id)
    with pytest.raises(ValueError, match="outside the project"):
        project.add_artifact(run_id, "text", "a", str(outside / "a.txt"))
    # a crafted artifact row is never resolved outside
    with project.transaction() as db:
        db["artifacts"].insert(
            {
                "run_id": run_id,
                "kind": "text",
                "name": "x",
                "path": "../../etc/passwd",
                "meta": "{}",
                "created": 0.0,
            }
        )
    (row,) = project.artifacts(run_id)
    with pytest.raises(ValueError, match="outside the project"):
        project.artifact_path(row)
    assert project.models() == []


def test_ctx_refuses_a_model_name_that_would_leave_the_project(project: Project) -> None:
    engine = Engine(project, registry=fj.make_registry())
    escape = project.root.parent / "escaped"
    run_id = engine.submit("test.naming", {"key": "../../escaped"})
    assert engine.wait(run_id, WAIT) == "failed"
    assert "plain name" in (project.run(run_id).status_text or "")
    assert not escape.exists()
    ok = engine.submit("test.naming", {"key": "fine-name"})
    assert engine.wait(ok, WAIT) == "completed"
    assert (project.root / "models" / "fine-name" / "config.json").is_file()
    engine.shutdown()


# -- 2. the engine always finishes its bookkeeping ---------------------------------------------


class DiskFull:
    """Makes every catalogue write fail as a full disk does, from the moment it is switched on."""

    def __init__(self) -> None:
        self.on = False

    def __call__(self, where: str) -> None:
        if self.on:
            raise sqlite3.OperationalError(FULL)


def _fail_final_update(project: Project, disk: DiskFull) -> None:
    original = project.update_run

    def update_run(run_id: int, **fields: Any) -> None:
        if fields.get("status") in ("completed", "failed", "cancelled"):
            disk.on = True
        original(run_id, **fields)

    project.update_run = update_run  # type: ignore[method-assign]


def test_full_disk_at_the_final_update_releases_the_waiter(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = DiskFull()
    monkeypatch.setattr(store_mod, "_write_hook", disk)
    _fail_final_update(project, disk)
    engine = Engine(project, registry=fj.make_registry())
    run_id = engine.submit("test.steps", {"steps": 3})
    assert engine.wait_for(run_id, WAIT), "the waiter was never released"
    assert engine.wait(run_id, 1) == "failed"
    assert (engine.storage_error(run_id) or "").startswith("No space left on device")
    assert not engine.is_active(run_id)
    engine.shutdown(timeout=WAIT)
    disk.on = False
    assert project.final_metrics(run_id)["loss"] == pytest.approx(1 / 3)  # nothing lost


def test_full_disk_cli_exits_1_with_no_space_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    disk = DiskFull()
    monkeypatch.setattr(store_mod, "_write_hook", disk)
    original = Project.update_run

    def update_run(self: Project, run_id: int, **fields: Any) -> None:
        if fields.get("status") in ("completed", "failed"):
            disk.on = True
        original(self, run_id, **fields)

    monkeypatch.setattr(Project, "update_run", update_run)
    monkeypatch.setattr(cli, "_engine", lambda p: Engine(p, registry=fj.make_registry()))
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"job": "test.steps", "config": {"steps": 2}}))
    result: dict[str, int] = {}
    worker = threading.Thread(
        target=lambda: result.setdefault(
            "code", cli.main(["run", str(config), "--project", str(tmp_path / "p"), "--quiet"])
        ),
        daemon=True,
    )
    worker.start()
    worker.join(WAIT)
    assert not worker.is_alive(), "workbench run hung on a full disk"
    assert result["code"] == 1
    line = one_error_line(capsys.readouterr().err)
    assert "No space left on device" in line


def test_fault_on_the_nth_write_never_hangs_or_loses_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For N over every write a run makes: the store raises once on the N-th write; the run ends
    failed or completed, the waiter is released and every metric reported before it is kept."""
    steps = 4
    reported: list[tuple[str, int]] = []

    class Once:
        def __init__(self, n: int) -> None:
            self.n, self.count, self.fired = n, 0, False

        def __call__(self, where: str) -> None:
            if where != "begin":
                return
            self.count += 1
            if self.count == self.n:
                self.fired = True
                raise sqlite3.OperationalError(FULL)

    outcomes = {}
    n = 1
    while True:
        project = Project.create(tmp_path / f"p{n}")
        engine = Engine(project, registry=fj.make_registry())
        engine.add_listener(
            lambda ev: (
                reported.append((ev.data["name"], ev.data["step"])) if ev.type == "metric" else None
            )
        )
        reported.clear()
        hook = Once(n)
        monkeypatch.setattr(store_mod, "_write_hook", hook)
        try:
            run_id = engine.submit("test.steps", {"steps": steps})
        except StorageFullError:
            outcomes[n] = "refused at submit"
            monkeypatch.setattr(store_mod, "_write_hook", lambda where: None)
            engine.shutdown()
            project.close()
            n += 1
            continue
        assert engine.wait_for(run_id, WAIT), f"write {n}: waiter never released"
        monkeypatch.setattr(store_mod, "_write_hook", lambda where: None)
        status = project.run(run_id).status
        assert status in ("failed", "completed"), (n, status)
        stored = {(m["name"], m["step"]) for m in project.metrics(run_id)}
        lost = set(reported) - stored
        assert not lost, f"write {n}: metrics lost {sorted(lost)}"
        outcomes[n] = status
        engine.shutdown()
        project.close()
        if not hook.fired:
            break
        n += 1
    assert n > 5  # the range covered the whole run
    assert "failed" in outcomes.values() and list(outcomes.values())[-1] == "completed"


# -- Ctrl-C ends the CLI within a second -------------------------------------------------------

_CLI_CHILD = textwrap.dedent(
    """
    import sys
    from tests.unit.fixture_jobs import make_registry
    from workbench import cli
    from workbench.jobs import Engine

    cli._engine = lambda project: Engine(project, registry=make_registry())
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def _running_with_a_metric(project: Path) -> bool:
    try:
        conn = sqlite3.connect(f"file:{project / 'workbench.sqlite'}?mode=ro", uri=True)
        try:
            row = conn.execute(
                "select status, (select count(*) from metrics where run_id = 1) from runs "
                "where id = 1"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == "running" and row[1] > 0


@pytest.mark.parametrize(
    ("job", "status"), [("test.block", "cancelled"), ("test.spin", "cancelled")]
)
def test_ctrl_c_ends_the_cli_within_a_second(tmp_path: Path, job: str, status: str) -> None:
    """``test.block`` never checks for cancellation; ``test.spin`` does."""
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"job": job, "config": {}}))
    project = tmp_path / "p"
    child = subprocess.Popen(
        [sys.executable, "-c", _CLI_CHILD, "run", str(config), "--project", str(project)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT
        while not _running_with_a_metric(project):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never started its run"
            time.sleep(0.05)  # polling another process's database, not synchronising threads
        start = time.monotonic()
        child.send_signal(signal.SIGINT)
        child.wait(WAIT)
        elapsed = time.monotonic() - start
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(WAIT)
    err = child.stderr.read() if child.stderr else ""
    assert child.returncode == 130, err
    assert "Traceback" not in err
    assert elapsed < 1.0 + 0.5, f"Ctrl-C took {elapsed:.2f} s"  # 1 s, with scheduling slack
    with Project.open(project) as reopened:
        assert reopened.run(1).status == status


# -- 3. atomic claims ------------------------------------------------------------------------------


def _stopped_counter_run(project: Project) -> int:
    run_id = project.create_run(
        job="test.counter",
        kind="experiment",
        family="test",
        method="m",
        config={"steps": 3},
        seed=0,
    )
    ckpt = project.run_dir(run_id) / "state.json"
    ckpt.write_text(json.dumps({"step": 1, "total": 0.0}))
    project.update_run(run_id, status="failed", checkpoint=project.relpath(ckpt), checkpoint_step=1)
    return run_id


def test_resume_with_a_stale_status_read_loses_the_claim(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other process resumed between our status read and our update."""
    run_id = _stopped_counter_run(project)
    stale = project.run(run_id)
    project.update_run(run_id, status="running", pid=os.getpid())  # the other process
    monkeypatch.setattr(project, "run", lambda rid: stale)
    engine = Engine(project, registry=fj.make_registry())
    with pytest.raises(EngineError, match=f"run {run_id} is already running"):
        engine.resume(run_id)
    assert set() == fj.RAN
    engine.shutdown()


def test_two_resumes_at_once_run_the_run_once(project: Project) -> None:
    run_id = _stopped_counter_run(project)
    barrier = threading.Barrier(2)
    results: list[str] = []
    engines = []

    def resume() -> None:
        proj = Project.open(project.root)
        engine = Engine(proj, registry=fj.make_registry())
        engines.append(engine)
        barrier.wait()
        try:
            engine.resume(run_id)
            engine.wait(run_id, WAIT)
            results.append("ran")
        except EngineError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert sorted(results)[0] == "ran" and results.count("ran") == 1, results
    loser = [r for r in results if r != "ran"][0]
    assert "already running" in loser or "completed" in loser
    assert project.run(run_id).status == "completed"
    totals = [m for m in project.metrics(run_id) if m["name"] == "total"]
    assert [m["step"] for m in totals] == [2, 3]  # no duplicated steps
    for engine in engines:
        engine.shutdown()
        engine.project.close()


def test_cli_resume_of_a_running_run_exits_2(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "_engine", lambda p: Engine(p, registry=fj.make_registry()))
    run_id = _stopped_counter_run(project)
    project.update_run(run_id, status="running", pid=os.getpid())
    code, _, err = run_cli(capsys, "resume", str(run_id), "--project", str(project.root))
    assert code == 2
    assert f"run {run_id} is already running" in one_error_line(err)


# -- 4. a damaged catalogue -----------------------------------------------------------------------


def _damage_runs_page(catalogue: Path) -> None:
    conn = sqlite3.connect(catalogue)
    page_size = conn.execute("pragma page_size").fetchone()[0]
    try:
        leaves = [
            r[0]
            for r in conn.execute(
                "select pageno from dbstat where name = 'runs' and pagetype = 'leaf'"
            )
        ]
    except sqlite3.OperationalError:  # no dbstat in this SQLite build: damage the root page
        leaves = [
            conn.execute("select rootpage from sqlite_master where name = 'runs'").fetchone()[0]
        ]
    conn.close()
    page = leaves[len(leaves) // 2]
    with open(catalogue, "r+b") as fh:
        fh.seek((page - 1) * page_size)
        fh.write(b"\xab" * page_size)


@pytest.fixture
def damaged(tmp_path: Path) -> Path:
    root = tmp_path / "damaged"
    project = Project.create(root)
    for _ in range(120):
        project.create_run(
            job="j", kind="train", family="f", method="m", config={"pad": "x" * 300}, seed=0
        )
    project.update_run(1, status="completed")
    project.close()
    _damage_runs_page(root / "workbench.sqlite")
    return root


def test_damaged_catalogue_opens_read_only_and_lists_what_it_can(
    damaged: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    catalogue = damaged / "workbench.sqlite"
    before = catalogue.read_bytes()
    code, out, err = run_cli(capsys, "runs", "--project", str(damaged))
    assert code == 0 and "Traceback" not in err
    warning = one_error_line(err)
    assert "damaged" in warning and "read-only" in warning and ".bak" in warning
    assert "unreadable row" in out and "   1  completed" in out
    code, out, err = run_cli(capsys, "show", "1", "--project", str(damaged), "--json")
    assert code == 0 and json.loads(out)["status"] == "completed"
    config = write_run(tmp_path / "r.json")
    code, _, err = run_cli(capsys, "run", str(config), "--project", str(damaged))
    assert code == 2
    assert "damaged" in one_error_line(err)
    assert catalogue.read_bytes() == before  # nothing was written into the damaged file
    assert (damaged / "workbench.sqlite.damaged.bak").read_bytes() == before


# -- 5. read-only folder ----------------------------------------------------------------------


def test_read_only_folder_is_read_only_not_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "ro"
    project = Project.create(root)
    project.create_run(job="j", kind="train", family="f", method="m", config={}, seed=0)
    project.close()
    monkeypatch.setattr(store_mod, "_writable", lambda path: False)
    code, out, err = run_cli(capsys, "runs", "--project", str(root))
    assert code == 0 and "project is read-only; runs cannot be added" in one_error_line(err)
    assert "restore" not in err
    config = write_run(tmp_path / "r.json")
    code, _, err = run_cli(capsys, "run", str(config), "--project", str(root))
    assert code == 2
    assert "project is read-only; runs cannot be added" in one_error_line(err)
    with Project.open(root) as opened, pytest.raises(ProjectError, match="read-only"):
        opened.create_run(job="j", kind="train", family="f", method="m", config={}, seed=0)


# -- 6. full disk at open and at new ----------------------------------------------------------


def test_full_disk_at_open_is_reported_as_full(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project.root
    project.close()

    def no_room(self: Project) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(Project, "_ro_connect", no_room)
    monkeypatch.setattr(store_mod, "_disk_full", lambda path: True)
    code, _, err = run_cli(capsys, "runs", "--project", str(root))
    line = one_error_line(err)
    assert code == 1 and "No space left on device" in line and "restore" not in line


@pytest.mark.parametrize("fault", [sqlite3.OperationalError(FULL), OSError(errno.ENOSPC, "full")])
def test_new_on_a_full_disk_leaves_nothing_half_made(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fault: Exception,
) -> None:
    calls = []

    def hook(where: str) -> None:
        calls.append(where)
        if len(calls) == 2:  # after the catalogue file was created
            raise fault

    monkeypatch.setattr(store_mod, "_write_hook", hook)
    target = tmp_path / "new" / "project"
    code, _, err = run_cli(capsys, "new", str(target))
    assert code == 1 and "No space left on device" in one_error_line(err)
    assert not (tmp_path / "new").exists()
    monkeypatch.setattr(store_mod, "_write_hook", lambda where: None)
    assert run_cli(capsys, "new", str(target))[0] == 0  # the folder can be created again


def test_an_empty_catalogue_left_by_an_old_new_is_explained_and_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "half"
    root.mkdir()
    (root / "workbench.sqlite").write_bytes(b"")
    code, _, err = run_cli(capsys, "runs", "--project", str(root))
    assert code == 2 and "0 bytes" in one_error_line(err)
    assert run_cli(capsys, "new", str(root))[0] == 0
    assert run_cli(capsys, "runs", "--project", str(root))[0] == 0


# -- 7. malformed rows and bad inputs give one line, never a traceback ----------------------------


def test_malformed_rows_are_listed_as_malformed(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    good = project.create_run(job="j", kind="train", family="f", method="m", config={}, seed=0)
    bad = project.create_run(job="j", kind="train", family="f", method="m", config={}, seed=0)
    with project.transaction() as db:
        db.execute("update runs set config = 'not json {', seed = 'x' where id = ?", [bad])
        db.execute("update runs set method = cast(x'80ff41' as text) where id = ?", [good])
        db.execute(
            "insert into metrics (run_id, step, name, value, time) values (?, 0, 'acc', 'high', 0)",
            [good],
        )
    code, out, err = run_cli(capsys, "runs", "--project", str(project.root))
    assert code == 0 and err == ""
    (line,) = [line for line in out.splitlines() if f"run {bad}:" in line]
    assert "malformed" in line and "unreadable config" in line and "unreadable seed" in line
    code, out, _ = run_cli(capsys, "show", str(good), "--project", str(project.root))
    assert code == 0 and "acc: nan" in out
    assert project.run(good).method == "\ufffd\ufffdA"  # invalid UTF-8 read, not raised
    rows = json.loads(run_cli(capsys, "runs", "--project", str(project.root), "--json")[1])
    assert sorted(rows[1]["problems"]) == ["unreadable config", "unreadable seed"]
    assert "problems" not in rows[0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"job": "classifier.train_mlp", "seed": 18446744073709551616}', "0..4294967295"),
        (b'{"job": "classifier.train_mlp", "seed": -1}', "0..4294967295"),
        (b'{"job": "classifier.train_mlp", "seed": "0 or 1"}', "seed"),
        (b'{"job": "classifier.\xff\xfe"}', "not UTF-8"),
        (b"[1, 2, 3]", "expected a mapping"),
        (b'{"job": ["a"]}', "'job' must be a job name"),
        (b'{"job": "classifier.train_mlp", "model": 5}', "'model' must be"),
        (b'{"job": "classifier.train_mlp", "config": {"hidden": [0]}}', "out of range"),
        (b'{"job": "classifier.train_mlp", "config": {"hidden": [-5]}}', "out of range"),
        (b'{"job": "classifier.train_mlp", "config": {"hidden": [1e9]}}', "out of range"),
        (b'{"job": "classifier.train_mlp", "config": {"hidden": []}}', "0 items"),
        (b'{"job": "classifier.train_mlp", "config": {"lr": 1e999}}', "infinity"),
        (b'{"job": "classifier.train_mlp", "dataset": "image-folder"}', "kind of dataset"),
    ],
)
def test_bad_run_files_give_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str
) -> None:
    path = tmp_path / "run.json"
    path.write_bytes(content)
    code, _, err = run_cli(capsys, "run", str(path), "--project", str(tmp_path / "p"))
    assert code == 2
    assert expected in one_error_line(err)
    assert not (tmp_path / "p" / "runs").exists()


def test_a_config_path_that_is_a_directory_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "run", str(tmp_path), "--project", str(tmp_path / "p"))
    assert code == 2 and "is a directory" in one_error_line(err)


def test_seed_override_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_run(tmp_path / "r.json")
    code, _, err = run_cli(
        capsys, "run", str(config), "--project", str(tmp_path / "p"), "--seed", str(2**64)
    )
    assert code == 2 and "--seed" in one_error_line(err)


# -- 8 / 9. bounded inputs, checked at submit -----------------------------------------------------


def test_forget_indices_file_that_is_a_device_is_refused_at_submit(project: Project) -> None:
    engine = Engine(project)
    with pytest.raises(ConfigError, match="not a regular file"):
        engine.submit(
            "classifier.retrain",
            {"forget_kind": "indices", "forget_indices_file": "/dev/zero"},
            dataset="digits",
        )
    engine.shutdown()


def test_index_files_are_capped_and_decoded(project: Project, tmp_path: Path) -> None:
    engine = Engine(project)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b"[1, 2] \xe9")
    with pytest.raises(ConfigError, match="not UTF-8"):
        engine.submit("classifier.retrain", {"split_file": str(latin)}, dataset="digits")
    with pytest.raises(ConfigError, match="is a directory"):
        engine.submit("classifier.retrain", {"split_file": str(tmp_path)}, dataset="digits")
    engine.shutdown()


def test_cuda_without_a_gpu_is_refused_at_submit(project: Project) -> None:
    from workbench.registry import get_registry

    registry = Registry()
    registry.jobs = dict(get_registry().jobs)
    registry.datasets = dict(get_registry().datasets)

    def no_gpu(device: str) -> None:
        raise ValueError(f"device {device!r} was asked for but this machine has no usable CUDA GPU")

    registry.device_probe = no_gpu
    engine = Engine(project, registry=registry)
    with pytest.raises(ConfigError, match="no usable CUDA GPU"):
        engine.submit("classifier.train_mlp", {"device": "cuda"}, dataset="digits")
    assert project.runs() == []
    engine.shutdown()


def test_device_check_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from backends.common.devices import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_device("cpu")
    with pytest.raises(ValueError, match="no usable CUDA GPU"):
        check_device("cuda")


def _image_folder(root: Path) -> Path:
    from PIL import Image

    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(3):
            Image.new("L", (6, 6), color=i * 40).save(root / f"c{c}" / f"{i}.png")
    return root


def test_image_folder_to_train_mlp_is_refused_at_submit(project: Project, tmp_path: Path) -> None:
    from workbench.registry import get_registry

    add_dataset_to_project(
        project, get_registry(), "image-folder", "pets", str(_image_folder(tmp_path / "pets"))
    )
    engine = Engine(project)
    with pytest.raises(EngineError, match="reads digits datasets only"):
        engine.submit("classifier.train_mlp", {}, dataset="pets")
    assert project.runs() == []
    engine.shutdown()


def test_add_dataset_decodes_images(project: Project, tmp_path: Path) -> None:
    from workbench.registry import get_registry

    folder = _image_folder(tmp_path / "imgs")
    (folder / "c1" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ValueError, match=r"image .*1\.png does not decode"):
        add_dataset_to_project(project, get_registry(), "image-folder", "x", str(folder))
    assert project.datasets() == []


def _model_folder(root: Path, config: Any, weights: bytes | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps(config))
    if weights is None:
        import numpy as np
        from safetensors.numpy import save_file

        save_file({"w": np.zeros((2, 2), np.float32)}, str(root / "model.safetensors"))
    else:
        (root / "model.safetensors").write_bytes(weights)
    return root


def test_add_model_checks_config_and_weights(project: Project, tmp_path: Path) -> None:
    from workbench.registry import get_registry

    reg = get_registry()
    listed = _model_folder(tmp_path / "list", [1, 2])
    with pytest.raises(ValueError, match="holds a JSON list; expected an object"):
        add_model_to_project(project, reg, "m", str(listed))
    garbage = _model_folder(
        tmp_path / "garbage", {"model_type": "workbench-mlp"}, b"\x08" + b"\0" * 30
    )
    with pytest.raises(ValueError, match="weights .* are unreadable"):
        add_model_to_project(project, reg, "m", str(garbage))
    assert project.models() == []


def test_model_kind_required_keys_are_checked_when_added(project: Project, tmp_path: Path) -> None:
    registry = Registry()
    registry.add_model_kind(
        ModelKindSpec(
            name="test.mlp",
            family="test",
            title="Test MLP",
            description="d",
            check="backends.common.safe_load:find_weights",
            required_keys=("input_dim", "hidden", "num_classes"),
        )
    )
    folder = _model_folder(tmp_path / "m", {"hidden": [4]})
    with pytest.raises(ValueError, match="lacks the key\\(s\\) input_dim, num_classes"):
        add_model_to_project(project, registry, "m", str(folder))
    assert project.models() == []


def test_cli_add_model_config_list_is_one_line(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _model_folder(tmp_path / "list", [1])
    code, _, err = run_cli(capsys, "add-model", "m", str(folder), "--project", str(project.root))
    assert code == 2 and "expected an object" in one_error_line(err)
