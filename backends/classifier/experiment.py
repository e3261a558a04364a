"""Classifier unlearning experiments: set-up from a job config, per-method evaluation, the jobs.

Jobs (registered in :mod:`backends.classifier.plugin`):

- ``classifier.retrain``: retrain from scratch on the retain set (the gold standard);
- ``classifier.unlearn.<method>``: one method on one forget set, scored against the retrained
  model by every chosen attack;
- ``classifier.compare``: retrain plus every chosen method over N seeds, each attacked; the
  gap-to-retrain table (mean and std over seeds) and the plots.

The expensive parts (original model, retrained model, MIA-NN references, shadows) are cached in the
project (:mod:`backends.classifier.references`), so the same request never trains twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from backends.classifier.data import (
    Split,
    load_dataset,
    load_split_json,
    make_forget_set,
    processor_fn,
    stratified_split,
)
from backends.classifier.ensemble import Ensemble, train_ensemble
from backends.classifier.jobconfigs import EvaluationConfig, SetupConfig
from backends.classifier.models import (
    build_model,
    check_label_count,
    load_classifier,
    model_factory,
    model_kind,
    save_any,
)
from backends.classifier.references import (
    ModelCache,
    recipe_key,
    references,
    retrain,
    train_original,
)
from backends.classifier.setup import ClassifierSetup
from backends.classifier.shadows import ShadowBank
from backends.classifier.training import TrainSpec
from backends.common.devices import resolve_device, resolve_dtype
from backends.common.method import Check, Log

if TYPE_CHECKING:
    from workbench.jobs import JobContext

# -- set-up ---------------------------------------------------------------------------------------


def build_setup(cfg: SetupConfig, dataset: Any, model_path: Path | None) -> ClassifierSetup:
    """Data, split and forget set from a job config (``dataset``: the engine's resolved ref)."""
    device = resolve_device(cfg.device)
    name = dataset.name if dataset is not None else "digits"
    path = str(dataset.path) if dataset is not None and dataset.path else None
    # a Hugging Face model's own image processor (resize, crop, normalise as its config says)
    processor = processor_fn(model_path) if model_path is not None else None
    data = load_dataset(
        name,
        path,
        kind=getattr(dataset, "kind", None),
        labels=cfg.cifar100_labels,
        processor=processor,
        image_size=cfg.image_size,
        grayscale=cfg.grayscale,
    )
    split_file = cfg.split_file
    if not split_file and model_path is not None and (model_path / "split.json").exists():
        recorded = json.loads((model_path / "split.json").read_text())
        if recorded.get("shadow"):
            split_file = str(model_path / "split.json")
    if split_file:
        split = load_split_json(split_file, len(data.y))
    elif model_path is not None and (model_path / "split.json").exists():
        # the model's own train/test split; the attacker's pool comes out of its test split
        recorded = load_split_json(model_path / "split.json", len(data.y))
        split = carve_shadow(recorded, data.y, cfg.shadow_fraction, cfg.split_seed)
    elif cfg.official_split and data.official_split is not None:
        # the dataset's own train/test split (CIFAR); the shadow pool comes out of its test part
        train, test = data.official_split
        official = Split(train=train, test=test, shadow=np.array([], dtype=np.int64))
        split = carve_shadow(official, data.y, cfg.shadow_fraction, cfg.split_seed)
    else:
        split = stratified_split(data.y, cfg.test_fraction, cfg.split_seed, cfg.shadow_fraction)
    forget = make_forget_set(
        data,
        split,
        kind=cfg.forget_kind,
        forget_class=cfg.forget_class,
        fraction=cfg.forget_fraction,
        seed=cfg.split_seed,
        indices_file=cfg.forget_indices_file,
    )
    return ClassifierSetup(data, split, forget, device, resolve_dtype(cfg.dtype))


def carve_shadow(split: Split, y: np.ndarray, shadow_fraction: float, seed: int) -> Split:
    """Move part of a test split into the shadow pool (never trained on, so still valid)."""
    from sklearn.model_selection import train_test_split

    if shadow_fraction <= 0 or len(split.shadow):
        return split
    share = min(0.5, shadow_fraction / (shadow_fraction + 0.2))
    test, shadow = train_test_split(
        split.test, test_size=share, random_state=seed, stratify=y[split.test]
    )
    return Split(train=split.train, test=np.sort(test), shadow=np.sort(shadow))


def train_spec(cfg: SetupConfig) -> TrainSpec:
    return TrainSpec(
        epochs=cfg.train_epochs,
        batch_size=cfg.train_batch_size,
        lr=cfg.train_lr,
        weight_decay=cfg.train_weight_decay,
    )


@dataclass
class Baseline:
    """The original model, the retrained one and how to build fresh copies of the architecture."""

    original: nn.Module
    retrained: nn.Module
    factory: Callable[[], nn.Module]
    recipe: dict[str, Any]
    spec: TrainSpec


def baseline(
    setup: ClassifierSetup,
    cfg: SetupConfig,
    model_path: Path | None,
    seed: int,
    cache: ModelCache,
    check: Callable[[], None] | None = None,
    on_model: Callable[[str], None] | None = None,
    *,
    allow_pickle: bool = False,
) -> Baseline:
    """The original (given, or trained by the recipe) and the model retrained without D_f;
    ``on_model("original")`` / ``on_model("retrained")`` is called as each is ready.
    ``allow_pickle``: the model was added with pickle loading allowed (read with
    ``torch.load(weights_only=True)``)."""
    spec = train_spec(cfg)
    if model_path is not None:
        original, meta = load_classifier(
            model_path, setup.device, setup.dtype, allow_pickle=allow_pickle
        )
        check_label_count(original, setup.num_classes, model_path.name, setup.data.name)
        factory = model_factory(original)
        recipe = {"model": str(model_path), **{k: v for k, v in meta.items() if k != "cache"}}
    else:
        recipe = recipe_key(cfg.arch, cfg.widths, spec)
        original = train_original(setup, cfg.arch, cfg.widths, spec, seed, cache, check)

        def factory() -> nn.Module:
            return build_model(cfg.arch, setup.data.image_shape, setup.num_classes, cfg.widths)

    if on_model is not None:
        on_model("original")
    retrained = retrain(setup, factory, recipe, spec, seed, cache, check)
    if on_model is not None:
        on_model("retrained")
    return Baseline(original, retrained, factory, recipe, spec)


# -- evaluation -----------------------------------------------------------------------------------


@dataclass
class AttackContext:
    """Everything the attacks share for one seed: references, shadows and their variants."""

    setup: ClassifierSetup
    base: Baseline
    cfg: EvaluationConfig
    seed: int
    cache: ModelCache
    check: Callable[[], None] | None = None
    _references: Ensemble | None = None
    _shadows: ShadowBank | None = None
    _retrained_shadows: Ensemble | None = None
    _second_retrained: nn.Module | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def wants(self, attack: str) -> bool:
        return attack in self.cfg.attacks

    @property
    def references(self) -> Ensemble:
        if self._references is None:
            t0 = time.perf_counter()
            self._references = references(
                self.setup,
                self.base.factory,
                self.base.recipe,
                self.base.spec,
                self.cfg.references,
                self.seed,
                self.cache,
                self.check,
            )
            self.timings["references_s"] = time.perf_counter() - t0
        return self._references

    @property
    def shadows(self) -> ShadowBank:
        if self._shadows is None:
            t0 = time.perf_counter()
            self._shadows = ShadowBank.build(
                self.setup,
                self.base.factory,
                self.base.recipe,
                self.base.spec,
                self.cfg.shadows,
                self.seed,
                self.cache,
                self.cfg.max_targets_per_side,
                self.check,
            )
            self.timings["shadows_s"] = time.perf_counter() - t0
        return self._shadows

    @property
    def second_retrained(self) -> nn.Module:
        """A second model retrained without the forget set, with another seed (``seed +
        cfg.floor_seed_offset``): the retrain row's MIA-NN partner, so that row shows the gap two
        exact unlearners have (the noise floor) instead of 0 by construction."""
        if self._second_retrained is None:
            self._second_retrained = retrain(
                self.setup,
                self.base.factory,
                self.base.recipe,
                self.base.spec,
                self.seed + self.cfg.floor_seed_offset,
                self.cache,
                self.check,
            )
        return self._second_retrained

    @property
    def retrained_shadows(self) -> Ensemble:
        """Each shadow retrained without its own forget examples (the exact 'retrain' method for
        the shadows, vectorised).  For sample unlearning those are its members among all attacked
        targets, so no retrained shadow ever saw a target: Apollo's reference models."""
        if self._retrained_shadows is None:
            bank = self.shadows
            keep = bank.membership.copy()
            for i in range(bank.k):
                forget = bank.shadow_setup(i).forget_idx
                keep[i, np.searchsorted(bank.population, forget)] = False
            x, y = self.setup.tensors(bank.population)
            key = "shadows-retrained-" + self.setup.fingerprint(
                "shadows-retrained-v2",
                self.base.recipe,
                self.base.spec.__dict__,
                bank.k,
                self.seed,
                self.cfg.max_targets_per_side,
            )
            self._retrained_shadows = self.cache.ensemble(
                key,
                lambda: train_ensemble(
                    self.base.factory, x, y, keep, self.base.spec, self.seed + 104729, self.check
                ),
                self.base.factory(),
                {"what": "retrained shadows", **self.base.recipe, "seed": self.seed},
                self.setup.device,
            )
        return self._retrained_shadows


@dataclass
class Evaluation:
    """What the attacks and metrics found for one model.

    Besides the scalar ``metrics`` it keeps what the intervals are computed from: ``scores``
    (per ROC attack: the members' and non-members' scores, for bootstrap AUC intervals),
    ``counts`` (per rate: successes and trials, for exact binomial intervals) and ``paired``
    (MIA-NN: per forget-class test example, the c_nn call under the model and under its
    reference).  ``notes`` say why an attack did not run.
    """

    metrics: dict[str, float]
    per_class: np.ndarray
    forget_distribution: np.ndarray
    rocs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    probes: Any = None  # (Apollo trace, the targets' inputs) for the probe view
    scores: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    paired: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add_scores(self, name: str, scores: np.ndarray, labels: np.ndarray, n_boot: int) -> None:
        """Keep an attack's scores and record its AUC's bootstrap 95% interval."""
        from backends.common.stats import bootstrap_auc

        s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
        self.scores[name] = (s[y], s[~y])
        est = bootstrap_auc(s[y], s[~y], n_bootstrap=n_boot)
        self.metrics[f"{name}_auc_low"], self.metrics[f"{name}_auc_high"] = est.low, est.high

    def add_rate(self, name: str, value: float, n: int) -> None:
        """Keep a rate measured on ``n`` examples, with its exact binomial 95% interval."""
        from backends.common.stats import rate

        k = round(value * n)
        self.counts[name] = (k, n)
        est = rate(k, n)
        self.metrics[f"{name}_low"], self.metrics[f"{name}_high"] = est.low, est.high


PAIR_FIELDS = ("rocs", "scores", "paired")  # dicts of (array, array)


def evaluation_state(ev: Evaluation, prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(tensors, extra)`` that :func:`evaluation_from_state` rebuilds ``ev`` from (a resumable
    comparison keeps its finished units in its checkpoint); the Apollo probes are not kept."""
    import torch

    tensors = {
        f"{prefix}.per_class": torch.from_numpy(np.asarray(ev.per_class, dtype=np.float64)),
        f"{prefix}.forget_distribution": torch.from_numpy(
            np.asarray(ev.forget_distribution, dtype=np.float64)
        ),
    }
    for what in PAIR_FIELDS:
        for name, pair in getattr(ev, what).items():
            for i, arr in enumerate(pair):
                tensors[f"{prefix}.{what}.{name}.{i}"] = torch.from_numpy(
                    np.asarray(arr, dtype=np.float64).copy()
                )
    extra = {
        "metrics": ev.metrics,
        "counts": {k: list(v) for k, v in ev.counts.items()},
        "notes": ev.notes,
        "pairs": {what: sorted(getattr(ev, what)) for what in PAIR_FIELDS},
    }
    return tensors, extra


def evaluation_from_state(
    tensors: dict[str, Any], extra: dict[str, Any], prefix: str
) -> Evaluation:
    """The :class:`Evaluation` that :func:`evaluation_state` saved under ``prefix``."""

    def array(key: str) -> np.ndarray:
        return tensors[f"{prefix}.{key}"].numpy()

    ev = Evaluation(
        {k: float(v) for k, v in extra["metrics"].items()},
        array("per_class"),
        array("forget_distribution"),
        counts={k: (int(v[0]), int(v[1])) for k, v in extra["counts"].items()},
        notes=dict(extra["notes"]),
    )
    for what in PAIR_FIELDS:
        target = getattr(ev, what)
        for name in extra["pairs"][what]:
            target[name] = (array(f"{what}.{name}.0"), array(f"{what}.{name}.1"))
    return ev


def evaluate(
    name: str,
    model: nn.Module,
    ctx: AttackContext,
    unlearn_shadow: Callable[[nn.Module, ClassifierSetup, int], nn.Module] | None,
) -> Evaluation:
    """Score ``model`` (the result of method ``name``) with the metrics and chosen attacks.

    ``unlearn_shadow`` runs the same method on a shadow (online U-LiRA and Apollo); ``None`` means
    the model is the retrained one, whose shadows are the vectorised retrained shadows.
    """
    from backends.classifier.attacks import metrics as M

    setup, base = ctx.setup, ctx.base
    values: dict[str, float] = dict(M.accuracy_report(model, setup))
    reference = M.accuracy_report(base.retrained, setup)
    for key, gap in M.gap_to(reference, values).items():
        values[f"gap_{key}"] = gap
    acc_keys = [k for k in ("forget_acc", "retain_acc", "test_acc") if k in values]
    values["avg_gap"] = float(np.mean([values[f"gap_{k}"] for k in acc_keys]))
    probe_idx = setup.forget_test_idx if setup.forget_class is not None else setup.forget_idx
    values["tv_to_retrain"] = M.tv_distance(model, base.retrained, setup.tensors(probe_idx)[0])
    evaluation = Evaluation(values, M.per_class(model, setup), M.forget_distribution(model, setup))
    sizes = {
        "forget_acc": len(setup.forget_idx),
        "retain_acc": len(setup.retain_idx),
        "test_acc": len(setup.test_idx),
    }
    for key, n in sizes.items():
        if key in values and n:
            evaluation.add_rate(key, values[key], n)
    for attack in ctx.cfg.attacks:
        if ctx.check is not None:
            ctx.check()
        t0 = time.perf_counter()
        ATTACKS[attack](name, model, ctx, unlearn_shadow, evaluation)
        values[f"{attack}_seconds"] = time.perf_counter() - t0
    return evaluation


def _svc_mia(name, model, ctx, unlearn_shadow, ev: Evaluation) -> None:
    from backends.classifier.attacks.svc_mia import svc_mia

    result = svc_mia(model, ctx.setup)
    ev.metrics.update(result.to_metrics("svc_mia_efficacy"))
    if "svc_mia_efficacy" in ev.metrics:
        ev.add_rate("svc_mia_efficacy", ev.metrics["svc_mia_efficacy"], result.n_forget)


def _umia(name, model, ctx, unlearn_shadow, ev: Evaluation) -> None:
    from backends.classifier.attacks.umia import umia

    result = umia(model, ctx.setup)
    ev.metrics.update(result.to_metrics("umia"))
    ev.rocs["umia"] = (result.roc.fpr, result.roc.tpr)
    ev.add_scores("umia", result.scores, result.labels, ctx.cfg.n_bootstrap)


def _mia_nn(name, model, ctx, unlearn_shadow, ev: Evaluation) -> None:
    from backends.classifier.attacks.mia_nn import mia_nn_gap

    if ctx.setup.forget_class is None:
        ev.notes["mia_nn"] = (
            "MIA-NN not run: it is a class-unlearning attack (spec 1.1); it reads where a "
            "forgotten class's inputs go, and this forget set is not a class."
        )
        return
    # the retrain row is scored against a second, independently trained retrained model: the
    # noise floor (the gap two exact unlearners show), not 0 by construction
    partner = ctx.second_retrained if unlearn_shadow is None else model
    result = mia_nn_gap(partner, ctx.base.retrained, ctx.references, ctx.setup)
    ev.metrics.update({f"mia_nn_{k}": float(v) for k, v in result.items() if np.isscalar(v)})
    a, b = np.asarray(result["calls_unlearned"]), np.asarray(result["calls_retrained"])
    ev.paired["mia_nn_gap"] = (a, b)
    gap = gap_estimate(a, b, ctx.cfg.n_bootstrap)
    ev.metrics["mia_nn_gap_low"], ev.metrics["mia_nn_gap_high"] = gap.low, gap.high


def gap_estimate(a: np.ndarray, b: np.ndarray, n_bootstrap: int = 1000) -> Any:
    """|mean(a) - mean(b)| of paired 0/1 calls, with the paired bootstrap 95% interval of the
    difference folded onto [0, inf) (an interval that straddles 0 starts at 0)."""
    from backends.common.stats import Estimate, bootstrap_mean

    diff = bootstrap_mean(
        np.asarray(a, dtype=float) - np.asarray(b, dtype=float), n_bootstrap=n_bootstrap
    )
    lo, hi = sorted((abs(diff.low), abs(diff.high)))
    if diff.low <= 0.0 <= diff.high:
        lo = 0.0
    return Estimate(abs(diff.value), lo, hi, diff.n, diff.confidence)


def _shadow_variant(name, ctx: AttackContext, unlearn_shadow) -> Ensemble:
    if unlearn_shadow is None:
        return ctx.retrained_shadows
    return ctx.shadows.unlearned(name, unlearn_shadow, ctx.seed, ctx.check)


def _ulira(name, model, ctx, unlearn_shadow, ev: Evaluation) -> None:
    from backends.classifier.attacks.roc import roc_result
    from backends.classifier.attacks.ulira import (
        lira_scores,
        logit_scaled_confidence,
        out_statistics,
    )
    from backends.classifier.training import predict_logits

    bank = ctx.shadows
    variant = _shadow_variant(name, ctx, unlearn_shadow)
    in_mask = bank.in_mask()
    stats = out_statistics(
        bank.stats(variant, logit_scaled_confidence),
        bank.stats(bank.ensemble, logit_scaled_confidence),
        in_mask,
        ctx.cfg.ulira_out,
    )
    x, y = ctx.setup.tensors(bank.targets)
    target_stat = np.asarray(logit_scaled_confidence(predict_logits(model, x), y))
    scores = lira_scores(target_stat, stats, in_mask)
    roc = roc_result(scores, bank.target_labels.astype(np.int64))
    ev.metrics.update(roc.to_metrics("ulira"))
    ev.rocs["ulira"] = (roc.fpr, roc.tpr)
    ev.add_scores("ulira", scores, bank.target_labels, ctx.cfg.n_bootstrap)


APOLLO_CLASS_NOTE = (
    "Apollo not run: it does not apply to class unlearning. Apollo asks, per sample, whether x "
    "was in the unlearned set or never trained on, by finding probes near x where the target "
    "still says y although models retrained without the forget set no longer do (Under), or "
    "drops y where they still say it (Over). Under class unlearning the never-trained "
    "examples it must contrast are the forgotten class's test examples: retrained references "
    "never predict that class for either side, and an unlearned target says y almost nowhere, "
    "so Under cannot fire and the AUC is 0.5 by construction (six methods at exactly 0.500 "
    "before this note). Whether a class is forgotten is MIA-NN's and U-LiRA's question here; "
    "run Apollo on a random or index forget set (docs/methods/classifier-attacks.md)."
)


def _apollo(name, model, ctx, unlearn_shadow, ev: Evaluation) -> None:
    """Apollo on sample unlearning (spec section 2; issue 9): the reference shadows are retrained
    without every attacked target, the oracle is the target's labels, scores go through the
    standard ROC, and the operating thresholds are picked on a held-out retrained shadow."""
    from backends.classifier.attacks.apollo import LabelOracle, apollo_attack, apollo_decide
    from backends.classifier.attacks.apollo_config import ApolloConfig

    if ctx.setup.forget_class is not None:
        ev.notes["apollo"] = APOLLO_CLASS_NOTE
        return
    bank = ctx.shadows
    cfg = ApolloConfig(mode=ctx.cfg.apollo_mode, n_bootstrap=ctx.cfg.n_bootstrap)
    x, y = ctx.setup.tensors(bank.targets)
    in_mask = bank.in_mask()
    retrained = ctx.retrained_shadows
    unlearned = _shadow_variant(name, ctx, unlearn_shadow) if cfg.mode == "online" else None
    # shadow 0 is held out as the null model that calibrates thresholds; it takes no part in
    # either attack run (neither its retrained nor its unlearned copy)
    keep = np.arange(1, bank.k) if cfg.calibrate else np.arange(bank.k)
    refs = retrained.subset(keep)
    un = unlearned.subset(keep) if unlearned is not None else None

    def run(oracle: LabelOracle) -> Any:
        return apollo_attack(
            oracle,
            x,
            y,
            un,
            refs,
            in_mask[keep] if un is not None else None,
            None,
            cfg,
            check=ctx.check,
        )

    trace = run(LabelOracle(model))
    null = run(LabelOracle(retrained.model(0))) if cfg.calibrate else None
    result = apollo_decide(trace, bank.target_labels, cfg, null_trace=null)
    ev.metrics.update(result.to_metrics("apollo"))
    ev.rocs["apollo"] = (result.roc.fpr, result.roc.tpr)
    ev.scores["apollo"] = (result.scores[result.is_member], result.scores[~result.is_member])
    ev.probes = (trace, x)


ATTACKS: dict[str, Callable[..., None]] = {
    "svc_mia": _svc_mia,
    "umia": _umia,
    "mia_nn": _mia_nn,
    "ulira": _ulira,
    "apollo": _apollo,
}


def method_config(method: str, overrides: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """A method's :class:`~backends.common.methods.MethodInfo` and its typed config (defaults
    plus ``overrides``, validated)."""
    from backends.classifier.methods import get_method
    from workbench.config import validate

    info = get_method(method)
    return info, validate(info.config, overrides or {}, job=method)


def method_runner(
    method: str, overrides: dict[str, Any] | None = None
) -> tuple[Callable[..., nn.Module], Any]:
    """``(run, cfg)``: ``run(model, setup, cfg, *, seed, check=None, log=None)`` returns an
    unlearned copy of ``model`` (kept unchanged, for comparisons); ``cfg`` is the method's typed
    config (defaults plus overrides)."""
    from backends.common.method import Hooks, unlearned_copy

    info, cfg = method_config(method, overrides)
    unlearn = info.load()

    def run(
        model: nn.Module,
        setup: ClassifierSetup,
        cfg: Any,
        *,
        seed: int,
        check: Check = None,
        log: Log = None,
    ) -> nn.Module:
        return unlearned_copy(unlearn, model, setup, cfg, Hooks(check, log), seed=seed)

    return run, cfg


def save_model(ctx: JobContext, model: nn.Module, name: str, meta: dict[str, Any]) -> Path:
    """Save a model into the project's models folder and register it (as its own kind: an
    unlearned CNN or Hugging Face model is registered as one)."""
    return ctx.save_model(
        name, lambda folder: save_any(model, folder, meta), kind=model_kind(model), meta=meta
    )


__all__ = [
    "APOLLO_CLASS_NOTE",
    "AttackContext",
    "Baseline",
    "Evaluation",
    "baseline",
    "build_setup",
    "evaluate",
    "evaluation_from_state",
    "evaluation_state",
    "gap_estimate",
    "method_config",
    "method_runner",
    "save_model",
]
