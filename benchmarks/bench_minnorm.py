"""One MinNorm-OG projection of the sine experiment's width-300 MLP (91,201 parameters).

The method's projection (``backends/classifier/methods/minnorm_og.py``): per-sample output
gradients of 50 points with ``torch.func`` (a 50 x 91,201 matrix), a reduced QR of it in float64
and ``theta - lambda P_G-perp(theta)``; the QR alone for the issue's reference (the authors' code
here: 0.2-0.35 s for the 91,201 x 50 float64 QR).  Also the sine job's closed form for 6 stacked
models (Gram matrix of the output gradients from the back-propagated errors, no d x n matrix).
One thread, medians of 5.  Prints one JSON line.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _median_time(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    import torch
    from torch import nn

    from backends.classifier import sine_run as sr
    from backends.classifier.methods.minnorm_og import output_gradients, project_model
    from backends.classifier.sine import SineConfig

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 300), nn.SiLU(), nn.Linear(300, 300), nn.SiLU())
    net.append(nn.Linear(300, 1))
    d = sum(p.numel() for p in net.parameters())
    x = torch.rand(50, 1) * 31.4 - 15.7
    grads = output_gradients(net, x, "regression")
    a64 = grads.T.to(torch.float64).contiguous()
    qr_s = _median_time(lambda: torch.linalg.qr(a64, mode="reduced"))
    grads_s = _median_time(lambda: output_gradients(net, x, "regression"))
    proj_s = _median_time(lambda: project_model(net, x, 0.1, "regression"))
    cfg = SineConfig()
    params = sr.init_params(300, list(range(6)), stream=0)
    data = sr.make_data(cfg, list(range(6)))
    closed_s = _median_time(lambda: sr.project_mlp(params, data.xr, torch.full((6,), 0.1)))
    print(
        json.dumps(
            {
                "benchmark": "minnorm_og_projection",
                "params": d,
                "n_pert": 50,
                "qr_float64_s": round(qr_s, 4),
                "output_gradients_s": round(grads_s, 4),
                "projection_s": round(proj_s, 4),
                "closed_form_6_models_s": round(closed_s, 4),
                "threads": 1,
            }
        )
    )


if __name__ == "__main__":
    main()
