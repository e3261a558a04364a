"""Small studies behind ``docs/results.md``: ``python -m backends.classifier.studies trw-sweep``.

``trw-sweep`` unlearns the comparison's default forget set (digits, class 3, the leaky MLP) with
TRW over a grid of tilt strengths beta and similarity temperatures T, and reports for each the
MIA-NN gap and the TV distance to the retrained model (spec 1.1 and 1.2), averaged over seeds.
beta = 0 is RWFT.  It reuses the comparison's cached original, retrained and reference models when
``--project`` points at a project that ran ``compare.yaml``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def trw_sweep(
    project: Path | None, betas: list[float], temperatures: list[float], seeds: int
) -> list[dict[str, float]]:
    import torch

    from backends.classifier.attacks.metrics import forget_distribution, tv_distance
    from backends.classifier.attacks.mia_nn import mia_nn_gap
    from backends.classifier.configs import EvaluationConfig, SetupConfig
    from backends.classifier.experiment import AttackContext, baseline, build_setup, method_runner
    from backends.classifier.references import ModelCache

    torch.set_num_threads(1)
    cfg = SetupConfig(device="cpu")
    setup = build_setup(cfg, None, None)
    cache = ModelCache(project / "cache" / "classifier" if project else None)
    unlearn, _ = method_runner("trw")
    rows = []
    for beta in betas:
        for temperature in temperatures if beta > 0 else temperatures[:1]:
            gaps, tvs, tops = [], [], []
            for seed in range(seeds):
                base = baseline(setup, cfg, None, seed, cache)
                refs = AttackContext(setup, base, EvaluationConfig(), seed, cache).references
                _, trw_cfg = method_runner("trw", {"beta": beta, "temperature": temperature})
                model = unlearn(base.original, setup, trw_cfg, seed=seed)
                gaps.append(float(mia_nn_gap(model, base.retrained, refs, setup)["gap"]))
                x = setup.tensors(setup.forget_test_idx)[0]
                tvs.append(tv_distance(model, base.retrained, x))
                tops.append(int(np.argmax(forget_distribution(model, setup))))
            rows.append(
                {
                    "beta": beta,
                    "temperature": temperature,
                    "mia_nn_gap": float(np.mean(gaps)),
                    "mia_nn_gap_std": float(np.std(gaps)),
                    "tv_to_retrain": float(np.mean(tvs)),
                    "top_class": max(set(tops), key=tops.count),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("study", choices=["trw-sweep"])
    parser.add_argument("--project", type=Path, help="reuse this project's cached references")
    parser.add_argument("--betas", default="0,1,3,10")
    parser.add_argument("--temperatures", default="0.1,1,10")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    rows = trw_sweep(
        args.project,
        [float(b) for b in args.betas.split(",")],
        [float(t) for t in args.temperatures.split(",")],
        args.seeds,
    )
    print("| beta | T | MIA-NN gap (mean ± std) | TV to retrain | forget inputs go mostly to |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['beta']:g} | {r['temperature']:g} | {r['mia_nn_gap']:.3f} ± "
            f"{r['mia_nn_gap_std']:.3f} | {r['tv_to_retrain']:.3f} | {r['top_class']} |"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
