"""The Ray launcher against a real Ray head that this module starts on 127.0.0.1 (issue 18 part 3):
a run submitted through Ray Jobs, its metrics ingested into the project, a cancel that stops it.

Skipped when ``ray`` is not importable (``make test`` does not need it).  The head runs as
``ray start --head --block`` in its own process group, which the fixture's finaliser ends (SIGTERM,
then SIGKILL for what is left of that group): only the processes this test started are stopped,
never another Ray on the machine (``ray stop --force`` would stop every Ray of this user).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

pytest.importorskip("ray")

from tests.unit import fixture_jobs  # noqa: E402
from tests.unit.engine_events import EngineEvents
from workbench.jobs import Engine  # noqa: E402
from workbench.launchers import Handle, RayLauncher  # noqa: E402
from workbench.remote import run_folder_for  # noqa: E402
from workbench.store import Project  # noqa: E402

# the head takes ~25 s to start and a cold first job ~10-20 s on 2 busy cores: `make test-slow`
pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90.0
HEAD_START_TIMEOUT = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_bin() -> str:
    found = Path(sys.executable).with_name("ray")
    return str(found) if found.exists() else (shutil.which("ray") or "ray")


def _stop_group(proc: subprocess.Popen) -> None:
    """End the head: ``ray start --block`` stops the processes it started on SIGTERM; what is
    left of its process group (the processes this fixture started, and only those) is killed."""
    proc.terminate()
    with suppress(subprocess.TimeoutExpired):
        proc.wait(15)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A Ray head on 127.0.0.1 with its dashboard (the Jobs API); yields the dashboard URL."""
    from ray.job_submission import JobSubmissionClient

    temp_dir = tempfile.mkdtemp(prefix="wbray")
    dashboard = _free_port()
    command = [
        _ray_bin(), "start", "--head", "--block", "--disable-usage-stats",
        "--node-ip-address=127.0.0.1", f"--port={_free_port()}",
        "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
        "--include-dashboard=true", "--num-cpus=1", f"--temp-dir={temp_dir}",
        f"--ray-client-server-port={_free_port()}",
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--dashboard-agent-grpc-port={_free_port()}",
        f"--runtime-env-agent-port={_free_port()}",
        f"--metrics-export-port={_free_port()}",
    ]  # fmt: skip
    log = open(Path(temp_dir) / "head.log", "w")  # noqa: SIM115 (closed in the finaliser)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + HEAD_START_TIMEOUT
        while True:  # the head is up once its Jobs API answers
            if proc.poll() is not None:
                pytest.fail(f"ray start exited {proc.returncode}: {Path(log.name).read_text()}")
            try:
                JobSubmissionClient(address)
                break
            except Exception:
                if time.monotonic() > deadline:
                    pytest.fail(f"the Ray head did not answer at {address} in time")
                time.sleep(0.5)  # waiting for an external server to come up, not syncing a test
        yield address
    finally:
        _stop_group(proc)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    project = Project.create(tmp_path / "project")
    yield project
    project.close()


@pytest.fixture
def engine(project: Project, ray_head: str) -> Iterator[Engine]:
    # the job runs this checkout (and the fixture jobs) on the cluster
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    launcher = RayLauncher(ray_head, env={"PYTHONPATH": os.pathsep.join(paths)})
    engine = Engine(
        project, registry=fixture_jobs.make_registry(), launcher=launcher, remote_poll_s=0.05
    )
    yield engine
    engine.shutdown()


def test_a_run_on_ray_is_submitted_and_its_metrics_ingested(
    project: Project, engine: Engine
) -> None:
    seen = EngineEvents(engine, TIMEOUT)
    run_id = engine.submit("test.steps", {"steps": 5})
    assert engine.wait(run_id, TIMEOUT) == "completed", project.run(run_id).error
    assert project.metric_series(run_id)["loss"] == (
        [0, 1, 2, 3, 4],
        [1.0, 1 / 2, 1 / 3, 1 / 4, 1 / 5],
    )
    assert project.final_metrics(run_id)["score"] == 0.5
    assert {a["name"] for a in project.artifacts(run_id)} == {"notes", "table"}
    # the metrics reached the listeners (the GUI's monitor) while ingested
    assert [
        e.data["step"] for e in seen.events if e.type == "metric" and e.data["name"] == "loss"
    ] == [0, 1, 2, 3, 4]
    folder = run_folder_for(project.root, run_id)
    handle = Handle.from_json((folder / "handle.json").read_text())
    launcher = engine.launcher
    assert isinstance(launcher, RayLauncher)
    assert launcher.status(handle).state == "completed"
    assert "workbench remote run" in launcher.logs(handle)  # the job's own output, from Ray
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "completed" and status["pid"] != os.getpid()


def test_cancel_stops_a_run_on_ray(project: Project, engine: Engine) -> None:
    seen = EngineEvents(engine, TIMEOUT)
    run_id = engine.submit("test.wait_cancel", {})
    seen.wait_for(lambda e: e.run_id == run_id and e.type == "metric")  # it is running on Ray
    assert engine.cancel(run_id)
    assert engine.wait(run_id, TIMEOUT) == "cancelled"
    assert project.run(run_id).status_text == "cancelled by the user"
    folder = run_folder_for(project.root, run_id)
    assert json.loads((folder / "status.json").read_text())["status"] == "cancelled"
    launcher = engine.launcher
    assert isinstance(launcher, RayLauncher)
    handle = Handle.from_json((folder / "handle.json").read_text())
    state = launcher.status(handle)  # Ray says the job stopped (or ended after the cancel)
    assert state.final, state
