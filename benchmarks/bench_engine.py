"""Job-engine overhead: the digits training job through the engine vs the same loop bare.

Both sides train the same MLP with the same config and seed in one warm process (torch already
imported, one thread).  The engine side is the whole ``classifier.train_mlp`` job (run record,
per-epoch metrics and progress to SQLite, a checkpoint at the end, model folder and artifacts);
the bare side is data preparation plus :func:`train_epochs` with no callbacks.  Medians of
``--repeats`` alternating runs.  Target: overhead at most 3%.  Prints one JSON line.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from backends.classifier.configs import TrainMLPConfig
    from backends.classifier.train import prepare, train_epochs
    from workbench.jobs import Engine
    from workbench.store import Project

    torch.set_num_threads(1)
    config = {"epochs": args.epochs, "checkpoint_every": args.epochs, "device": "cpu"}
    cfg = TrainMLPConfig(**config)

    def bare() -> float:
        t0 = time.perf_counter()
        _, _, tensors, model, optimizer = prepare(cfg, "digits", 0, torch.device("cpu"))
        train_epochs(
            model,
            optimizer,
            tensors,
            start_epoch=0,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            seed=0,
        )
        return time.perf_counter() - t0

    def engine(root: Path) -> float:
        project = Project.open(root, create=True)
        eng = Engine(project)
        t0 = time.perf_counter()
        run_id = eng.submit("classifier.train_mlp", config, seed=0, dataset="digits")
        status = eng.wait(run_id)
        elapsed = time.perf_counter() - t0
        eng.shutdown()
        project.close()
        assert status == "completed", status
        return elapsed

    bare()  # warm-up: imports, allocator, sklearn data cache
    bare_times, engine_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            bare_times.append(bare())
            engine_times.append(engine(Path(tmp) / f"p{i}"))
    b, e = statistics.median(bare_times), statistics.median(engine_times)
    print(
        json.dumps(
            {
                "benchmark": "engine_overhead",
                "epochs": args.epochs,
                "bare_s": round(b, 3),
                "engine_s": round(e, 3),
                "overhead_ratio": round(e / b, 4),
                "overhead_pct": round(100 * (e / b - 1), 2),
                "target_pct": 3.0,
            }
        )
    )


if __name__ == "__main__":
    main()
