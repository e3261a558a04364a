"""Small studies behind ``docs/results.md``: ``python -m backends.classifier.studies <study>``.

``apollo-random`` reproduces the Apollo authors' digits set-up (issue 9): 800 train / 597 test
examples (stratified, the remaining 400 are the attacker's shadow pool), 100 random forget
points, 16 shadows, 100 + 100 attacked targets; for the original model, the retrained one and
GA, FT and RL it reports Apollo online and offline, U-LiRA (both "out" shadow choices) and U-MIA,
each AUC with its bootstrap 95% interval, and Apollo's operating point at 5% FPR with the
threshold picked on a held-out retrained shadow.  Compare with the authors' code on the same
set-up: AUC 0.47-0.58 (Apollo), 0.52-0.59 (U-LiRA), 0.51-0.52 (U-MIA).

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
    from backends.classifier.experiment import AttackContext, baseline, build_setup, method_runner
    from backends.classifier.jobconfigs import EvaluationConfig, SetupConfig
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


APOLLO_SPLIT = {"train": 800, "test": 597}  # the authors' digits sizes; the rest is shadow pool
APOLLO_FORGET = 100


def apollo_split(path: Path, seed: int = 0) -> Path:
    """Write the 800 / 597 / 400 stratified digits split as a split file and return its path."""
    from sklearn.model_selection import train_test_split

    from backends.classifier.data import load_digits

    y = load_digits().y
    idx = np.arange(len(y))
    rest, test = train_test_split(
        idx, test_size=APOLLO_SPLIT["test"], random_state=seed, stratify=y
    )
    train, shadow = train_test_split(
        rest, train_size=APOLLO_SPLIT["train"], random_state=seed + 1, stratify=y[rest]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = {"train": train, "test": test, "shadow": shadow}
    path.write_text(json.dumps({k: sorted(int(i) for i in v) for k, v in parts.items()}))
    return path


def apollo_random(
    project: Path, methods: list[str], seeds: int, n_bootstrap: int = 1000
) -> list[dict[str, object]]:
    """One row per model and seed: the attacks' AUC estimates on the random-forget digits run."""
    import dataclasses

    import torch

    from backends.classifier.experiment import (
        AttackContext,
        baseline,
        build_setup,
        evaluate,
        method_runner,
    )
    from backends.classifier.jobconfigs import EvaluationConfig, SetupConfig
    from backends.classifier.references import ModelCache

    torch.set_num_threads(1)
    split = apollo_split(project / "apollo-digits-split.json")
    cfg = SetupConfig(
        device="cpu",
        forget_kind="random",
        forget_fraction=APOLLO_FORGET / APOLLO_SPLIT["train"],
        split_file=str(split),
    )
    setup = build_setup(cfg, None, None)
    assert len(setup.forget_idx) == APOLLO_FORGET and len(setup.train_idx) == 800
    cache = ModelCache(project / "cache" / "classifier")
    base_eval = EvaluationConfig(
        attacks=["ulira", "umia", "apollo"],
        shadows=16,
        max_targets_per_side=APOLLO_FORGET,
        n_bootstrap=n_bootstrap,
    )
    variants = {
        "online": base_eval,
        "offline": dataclasses.replace(base_eval, attacks=["apollo"], apollo_mode="offline"),
        "plain": dataclasses.replace(base_eval, attacks=["ulira"], ulira_out="plain"),
    }
    rows: list[dict[str, object]] = []
    for seed in range(seeds):
        base = baseline(setup, cfg, None, seed, cache)
        ctxs = {k: AttackContext(setup, base, v, seed, cache) for k, v in variants.items()}
        for k in ("offline", "plain"):  # one shadow bank (and its unlearned copies) for all
            ctxs[k]._shadows = ctxs["online"].shadows
            ctxs[k]._retrained_shadows = ctxs["online"].retrained_shadows
        for name in ["original", "retrain", *methods]:
            if name == "original":
                model, shadow_fn = base.original, (lambda m, ss, sd: m)
            elif name == "retrain":
                model, shadow_fn = base.retrained, None
            else:
                unlearn, mcfg = method_runner(name)
                model = unlearn(base.original, setup, mcfg, seed=seed)

                def shadow_fn(m, ss, sd, _u=unlearn, _c=mcfg):  # type: ignore[no-untyped-def]
                    return _u(m, ss, _c, seed=sd)

            evs = {k: evaluate(name, model, c, shadow_fn) for k, c in ctxs.items()}
            on, off, plain = evs["online"], evs["offline"], evs["plain"]
            row: dict[str, object] = {"model": name, "seed": seed}
            for key, ev, metric in (
                ("apollo_online", on, "apollo"),
                ("apollo_offline", off, "apollo"),
                ("ulira_pipeline", on, "ulira"),
                ("ulira_plain", plain, "ulira"),
                ("umia", on, "umia"),
            ):
                m = ev.metrics
                row[key] = (m[f"{metric}_auc"], m[f"{metric}_auc_low"], m[f"{metric}_auc_high"])
            for key, ev in (("online", on), ("offline", off)):
                m = ev.metrics
                row[f"cal_{key}"] = (
                    m["apollo_calibrated_tpr_at_5pct"],
                    m["apollo_calibrated_fpr_at_5pct"],
                )
            row["forget_acc"] = on.metrics["forget_acc"]
            row["test_acc"] = on.metrics["test_acc"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def _fmt(est: object) -> str:
    v, lo, hi = est  # type: ignore[misc]
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("study", choices=["trw-sweep", "apollo-random"])
    parser.add_argument("--methods", default="ga,ft,rl", help="apollo-random: methods")
    parser.add_argument("--project", type=Path, help="reuse this project's cached references")
    parser.add_argument("--betas", default="0,1,3,10")
    parser.add_argument("--temperatures", default="0.1,1,10")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    if args.study == "apollo-random":
        if args.project is None:
            parser.error("apollo-random needs --project (a folder for its split and cache)")
        found = apollo_random(args.project, args.methods.split(","), args.seeds)
        print(
            "| model | seed | forget acc | test acc | Apollo online AUC | Apollo offline AUC "
            "| U-LiRA AUC (pipeline) | U-LiRA AUC (plain) | U-MIA AUC "
            "| Apollo online TPR / FPR at 5% (shadow threshold) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in found:
            tpr, fpr = r["cal_online"]  # type: ignore[misc]
            print(
                f"| {r['model']} | {r['seed']} | {r['forget_acc']:.3f} | {r['test_acc']:.3f} "
                f"| {_fmt(r['apollo_online'])} | {_fmt(r['apollo_offline'])} "
                f"| {_fmt(r['ulira_pipeline'])} | {_fmt(r['ulira_plain'])} | {_fmt(r['umia'])} "
                f"| {tpr:.2f} / {fpr:.2f} |"
            )
        return
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
