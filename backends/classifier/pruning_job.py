"""The ``classifier.influence_pruning`` job (spec section 4; config in :mod:`.pruning_config`).

For every seed: the original and retrained models (the project's model cache), the influence of
each forget example on a validation set drawn from the shadow pool (never trained on, and not the
test split the accuracies are read on), then, at each pruning level, the chosen method (found
through the method catalogue, :func:`~backends.classifier.experiment.method_runner`) on the
reduced forget set, scored on the FULL forget set against the retrained model.

The reduced set-up keeps the retain set unchanged: the dropped points are neither unlearned nor
moved into the retain set (they are what pruning bets is already "free").  Cost: wall time of the
method and its optimisation steps (``hooks.check`` calls: every step calls it once); the influence
scoring's own time is reported apart and netted out in ``saved_wall_net``.

Metrics, at step = seed index, under the level's label (``q30`` = quantile 0.30, ``f05`` = 5% of
the maximum): ``<label>/saved_fraction`` (steps saved against the unpruned run of the same seed),
``saved_wall``, ``saved_wall_net``, ``kept``, ``steps``, ``seconds``, every measure of
:func:`~backends.classifier.experiment.evaluate` (``forget_acc``, ``gap_test_acc``,
``umia_auc``, ...) and ``delta_<measure>`` (the level minus the unpruned run).  Plus
``influence_seconds`` and, on the first seed, ``spearman_<estimator>`` (the other estimators'
rank agreement with the chosen one).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from backends.classifier.data import ForgetSet, Split
from backends.classifier.experiment import (
    AttackContext,
    baseline,
    build_setup,
    evaluate,
    method_runner,
)
from backends.classifier.jobconfigs import EvaluationConfig
from backends.classifier.pruning_config import PruningConfig, PruningSetupConfig
from backends.classifier.setup import ClassifierSetup
from backends.common.pruning import (
    CLASS_FORGET_NOTE,
    ESTIMATORS,
    Pruned,
    StepCounter,
    curve_and_table,
    level_label,
    prune,
    saved_fraction,
)
from backends.common.seeding import seed_everything
from workbench.artifacts import Table, Text
from workbench.influence_artifacts import InfluenceScores, PruningCurve

if TYPE_CHECKING:
    from workbench.jobs import JobContext

QUALITY = ("forget_acc", "retain_acc", "test_acc", "umia_auc", "svc_mia_efficacy", "avg_gap")
VALIDATION_SEED = 7919  # the validation draw's seed offset from split_seed


def reduced_setup(setup: ClassifierSetup, pruned: Pruned) -> ClassifierSetup:
    """The set-up whose forget set holds only the kept points and whose retain set is unchanged
    (the dropped points leave the training pool the method sees).  With nothing dropped it has
    exactly the original's index arrays."""
    dropped = setup.forget_idx[~pruned.keep]
    split = Split(
        train=np.setdiff1d(setup.split.train, dropped),
        test=setup.split.test,
        shadow=setup.split.shadow,
    )
    kept = ForgetSet(setup.forget_set.kind, setup.forget_idx[pruned.keep], None)
    return setup.derive(split, kept)


def validation_indices(setup: ClassifierSetup, size: int, seed: int) -> np.ndarray:
    """``size`` points of the shadow pool (never trained on; the test split stays for testing)."""
    pool = setup.shadow_idx
    if len(pool) == 0:
        raise ValueError(
            "influence pruning draws its validation set from the shadow pool, which is empty; "
            "set shadow_fraction above 0"
        )
    rng = np.random.default_rng(seed + VALIDATION_SEED)
    return np.sort(rng.choice(pool, size=min(size, len(pool)), replace=False))


def score_forget_set(
    model: torch.nn.Module,
    setup: ClassifierSetup,
    val_idx: np.ndarray,
    pcfg: PruningConfig,
    estimator: str,
    l2: float,
    seed: int,
    check: Any = None,
) -> Any:
    """Influence of every forget example on the validation set (:mod:`backends.common.influence`)."""
    from backends.common.influence import FlatModel, influence_scores, last_layer

    params = last_layer(model) if pcfg.params == "last_layer" else None
    flat = FlatModel(
        model, lambda o, t: torch.nn.functional.cross_entropy(o, t, reduction="none"), params, l2=l2
    )
    if estimator == "exact" and flat.dim > pcfg.max_exact_params:
        raise ValueError(
            f"the exact Hessian over {flat.dim} parameters exceeds max_exact_params "
            f"({pcfg.max_exact_params}); use params = last_layer, or the cg / lissa estimator"
        )
    return influence_scores(
        flat,
        setup.tensors(setup.train_idx),
        setup.forget,
        setup.tensors(val_idx),
        estimator,
        damping=pcfg.damping,
        aggregate=pcfg.aggregate,
        cg_max_iter=pcfg.cg_max_iter,
        lissa_depth=pcfg.lissa_depth,
        lissa_batch=pcfg.lissa_batch,
        less_dim=pcfg.less_dim,
        seed=seed,
        check=check,
    )


def _not_for_shadows(*_: Any, **__: Any) -> Any:
    raise RuntimeError("influence pruning runs only offline attacks (svc_mia, umia)")


def run(ctx: JobContext) -> dict[str, float]:
    """The pruning sweep over seeds; the influence histogram, the curve and the table."""
    from backends.classifier.checks import check_submit
    from backends.classifier.jobs import (
        _allows_pickle,
        _cache,
        _log_setup,
        _model_path,
        parse_overrides,
    )
    from backends.common.influence import spearman

    check_submit(ctx.config, ctx.model, ctx.dataset)
    setup_cfg = ctx.part(PruningSetupConfig)
    pcfg = ctx.part(PruningConfig)
    overrides = parse_overrides(
        [f"{pcfg.method}.{o}" for o in pcfg.method_overrides], [pcfg.method]
    )
    runner, mcfg = method_runner(pcfg.method, overrides.get(pcfg.method))
    setup = build_setup(setup_cfg, ctx.dataset, _model_path(ctx))
    if setup.forget_class is not None:
        raise ValueError(CLASS_FORGET_NOTE)
    ctx.set_device(str(setup.device))
    _log_setup(ctx, setup)
    levels = sorted({0.0, *pcfg.thresholds})  # the unpruned run is every level's reference
    labels = [level_label(pcfg.rule, v) for v in levels]
    val_idx = validation_indices(setup, pcfg.validation_size, setup_cfg.split_seed)
    ctx.log(
        f"method {pcfg.method} {mcfg}; estimator {pcfg.estimator} over {pcfg.params}; "
        f"{len(val_idx)} validation points from the shadow pool; levels {levels}"
    )
    eval_cfg = EvaluationConfig(attacks=list(pcfg.attacks), n_bootstrap=pcfg.n_bootstrap)
    cache = _cache(ctx)
    evals: dict[str, list[Any]] = {label: [] for label in labels}
    rows: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
    histogram: InfluenceScores | None = None
    total = pcfg.seeds * len(levels)
    for s in range(pcfg.seeds):
        seed = ctx.seed + s
        seed_everything(seed)
        ctx.progress(s * len(levels), total, f"seed {seed}: original and retrained models")
        base = baseline(
            setup,
            setup_cfg,
            _model_path(ctx),
            seed,
            cache,
            ctx.check,
            allow_pickle=_allows_pickle(ctx),
        )
        attack_ctx = AttackContext(setup, base, eval_cfg, seed, cache, ctx.check)
        ctx.progress(s * len(levels), total, f"seed {seed}: influence ({pcfg.estimator})")
        l2 = setup_cfg.train_weight_decay if ctx.model is None else 0.0
        result = score_forget_set(
            base.original, setup, val_idx, pcfg, pcfg.estimator, l2, seed, ctx.check
        )
        ctx.metrics({"influence_seconds": result.seconds}, step=s)
        note = ""
        if s == 0 and pcfg.cross_check:
            agree = {}
            for other in ESTIMATORS:
                if other == pcfg.estimator:
                    continue
                try:
                    got = score_forget_set(
                        base.original, setup, val_idx, pcfg, other, l2, seed, ctx.check
                    )
                except ValueError as exc:  # e.g. exact over too many parameters
                    ctx.log(f"cross-check {other} skipped: {exc}")
                    continue
                agree[other] = spearman(got.scores, result.scores)
                ctx.metrics({f"spearman_{other}": agree[other], f"{other}_seconds": got.seconds})
            note = (
                "Spearman rank correlation with "
                + pcfg.estimator
                + ": "
                + ", ".join(f"{k} {v:.3f}" for k, v in agree.items())
            )
            ctx.log(note)
        base_cost: dict[str, float] = {}
        base_metrics: dict[str, float] = {}
        thresholds: dict[str, float] = {}
        for i, (value, label) in enumerate(zip(levels, labels, strict=True)):
            ctx.check()
            ctx.progress(s * len(levels) + i, total, f"seed {seed}: {pcfg.method} at {label}")
            pruned = prune(result.scores, pcfg.rule, value)
            thresholds[label] = pruned.threshold
            if pruned.n_kept == 0:
                ctx.log(f"{label}: every forget point dropped; nothing to unlearn", level="warning")
            counter = StepCounter(ctx.check)
            t0 = time.perf_counter()
            model = runner(
                base.original, reduced_setup(setup, pruned), mcfg, seed=seed, check=counter
            )
            seconds = time.perf_counter() - t0
            ev = evaluate(pcfg.method, model, attack_ctx, _not_for_shadows)
            m = dict(ev.metrics)
            if value == 0.0:
                base_cost = {"steps": counter.calls, "seconds": seconds}
                base_metrics = m
            m.update(
                kept=pruned.n_kept,
                steps=counter.calls,
                seconds=seconds,
                saved_fraction=saved_fraction(base_cost["steps"], counter.calls),
                saved_wall=saved_fraction(base_cost["seconds"], seconds),
                saved_wall_net=saved_fraction(
                    base_cost["seconds"], seconds + (result.seconds if value > 0 else 0.0)
                ),
            )
            for q in QUALITY:
                if q in m and q in base_metrics:
                    m[f"delta_{q}"] = m[q] - base_metrics[q]
            ctx.metrics({f"{label}/{k}": v for k, v in m.items()}, step=s)
            ev.metrics = m
            evals[label].append(ev)
            rows[label].append(m)
        if histogram is None:
            histogram = InfluenceScores(
                result.scores,
                thresholds,
                pcfg.estimator,
                f"Influence of the {len(result.scores)} forget examples on {len(val_idx)} "
                f"validation points ({pcfg.estimator}, {pcfg.aggregate}; seed {seed})",
                note,
            )
    assert histogram is not None
    ctx.artifact("influence scores", histogram)
    curve, table = summarise(levels, labels, evals, rows, pcfg)
    ctx.artifact("compute vs quality", curve)
    ctx.artifact("pruning table", table)
    ctx.artifact(
        "about",
        Text(
            f"{pcfg.method} on forget sets pruned by {pcfg.estimator} influence "
            f"({pcfg.rule}), {pcfg.seeds} seed(s). Quality is measured on the FULL forget set. "
            "'equal quality' means every measure's 95% interval overlaps the unpruned run's "
            "(overlap is no proof of equality: with few seeds the intervals are wide)."
        ),
    )
    return {}


def summarise(
    levels: list[float],
    labels: list[str],
    evals: dict[str, list[Any]],
    rows: dict[str, list[dict[str, float]]],
    pcfg: PruningConfig,
) -> tuple[PruningCurve, Table]:
    """Per level: each quality measure's 95% interval (rates pooled over seeds, exact binomial;
    AUCs bootstrapped over the attacked examples, averaged over seeds; others bootstrapped over
    seeds) and the compute saved (bootstrap over seeds); the table says whether the level keeps
    equal quality (every interval overlapping the unpruned run's)."""
    from backends.classifier.jobs import column_estimate
    from backends.common.stats import bootstrap_mean

    def estimate(label: str, name: str) -> Any:
        est = column_estimate(name, evals[label], pcfg.n_bootstrap)
        if est is not None:
            return est
        values = [r[name] for r in rows[label] if name in r and np.isfinite(r[name])]
        return bootstrap_mean(values, n_bootstrap=pcfg.n_bootstrap) if values else None

    quality_names = [q for q in QUALITY if any(q in r for r in rows[labels[0]])]
    compute_names = ("saved_fraction", "saved_wall", "saved_wall_net")
    ests = {
        label: {n: estimate(label, n) for n in (*quality_names, *compute_names)} for label in labels
    }

    x_label = "quantile dropped" if pcfg.rule == "quantile" else "fraction of the maximum score"
    title = (
        f"{pcfg.method}: compute saved and quality against the pruning level "
        f"({pcfg.estimator}, {pcfg.seeds} seed(s), 95% intervals)"
    )
    kept = {label: float(np.mean([r["kept"] for r in rows[label]])) for label in labels}
    curve, table = curve_and_table(
        levels, labels, ests, kept, quality_names, compute_names, x_label=x_label, title=title
    )
    return curve, table
