"""Entry functions of the classifier unlearning jobs (see :mod:`backends.classifier.experiment`).

One metric namespace.  A standalone ``classifier.unlearn.<method>`` run records the metrics of
:func:`~backends.classifier.experiment.evaluate` (plus ``seconds``) under their plain names
(``forget_acc``, ``mia_nn_gap``, ``apollo_auc``, ...) at step 0.  A ``classifier.compare`` run
records, for every model it scores (``original``, ``retrain`` and each method) and seed index
``s``, the very same names under the model's prefix at step ``s``: ``<model>/<name>`` (e.g.
``trw/apollo_auc``) is what ``<name>`` is in a standalone run of that method with seed
``seed + s`` and the same set-up and attack settings.  Nothing else is recorded under a model's
prefix, so a view lines a comparison's rows up with standalone runs by the part after the first
``/``.  Means over seeds live in the gap-to-retrain table; runs recorded before this rule also
hold ``<model>/<name>_mean`` metrics (means over seeds), which a view may show as they are.

Resume.  ``classifier.unlearn.*`` checkpoints its method's epochs (``checkpoint_every``) and a
resumed run rebuilds the baseline, continues after the last saved epoch and evaluates again;
``classifier.compare`` keeps every finished (seed, model) unit in its checkpoint and runs the
others; ``classifier.retrain`` checkpoints after the original and after the retrained model.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.classifier.experiment import (
    AttackContext,
    Evaluation,
    baseline,
    build_setup,
    evaluate,
    evaluation_from_state,
    evaluation_state,
    method_config,
    method_runner,
    save_model,
)
from backends.classifier.jobconfigs import (
    CompareConfig,
    EvaluationConfig,
    SetupConfig,
    UnlearnCheckpointConfig,
)
from backends.classifier.references import ModelCache
from backends.common.seeding import seed_everything
from workbench.artifacts import Bars, Curves, Heatmap, ImageGrid, Table, Text

if TYPE_CHECKING:
    from workbench.jobs import JobContext

SUMMARY_COLUMNS = (  # the papers' headline measures first (spec 1.1, 1.3, 2), then accuracies
    "mia_nn_gap",
    "ulira_auc",
    "tv_to_retrain",
    "forget_acc",
    "retain_acc",
    "test_acc",
    "avg_gap",
    "apollo_auc",
    "umia_auc",
    "svc_mia_efficacy",
    "seconds",
)
ROC_FLOOR = 1e-3  # ROC curves are drawn on a log FPR axis from here, so 0.1%-1% stays readable
AUC_COLUMNS = ("ulira_auc", "apollo_auc", "umia_auc")  # bootstrap intervals over the scores
RATE_COLUMNS = ("forget_acc", "retain_acc", "test_acc", "svc_mia_efficacy")  # exact binomial
VERDICT_COLUMNS = ("mia_nn_gap", *AUC_COLUMNS, "forget_acc", "test_acc")


def _cache(ctx: JobContext) -> ModelCache:
    return ModelCache(ctx.project.root / "cache" / "classifier")


def _model_path(ctx: JobContext) -> Path | None:
    return ctx.model.path if ctx.model is not None else None


def _allows_pickle(ctx: JobContext) -> bool:
    """Whether the run's model was added with pickle loading allowed (``add-model
    --allow-pickle``: read with ``torch.load(weights_only=True)``)."""
    return ctx.model is not None and bool((ctx.model.meta or {}).get("allow_pickle"))


def _class_labels(setup: Any) -> list[str]:
    names = setup.data.class_names
    return [f"{n}" for n in names]


def _roc_artifact(rocs: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> Curves:
    series = {}
    for name, (fpr, tpr) in rocs.items():
        fpr = np.clip(np.asarray(fpr, dtype=float), ROC_FLOOR, 1.0)
        series[name] = (fpr.tolist(), np.asarray(tpr, dtype=float).tolist())
    grid = np.geomspace(ROC_FLOOR, 1.0, 50)
    series["chance"] = (grid.tolist(), grid.tolist())
    return Curves(
        series,
        x_label="false-positive rate (log)",
        y_label="true-positive rate",
        title=title,
        log_x=True,
    )


def _bars(setup: Any, series: dict[str, np.ndarray], title: str, y_label: str) -> Bars:
    labels = _class_labels(setup)
    highlight = [labels[setup.forget_class]] if setup.forget_class is not None else []
    return Bars(
        labels,
        {k: np.nan_to_num(v).tolist() for k, v in series.items()},
        title=title,
        y_label=y_label,
        x_label="class",
        highlight=highlight,
    )


def _check_inputs(ctx: JobContext) -> None:
    """The submit-time checks again, before anything trains (a run submitted by an engine
    without submit checks, or resumed after its model changed, fails here with their message)."""
    from backends.classifier.checks import check_submit

    check_submit(ctx.config, ctx.model, ctx.dataset)


def _log_setup(ctx: JobContext, setup: Any) -> None:
    d = setup.describe()
    ctx.log(
        f"{d['dataset']}: train {d['train']} / test {d['test']} / shadow {d['shadow']}; "
        f"forget {d['forget']}; retain {d['retain_size']}"
    )


# -- classifier.retrain ---------------------------------------------------------------------------


def run_retrain(ctx: JobContext) -> dict[str, float]:
    """Train the original (unless given) and retrain from scratch without the forget set."""
    _check_inputs(ctx)
    from backends.classifier.attacks.metrics import accuracy_report, per_class

    cfg = ctx.config
    seed_everything(ctx.seed)
    setup = build_setup(cfg, ctx.dataset, _model_path(ctx))
    ctx.set_device(str(setup.device))
    _log_setup(ctx, setup)
    ctx.progress(0.1, text="original model")
    if ctx.resume is not None:
        ctx.log(
            f"continuing after {ctx.resume.step} of 2 models; finished ones come from the "
            "project's model cache (or are retrained exactly, with the run's seed)"
        )
    base = baseline(
        setup,
        cfg,
        _model_path(ctx),
        ctx.seed,
        _cache(ctx),
        ctx.check,
        on_model=_model_checkpoints(ctx),
        allow_pickle=_allows_pickle(ctx),
    )
    ctx.progress(0.9, text="evaluating")
    original, retrained = (
        accuracy_report(base.original, setup),
        accuracy_report(base.retrained, setup),
    )
    ctx.metrics({f"original_{k}": v for k, v in original.items()})
    ctx.metrics({f"retrained_{k}": v for k, v in retrained.items()})
    meta = {
        "arch": cfg.arch,
        "setup": setup.describe(),
        "method": "retrain",
        "source_config": dataclasses.asdict(cfg),
    }
    save_model(ctx, base.retrained, cfg.model_name or f"retrained-run{ctx.run_id}", meta)
    ctx.artifact(
        "per-class accuracy",
        _bars(
            setup,
            {
                "original": per_class(base.original, setup),
                "retrained": per_class(base.retrained, setup),
            },
            "Per-class test accuracy: original vs retrained without the forget set",
            "accuracy",
        ),
    )
    return {}


def _model_checkpoints(ctx: JobContext) -> Any:
    """``on_model`` for :func:`baseline`: a checkpoint (step 1: the original is ready, step 2:
    the retrained model) whose models live in the project's model cache."""
    from backends.common.checkpoint import save_state

    path = ctx.checkpoint_dir / "models.safetensors"
    done: list[str] = []

    def on_model(name: str) -> None:
        done.append(name)
        save_state(path, step=len(done), extra={"models": done}, torch_rng=False)
        ctx.record_checkpoint(path, len(done))

    return on_model


# -- classifier.unlearn.<method> ------------------------------------------------------------------


def _method_config(ctx: JobContext) -> Any:
    from backends.classifier.methods import get_method

    info = get_method(ctx.spec.method)
    names = {f.name for f in dataclasses.fields(info.config)}
    return {k: v for k, v in dataclasses.asdict(ctx.config).items() if k in names}


def run_unlearn(ctx: JobContext) -> dict[str, float]:
    """One method on one forget set, scored against the retrained model by the chosen attacks.

    The family's part of :func:`~backends.common.unlearn_job.run_unlearn_job`: loading builds the
    set-up and the baseline (the original and the retrained model: the project's model cache, or
    deterministic retraining with the run's seed, so a resumed run is the same run); the method
    edits a copy of the original (the attacks compare both); its epochs are checkpointed every
    ``checkpoint_every`` epochs and a resumed run continues after the last saved one."""
    _check_inputs(ctx)
    from backends.classifier.attacks.metrics import per_class
    from backends.common.unlearn_job import UnlearnSteps, run_unlearn_job

    method = ctx.spec.method
    setup_cfg = ctx.part(SetupConfig)
    eval_cfg = ctx.part(EvaluationConfig)
    info, method_cfg = method_config(method, _method_config(ctx))
    unlearn, _ = method_runner(method)
    cache = _cache(ctx)
    loaded: dict[str, Any] = {}

    def load() -> tuple[Any, Any]:
        setup = build_setup(setup_cfg, ctx.dataset, _model_path(ctx))
        ctx.set_device(str(setup.device))
        _log_setup(ctx, setup)
        ctx.progress(0.02, text="original and retrained models")
        loaded["setup"] = setup
        loaded["base"] = baseline(
            setup,
            setup_cfg,
            _model_path(ctx),
            ctx.seed,
            cache,
            ctx.check,
            allow_pickle=_allows_pickle(ctx),
        )
        return loaded["base"].original, setup

    def before(_model: Any) -> Any:
        if ctx.resume is not None:
            ctx.log(f"{method}: continuing after epoch {ctx.resume.step} of the unlearning")
        return loaded["base"]

    def after(model: Any, base: Any, _result: Any, seconds: float) -> Evaluation:
        def unlearn_shadow(m: Any, shadow_setup: Any, seed: int) -> Any:
            return unlearn(m, shadow_setup, method_cfg, seed=seed, check=ctx.check)

        attack_ctx = AttackContext(loaded["setup"], base, eval_cfg, ctx.seed, cache, ctx.check)
        ev = evaluate(method, model, attack_ctx, unlearn_shadow)
        ev.metrics["seconds"] = seconds
        ctx.metrics(ev.metrics)
        return ev

    def save(model: Any) -> None:
        meta = {
            "arch": setup_cfg.arch,
            "method": method,
            "method_config": dataclasses.asdict(method_cfg),
            "setup": loaded["setup"].describe(),
            "source_config": dataclasses.asdict(ctx.config),
        }
        save_model(ctx, model, f"{method}-run{ctx.run_id}", meta)

    def artifacts(base: Any, ev: Evaluation) -> None:
        _single_artifacts(ctx, loaded["setup"], base, method, ev, per_class)

    steps = UnlearnSteps(
        load,
        before,
        after,
        save,
        artifacts,
        working=copy.deepcopy,
        measuring="the original and retrained models",
    )
    every = ctx.part(UnlearnCheckpointConfig).checkpoint_every
    return run_unlearn_job(
        ctx, steps, info, method_cfg, checkpoint_every=every, checkpoint_file="unlearn.safetensors"
    )


def _single_artifacts(
    ctx: JobContext, setup: Any, base: Any, method: str, ev: Evaluation, per_class: Any
) -> None:
    from backends.classifier.attacks.metrics import forget_distribution

    ctx.artifact(
        "per-class accuracy",
        _bars(
            setup,
            {
                "original": per_class(base.original, setup),
                method: ev.per_class,
                "retrained": per_class(base.retrained, setup),
            },
            "Per-class test accuracy: original / unlearned / retrained",
            "accuracy",
        ),
    )
    ctx.artifact(
        "forget-class outputs",
        _bars(
            setup,
            {
                method: ev.forget_distribution,
                "retrained": forget_distribution(base.retrained, setup),
            },
            "Where the forget inputs' probability goes: unlearned vs retrained",
            "mean probability",
        ),
    )
    if ev.rocs:
        ctx.artifact(
            "roc", _roc_artifact(ev.rocs, f"Attacks on {method} (positives: forget examples)")
        )
    rows = [[k, round(v, 4)] for k, v in sorted(ev.metrics.items())]
    ctx.artifact("metrics", Table(["metric", "value"], rows, title=f"{method} vs retrain"))
    if ev.notes:
        ctx.artifact("attacks not run", Text("\n\n".join(ev.notes.values())))
        for note in ev.notes.values():
            ctx.log(note)
    if ev.probes is not None:
        _probe_artifact(ctx, ev, setup)


def _probe_artifact(ctx: JobContext, ev: Evaluation, setup: Any) -> None:
    from backends.classifier.attacks.apollo import probe_grid

    trace, x = ev.probes
    lo, hi = float(setup.x.min()), float(setup.x.max())
    try:
        grid: ImageGrid = probe_grid(
            trace, x, list(range(min(4, trace.n_targets))), setup.data.class_names, (lo, hi)
        )
    except Exception as exc:  # a view must not fail a finished experiment
        ctx.log(f"could not draw Apollo probes: {exc}", level="warning")
        return
    ctx.artifact("apollo probes", grid)


# -- classifier.compare -----------------------------------------------------------------------


def run_compare(ctx: JobContext) -> dict[str, float]:
    """Retrain + every method over N seeds, each attacked; the gap-to-retrain table and plots.

    Resumable by unit: after each (seed, model) unit is evaluated its metrics are recorded and
    its :class:`Evaluation` joins the checkpoint (step = units done), so a resumed run keeps the
    finished units and runs only the others (a seed's baseline is rebuilt from the cache)."""
    from backends.common.checkpoint import load_state, save_state

    cfg: CompareConfig = ctx.config
    _check_inputs(ctx)
    setup_cfg = ctx.part(SetupConfig)
    eval_cfg = ctx.part(EvaluationConfig)
    overrides = parse_overrides(cfg.method_overrides, cfg.methods)
    # validates every method name and override up front, before anything trains
    runners = {m: method_runner(m, overrides.get(m)) for m in cfg.methods}
    for m, (_, mcfg) in runners.items():
        ctx.log(f"{m}: {dataclasses.asdict(mcfg)}")
    cache = _cache(ctx)
    setup = build_setup(setup_cfg, ctx.dataset, _model_path(ctx))
    ctx.set_device(str(setup.device))
    _log_setup(ctx, setup)
    names = ["original", "retrain", *cfg.methods]
    units = [(s, name) for s in range(cfg.seeds) for name in names]
    done: dict[tuple[int, str], Evaluation] = {}
    saved_tensors: dict[str, Any] = {}
    saved_units: dict[str, Any] = {}
    if ctx.resume is not None:
        state = load_state(ctx.resume.path, torch_rng=False)
        saved_tensors, saved_units = dict(state.tensors), dict(state.extra.get("units", {}))
        for key, extra in saved_units.items():
            s, _, name = key.partition(":")
            done[(int(s), name)] = evaluation_from_state(saved_tensors, extra, f"u{key}")
        ctx.log(f"resuming the comparison: {len(done)} of {len(units)} (seed, model) units kept")
    path = ctx.checkpoint_dir / "compare.safetensors"
    for s in range(cfg.seeds):
        seed = ctx.seed + s
        if all((s, name) in done for name in names):
            continue
        seed_everything(seed)
        ctx.progress(len(done), len(units), f"seed {seed}: original and retrained models")
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
        for name in names:
            if (s, name) in done:
                continue
            ctx.check()
            ctx.progress(len(done), len(units), f"seed {seed}: {name}")
            t0 = time.perf_counter()
            if name == "original":
                model, shadow_fn = base.original, _identity
            elif name == "retrain":
                model, shadow_fn = base.retrained, None
            else:
                unlearn, mcfg = runners[name]
                model = unlearn(base.original, setup, mcfg, seed=seed, check=ctx.check)

                def shadow_fn(m: Any, ss: Any, sd: int, _u: Any = unlearn, _c: Any = mcfg) -> Any:
                    return _u(m, ss, _c, seed=sd, check=ctx.check)

            seconds = time.perf_counter() - t0
            ev = evaluate(name, model, attack_ctx, shadow_fn)
            ev.metrics["seconds"] = seconds
            ctx.metrics({f"{name}/{k}": v for k, v in ev.metrics.items()}, step=s)
            if s == 0 and name == "trw" and ev.probes is not None:
                _probe_artifact(ctx, ev, setup)  # now: the checkpoint does not keep probes
            done[(s, name)] = ev
            key = f"{s}:{name}"
            tensors, saved_units[key] = evaluation_state(ev, f"u{key}")
            saved_tensors.update(tensors)
            save_state(
                path,
                step=len(done),
                tensors=saved_tensors,
                extra={"units": saved_units},
                torch_rng=False,
            )
            ctx.record_checkpoint(path, len(done))
        ctx.log(f"seed {seed} done; cache hits {cache.hits}, trained {cache.misses}")
    rows = {n: [done[(s, n)].metrics for s in range(cfg.seeds)] for n in names}
    evals = {n: [done[(s, n)] for s in range(cfg.seeds)] for n in names}
    first = {n: done[(0, n)] for n in names}
    estimates = column_estimates(evals, cfg.n_bootstrap)
    table = _summary_table(rows, cfg.seeds, estimates)
    ctx.artifact("gap-to-retrain table", table)
    ctx.artifact("verdicts", _verdict_table(estimates))
    notes = {k: v for ev in first.values() for k, v in ev.notes.items()}
    if notes:
        ctx.artifact("attacks not run", Text("\n\n".join(notes.values())))
        for note in notes.values():
            ctx.log(note)
    _compare_artifacts(ctx, setup, first, cfg)
    return {}


def parse_overrides(items: list[str], methods: list[str]) -> dict[str, dict[str, str]]:
    """``["ga.lr=0.003", ...]`` as ``{"ga": {"lr": "0.003"}}`` (values are validated, and
    converted, by the method's config)."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, field = key.strip().partition(".")
        if not sep or not dot or not field:
            raise ValueError(f"method override {item!r} is not of the form method.field=value")
        if method not in methods:
            raise ValueError(
                f"method override {item!r} names {method!r}, which is not among the compared "
                f"methods ({', '.join(methods)})"
            )
        out.setdefault(method, {})[field.strip()] = value.strip()
    return out


def _identity(model: Any, setup: Any, seed: int) -> Any:
    """'Unlearning' that changes nothing: the original model's shadows keep their members."""
    return model


def _fast_auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """ROC AUC (ties count one half) of each row of ``pos (B, P)`` against ``neg (B, Q)``, by the
    Mann-Whitney rank sum; equal to ``sklearn.metrics.roc_auc_score`` row by row."""
    from scipy.stats import rankdata

    both = np.concatenate([pos, neg], axis=1)
    ranks = rankdata(both, axis=1)[:, : pos.shape[1]]
    p, q = pos.shape[1], neg.shape[1]
    return (ranks.sum(1) - p * (p + 1) / 2) / (p * q)


def seed_mean_auc(
    pairs: list[tuple[np.ndarray, np.ndarray]], n_bootstrap: int = 1000, seed: int = 0
) -> Any:
    """Mean over seeds of the ROC AUC of (members, non-members) score pairs, with a stratified
    percentile-bootstrap 95% interval (each seed's members and non-members resampled separately,
    as ``stats.bootstrap_auc`` does for one seed, then the seed AUCs averaged per replicate).  The
    interval is over examples given the trained models, not over training seeds."""
    from backends.common.stats import Estimate

    rng = np.random.default_rng(seed)
    point, reps = [], np.zeros(n_bootstrap)
    for pos, neg in pairs:
        pos, neg = np.asarray(pos, dtype=float), np.asarray(neg, dtype=float)
        point.append(float(_fast_auc(pos[None], neg[None])[0]))
        p = pos[rng.integers(0, len(pos), (n_bootstrap, len(pos)))]
        q = neg[rng.integers(0, len(neg), (n_bootstrap, len(neg)))]
        reps += _fast_auc(p, q) / len(pairs)
    lo, hi = np.quantile(reps, [0.025, 0.975])
    n = sum(len(p) + len(q) for p, q in pairs)
    return Estimate(float(np.mean(point)), float(lo), float(hi), n)


def column_estimate(column: str, runs: list[Evaluation], n_bootstrap: int = 1000) -> Any:
    """The 95% interval estimate of one comparison column over a model's seeds, or ``None``
    where the column is not an AUC, a rate or the MIA-NN gap (or was not measured).  With one
    seed it is the interval the run recorded (``<column>_low`` / ``_high``)."""
    from backends.classifier.experiment import gap_estimate
    from backends.common.stats import Estimate, rate

    if column in AUC_COLUMNS:
        have = [ev for ev in runs if column[:-4] in ev.scores]
        if len(have) == 1 and f"{column}_low" in have[0].metrics:
            m = have[0].metrics
            n = sum(len(v) for v in have[0].scores[column[:-4]])
            return Estimate(m[column], m[f"{column}_low"], m[f"{column}_high"], n)
        pairs = [ev.scores[column[:-4]] for ev in have]
        return seed_mean_auc(pairs, n_bootstrap) if pairs else None
    if column in RATE_COLUMNS:
        counts = [ev.counts[column] for ev in runs if column in ev.counts]
        if not counts:
            return None
        return rate(sum(k for k, _ in counts), sum(n for _, n in counts))
    if column == "mia_nn_gap":
        pairs = [ev.paired[column] for ev in runs if column in ev.paired]
        if not pairs:
            return None
        if len(pairs) == 1:
            return gap_estimate(*pairs[0], n_bootstrap)
        return seed_mean_gap(pairs, n_bootstrap)
    return None


def seed_mean_gap(
    pairs: list[tuple[np.ndarray, np.ndarray]], n_bootstrap: int = 1000, seed: int = 0
) -> Any:
    """Mean over seeds of the MIA-NN gap |mean(a_s) - mean(b_s)| (paired 0/1 calls per seed),
    with a percentile-bootstrap 95% interval (each seed's examples resampled in pairs, the seed
    gaps averaged per replicate).  Gaps are averaged, never the signed differences: the side of
    the retrained model's Acc_cnn on which a model lands changes between seeds (the original's
    Acc_8 was 0.95, 0.0, 0.0 on seeds 0-2), and pooled signed differences cancel."""
    from backends.common.stats import Estimate

    rng = np.random.default_rng(seed)
    point, reps = [], np.zeros(n_bootstrap)
    for a, b in pairs:
        d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
        point.append(abs(d.mean()))
        reps += np.abs(d[rng.integers(0, len(d), (n_bootstrap, len(d)))].mean(1)) / len(pairs)
    lo, hi = np.quantile(reps, [0.025, 0.975])
    return Estimate(float(np.mean(point)), float(lo), float(hi), sum(len(a) for a, _ in pairs))


def column_estimates(
    evals: dict[str, list[Evaluation]], n_bootstrap: int = 1000
) -> dict[str, dict[str, Any]]:
    """``{model: {column: Estimate}}`` for every column that has an interval (computed once, read
    by the summary and the verdict tables)."""
    out: dict[str, dict[str, Any]] = {}
    for name, runs in evals.items():
        out[name] = {}
        for c in SUMMARY_COLUMNS:
            est = column_estimate(c, runs, n_bootstrap)
            if est is not None:
                out[name][c] = est
    return out


def _summary_table(
    rows: dict[str, list[dict[str, float]]],
    seeds: int,
    estimates: dict[str, dict[str, Any]] | None = None,
) -> Table:
    """One row per model.  AUCs, rates and the MIA-NN gap: "value [low, high]", the 95% interval
    (bootstrap over the attacked examples for AUCs and the gap, averaged over seeds; exact
    binomial for rates, counts pooled over seeds); other measures: "mean ± std" over seeds."""
    present = [c for c in SUMMARY_COLUMNS if any(c in r for rs in rows.values() for r in rs)]
    out = []
    for name, runs in rows.items():
        row: list[Any] = [name]
        for c in present:
            est = (estimates or {}).get(name, {}).get(c)
            if est is not None:
                row.append(f"{est.value:.3f} [{est.low:.3f}, {est.high:.3f}]")
                continue
            vals = np.array([r.get(c, np.nan) for r in runs], dtype=float)
            finite = vals[np.isfinite(vals)]
            row.append(f"{finite.mean():.3f} ± {finite.std():.3f}" if finite.size else "n/a")
        out.append(row)
    return Table(
        ["method", *present],
        out,
        title=(
            f"{seeds} seed(s). AUCs, accuracies, MIA-efficacy and the MIA-NN gap: value "
            "[95% interval] (AUCs and gap: bootstrap over attacked examples, averaged over "
            "seeds; rates: exact binomial, counts pooled over seeds); others: mean ± std over "
            "seeds. Gaps and TV are to the retrained model; the retrain row's MIA-NN gap is to a "
            "second retrained model (the noise floor)."
        ),
    )


def _verdict_table(estimates: dict[str, dict[str, Any]]) -> Table:
    """Per method and measure: does it differ from the retrain row, held only when the two 95%
    intervals do not overlap (``stats.held``)?  For the MIA-NN gap the retrain row is the noise
    floor (two retrained models); for the AUCs, "higher" means the attack tells the method's
    forget examples from never-trained ones better than it does for the retrained model."""
    from backends.common.stats import held

    if "retrain" not in estimates:
        return Table(["method"], [], title="no retrain row to compare with")
    ref = estimates["retrain"]
    columns = [c for c in VERDICT_COLUMNS if c in ref]
    rows = []
    for name, ests in estimates.items():
        if name == "retrain":
            continue
        row: list[Any] = [name]
        for c in columns:
            est = ests.get(c)
            if est is None:
                row.append("n/a")
                continue
            side = "greater" if est.value >= ref[c].value else "less"
            word = "higher" if side == "greater" else "lower"
            row.append(f"{word}: {held(est, ref[c], direction=side)}")
        rows.append(row)
    return Table(
        ["method", *columns],
        rows,
        title=(
            "Against the retrain row: higher / lower, held only when the 95% intervals do not "
            "overlap"
        ),
    )


def _compare_artifacts(
    ctx: JobContext, setup: Any, first: dict[str, Evaluation], cfg: CompareConfig
) -> None:
    labels = _class_labels(setup)
    names = list(first)

    def per_model(rows: list[np.ndarray], title: str, x_title: str) -> Heatmap:
        """One row per model of the first seed over the classes, values in [0, 1]."""
        return Heatmap(
            np.nan_to_num(np.stack(rows)),
            x_labels=labels,
            y_labels=names,
            title=title,
            x_title=x_title,
            y_title="model",
            vmin=0.0,
            vmax=1.0,
        )

    ctx.artifact(
        "per-class accuracy",
        per_model(
            [first[n].per_class for n in names], "Per-class test accuracy (first seed)", "class"
        ),
    )
    ctx.artifact(
        "forget-class outputs",
        per_model(
            [first[n].forget_distribution for n in names],
            "Where the forget inputs' probability goes (first seed)",
            "predicted class",
        ),
    )
    shown = [n for n in ("retrain", "trw", "rwft", "ft", "ga", "rl") if n in first]
    ctx.artifact(
        "forget-class outputs (bars)",
        _bars(
            setup,
            {n: first[n].forget_distribution for n in shown},
            "Forget-class outputs: retrained vs methods (first seed)",
            "mean probability",
        ),
    )
    for attack in ("ulira", "apollo", "umia"):
        rocs = {n: ev.rocs[attack] for n, ev in first.items() if attack in ev.rocs}
        if rocs:
            ctx.artifact(
                f"{attack} roc", _roc_artifact(rocs, f"{attack} ROC per method (first seed)")
            )
    ctx.artifact(
        "about",
        Text(
            f"Compared {', '.join(cfg.methods)} against retraining over {cfg.seeds} seed(s).\n"
            f"Forget set: {setup.forget_set.describe()}. Attacks: {', '.join(cfg.attacks)}.\n"
            "Metrics per seed are recorded as <method>/<metric> at step = seed index."
        ),
    )
