"""The job engine with real threads and a real catalogue: outcomes, cancel, scheduling, resume.

Test jobs live in :mod:`tests.unit.fixture_jobs`; tests synchronise with them through
``threading.Event`` gates, listener callbacks and :meth:`Engine.wait`, never by sleeping.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.unit import fixture_jobs as fj
from workbench.artifacts import Table, Text, load_artifact
from workbench.config import ConfigError
from workbench.jobs import Engine, EngineError, Event
from workbench.store import Project

REPO = Path(__file__).resolve().parents[2]
WAIT = 30.0  # generous upper bound for anything to happen; tests finish far sooner


@pytest.fixture(autouse=True)
def _reset_fixture_state() -> Iterator[None]:
    fj.reset()
    yield
    for gate in fj.GATES.values():  # never leave a worker blocked on a failed test
        gate.release.set()
    fj.reset()


@pytest.fixture
def make_engine(project: Project) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def make(**kw: Any) -> Engine:
        kw.setdefault("registry", fj.make_registry())
        engine = Engine(project, **kw)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        for gate in fj.GATES.values():
            gate.release.set()
        engine.shutdown(cancel=True, wait=True, timeout=WAIT)


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    return make_engine()


def _gate(key: str, *, released: bool = False) -> fj.Gate:
    gate = fj.GATES[key] = fj.Gate()
    if released:
        gate.release.set()
    return gate


class CountingExecutor:
    """A real thread pool that counts how many runs the engine handed it."""

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.submitted = 0

    def submit(self, fn: Callable[[], Any], /) -> Any:
        self.submitted += 1
        return self.pool.submit(fn)


# -- outcomes -----------------------------------------------------------------------------------


def test_success_records_metrics_artifacts_versions_and_events(
    engine: Engine, project: Project
) -> None:
    events: list[Event] = []
    engine.add_listener(events.append)
    run_id = engine.submit("test.steps", {"steps": 5, "key": "ok"}, seed=3, dataset="toy")
    assert engine.wait(run_id, WAIT) == "completed"

    record = project.run(run_id)
    assert record.status == "completed" and record.error is None
    assert record.progress == 1.0
    assert record.seed == 3 and record.dataset == "toy"
    assert record.config == {"steps": 5, "fail_at": -1, "key": "ok"}
    assert record.started is not None and record.finished is not None
    assert record.finished >= record.started
    assert "python" in record.versions
    assert record.kind == "experiment" and record.method == "steps"

    series = project.metric_series(run_id)
    assert series["loss"][0] == [0, 1, 2, 3, 4]
    assert series["loss"][1] == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert series["acc"][0] == [0, 1, 2, 3, 4]
    assert project.final_metrics(run_id) == {"acc": 0.8, "loss": 0.2, "score": 0.5}
    assert project.metrics(run_id, "score")[0]["step"] == 4

    arts = {a["name"]: a for a in project.artifacts(run_id)}
    assert {n: a["kind"] for n, a in arts.items()} == {"notes": "text", "table": "table"}
    for art in arts.values():
        assert not Path(art["path"]).is_absolute()
        assert project.abspath(art["path"]).is_file()
    notes = load_artifact("text", project.abspath(arts["notes"]["path"]), arts["notes"]["meta"])
    assert notes == Text("all steps done", title="Notes")
    table = load_artifact("table", project.abspath(arts["table"]["path"]), arts["table"]["meta"])
    assert table == Table(["step", "loss"], [[0, 1.0], [1, 0.5]])
    assert any(line["message"] == "all steps done" for line in project.logs(run_id))

    mine = [e for e in events if e.run_id == run_id]
    statuses = [e.data["status"] for e in mine if e.type == "status"]
    assert statuses[0] == "queued" and statuses[-1] == "completed" and "running" in statuses
    assert sum(e.type == "metric" for e in mine) == 11  # 2 per step + the final "score"
    assert {e.type for e in mine} >= {"status", "metric", "progress", "artifact", "log"}
    assert not engine.is_active(run_id) and engine.active_runs() == []


def test_failure_keeps_traceback_and_earlier_metrics(engine: Engine, project: Project) -> None:
    run_id = engine.submit("test.steps", {"steps": 10, "fail_at": 3})
    assert engine.wait(run_id, WAIT) == "failed"
    record = project.run(run_id)
    assert record.error is not None
    assert "Traceback" in record.error
    assert "RuntimeError: fixture failure at step 3" in record.error
    assert "fixture_jobs.py" in record.error
    assert record.status_text == "RuntimeError: fixture failure at step 3"
    assert project.metric_series(run_id)["loss"][0] == [0, 1, 2]
    assert record.finished is not None
    errors = [line for line in project.logs(run_id) if line["level"] == "error"]
    assert errors and "fixture failure at step 3" in errors[0]["message"]
    assert project.artifacts(run_id) == []


def test_sys_exit_in_a_job_is_a_failure_not_a_completion(engine: Engine, project: Project) -> None:
    run_id = engine.submit("test.exit")
    assert engine.wait(run_id, WAIT) == "failed"
    record = project.run(run_id)
    assert record.error is not None and "SystemExit" in record.error
    assert project.final_metrics(run_id) == {"before_exit": 1.0}


def test_a_broken_listener_does_not_break_the_run(
    engine: Engine, project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("view exploded")

    seen: list[Event] = []
    finished = threading.Event()

    def watch(event: Event) -> None:
        seen.append(event)
        if event.type == "status" and event.data["status"] == "completed":
            finished.set()

    engine.add_listener(broken)
    engine.add_listener(watch)
    run_id = engine.submit("test.steps", {"steps": 2})
    assert engine.wait(run_id, WAIT) == "completed"
    assert finished.wait(WAIT)  # the last event reached the listener after the broken one
    assert any(e.type == "metric" for e in seen)  # later listeners still called
    assert "view exploded" in capsys.readouterr().err
    engine.remove_listener(broken)
    engine.remove_listener(broken)  # removing twice is harmless


# -- submit errors ------------------------------------------------------------------------------


def test_submit_errors_create_no_run(engine: Engine, project: Project, tmp_path: Path) -> None:
    with pytest.raises(EngineError) as info:
        engine.submit("test.nope")
    assert "test.nope" in str(info.value) and "test.steps" in str(info.value)

    with pytest.raises(ConfigError, match="'steps'"):
        engine.submit("test.steps", {"steps": -1})
    with pytest.raises(ConfigError, match="seed"):
        engine.submit("test.steps", seed=-1)

    missing = tmp_path / "no" / "such-model"
    with pytest.raises(EngineError) as info:
        engine.submit("test.steps", model=str(missing))
    assert str(missing) in str(info.value)

    project.add_dataset("my-data", "test", "folder", str(project.root / "data"))
    with pytest.raises(EngineError) as info:
        engine.submit("test.steps", dataset="imagenet")
    message = str(info.value)
    assert "'imagenet'" in message and "toy" in message and "my-data" in message
    assert project.runs() == []


def test_registered_model_whose_folder_vanished(engine: Engine, project: Project) -> None:
    folder = project.root / "models" / "gone"
    folder.mkdir(parents=True)
    project.add_model("gone", "test", "kind", str(folder))
    folder.rmdir()
    with pytest.raises(EngineError, match="does not exist any more") as info:
        engine.submit("test.steps", model="gone")
    assert str(folder) in str(info.value)


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_while_running_keeps_metrics_so_far(engine: Engine, project: Project) -> None:
    cancelled: list[bool] = []

    def cancel_on_first_metric(event: Event) -> None:
        if event.type == "metric" and not cancelled:
            cancelled.append(engine.cancel(event.run_id))

    engine.add_listener(cancel_on_first_metric)
    run_id = engine.submit("test.spin", {"key": "spin"})
    assert engine.wait(run_id, WAIT) == "cancelled"
    assert cancelled == [True]
    record = project.run(run_id)
    assert record.error is None and record.finished is not None
    assert record.status_text == "cancelled by the user"
    assert project.metrics(run_id) == [
        {"step": 0, "name": "tick", "value": 0.0, "time": project.metrics(run_id)[0]["time"]}
    ]
    assert engine.cancel(run_id) is False  # already over
    assert engine.cancel(12345) is False  # not ours


def test_cancel_while_queued_never_runs(
    make_engine: Callable[..., Engine], project: Project
) -> None:
    engine = make_engine(max_workers=1)
    blocker = _gate("blocker")
    first = engine.submit("test.light_gate", {"key": "blocker"})
    assert blocker.started.wait(WAIT)
    queued = engine.submit("test.steps", {"key": "queued"})
    assert project.run(queued).status == "queued"

    events: list[Event] = []
    engine.add_listener(events.append)
    assert engine.cancel(queued) is True
    assert project.run(queued).status == "cancelled"
    assert engine.wait(queued, 0) == "cancelled"
    assert [e.data["status"] for e in events if e.run_id == queued and e.type == "status"] == [
        "cancelled"
    ]
    assert [e.data["message"] for e in events if e.type == "log"] == [
        "cancel requested by the user"
    ]

    blocker.release.set()
    assert engine.wait(first, WAIT) == "completed"
    engine.shutdown(cancel=False, wait=True, timeout=WAIT)
    assert "queued" not in fj.RAN
    record = project.run(queued)
    assert record.status == "cancelled" and record.started is None
    assert project.metrics(queued) == []
    assert [row["message"] for row in project.logs(queued)] == ["cancel requested by the user"]


def test_shutdown_cancels_queued_and_running(
    make_engine: Callable[..., Engine], project: Project
) -> None:
    engine = make_engine(max_workers=1)
    running = engine.submit("test.spin", {"key": "spin"})
    queued = engine.submit("test.steps", {"key": "queued"})
    engine.shutdown(cancel=True, wait=True, timeout=WAIT)
    assert project.run(running).status == "cancelled"
    assert project.run(queued).status == "cancelled"
    assert "queued" not in fj.RAN


# -- scheduling ---------------------------------------------------------------------------------


def test_heavy_jobs_never_overlap_but_a_light_one_runs_beside(
    make_engine: Callable[..., Engine], project: Project
) -> None:
    executor = CountingExecutor(workers=3)
    try:
        engine = make_engine(executor=executor, max_workers=3, heavy_slots=1)
        heavy_a, heavy_b, light = _gate("A"), _gate("B"), _gate("L")
        a = engine.submit("test.heavy_gate", {"key": "A"})
        assert heavy_a.started.wait(WAIT)
        b = engine.submit("test.heavy_gate", {"key": "B"})
        assert executor.submitted == 1  # B waits for the heavy slot although workers are free
        c = engine.submit("test.light_gate", {"key": "L"})
        assert executor.submitted == 2  # the light job overtakes the waiting heavy one
        assert light.started.wait(WAIT)
        assert fj.TIMELINE == [("start", "A"), ("start", "L")]  # L runs while A is running

        light.release.set()
        assert engine.wait(c, WAIT) == "completed"
        assert executor.submitted == 2 and "B" not in fj.RAN
        assert project.run(b).status == "queued"

        heavy_a.release.set()
        assert heavy_b.started.wait(WAIT)
        heavy_b.release.set()
        assert engine.wait(a, WAIT) == "completed" and engine.wait(b, WAIT) == "completed"
        assert fj.TIMELINE.index(("end", "A")) < fj.TIMELINE.index(("start", "B"))
        assert executor.submitted == 3
    finally:
        for gate in fj.GATES.values():
            gate.release.set()
        executor.pool.shutdown(wait=True)


def test_two_heavy_slots_allow_two_heavy_jobs(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(max_workers=2, heavy_slots=2)
    gates = [_gate("A"), _gate("B")]
    runs = [engine.submit("test.heavy_gate", {"key": k}) for k in ("A", "B")]
    assert all(g.started.wait(WAIT) for g in gates)  # both started before either was released
    for g in gates:
        g.release.set()
    assert [engine.wait(r, WAIT) for r in runs] == ["completed", "completed"]


def test_queue_is_fifo_within_max_workers(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(max_workers=1)
    blocker = _gate("first")
    for key in ("second", "third", "fourth"):
        _gate(key, released=True)
    runs = [
        engine.submit("test.light_gate", {"key": k}) for k in ("first", "second", "third", "fourth")
    ]
    assert blocker.started.wait(WAIT)
    assert fj.TIMELINE == [("start", "first")]  # one worker: nothing else started
    blocker.release.set()
    assert [engine.wait(r, WAIT) for r in runs] == ["completed"] * 4
    starts = [key for event, key in fj.TIMELINE if event == "start"]
    assert starts == ["first", "second", "third", "fourth"]


# -- resume -------------------------------------------------------------------------------------


def test_resume_continues_from_the_checkpoint(engine: Engine, project: Project) -> None:
    fired: list[int] = []

    def cancel_at_step_4(event: Event) -> None:
        if event.type == "metric" and event.data["step"] == 4 and not fired:
            fired.append(event.run_id)
            engine.cancel(event.run_id)

    engine.add_listener(cancel_at_step_4)
    run_id = engine.submit("test.counter", {"steps": 10, "key": "counter"})
    assert engine.wait(run_id, WAIT) == "cancelled"
    stopped = project.run(run_id)
    assert stopped.checkpoint_step == 4
    assert stopped.checkpoint is not None and not Path(stopped.checkpoint).is_absolute()
    assert project.metric_series(run_id)["total"][0] == [1, 2, 3, 4]

    assert engine.resume(run_id) == run_id
    assert engine.wait(run_id, WAIT) == "completed"
    record = project.run(run_id)
    assert record.error is None and record.started == stopped.started
    expected = float(sum(i * i for i in range(10)))
    assert project.final_metrics(run_id)["final_total"] == expected
    xs, ys = project.metric_series(run_id)["total"]
    assert xs == list(range(1, 11))  # every step exactly once
    assert ys[-1] == expected
    assert any(
        "resumed from the checkpoint at step 4" in line["message"] for line in project.logs(run_id)
    )
    assert len(project.runs()) == 1


def test_resume_drops_metrics_recorded_after_the_checkpoint(
    engine: Engine, project: Project
) -> None:
    run_id = project.create_run(
        job="test.counter",
        kind="experiment",
        family="test",
        method="counter",
        config={"steps": 6, "fail_at": -1, "key": "c"},
        seed=0,
    )
    ckpt = project.run_dir(run_id) / "state.json"
    ckpt.write_text('{"step": 2, "total": 1.0}')
    project.update_run(
        run_id, status="interrupted", checkpoint=project.relpath(ckpt), checkpoint_step=2
    )
    # the crashed process had written step 3 without checkpointing it
    project.add_metrics(
        [
            {"run_id": run_id, "step": s, "name": "total", "value": -1.0, "time": 0.0}
            for s in (1, 2, 3)
        ]
    )
    engine.resume(run_id)
    assert engine.wait(run_id, WAIT) == "completed"
    xs, ys = project.metric_series(run_id)["total"]
    assert xs == [1, 2, 3, 4, 5, 6]
    assert ys[2:] == [5.0, 14.0, 30.0, 55.0]


def _stopped_run(project: Project, job: str, status: str, checkpoint: str | None = None) -> int:
    run_id = project.create_run(
        job=job, kind="experiment", family="test", method="m", config={}, seed=0
    )
    project.update_run(run_id, status=status, checkpoint=checkpoint, checkpoint_step=1)
    return run_id


def test_resume_refusals_say_why(engine: Engine, project: Project) -> None:
    done = engine.submit("test.counter", {"steps": 2})
    assert engine.wait(done, WAIT) == "completed"
    with pytest.raises(EngineError, match=f"run {done} is completed; only a stopped run"):
        engine.resume(done)

    no_resume = engine.submit("test.steps", {"steps": 3, "fail_at": 1})
    assert engine.wait(no_resume, WAIT) == "failed"
    with pytest.raises(EngineError, match="job test.steps cannot resume; start a new run"):
        engine.resume(no_resume)

    no_ckpt = _stopped_run(project, "test.counter", "interrupted")
    with pytest.raises(EngineError, match=f"run {no_ckpt} saved no checkpoint"):
        engine.resume(no_ckpt)

    lost = _stopped_run(project, "test.counter", "cancelled", checkpoint="runs/999/gone.json")
    with pytest.raises(EngineError, match="checkpoint .*gone.json is missing"):
        engine.resume(lost)

    for run_id, status in ((no_ckpt, "interrupted"), (lost, "cancelled")):
        assert project.run(run_id).status == status  # a refused resume changes nothing


def test_resume_of_a_run_whose_job_is_gone_is_an_engine_error(
    engine: Engine, project: Project
) -> None:
    """A run made by a plugin that is no longer installed: EngineError, like submit's."""
    run_id = _stopped_run(project, "removed.plugin_job", "interrupted", checkpoint="runs/1/x")
    with pytest.raises(EngineError, match="unknown job 'removed.plugin_job'; known jobs: test."):
        engine.resume(run_id)
    assert project.run(run_id).status == "interrupted"


# -- batching -----------------------------------------------------------------------------------


def test_metric_writes_are_batched(engine: Engine, project: Project) -> None:
    batches: list[int] = []
    original = project.add_metrics

    def counting(rows: list[dict[str, Any]]) -> None:
        if rows:
            batches.append(len(rows))
        original(rows)

    project.add_metrics = counting  # type: ignore[method-assign]
    run_id = engine.submit("test.many_metrics", {"steps": 2000})
    assert engine.wait(run_id, WAIT) == "completed"
    assert sum(batches) == 2000
    assert len(project.metrics(run_id)) == 2000
    assert len(batches) <= 20, batches  # far fewer transactions than rows
    assert max(batches) >= 100


# -- a process that dies mid-run ----------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys
    from tests.unit.fixture_jobs import make_registry
    from workbench.jobs import Engine
    from workbench.store import Project

    project = Project.open(sys.argv[1])
    engine = Engine(project, registry=make_registry())
    run_id = engine.submit("test.block")
    print(run_id, flush=True)
    engine.wait(run_id)
    """
)


def _status_and_metrics(catalogue: Path, run_id: int) -> tuple[str | None, int]:
    conn = sqlite3.connect(f"file:{catalogue}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute("select status from runs where id = ?", (run_id,)).fetchone()
        count = conn.execute("select count(*) from metrics where run_id = ?", (run_id,)).fetchone()
        return (row[0] if row else None), count[0]
    finally:
        conn.close()


def test_run_of_a_killed_process_is_marked_interrupted(project: Project) -> None:
    done = project.create_run(job="j", kind="train", family="f", method="m", config={}, seed=0)
    project.update_run(done, status="completed")
    alive = project.create_run(job="j", kind="train", family="f", method="m", config={}, seed=0)
    project.update_run(alive, status="running")  # this process: alive, must stay running
    elsewhere = project.create_run(job="j", kind="train", family="f", method="m", config={}, seed=0)
    project.update_run(elsewhere, status="running", host="another-machine", pid=1)

    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(project.root)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip().isdigit(), child.stderr.read() if child.stderr else line
        run_id = int(line)
        deadline = time.monotonic() + WAIT
        while _status_and_metrics(project.catalogue, run_id) != ("running", 1):
            assert time.monotonic() < deadline, "the child never reported its run running"
            time.sleep(0.05)  # polling another process's database, not synchronising threads
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(WAIT)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL

    with Project.open(project.root) as reopened:
        assert reopened.interrupted_on_open == [run_id]
        record = reopened.run(run_id)
        assert record.status == "interrupted"
        assert record.status_text is not None and "ended unexpectedly" in record.status_text
        assert record.finished is not None
        assert reopened.final_metrics(run_id) == {"alive": 1.0}
        assert reopened.run(done).status == "completed"
        assert reopened.run(alive).status == "running"
        assert reopened.run(elsewhere).status == "running"
    with Project.open(project.root) as again:
        assert again.interrupted_on_open == []


_RESUMING_CHILD = textwrap.dedent(
    """
    import sys
    from tests.unit.fixture_jobs import make_registry
    from workbench.jobs import Engine
    from workbench.store import Project

    project = Project.open(sys.argv[1])
    engine = Engine(project, registry=make_registry())
    engine.resume(int(sys.argv[2]))
    print("resumed", flush=True)
    engine.wait(int(sys.argv[2]))
    """
)


def test_run_resumed_on_this_machine_and_killed_is_marked_interrupted(project: Project) -> None:
    """A run started on another machine (a shared project folder), resumed here, then killed."""
    run_id = project.create_run(
        job="test.block_resumable",
        kind="experiment",
        family="test",
        method="m",
        config={},
        seed=0,
    )
    ckpt = project.run_dir(run_id) / "ckpt.json"
    ckpt.write_text("{}")
    project.update_run(
        run_id,
        status="interrupted",
        host="another-machine",
        pid=1,
        checkpoint=project.relpath(ckpt),
        checkpoint_step=0,
    )
    child = subprocess.Popen(
        [sys.executable, "-c", _RESUMING_CHILD, str(project.root), str(run_id)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "resumed", child.stderr.read() if child.stderr else line
        deadline = time.monotonic() + WAIT
        while _status_and_metrics(project.catalogue, run_id) != ("running", 1):
            assert time.monotonic() < deadline, "the child never reported its run running"
            time.sleep(0.05)  # polling another process's database, not synchronising threads
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(WAIT)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    with Project.open(project.root) as reopened:
        assert reopened.interrupted_on_open == [run_id]
        assert reopened.run(run_id).status == "interrupted"


def test_engine_is_usable_from_many_threads(engine: Engine, project: Project) -> None:
    """Submitting from several threads at once (GUI + timers) gives distinct, completed runs."""
    ids: list[int] = []
    lock = threading.Lock()

    def submit() -> None:
        run_id = engine.submit("test.steps", {"steps": 2})
        with lock:
            ids.append(run_id)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 6
    assert [engine.wait(r, WAIT) for r in ids] == ["completed"] * 6


def test_wait_returns_only_after_listeners_saw_the_final_status(
    engine: Engine, project: Project
) -> None:
    """A caller of wait() (the CLI, a test) must be able to rely on listeners being up to date."""
    entered, release, returned = threading.Event(), threading.Event(), threading.Event()
    seen: list[str] = []

    def slow_final_listener(event: Event) -> None:
        if event.type == "status" and event.data["status"] == "completed":
            entered.set()
            release.wait(WAIT)
            seen.append(event.data["status"])

    engine.add_listener(slow_final_listener)
    run_id = engine.submit("test.steps", {"steps": 2}, dataset="toy")
    waiter = threading.Thread(target=lambda: (engine.wait(run_id, WAIT), returned.set()))
    waiter.start()
    assert entered.wait(WAIT)
    # the listener is still running: wait() must not have returned yet
    assert not returned.wait(0.3)
    release.set()
    waiter.join(WAIT)
    assert returned.is_set() and seen == ["completed"]
