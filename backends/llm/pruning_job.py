"""The ``llm.influence_pruning`` job (spec section 4; config in :mod:`.pruning_config`).

"When unlearning is free" for a causal LM and its fact universe:

1. The forget set is an entity's (or a book's) facts; a fact's loss is the token-weighted mean
   NLL of its training texts (its sentences and its QA text, what the model trained on).
2. Validation set ``V``: ``validation_facts`` of the universe's never-trained facts, drawn with
   the run's seed (never trained on by the original or the retrained reference; the remaining
   never-trained facts are the MIAs' non-members, so nothing scored is ever used for scoring).
3. Each forget fact's score (:func:`backends.common.influence.gradient_scores`): ``grad_norm``,
   the norm of its loss gradient over every weight ("lowest gradients": a small gradient bounds
   the influence on any point); or ``less``, the mean over ``V`` of ``|cos(P g_z, P g_t)|`` with a
   seeded Gaussian projection ``P`` (LESS without Adam's preconditioner, which a saved model does
   not carry).  No Hessian estimator: the damped Hessian of a million weights is not cheap.
4. At each level the lowest-scoring facts are dropped (:func:`backends.common.pruning.prune`);
   the method (``llm.unlearn.<method>``'s own code, default config) unlearns the kept facts' texts
   from a copy of the original.  The retain texts are unchanged; the dropped facts are neither
   unlearned nor retained.
5. Quality on the FULL forget set, as ``llm.unlearn.*`` measures it (:func:`backends.llm.jobs.
   evaluate_lm`): forget QA recall, held-out-paraphrase recall, retain recall, retain perplexity,
   LOSS and Min-K% MIA AUCs; with ``privleak`` the retrained reference (the model trained without
   the forget set) gives ``gap_<measure>`` = unlearned minus retrained, and PrivLeak.  Cost: the
   method's optimiser steps (``hooks.check`` calls) and wall time; the scoring's time is reported
   apart.

Seeds vary the method's batch order (and LESS's projection); the model, the validation draw and
the evaluation sets are the run's, the same for every seed, so the intervals over seeds are those
of the method's randomness.  Quantile 0 is exactly the unpruned run (tested bit for bit).
"""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from backends.common.pruning import (
    StepCounter,
    curve_and_table,
    level_label,
    prune,
    saved_fraction,
)
from backends.llm.jobconfigs import LLMSetupConfig
from backends.llm.pruning_config import LLM_ESTIMATORS, LLMPruningConfig
from backends.llm.universe import Fact, FactSplit, Universe

if TYPE_CHECKING:
    from workbench.jobs import JobContext

VALIDATION_SEED = 7919  # the validation draw's seed offset from the run's seed
RATES = ("forget_recall", "paraphrase_recall", "retain_recall")
AUCS = ("loss_mia_auc", "min_k_mia_auc")
GAPS = ("gap_forget_recall", "gap_paraphrase_recall", "gap_loss_mia_auc")
QUALITY = (*RATES, "retain_perplexity", *AUCS, "privleak_min_k", *GAPS)
COMPUTE = ("saved_fraction", "saved_wall")


def fact_texts(universe: Universe, facts: Sequence[Fact]) -> list[list[str]]:
    """Each fact's training texts (its sentences, then its QA text)."""
    return [universe.training_texts([f]) for f in facts]


def fact_gradients(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[Sequence[str]],
    *,
    max_length: int = 256,
    check: Callable[[], None] | None = None,
) -> torch.Tensor:
    """``(n, d)``: the gradient over every trainable weight of each item's loss, the
    token-weighted mean NLL of its texts (the methods' :func:`~backends.llm.methods.common.
    mean_nll`), float32 on the CPU."""
    from backends.common.method import model_device
    from backends.llm.methods.common import TextSet, mean_nll

    params = [p for p in model.parameters() if p.requires_grad]
    device = model_device(model)
    model.eval()
    rows = []
    for item in texts:
        if check is not None:
            check()
        batch = TextSet(tokenizer, list(item), max_length, device).batch(range(len(item)))
        with torch.enable_grad():
            loss = mean_nll(model, batch)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    (g if g is not None else torch.zeros_like(p)).reshape(-1).float().cpu()
                    for g, p in zip(grads, params, strict=True)
                ]
            )
        )
    return torch.stack(rows)


def score_facts(
    estimator: str,
    forget_grads: torch.Tensor,
    val_grads: torch.Tensor,
    *,
    less_dim: int,
    seed: int,
) -> np.ndarray:
    """Each forget fact's influence score under ``estimator`` (grad_norm or less)."""
    from backends.common.influence import gradient_scores

    if estimator not in LLM_ESTIMATORS:
        raise ValueError(
            f"unknown LLM influence estimator {estimator!r}; known: {', '.join(LLM_ESTIMATORS)}"
        )
    return gradient_scores(estimator, forget_grads, val_grads, less_dim=less_dim, seed=seed)


def validation_split(
    split: FactSplit, n_validation: int, seed: int
) -> tuple[list[Fact], FactSplit]:
    """``(V, evaluation split)``: ``n_validation`` never-trained facts drawn with ``seed`` as the
    validation set, and the split whose non-members are the other never-trained facts."""
    pool = list(split.never_trained)
    if n_validation >= len(pool):
        raise ValueError(
            f"validation_facts ({n_validation}) must leave never-trained facts for the MIAs' "
            f"non-members; the universe has {len(pool)}: lower validation_facts"
        )
    chosen = set(random.Random(seed + VALIDATION_SEED).sample(range(len(pool)), n_validation))
    val = [f for i, f in enumerate(pool) if i in chosen]
    rest = [f for i, f in enumerate(pool) if i not in chosen]
    return val, dataclasses.replace(split, never_trained=rest)


def kept_texts(universe: Universe, split: FactSplit, keep: np.ndarray) -> list[str]:
    """The training texts of the kept forget facts, in the forget set's order (with every fact
    kept: exactly ``universe.training_texts(split.forget)``)."""
    return universe.training_texts([f for f, k in zip(split.forget, keep, strict=True) if k])


def unlearn_reduced(
    method: str,
    model: nn.Module,
    tokenizer: Any,
    forget_texts: list[str],
    retain_texts: list[str],
    cfg: Any,
    *,
    seed: int,
    setup: LLMSetupConfig,
    check: Callable[[], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> nn.Module:
    """``method`` (``llm.unlearn.<method>``'s code) on a copy of ``model`` (kept unchanged)."""
    from backends.common.lora import LoraSpec, add_lora, merge_lora
    from backends.common.method import Hooks
    from backends.llm.methods import get_method
    from backends.llm.methods.common import LLMData

    work = copy.deepcopy(model)
    if setup.use_lora:
        work = add_lora(work, LoraSpec(rank=setup.lora_rank))
    unlearn = get_method(method).load()
    unlearn(
        work,
        LLMData(tokenizer, forget_texts, retain_texts),
        cfg,
        Hooks(on_check=check, on_log=log),
        seed=seed,
    )
    return merge_lora(work) if setup.use_lora else work


def method_configs(pcfg: LLMPruningConfig) -> dict[str, Any]:
    """Each method's typed config: defaults plus ``method_overrides`` (validated)."""
    import yaml

    from backends.llm.methods import get_method
    from workbench.config import validate

    overrides: dict[str, dict[str, Any]] = {}
    for item in pcfg.method_overrides:
        key, sep, value = item.partition("=")
        name, dot, field = key.strip().partition(".")
        if not sep or not dot or not field:
            raise ValueError(f"method override {item!r} is not of the form method.field=value")
        if name not in pcfg.methods:
            raise ValueError(
                f"method override {item!r} names {name!r}, not one of the run's methods "
                f"({', '.join(pcfg.methods)})"
            )
        overrides.setdefault(name, {})[field.strip()] = yaml.safe_load(value.strip())
    return {m: validate(get_method(m).config, overrides.get(m, {}), job=m) for m in pcfg.methods}


def _gaps(m: dict[str, float], ref: dict[str, float]) -> dict[str, float]:
    out = {}
    for gap in GAPS:
        name = gap.removeprefix("gap_")
        if name in m and name in ref:
            out[gap] = m[name] - ref[name]
    return out


def summarise(
    method: str,
    levels: list[float],
    labels: list[str],
    rows: dict[str, list[dict[str, float]]],
    pcfg: LLMPruningConfig,
    setup: LLMSetupConfig,
) -> tuple[Any, Any]:
    """Per level, each measure's 95% interval: recalls pooled over seeds (k/n, exact binomial),
    the MIA AUCs' bootstrap intervals averaged over seeds, everything else bootstrapped over
    seeds; then :func:`~backends.common.pruning.curve_and_table`."""
    from backends.common.stats import Estimate, bootstrap_mean, rate

    def estimate(label: str, name: str) -> Any:
        got = [r for r in rows[label] if name in r and np.isfinite(r[name])]
        if not got:
            return None
        if name in RATES:
            hits = sum(round(r[name] * r[f"{name}_n"]) for r in got)
            return rate(hits, int(sum(r[f"{name}_n"] for r in got)), setup.confidence)
        if name in AUCS and all(f"{name}_low" in r for r in got):
            mean = lambda key: float(np.mean([r[key] for r in got]))  # noqa: E731
            return Estimate(
                mean(name), mean(f"{name}_low"), mean(f"{name}_high"), len(got), setup.confidence
            )
        return bootstrap_mean(
            [r[name] for r in got], n_bootstrap=setup.n_bootstrap, confidence=setup.confidence
        )

    quality = [q for q in QUALITY if any(q in r for r in rows[labels[0]])]
    ests = {label: {n: estimate(label, n) for n in (*quality, *COMPUTE)} for label in labels}
    kept = {label: float(np.mean([r["kept"] for r in rows[label]])) for label in labels}
    x_label = "quantile dropped" if pcfg.rule == "quantile" else "fraction of the maximum score"
    title = (
        f"{method}: compute saved and quality against the pruning level "
        f"({pcfg.estimator}, {pcfg.seeds} seed(s), 95% intervals)"
    )
    return curve_and_table(
        levels,
        labels,
        ests,
        kept,
        quality,
        COMPUTE,
        x_label=x_label,
        title=title,
        not_compared=(*GAPS, "privleak_min_k"),
    )


def run(ctx: JobContext) -> dict[str, float]:
    """The pruning sweep: influence of the forget facts, then every method at every level and
    seed; the influence histogram, a curve and a table per method."""
    from backends.common.influence import spearman
    from backends.common.seeding import seed_everything
    from backends.llm.jobs import _load, _split, _universe, evaluate_lm
    from workbench.artifacts import Text
    from workbench.influence_artifacts import InfluenceScores

    setup = ctx.part(LLMSetupConfig)
    pcfg = ctx.part(LLMPruningConfig)
    cfgs = method_configs(pcfg)
    loaded = _load(ctx, setup.device, setup.dtype)
    universe = _universe(ctx, loaded.path)
    split = _split(universe, setup.forget_kind, setup.forget_target, setup.hops)
    if len(split.forget) < 2:
        raise ValueError(
            f"the forget set {split.target!r} has {len(split.forget)} fact(s): nothing to prune; "
            "choose a larger forget set (hops, or a book)"
        )
    val, eval_split = validation_split(split, pcfg.validation_facts, ctx.seed)
    retain_texts = universe.training_texts(split.retain)
    model, tok = loaded.model, loaded.tokenizer
    ctx.log(
        f"forget {split.kind} {split.target!r}: {len(split.forget)} facts "
        f"({len(universe.training_texts(split.forget))} texts); {len(val)} never-trained facts "
        f"are V, {len(eval_split.never_trained)} the MIAs' non-members; methods "
        + ", ".join(f"{m} {c}" for m, c in cfgs.items())
    )

    ctx.status("influence of the forget facts")
    t0 = time.perf_counter()
    gz = fact_gradients(model, tok, fact_texts(universe, split.forget), check=ctx.check)
    gv = fact_gradients(model, tok, fact_texts(universe, val), check=ctx.check)
    grad_seconds = time.perf_counter() - t0
    scores_by_seed: list[np.ndarray] = []
    note = ""
    for s in range(pcfg.seeds):
        t1 = time.perf_counter()
        scores_by_seed.append(
            score_facts(pcfg.estimator, gz, gv, less_dim=pcfg.less_dim, seed=ctx.seed + s)
        )
        if s == 0:
            seconds = grad_seconds + time.perf_counter() - t1
            ctx.metrics({"influence_seconds": seconds, "parameters": float(gz.shape[1])})
            if pcfg.cross_check:
                other = next(e for e in LLM_ESTIMATORS if e != pcfg.estimator)
                alt = score_facts(other, gz, gv, less_dim=pcfg.less_dim, seed=ctx.seed)
                rho = spearman(alt, scores_by_seed[0])
                ctx.metrics({f"spearman_{other}": rho})
                note = f"Spearman rank correlation of {other} with {pcfg.estimator}: {rho:.3f}"
                ctx.log(note)
    del gz, gv

    ref: dict[str, float] = {}
    ref_scores: dict[str, Any] = {}
    if setup.privleak:
        from backends.llm.references import load_reference, retrained_reference

        ctx.status("the retrained reference")
        try:
            folder = retrained_reference(
                Path(loaded.path),
                split,
                ctx.project.root / "cache" / "llm",
                device=str(loaded.device),
                log=ctx.log,
            )
        except ValueError as exc:
            ctx.log(f"no retrained reference, no gaps: {exc}", level="warning")
        else:
            reference = load_reference(folder, str(loaded.device))
            ref, ref_scores = evaluate_lm(reference, tok, universe, eval_split, setup, ctx.seed)
            ctx.metrics({f"retrained/{k}": v for k, v in ref.items()})
            del reference

    levels = sorted({0.0, *pcfg.thresholds})
    labels = [level_label(pcfg.rule, v) for v in levels]
    total = len(pcfg.methods) * pcfg.seeds * len(levels)
    done = 0
    thresholds: dict[str, float] = {}
    for method, mcfg in cfgs.items():
        rows: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
        for s in range(pcfg.seeds):
            seed = ctx.seed + s
            base_cost: dict[str, float] = {}
            for value, label in zip(levels, labels, strict=True):
                ctx.progress(done, total, f"{method}, seed {seed}, {label}")
                done += 1
                pruned = prune(scores_by_seed[s], pcfg.rule, value)
                thresholds[label] = pruned.threshold
                texts = kept_texts(universe, split, pruned.keep)
                if not texts:
                    ctx.log(
                        f"{label}: every forget fact dropped; nothing to unlearn", level="warning"
                    )
                    continue
                seed_everything(seed)
                counter = StepCounter(ctx.check)
                t1 = time.perf_counter()
                unlearned = unlearn_reduced(
                    method, model, tok, texts, retain_texts, mcfg, seed=seed, setup=setup,
                    check=counter,
                )  # fmt: skip
                seconds = time.perf_counter() - t1
                m, sc = evaluate_lm(unlearned, tok, universe, eval_split, setup, ctx.seed)
                del unlearned
                if value == 0.0:
                    base_cost = {"steps": counter.calls, "seconds": seconds}
                m |= _gaps(m, ref)
                if ref_scores and "min_k" in sc:
                    from backends.llm.evaluation import privleak

                    leak = privleak(
                        sc["min_k"],
                        ref_scores["min_k"],
                        n_bootstrap=setup.n_bootstrap,
                        confidence=setup.confidence,
                        seed=seed,
                    )
                    m["privleak_min_k"] = leak.value
                m |= {
                    "kept": float(pruned.n_kept),
                    "steps": float(counter.calls),
                    "seconds": seconds,
                    "saved_fraction": saved_fraction(base_cost["steps"], counter.calls),
                    "saved_wall": saved_fraction(base_cost["seconds"], seconds),
                }
                ctx.metrics({f"{method}/{label}/{k}": v for k, v in m.items()}, step=s)
                ctx.log(
                    f"{method} seed {seed} {label}: kept {pruned.n_kept}/{len(split.forget)}, "
                    f"{counter.calls} steps, {seconds:.0f} s; forget recall "
                    f"{m.get('forget_recall', float('nan')):.3f}, paraphrase "
                    f"{m.get('paraphrase_recall', float('nan')):.3f}, retain "
                    f"{m.get('retain_recall', float('nan')):.3f}"
                )
                rows[label].append(m)
        curve, table = summarise(method, levels, labels, rows, pcfg, setup)
        ctx.artifact(f"compute vs quality ({method})", curve)
        ctx.artifact(f"pruning table ({method})", table)
    ctx.artifact(
        "influence scores",
        InfluenceScores(
            scores_by_seed[0],
            thresholds,
            pcfg.estimator,
            f"Influence of the {len(split.forget)} forget facts on {len(val)} never-trained "
            f"validation facts ({pcfg.estimator}; seed {ctx.seed})",
            note,
        ),
    )
    ctx.artifact(
        "about",
        Text(
            f"{', '.join(pcfg.methods)} on forget facts pruned by {pcfg.estimator} influence "
            f"({pcfg.rule}), {pcfg.seeds} seed(s). Quality is measured on the FULL forget set "
            "(forget and held-out-paraphrase recall, MIAs); gaps are to the model retrained "
            "without the forget set. 'equal quality' means every measure's 95% interval "
            "overlaps the unpruned run's (gaps and PrivLeak excepted; overlap is no proof of "
            "equality with few seeds)."
        ),
    )
    return {}
