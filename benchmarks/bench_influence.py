"""Influence scores per second, and compute saved at equal quality (spec section 4).

On the digits MLP of the pruning job's defaults (64-128-10, the leaky recipe: 150 epochs on the
40% training pool, seed 0) with a random 30% forget set (215 points) and 100 validation points
from the shadow pool:

1. every estimator of :mod:`backends.common.influence` over the output layer (1,290 parameters;
   CG also over all 9,610): scores per second and the Spearman correlation with ``exact``;
2. gradient ascent on the forget set pruned at each quantile (exact influence): the largest
   quantile whose forget / retain / test accuracy and U-MIA AUC intervals (95%, one seed, over
   examples) all overlap the unpruned run's, and the ratio of the unpruned run's gradient steps
   and wall time to that level's (the scoring's own time is added to the pruned run's wall in
   ``wall_ratio_net``).

Prints one JSON line.  ``python benchmarks/bench_influence.py``
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUANTILES = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)


def main() -> None:
    import torch

    from backends.classifier.experiment import (
        AttackContext,
        baseline,
        build_setup,
        evaluate,
        method_runner,
    )
    from backends.classifier.jobconfigs import EvaluationConfig
    from backends.classifier.pruning_config import PruningConfig, PruningSetupConfig
    from backends.classifier.pruning_job import (
        StepCounter,
        reduced_setup,
        score_forget_set,
        validation_indices,
    )
    from backends.classifier.references import ModelCache
    from backends.common.influence import spearman
    from backends.common.pruning import prune

    torch.set_num_threads(1)
    setup_cfg = PruningSetupConfig(forget_fraction=0.3, device="cpu")
    setup = build_setup(setup_cfg, None, None)
    base = baseline(setup, setup_cfg, None, 0, ModelCache(None))
    val = validation_indices(setup, 100, setup_cfg.split_seed)
    pcfg = PruningConfig()
    n = len(setup.forget_idx)
    out: dict[str, object] = {"forget_points": n, "validation_points": len(val)}
    scores = {}
    for est in ("exact", "cg", "lissa", "grad_norm", "less"):
        score_forget_set(base.original, setup, val[:2], pcfg, est, 0.0, 0)  # warm-up
        res = score_forget_set(base.original, setup, val, pcfg, est, 0.0, 0)
        scores[est] = res.scores
        out[f"{est}_scores_per_s"] = round(n / res.seconds, 1)
    for est in ("cg", "lissa", "grad_norm", "less"):
        out[f"spearman_{est}_vs_exact"] = round(spearman(scores[est], scores["exact"]), 4)
    all_params = PruningConfig(params="all")
    res = score_forget_set(base.original, setup, val, all_params, "cg", 0.0, 0)
    out["cg_all_params_scores_per_s"] = round(n / res.seconds, 2)
    out["spearman_cg_all_params_vs_exact_last_layer"] = round(
        spearman(res.scores, scores["exact"]), 4
    )
    t0 = time.perf_counter()
    exact = score_forget_set(base.original, setup, val, pcfg, "exact", 0.0, 0)
    scoring_s = time.perf_counter() - t0
    run, cfg = method_runner("ga")
    ctx = AttackContext(setup, base, EvaluationConfig(attacks=["umia"]), 0, ModelCache(None))
    rows = {}
    for q in QUANTILES:
        counter = StepCounter()
        t0 = time.perf_counter()
        model = run(
            base.original,
            reduced_setup(setup, prune(exact.scores, "quantile", q)),
            cfg,
            seed=0,
            check=counter,
        )
        seconds = time.perf_counter() - t0
        ev = evaluate("ga", model, ctx, None)
        rows[q] = (counter.calls, seconds, ev.metrics)
    keys = ("forget_acc", "retain_acc", "test_acc", "umia_auc")

    def overlap(a: dict, b: dict) -> bool:
        return all(
            a[f"{k}_low"] <= b[f"{k}_high"] and b[f"{k}_low"] <= a[f"{k}_high"] for k in keys
        )

    equal = [q for q in QUANTILES if overlap(rows[q][2], rows[0.0][2])]
    best = max(equal)
    steps0, wall0, _ = rows[0.0]
    steps, wall, _ = rows[best]
    out.update(
        largest_equal_quality_quantile=best,
        step_ratio=round(steps0 / max(1, steps), 3),
        wall_ratio=round(wall0 / wall, 3),
        wall_ratio_net=round(wall0 / (wall + (scoring_s if best > 0 else 0.0)), 4),
        steps_by_quantile={str(q): rows[q][0] for q in QUANTILES},
        test_acc_by_quantile={str(q): round(rows[q][2]["test_acc"], 3) for q in QUANTILES},
        forget_acc_by_quantile={str(q): round(rows[q][2]["forget_acc"], 3) for q in QUANTILES},
    )
    print(json.dumps({"benchmark": "influence", **out}))


if __name__ == "__main__":
    main()
