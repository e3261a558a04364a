"""Time from launching the app process to its main window being shown (median of 5 starts).

Each start is a fresh ``python -c "from ui.app import main; main(project=...)"`` with
``WORKBENCH_STARTUP_PROBE=1``: once the window is shown the app prints the seconds since its
process started and quits.  The script reports both that in-process figure and the wall time
measured here from ``Popen`` to the marker line, against the target (<= 1.5 s), as a JSON line.

    .venv/bin/python benchmarks/bench_startup.py [--runs 5]

``--project DIR`` starts on a copy of an existing project instead (e.g. one whose newest run is a
finished ``classifier.compare``: the window must show before that run's data has loaded); the JSON
line then also gives ``loaded_median_s``, when the run view had loaded the newest run's data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 1.5
CHILD = "import sys; from ui.app import main; sys.exit(main(project=sys.argv[1]))"


def make_project(root: Path) -> None:
    """A project with one catalogued run (its catalogue, not its training, is what startup reads)."""
    sys.path.insert(0, str(REPO))
    from workbench.store import Project

    with Project.create(root) as project:
        run_id = project.create_run(
            job="classifier.train_mlp",
            kind="train",
            family="classifier",
            method="train",
            config={"epochs": 3},
            seed=0,
            dataset="digits",
            status="completed",
        )
        project.add_metrics(
            [
                {"run_id": run_id, "step": s, "name": "test_acc", "value": 0.5 + s / 10, "time": 0}
                for s in range(1, 4)
            ]
        )


def one_start(project: Path, env: dict[str, str]) -> tuple[float, float, float | None]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(project)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    probe = loaded = None
    for line in proc.stdout:
        if "startup_probe_s" in line:
            wall = time.perf_counter() - t0
            probe = json.loads(line)["startup_probe_s"]
        if "loaded_probe_s" in line:
            loaded = json.loads(line)["loaded_probe_s"]
    proc.wait(timeout=120)
    if probe is None:
        raise RuntimeError(f"the app exited ({proc.returncode}) without printing its startup probe")
    return wall, probe, loaded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--project", type=Path, help="start on a copy of this project")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    if args.project is not None:
        shutil.copytree(args.project, tmp / "project")
    else:
        make_project(tmp / "project")
    env = dict(
        os.environ,
        QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
        HF_HUB_OFFLINE="1",
        WORKBENCH_STARTUP_PROBE="1",
        XDG_CONFIG_HOME=str(tmp / "config"),
    )
    one_start(tmp / "project", env)  # warm the file cache once (not counted)
    walls, probes, loads = [], [], []
    for _ in range(args.runs):
        wall, probe, loaded = one_start(tmp / "project", env)
        walls.append(wall)
        probes.append(probe)
        if loaded is not None:
            loads.append(loaded)
    result = {
        "benchmark": "startup",
        "runs": args.runs,
        "wall_median_s": round(statistics.median(walls), 3),
        "in_process_median_s": round(statistics.median(probes), 3),
        "wall_all_s": [round(w, 3) for w in walls],
        "loaded_median_s": round(statistics.median(loads), 3) if loads else None,
        "target_s": TARGET_S,
    }
    result["meets_target"] = result["wall_median_s"] <= TARGET_S
    print(
        f"Startup to main window shown: median {result['wall_median_s']} s wall "
        f"({result['in_process_median_s']} s in-process) over {args.runs} runs "
        f"(target <= {TARGET_S} s)"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
