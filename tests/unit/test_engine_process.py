"""Isolated runs (``Engine(isolate=...)``, what the GUI uses for heavy jobs) run their job in a child
process: metrics stream back, cancel reaches the child, an exception in the child fails the run with
the child's traceback, a killed child fails it with the signal; and every run's log says when it was
cancelled, where it stopped and from which checkpoint it resumed (threads and processes alike).

The real engine runs the fixture jobs of ``tests/unit/fixture_jobs.py``; a job that must wait for
the test polls ``ctx.check()`` (``hold_at``), as a cross-process gate.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit import fixture_jobs
from tests.unit.engine_events import EngineEvents, log_messages
from workbench import cli
from workbench.jobs import Engine
from workbench.store import Project

TIMEOUT = 60.0


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    project = Project.create(tmp_path / "project")
    yield project
    project.close()


def _engine(project: Project, isolate: bool, **kwargs) -> Engine:
    return Engine(
        project,
        registry=fixture_jobs.make_registry(),
        isolate=(lambda spec: True) if isolate else None,
        **kwargs,
    )


def test_an_isolated_run_streams_its_metrics_from_a_child_process(project: Project) -> None:
    engine = _engine(project, isolate=True)
    seen = EngineEvents(engine)
    try:
        run_id = engine.submit("test.pid", {"steps": 50})
        assert engine.wait(run_id, TIMEOUT) == "completed", project.run(run_id).error
    finally:
        engine.shutdown()
    series = project.metric_series(run_id)
    child = int(series["pid"][1][0])
    assert child == engine.child_pid(run_id) and child != os.getpid()
    assert series["value"] == ([float(s) for s in range(50)], [float(s * s) for s in range(50)])
    assert series["steps_done"][1] == [50.0]  # the job's return value, recorded by the child
    # the listeners saw every metric, in order, on this side of the pipe
    streamed = [e.data["value"] for e in seen.events if e.type == "metric" and e.run_id == run_id]
    assert streamed == [float(child)] + [float(s * s) for s in range(50)] + [50.0]
    assert any(e.type == "log" and e.data["message"] == "pid job done" for e in seen.events)
    assert [e.data["status"] for e in seen.events if e.type == "status"] == [
        "queued",
        "running",
        "completed",
    ]
    assert "pid job done" in log_messages(project, run_id)
    assert project.run(run_id).progress == 1.0


def test_an_exception_in_the_child_fails_the_run_with_its_traceback(project: Project) -> None:
    engine = _engine(project, isolate=True)
    try:
        run_id = engine.submit("test.steps", {"steps": 5, "fail_at": 2})
        assert engine.wait(run_id, TIMEOUT) == "failed"
    finally:
        engine.shutdown()
    record = project.run(run_id)
    assert record.status_text == "RuntimeError: fixture failure at step 2"
    assert "in steps_job" in record.error and "fixture failure at step 2" in record.error
    assert project.metric_series(run_id)["loss"][0] == [0.0, 1.0]  # kept what came before
    assert log_messages(project, run_id)[-1] == "RuntimeError: fixture failure at step 2"


def test_a_killed_child_fails_the_run_with_a_readable_error(project: Project) -> None:
    engine = _engine(project, isolate=True)
    seen = EngineEvents(engine)
    try:
        run_id = engine.submit("test.block", {})
        # not the metric's own event: it can arrive before the metric is written (then the kill
        # loses it); the progress event comes after the job's flush
        seen.wait_for(lambda e: e.type == "progress" and e.data["text"] == "alive; blocking")
        os.kill(engine.child_pid(run_id), signal.SIGKILL)
        assert engine.wait(run_id, TIMEOUT) == "failed"
    finally:
        engine.shutdown()
    record = project.run(run_id)
    assert record.status_text == (
        "the job's process ended unexpectedly (killed by signal SIGKILL); what it recorded "
        "before is kept"
    )
    assert project.metric_series(run_id)["alive"][1] == [1.0]
    assert record.finished is not None


def test_a_child_that_ignores_cancel_is_killed_after_the_grace_period(project: Project) -> None:
    engine = _engine(project, isolate=True, cancel_grace_s=0.2)
    seen = EngineEvents(engine)
    try:
        run_id = engine.submit("test.block", {})  # never calls ctx.check()
        seen.wait_for(lambda e: e.type == "metric" and e.data["name"] == "alive")
        pid = engine.child_pid(run_id)
        assert engine.cancel(run_id)
        assert engine.wait(run_id, TIMEOUT) == "cancelled"
    finally:
        engine.shutdown()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the child is gone (reaped)
    assert log_messages(project, run_id)[0] == "cancel requested by the user"


@pytest.mark.parametrize("isolate", [False, True], ids=["thread", "process"])
def test_cancel_and_resume_are_written_to_the_log(
    project: Project, isolate: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = _engine(project, isolate=isolate)
    seen = EngineEvents(engine)
    try:
        run_id = engine.submit("test.counter_hold", {"steps": 10, "hold_at": 4})
        seen.wait_for(lambda e: e.type == "checkpoint" and e.data["step"] == 4)
        assert engine.cancel(run_id)
        assert engine.wait(run_id, TIMEOUT) == "cancelled"
        assert log_messages(project, run_id) == [
            "cancel requested by the user",
            "cancelled after step 4 (checkpoint at step 4: resume continues from there)",
        ]
        engine.resume(run_id)
        assert engine.wait(run_id, TIMEOUT) == "completed", project.run(run_id).error
    finally:
        engine.shutdown()
    assert log_messages(project, run_id)[2:] == ["resumed from the checkpoint at step 4"]
    assert project.metric_series(run_id)["final_total"][1] == [float(sum(s * s for s in range(10)))]
    # `workbench show` prints the log
    capsys.readouterr()
    assert cli.main(["show", str(run_id), "--project", str(project.root)]) == 0
    out = capsys.readouterr().out
    shown = [line.split(maxsplit=2)[-1] for line in out.split("  log:\n", 1)[1].splitlines()]
    assert shown == log_messages(project, run_id)


def test_cancelling_a_job_that_cannot_resume_says_where_it_stopped(project: Project) -> None:
    engine = _engine(project, isolate=False)
    seen = EngineEvents(engine)
    try:
        run_id = engine.submit("test.hold", {"steps": 10, "hold_at": 3})  # no resume support
        seen.wait_for(lambda e: e.type == "metric" and e.data["step"] == 3)
        engine.cancel(run_id)
        assert engine.wait(run_id, TIMEOUT) == "cancelled"
    finally:
        engine.shutdown()
    assert log_messages(project, run_id) == [
        "cancel requested by the user",
        "cancelled after step 3",
    ]
