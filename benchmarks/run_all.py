"""Run every ``benchmarks/bench_*.py`` in its own process and report what each printed.

Each benchmark prints one JSON line with its measurements and its target; nothing here asserts a
timing.  The collected lines are written to ``bench-out/results.json`` and shown as a table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "bench-out"


def main() -> int:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    results, failed = [], []
    for script in sorted(HERE.glob("bench_*.py")):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=1800
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            failed.append(script.name)
            print(f"{script.name}: FAILED (exit {proc.returncode})\n{proc.stderr[-2000:]}")
            continue
        for line in lines:
            data = json.loads(line)
            data["script"] = script.name
            data["wall_s"] = round(time.perf_counter() - t0, 1)
            results.append(data)
            print(f"{script.name}: {json.dumps(data)}")
    OUT.mkdir(exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {OUT / 'results.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
