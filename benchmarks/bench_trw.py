"""TRW wall time vs retraining from scratch on digits (forget class 3).

The retrained model is the reference every method approximates; unlearning is only worth it when
it is much cheaper.  Both use the compare experiment's defaults: the leaky original MLP
(150 epochs on the 40% training pool) and TRW's default config.  Medians of 3.  Prints one JSON
line with the ratio retrain / TRW.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import torch

    from backends.classifier.experiment import build_setup, method_runner, train_spec
    from backends.classifier.jobconfigs import SetupConfig
    from backends.classifier.models import build_model
    from backends.classifier.references import ModelCache, train_original
    from backends.classifier.training import fit

    torch.set_num_threads(1)
    cfg = SetupConfig(device="cpu")
    setup = build_setup(cfg, None, None)
    spec = train_spec(cfg)
    original = train_original(setup, cfg.arch, cfg.widths, spec, 0, ModelCache(None))
    unlearn, trw_cfg = method_runner("trw")
    trw_times, retrain_times = [], []
    for i in range(3):
        t0 = time.perf_counter()
        unlearn(original, setup, trw_cfg, seed=i)
        trw_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        torch.manual_seed(i)
        model = build_model(cfg.arch, setup.data.image_shape, setup.num_classes, cfg.widths)
        fit(model, *setup.retain, spec, i)
        retrain_times.append(time.perf_counter() - t0)
    trw, retrain = statistics.median(trw_times), statistics.median(retrain_times)
    print(
        json.dumps(
            {
                "benchmark": "trw_vs_retrain",
                "trw_s": round(trw, 3),
                "retrain_s": round(retrain, 3),
                "retrain_over_trw": round(retrain / trw, 1),
                "retrain_epochs": spec.epochs,
                "trw_epochs": trw_cfg.epochs,
            }
        )
    )


if __name__ == "__main__":
    main()
