"""Entry of the ``classifier.attack.<attack>`` jobs (see :mod:`backends.classifier.attack_config`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends.classifier.attack_config import HEADLINES
from backends.classifier.jobconfigs import EvaluationConfig, SetupConfig
from workbench.artifacts import Table
from workbench.config import validate

if TYPE_CHECKING:
    from workbench.jobs import JobContext


def _recorded(ctx: JobContext) -> dict[str, Any]:
    """The unlearned model's record: what made it (``source_config``, ``method``)."""
    model = ctx.model
    if model is None:
        raise ValueError("choose the model an unlearning run produced")
    row = ctx.project.model(model.name) if not model.builtin else None
    meta = dict((row or {}).get("meta") or model.meta or {})
    if "source_config" not in meta or "method" not in meta:
        raise ValueError(
            f"model {model.name} records no unlearning set-up (source_config, method); attack "
            "a model that a classifier.unlearn.<method> run produced"
        )
    meta["source_run"] = (row or {}).get("source_run")
    return meta


def _original_path(ctx: JobContext, source_run: int | None) -> Path | None:
    """The original model the unlearning run started from (``None``: it trained its own)."""
    if source_run is None:
        return None
    record = ctx.project.run(source_run)
    if not record.model:
        return None
    from workbench.catalog import Catalog

    ref = Catalog(ctx.project, ctx.engine.registry).resolve_model(record.model, "classifier")
    return ref.path


def run_attack(ctx: JobContext) -> dict[str, float]:
    """One attack on the unlearned model and on the retrained reference, as the unlearning
    run's evaluation runs it (same set-up, seed rules, cache and budgets)."""
    from backends.classifier.experiment import (
        AttackContext,
        baseline,
        build_setup,
        evaluate,
        method_runner,
    )
    from backends.classifier.jobs import _cache, _roc_artifact
    from backends.classifier.models import load_classifier
    from backends.common.seeding import seed_everything

    attack = ctx.spec.method
    meta = _recorded(ctx)
    source = meta["source_config"]
    setup_names = {f.name for f in dataclasses.fields(SetupConfig)}
    setup_cfg = validate(SetupConfig, {k: v for k, v in source.items() if k in setup_names})
    eval_cfg = EvaluationConfig(attacks=[attack], **dataclasses.asdict(ctx.config))
    seed_everything(ctx.seed)
    original_path = _original_path(ctx, meta["source_run"])
    setup = build_setup(setup_cfg, ctx.dataset, original_path)
    ctx.set_device(str(setup.device))
    ctx.progress(0.05, text="original and retrained models")
    cache = _cache(ctx)
    base = baseline(setup, setup_cfg, original_path, ctx.seed, cache, ctx.check)
    assert ctx.model is not None and ctx.model.path is not None
    model, _ = load_classifier(ctx.model.path, setup.device, setup.dtype)
    method = str(meta["method"])
    unlearn, method_cfg = method_runner(method, meta.get("method_config") or {})

    def unlearn_shadow(m: Any, shadow_setup: Any, seed: int) -> Any:
        return unlearn(m, shadow_setup, method_cfg, seed=seed, check=ctx.check)

    attack_ctx = AttackContext(setup, base, eval_cfg, ctx.seed, cache, ctx.check)
    ctx.progress(0.3, text=f"{attack} on the unlearned model")
    ev = evaluate(method, model, attack_ctx, unlearn_shadow)
    ctx.progress(0.7, text=f"{attack} on the retrained model")
    ref = evaluate("retrain", base.retrained, attack_ctx, None)
    ctx.metrics(ev.metrics)
    ctx.metrics({f"reference/{k}": v for k, v in ref.metrics.items()})
    for note in ev.notes.values():
        ctx.log(note)
    head = HEADLINES[attack].metric
    rows = [
        [name, _fmt(ev.metrics, name), _fmt(ref.metrics, name)]
        for name in (head, f"{head}_low", f"{head}_high")
    ]
    ctx.artifact(
        "headline",
        Table(
            ["metric", method, "retrained"],
            rows,
            title=f"{attack} on {ctx.model.name} (seed {ctx.seed}) and on the retrained model",
        ),
    )
    rocs = {method: ev.rocs[attack]} if attack in ev.rocs else {}
    if attack in ref.rocs:
        rocs["retrained"] = ref.rocs[attack]
    if rocs:
        ctx.artifact("roc", _roc_artifact(rocs, f"{attack}: unlearned vs retrained"))
    return {}


def _fmt(metrics: dict[str, float], name: str) -> Any:
    v = metrics.get(name)
    return None if v is None else round(float(v), 4)
