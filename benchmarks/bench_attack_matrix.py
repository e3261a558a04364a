"""Attack-matrix overhead (issue 18 part 1): the ``attack_matrix`` run of R unlearned runs x A
attacks against the same R x A attack runs submitted one by one (each waited for) through the
same engine, in one warm process.

A project with two unlearned digits MLPs (``classifier.unlearn.ga`` / ``ft``, small budgets) is
made once (or ``--project`` names one with completed unlearning runs).  A first pass of every
attack warms the project's model cache (original, retrained, references), so both sides then do
the same work.  ``--repeats`` alternating pairs (matrix, one by one); medians of the wall times and
the per-pair ratio matrix / one-by-one are reported with the pairs' spread.  Target: <= 5%
overhead (ratio <= 1.05).  The matrix's own work beyond its children (planning, reading each
child's metrics, the artifact) is also timed inside the run: ``parent_only_s`` = the parent's
wall time minus the sum of its children's.  Prints one JSON line.

    python benchmarks/bench_attack_matrix.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

UNLEARN = {"train_epochs": 10, "epochs": 3, "attacks": ["svc_mia"], "n_bootstrap": 50}
ATTACKS = ("classifier.attack.svc_mia", "classifier.attack.umia", "classifier.attack.mia_nn")
SETTINGS = {"n_bootstrap": 200, "references": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--project", default="", help="a project with unlearned runs")
    args = parser.parse_args()

    from workbench.jobs import Engine
    from workbench.store import Project

    root = Path(args.project or tempfile.mkdtemp(prefix="bench-matrix-")) / "p"
    project = Project.open(root, create=True)
    engine = Engine(project)
    runs = [r.id for r in project.runs() if r.kind == "unlearn" and r.status == "completed"][:2]
    for method in ("ga", "ft")[len(runs) :]:
        run = engine.submit(f"classifier.unlearn.{method}", UNLEARN, seed=0, dataset="digits")
        assert engine.wait(run) == "completed", project.run(run).status_text
        runs.append(run)
    models = {m["source_run"]: m["name"] for m in project.models()}
    overrides = [f"{a}:{k}={v}" for a in ATTACKS for k, v in SETTINGS.items()]

    def one_by_one() -> float:
        t = time.perf_counter()
        for run in runs:
            for attack in ATTACKS:
                rid = engine.submit(attack, SETTINGS, seed=1, model=models[run], dataset="digits")
                assert engine.wait(rid) == "completed", project.run(rid).status_text
        return time.perf_counter() - t

    def matrix() -> tuple[float, float]:
        t = time.perf_counter()
        config = {"runs": runs, "attacks": list(ATTACKS), "overrides": overrides}
        rid = engine.submit("attack_matrix", config, seed=1)
        assert engine.wait(rid) == "completed", project.run(rid).status_text
        wall = time.perf_counter() - t
        parent = project.run(rid)
        children = [r for r in project.runs() if r.parent_id == rid]
        inside = sum((c.finished or 0) - (c.started or 0) for c in children)
        return wall, (parent.finished or 0) - (parent.started or 0) - inside

    one_by_one()  # warm the model cache and the imports
    walls_m, walls_o, ratios, parent_only = [], [], [], []
    for _ in range(args.repeats):
        m, extra = matrix()
        o = one_by_one()
        walls_m.append(m)
        walls_o.append(o)
        ratios.append(m / o)
        parent_only.append(extra)
    engine.shutdown()
    print(
        json.dumps(
            {
                "cells": len(runs) * len(ATTACKS),
                "repeats": args.repeats,
                "matrix_s": round(statistics.median(walls_m), 2),
                "one_by_one_s": round(statistics.median(walls_o), 2),
                "ratio_median": round(statistics.median(ratios), 3),
                "ratio_min": round(min(ratios), 3),
                "ratio_max": round(max(ratios), 3),
                "parent_only_s": round(statistics.median(parent_only), 3),
                "threads": os.environ.get("OMP_NUM_THREADS", "default"),
            }
        )
    )


if __name__ == "__main__":
    main()
