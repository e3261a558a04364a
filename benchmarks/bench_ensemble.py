"""Vectorised shadow training vs a Python loop: 32 shadow MLPs (64-128-10) on digits.

Both train the same models (same initialisations, same members, same epochs and batch size) on
random halves of a 1200-example pool; the vectorised side stacks the weights and runs one
``vmap`` per step (:func:`backends.classifier.ensemble.train_ensemble`), the loop trains one model
after another (:func:`train_loop`).  Measured with one and with two torch threads (the machine has
two cores; the loop cannot use the second one for such small layers).  Target: at least 5x.
Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import numpy as np
    import torch

    from backends.classifier.data import load_digits
    from backends.classifier.ensemble import half_membership, train_ensemble, train_loop
    from backends.classifier.models import MLP
    from backends.classifier.training import TrainSpec

    data = load_digits()
    x, y = torch.from_numpy(data.x[:1200]), torch.from_numpy(data.y[:1200])
    k = 32
    membership = half_membership(k, len(y), 0)
    spec = TrainSpec(epochs=20, batch_size=64, lr=1e-3)

    def factory() -> torch.nn.Module:
        return MLP(64, [128], 10)

    train_ensemble(factory, x, y, membership[:, :], TrainSpec(epochs=1), 0)  # warm-up (imports)
    out: dict[str, float | int | str] = {
        "benchmark": "vectorised_shadows",
        "models": k,
        "epochs": spec.epochs,
        "target_speedup": 5.0,
    }
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        ens = train_ensemble(factory, x, y, membership, spec, 0)
        vec = time.perf_counter() - t0
        t0 = time.perf_counter()
        models = train_loop(factory, x, y, membership, spec, 0)
        loop = time.perf_counter() - t0
        held_out = torch.from_numpy(data.x[1200:]), torch.from_numpy(data.y[1200:])
        acc_vec = float((ens.predict(held_out[0]).argmax(-1) == held_out[1]).float().mean())
        with torch.no_grad():
            acc_loop = float(
                np.mean([(m(held_out[0]).argmax(-1) == held_out[1]).float().mean() for m in models])
            )
        out[f"vectorised_s_{threads}t"] = round(vec, 3)
        out[f"loop_s_{threads}t"] = round(loop, 3)
        out[f"speedup_{threads}t"] = round(loop / vec, 2)
        out[f"held_out_acc_vectorised_{threads}t"] = round(acc_vec, 4)
        out[f"held_out_acc_loop_{threads}t"] = round(acc_loop, 4)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
