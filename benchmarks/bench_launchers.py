"""Launcher latency: submission to the first metric in the project, and to the run's end.

For each launcher the same tiny job (``tests/unit/fixture_jobs.py:steps_job``, 5 steps) is submitted
``--repeats`` times through an :class:`~workbench.jobs.Engine`; timed from ``engine.submit`` to the
first ``metric`` event the owner emits (for a remote run: the metric written by the job on the
cluster, read from its run folder and written to SQLite) and to the end of the run.

- ``local``: the engine's worker thread (today's default);
- ``local_process``: a spawned child process per run (what the GUI does for heavy jobs);
- ``slurm_local``: submitit's local executor (the Slurm launcher's code path on this machine);
- ``ray``: Ray Jobs against a head this script starts on 127.0.0.1 (``ray start --head --block``
  in its own process group, ended at the end), when ``ray`` is installed.

The first remote run is reported apart (``first``): Ray starts its job supervisor then.  Medians
of the rest; prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def ray_head():
    """A Ray head on 127.0.0.1; yields (dashboard URL, seconds it took to answer)."""
    from ray.job_submission import JobSubmissionClient

    temp_dir = tempfile.mkdtemp(prefix="wbray")
    dashboard = _free_port()
    ray = Path(sys.executable).with_name("ray")
    command = [
        str(ray) if ray.exists() else "ray", "start", "--head", "--block",
        "--disable-usage-stats", "--node-ip-address=127.0.0.1", f"--port={_free_port()}",
        "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
        "--include-dashboard=true", "--num-cpus=1", f"--temp-dir={temp_dir}",
        f"--ray-client-server-port={_free_port()}",
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--dashboard-agent-grpc-port={_free_port()}",
        f"--runtime-env-agent-port={_free_port()}", f"--metrics-export-port={_free_port()}",
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited {proc.returncode}")
            try:
                JobSubmissionClient(address)
                break
            except Exception:
                if time.perf_counter() - t0 > 180:
                    raise
                time.sleep(0.25)
        yield address, time.perf_counter() - t0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        shutil.rmtree(temp_dir, ignore_errors=True)


def measure(make_engine, repeats: int) -> dict[str, object]:
    from workbench.store import Project

    first_metric: list[float] = []
    end: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.create(Path(tmp) / "project")
        engine = make_engine(project, Path(tmp))
        seen: dict[int, float] = {}
        got = threading.Event()

        def on(event) -> None:
            if event.type == "metric" and event.run_id not in seen:
                seen[event.run_id] = time.perf_counter()
                got.set()

        engine.add_listener(on)
        try:
            for _ in range(repeats):
                t0 = time.perf_counter()
                run_id = engine.submit("test.steps", {"steps": 5})
                status = engine.wait(run_id, 300)
                if status != "completed":
                    raise RuntimeError(f"run {run_id} {status}: {project.run(run_id).error}")
                end.append(time.perf_counter() - t0)
                first_metric.append(seen[run_id] - t0)
        finally:
            engine.shutdown()
            project.close()
    rest_first = first_metric[1:] or first_metric
    rest_end = end[1:] or end
    return {
        "first_s": round(first_metric[0], 3),
        "first_end_s": round(end[0], 3),
        "first_metric_median_s": round(statistics.median(rest_first), 3),
        "first_metric_min_s": round(min(rest_first), 3),
        "first_metric_max_s": round(max(rest_first), 3),
        "end_median_s": round(statistics.median(rest_end), 3),
        "runs": len(first_metric),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--skip", nargs="*", default=[], help="launchers to leave out")
    args = parser.parse_args()

    from tests.unit import fixture_jobs
    from workbench.jobs import Engine
    from workbench.launchers import RayLauncher, SlurmLauncher

    registry = fixture_jobs.make_registry()
    out: dict[str, object] = {"bench": "launchers", "job": "test.steps (5 steps)"}
    if "local" not in args.skip:
        out["local"] = measure(lambda p, _t: Engine(p, registry=registry), args.repeats)
    if "local_process" not in args.skip:
        out["local_process"] = measure(
            lambda p, _t: Engine(p, registry=registry, isolate=lambda spec: True), args.repeats
        )
    if "slurm_local" not in args.skip:
        try:
            import submitit  # noqa: F401
        except ImportError:
            out["slurm_local"] = "skipped: submitit is not installed"
        else:
            out["slurm_local"] = measure(
                lambda p, t: Engine(
                    p,
                    registry=registry,
                    launcher=SlurmLauncher(t / "submitit", cluster="local", timeout_min=10),
                    remote_poll_s=0.05,
                ),
                args.repeats,
            )
    if "ray" not in args.skip:
        try:
            import ray  # noqa: F401
        except ImportError:
            out["ray"] = "skipped: ray is not installed"
        else:
            with ray_head() as (address, start_s):
                env = {"PYTHONPATH": os.environ["PYTHONPATH"]}
                result = measure(
                    lambda p, _t: Engine(
                        p,
                        registry=registry,
                        launcher=RayLauncher(address, env=env),
                        remote_poll_s=0.05,
                    ),
                    args.repeats,
                )
                out["ray"] = {"head_start_s": round(start_s, 2), **result}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
