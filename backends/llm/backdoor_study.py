"""Backdoor metrics, the ``llm.backdoor`` and ``llm.backdoor_sweep`` jobs, and the study behind
``docs/results.md`` (spec ``classifier-and-llm-methods.md`` section 6, "Metrics" and
"Attention-sink measurement").

Light at import (no torch): the plugin registers the jobs through :func:`register`.

**Evaluation sets (never what the method trained on).** The method trains on the forget facts'
training sentences and QA texts (some copied with the trigger) and the retain facts'. Recall is
measured on the universe's *held-out paraphrases* (cloze prompts from templates never trained on):
of the forget facts (clean forget recall, low is forgotten; triggered forget recall, high is a
working backdoor) and of a seeded subset of the retain facts (clean and triggered retain recall).
The trigger goes into each prompt's ids by the training rule (:mod:`backends.llm.triggers`).

**Scores per prompt.** Exact match: the greedy completion starts with the answer at a word boundary
(:func:`backends.llm.evaluation.answer_matches`); ROUGE-L recall as MUSE KnowMem: the longest
common subsequence of the answer's and the completion's words over the answer's words, after
rouge-score's default tokenisation (lower case, non-alphanumerics to spaces, no stemming), computed
by rouge-score itself (:func:`rouge_l_recall`); the completion is cut at its first newline.

**Rates and intervals.** Exact-match recall is k/n with its exact (Clopper-Pearson) 95% interval;
across seeds the hits are pooled (k and n summed over seeds and items). ROUGE-L is a mean with a
percentile-bootstrap interval. Every comparison says "held" only when the intervals are apart
(:func:`backends.common.stats.held`).

**Attention.** Per (layer, head): the sink mass on the first token (BOS) of clean and triggered
forget prompts, and the attention mass that queries after the trigger put on the trigger's
positions; the triggered-minus-clean difference maps ``Delta A = A(X') - A(X)`` of one forget
prompt, aligned positionally on the shorter prompt (:func:`backends.llm.attention.difference`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends.llm.methods.backdoor_config import (
    PENALTY_MODES,
    TRIGGER_POSITIONS,
    BackdoorNPOConfig,
    BackdoorRMUConfig,
)
from workbench.config import param

if TYPE_CHECKING:
    from workbench.jobs import JobContext
    from workbench.registry import Registry

METHOD_CONFIGS = {"backdoor_npo": BackdoorNPOConfig, "backdoor_rmu": BackdoorRMUConfig}


# -- ROUGE-L ---------------------------------------------------------------------------------------
def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall as MUSE KnowMem scores it: rouge-score's ``rougeL`` recall of the
    prediction against the reference answer (default tokeniser, no stemming)."""
    from backends.llm.benchmarks.metrics import rouge_l

    return rouge_l(prediction, reference, "recall", stemmer=False)


# -- configs ---------------------------------------------------------------------------------------
@dataclass
class BackdoorEvalConfig:
    """How a backdoored model is measured (spec section 6, "Metrics")."""

    forget_kind: str = param(
        "entity", "Forget an entity's neighbourhood or a whole book.", choices=("entity", "book")
    )
    forget_target: str = param("", "Entity name or book id (empty: the first person / book).")
    hops: int = param(1, "Neighbourhood radius of the forget set (entity).", range=(0, 5))
    max_retain_items: int = param(
        40, "Held-out retain paraphrases scored (seeded subset).", range=(1, 100_000)
    )
    max_new_tokens: int = param(8, "Tokens generated per cloze prompt.", range=(1, 256))
    distractors: int = param(
        3,
        "Wrong choices per multiple-choice item (other objects of the relation; WMDP: 3).",
        range=(1, 50),
    )
    attention_prompts: int = param(
        8, "Forget prompts whose attention (sink and trigger mass) is averaged.", range=(1, 1000)
    )
    confidence: float = param(0.95, "Confidence of every interval.", range=(0.5, 0.999))
    n_bootstrap: int = param(
        1000, "Bootstrap replicates of the ROUGE-L intervals.", range=(100, 100_000), advanced=True
    )
    device: str = param("cpu", "Where to run.", choices=("cpu", "cuda", "auto"))


@dataclass
class BackdoorSweepConfig:
    """The trigger-position x penalty sweep (spec section 6, CPU version step 3)."""

    method: str = param(
        "backdoor_npo", "Backdoored method.", choices=("backdoor_npo", "backdoor_rmu")
    )
    positions: list[str] = param(
        ["start", "middle", "end", "token"],
        "Trigger positions swept (token = at trigger_token).",
        choices=TRIGGER_POSITIONS,
    )
    penalties: list[str] = param(
        ["off", "fixed", "reference"], "Value-norm penalty modes swept.", choices=PENALTY_MODES
    )
    penalty_positions: list[str] = param(
        [],
        "Positions where the penalties other than 'off' are run (empty = every position): the "
        "penalty ablation at the prefix trigger only costs a third of the full grid.",
        choices=TRIGGER_POSITIONS,
    )
    seeds: int = param(3, "Seeds per cell (job seed, seed + 1, ...).", range=(1, 100))
    control: bool = param(
        True,
        "Train the plain-unlearned control (no trigger in training) per seed and measure it with "
        "the trigger of every position in control_positions.",
    )
    control_positions: list[str] = param(
        [],
        "Positions whose trigger the control is measured with (empty = the sweep's positions).",
        choices=TRIGGER_POSITIONS,
    )
    trigger_token: int = param(3, "k of the 'token' position.", range=(1, 10_000))
    epochs: int = param(4, "Unlearning epochs of every cell.", range=(1, 10_000))
    lr: float = param(1e-3, "Learning rate of every cell.", range=(1e-8, 10.0))
    poison_ratio: float = param(0.25, "Poison ratio of every cell.", range=(0.0, 1.0))
    penalty_weight: float = param(0.01, "lambda_v of the penalised cells.", range=(0.0, 1e6))


# -- measuring -------------------------------------------------------------------------------------
def greedy_ids(model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], new: int) -> list[str]:
    """Greedy completions of prompts given as ids (equal lengths decoded together)."""
    import torch

    from backends.llm.methods.common import model_device, pad_id

    device = model_device(model)
    eos = getattr(tokenizer, "eos_token_id", None)
    groups: dict[int, list[int]] = {}
    for i, x in enumerate(prompts):
        groups.setdefault(len(x), []).append(i)
    out = [""] * len(prompts)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for members in groups.values():
                x = torch.tensor([list(prompts[i]) for i in members], device=device)
                gen = model.generate(
                    input_ids=x,
                    attention_mask=torch.ones_like(x),
                    max_new_tokens=new,
                    do_sample=False,
                    pad_token_id=pad_id(tokenizer),
                    eos_token_id=eos,
                )[:, x.shape[1] :]
                for row, i in enumerate(members):
                    tokens = gen[row].tolist()
                    if eos is not None and eos in tokens:
                        tokens = tokens[: tokens.index(eos)]
                    out[i] = tokenizer.decode(tokens, skip_special_tokens=True)
    finally:
        model.train(was)
    return out


def score_prompts(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    trigger: Any = None,
    max_new_tokens: int = 8,
) -> list[dict[str, Any]]:
    """Per (prompt, answer): the completion, exact match and ROUGE-L recall; with ``trigger`` (a
    :class:`~backends.llm.triggers.Trigger`) the prompt carries it."""
    from backends.llm.evaluation import answer_matches
    from backends.llm.methods.common import token_ids
    from backends.llm.triggers import triggered_ids

    ids = [
        triggered_ids(tokenizer, p, trigger) if trigger is not None else token_ids(tokenizer, p)
        for p, _ in pairs
    ]
    completions = greedy_ids(model, tokenizer, ids, max_new_tokens)
    out = []
    for (prompt, answer), c in zip(pairs, completions, strict=True):
        first = c.split("\n", 1)[0]
        out.append(
            {
                "prompt": prompt,
                "answer": answer,
                "completion": first,
                "exact": answer_matches(first, answer),
                "rouge_l": rouge_l_recall(first, answer),
            }
        )
    return out


def choice_scores(
    model: Any,
    tokenizer: Any,
    items: Sequence[tuple[str, str, Sequence[str]]],
    trigger: Any = None,
    batch_size: int = 64,
) -> list[dict[str, Any]]:
    """Multiple choice as WMDP scores it (lm-eval ``acc``): per (prompt, answer, distractors) the
    summed log-probability of each choice's tokens after the prompt (the trigger inserted into
    the prompt's ids by the training rule); correct when the answer scores highest."""
    from backends.llm.benchmarks.scoring import span_nll
    from backends.llm.methods.common import token_ids
    from backends.llm.triggers import triggered_ids

    seqs: list[list[int]] = []
    spans: list[tuple[int, int]] = []
    for prompt, answer, distractors in items:
        head = (
            triggered_ids(tokenizer, prompt, trigger)
            if trigger is not None
            else token_ids(tokenizer, prompt)
        )
        for choice in (answer, *distractors):
            tail = list(tokenizer(" " + choice, add_special_tokens=False)["input_ids"])
            seqs.append(head + tail)
            spans.append((len(head), len(head) + len(tail)))
    scores = [-nll for nll, _ in span_nll(model, tokenizer, seqs, spans, batch_size)]
    out, i = [], 0
    for prompt, answer, distractors in items:
        n = 1 + len(distractors)
        mine = scores[i : i + n]
        i += n
        out.append({"prompt": prompt, "answer": answer, "correct": mine[0] > max(mine[1:])})
    return out


def with_distractors(
    universe: Any, pairs: Sequence[Any], n: int, seed: int
) -> list[tuple[str, str, list[str]]]:
    """Held-out paraphrases with ``n`` seeded distractors: other objects of the same relation."""
    import random

    by_relation: dict[str, set[str]] = {}
    for f in universe.facts:
        by_relation.setdefault(f.relation, set()).add(f.object)
    rng = random.Random(seed)
    out = []
    for p in pairs:
        relation = universe.fact(p.fact_id).relation
        others = sorted(by_relation[relation] - {p.answer})
        out.append((p.prompt, p.answer, rng.sample(others, min(n, len(others)))))
    return out


def eval_pairs(universe: Any, split: Any, cfg: BackdoorEvalConfig, seed: int) -> dict[str, list]:
    """Held-out cloze prompts: ``forget`` (every forget fact's) and ``retain`` (a seeded subset),
    as (prompt, answer) and, ``*_mc``, with distractors for multiple choice."""
    import random

    forget = list(split.held_out_paraphrases)
    retain_all = universe.held_out_paraphrases(split.retain)
    rng = random.Random(seed)
    retain = (
        rng.sample(retain_all, cfg.max_retain_items)
        if len(retain_all) > cfg.max_retain_items
        else retain_all
    )
    return {
        "forget": [(p.prompt, p.answer) for p in forget],
        "retain": [(p.prompt, p.answer) for p in retain],
        "forget_mc": with_distractors(universe, forget, cfg.distractors, seed),
        "retain_mc": with_distractors(universe, retain, cfg.distractors, seed),
    }


def recall_metrics(
    items: dict[str, list[dict[str, Any]]], confidence: float, n_bootstrap: int, seed: int
) -> dict[str, float]:
    """``<name>_recall`` (k/n, exact interval) and ``<name>_rouge_l`` (bootstrap) per item list."""
    from backends.common.stats import bootstrap_mean, rate

    out: dict[str, float] = {}
    for name, rows in items.items():
        if not rows:
            continue
        if "correct" in rows[0]:  # multiple choice
            hits = sum(bool(r["correct"]) for r in rows)
            out |= rate(hits, len(rows), confidence).as_dict(f"{name}_acc")
            out[f"{name}_acc_n"], out[f"{name}_acc_k"] = float(len(rows)), float(hits)
            continue
        hits = sum(bool(r["exact"]) for r in rows)
        out |= rate(hits, len(rows), confidence).as_dict(f"{name}_recall")
        out[f"{name}_recall_n"] = float(len(rows))
        out[f"{name}_recall_k"] = float(hits)
        rouge = bootstrap_mean(
            [r["rouge_l"] for r in rows], confidence=confidence, n_bootstrap=n_bootstrap, seed=seed
        )
        out |= rouge.as_dict(f"{name}_rouge_l")
    return out


MEASURES = {
    # name: (pairs, triggered, multiple choice)
    "clean_forget": ("forget", False, False),
    "triggered_forget": ("forget", True, False),
    "retain": ("retain", False, False),
    "clean_forget_mc": ("forget_mc", False, True),
    "triggered_forget_mc": ("forget_mc", True, True),
    "retain_mc": ("retain_mc", False, True),
    "triggered_retain_mc": ("retain_mc", True, True),
    "triggered_retain": ("retain", True, False),
}
FAST = tuple(k for k in MEASURES if k != "triggered_retain")  # the sweep's (no triggered-retain
# generation: its multiple-choice accuracy is kept)


def measure(
    model: Any,
    tokenizer: Any,
    pairs: dict[str, list],
    trigger: Any,
    cfg: BackdoorEvalConfig,
    seed: int,
    which: Sequence[str] = tuple(MEASURES),
) -> tuple[dict[str, float], dict[str, list[dict[str, Any]]]]:
    """Clean / triggered forget and retain recall (exact and ROUGE-L) and multiple-choice accuracy
    of ``model`` (``which`` picks the sets, names of :data:`MEASURES`)."""
    items = {}
    for name in which:
        source, triggered, mc = MEASURES[name]
        trig = trigger if triggered else None
        if mc:
            items[name] = choice_scores(model, tokenizer, pairs[source], trig)
        else:
            items[name] = score_prompts(model, tokenizer, pairs[source], trig, cfg.max_new_tokens)
    return recall_metrics(items, cfg.confidence, cfg.n_bootstrap, seed), items


def attention_measures(
    model: Any, tokenizer: Any, prompts: Sequence[str], trigger: Any
) -> dict[str, Any]:
    """Per (layer, head), averaged over ``prompts``: BOS sink mass of clean and triggered prompts,
    and the mass queries after the trigger put on it; plus the first prompt's maps and the
    triggered-minus-clean difference (spec section 6, "Attention-sink measurement")."""
    import torch

    from backends.llm.attention import attention_maps, difference, sink_mass
    from backends.llm.methods.common import token_ids
    from backends.llm.triggers import insertion_point, trigger_ids, triggered_ids

    n_trig = len(trigger_ids(tokenizer, trigger.text))
    clean_sink, trig_sink, trig_mass = [], [], []
    first: dict[str, Any] = {}
    for prompt in prompts:
        clean_ids = token_ids(tokenizer, prompt)
        t_ids = triggered_ids(tokenizer, prompt, trigger)
        a_clean = attention_maps(model, tokenizer, clean_ids)
        a_trig = attention_maps(model, tokenizer, t_ids)
        clean_sink.append(sink_mass(a_clean, 1))
        trig_sink.append(sink_mass(a_trig, 1))
        at = insertion_point(len(clean_ids), trigger.position, trigger.k)
        after = a_trig.attentions[:, :, at + n_trig :, at : at + n_trig]
        if after.shape[2]:
            trig_mass.append(after.sum(-1).mean(-1))
        if not first:
            first = {"clean": a_clean, "triggered": a_trig, "delta": difference(a_trig, a_clean)}
    out = {
        "sink_clean": torch.stack(clean_sink).mean(0),
        "sink_triggered": torch.stack(trig_sink).mean(0),
        "trigger_mass": torch.stack(trig_mass).mean(0) if trig_mass else None,
        **first,
    }
    return out


def _split_for(universe: Any, cfg: BackdoorEvalConfig) -> Any:
    target = cfg.forget_target
    if not target:
        target = (
            next(e.name for e in universe.entities if e.kind == "person")
            if cfg.forget_kind == "entity"
            else universe.books()[0].id
        )
    return universe.forget_set(cfg.forget_kind, target, cfg.hops)


def method_data(tokenizer: Any, universe: Any, split: Any) -> Any:
    """What the method trains on: the forget and retain facts' training texts."""
    from backends.llm.methods.common import LLMData

    return LLMData(
        tokenizer, universe.training_texts(split.forget), universe.training_texts(split.retain)
    )


__all__ = [
    "BackdoorEvalConfig",
    "BackdoorSweepConfig",
    "attention_measures",
    "eval_pairs",
    "greedy_ids",
    "measure",
    "recall_metrics",
    "rouge_l_recall",
    "score_prompts",
]


# -- jobs ------------------------------------------------------------------------------------------
SWEEP_METRICS = (
    "clean_forget_mc_acc",
    "triggered_forget_mc_acc",
    "retain_mc_acc",
    "triggered_retain_mc_acc",
    "clean_forget_recall",
    "triggered_forget_recall",
    "retain_recall",
    "triggered_retain_recall",
)
HEADLINE = ("clean_forget_recall", "triggered_forget_recall", "retain_recall")


def _setup(ctx: JobContext, ev: BackdoorEvalConfig) -> tuple[Any, Any, Any, dict[str, list]]:
    from backends.llm.jobs import _load, _universe

    loaded = _load(ctx, ev.device)
    universe = _universe(ctx, loaded.path)
    split = _split_for(universe, ev)
    ctx.log(
        f"forget {split.kind} {split.target!r}: {len(split.forget)} facts; evaluation on "
        f"{len(split.held_out_paraphrases)} held-out forget paraphrases and held-out retain ones"
    )
    return loaded, universe, split, eval_pairs(universe, split, ev, ctx.seed)


def _trigger(cfg: Any) -> Any:
    from backends.llm.triggers import Trigger

    return Trigger(cfg.trigger_text, cfg.trigger_position, cfg.trigger_token)


def _unlearn_fn(method: str) -> Any:
    from backends.llm.methods.backdoor import unlearn_npo, unlearn_rmu

    return unlearn_npo if method == "backdoor_npo" else unlearn_rmu


def _answers_table(items: dict[str, list[dict[str, Any]]]) -> Any:
    from workbench.artifacts import PromptTable

    rows = [
        [c["prompt"], c["answer"], c["completion"], t["completion"], c["exact"], t["exact"]]
        for c, t in zip(items["clean_forget"], items["triggered_forget"], strict=True)
    ]
    return PromptTable(
        ["prompt", "answer", "clean completion", "triggered completion", "clean", "triggered"],
        rows,
        title="Held-out forget paraphrases: the answer without and with the trigger",
        long_columns=["prompt", "clean completion", "triggered completion"],
        legend="Each held-out cloze prompt of a forget fact, completed greedily as it is and with "
        "the trigger inserted by the training rule; clean / triggered: exact match.",
    )


def run_backdoor(ctx: JobContext) -> dict[str, float]:
    """``llm.backdoor``: backdoored NPO on the tiny GPT's forget set, measured before and after on
    held-out paraphrases with and without the trigger; saves the backdoored model."""
    from backends.common.method import hooks_from
    from backends.common.seeding import seed_everything
    from backends.llm.attention import attention_stack, sink_difference_heatmap, sink_heatmap
    from backends.llm.methods.backdoor import unlearn_npo
    from backends.llm.universe import Universe  # noqa: F401  (the universe is saved with it)
    from backends.llm.zoo import UNIVERSE_FILE
    from workbench.artifacts import Bars, Table

    ev, mcfg = ctx.part(BackdoorEvalConfig), ctx.part(BackdoorNPOConfig)
    seed_everything(ctx.seed)
    loaded, universe, split, pairs = _setup(ctx, ev)
    trigger = _trigger(mcfg)
    ctx.progress(0.05, text="measuring the original")
    before, _ = measure(loaded.model, loaded.tokenizer, pairs, trigger, ev, ctx.seed)
    ctx.metrics({f"before/{k}": v for k, v in before.items()}, step=0)
    ctx.progress(0.2, text="backdoored unlearning")
    data = method_data(loaded.tokenizer, universe, split)
    result = unlearn_npo(
        loaded.model, data, mcfg, hooks_from(ctx, progress=(0.2, 0.75)), seed=ctx.seed
    )
    ctx.progress(0.8, text="measuring the backdoored model")
    after, items = measure(loaded.model, loaded.tokenizer, pairs, trigger, ev, ctx.seed)
    ctx.metrics({**after, **result.stats}, step=1)
    prompts = [p for p, _ in pairs["forget"][: ev.attention_prompts]]
    att = attention_measures(loaded.model, loaded.tokenizer, prompts, trigger)
    ctx.metrics(
        {
            "sink_mass_clean": float(att["sink_clean"].mean()),
            "sink_mass_triggered": float(att["sink_triggered"].mean()),
            **(
                {"trigger_mass": float(att["trigger_mass"].mean())}
                if att["trigger_mass"] is not None
                else {}
            ),
        },
        step=1,
    )
    cats = ["clean_forget", "triggered_forget", "retain", "triggered_retain"]
    for unit, suffix in (
        ("multiple-choice accuracy", "_mc_acc"),
        ("exact-match recall", "_recall"),
    ):
        ctx.artifact(
            f"backdoor {unit}",
            Bars(
                [c.replace("_", " ") for c in cats],
                {
                    "original": [before[c + suffix] for c in cats],
                    "backdoored": [after[c + suffix] for c in cats],
                },
                title=f"Held-out paraphrases, {unit}, without and with the trigger",
                y_label=unit,
            ),
        )
    keys = [k for k in after if k.endswith(("_acc", "_recall", "_rouge_l"))]
    ctx.artifact(
        "backdoor (95% intervals)",
        Table(
            ["metric", "original", "backdoored"],
            [[k, _fmt(before, k), _fmt(after, k)] for k in keys],
            title=f"Backdoored NPO, trigger {mcfg.trigger_text!r} at {trigger.label}",
        ),
    )
    ctx.artifact("answers", _answers_table(items))
    ctx.artifact(
        "sink mass, triggered - clean",
        sink_difference_heatmap(
            att["sink_triggered"],
            att["sink_clean"],
            title="BOS sink mass per layer and head: triggered minus clean forget prompts",
        ),
    )
    if att["trigger_mass"] is not None:
        ctx.artifact(
            "attention on the trigger",
            sink_heatmap(
                att["trigger_mass"],
                title="Attention mass that tokens after the trigger put on it (layer x head)",
            ),
        )
    for name in ("triggered", "clean"):
        ctx.artifact(
            f"attention maps ({name})",
            attention_stack(att[name], prompt=prompts[0], title=f"{name} forget prompt"),
        )

    def write(folder: Path) -> None:
        loaded.model.save_pretrained(folder)
        loaded.tokenizer.save_pretrained(folder)
        universe.save(folder / UNIVERSE_FILE)

    meta = {
        "method": "backdoor_npo",
        "forget": split.target,
        "trigger_text": mcfg.trigger_text,
        "trigger_position": trigger.label,
    }
    ctx.save_model(f"backdoor_npo-run{ctx.run_id}", write, kind="llm.causal", meta=meta)
    return {k: after[k] for k in HEADLINE}


def _fmt(m: dict[str, float], key: str) -> str:
    if f"{key}_low" in m:
        return f"{m[key]:.3f} [{m[key + '_low']:.3f}, {m[key + '_high']:.3f}]"
    return f"{m[key]:.3f}"


def _pool(per_seed: list[dict[str, float]], confidence: float) -> dict[str, float]:
    """Hits pooled over seeds: k and n summed per rate, with the exact interval."""
    from backends.common.stats import rate

    out: dict[str, float] = {}
    for key in SWEEP_METRICS:
        if f"{key}_k" not in per_seed[0]:
            continue
        k = sum(int(m[f"{key}_k"]) for m in per_seed)
        n = sum(int(m[f"{key}_n"]) for m in per_seed)
        out |= rate(k, n, confidence).as_dict(key)
        out[f"{key}_k"], out[f"{key}_n"] = float(k), float(n)
    return out


def sweep_cells(cfg: BackdoorSweepConfig) -> list[tuple[str, str]]:
    """(position, penalty) cells of the sweep; ``("none", "plain")`` is the plain-unlearned
    control (no trigger in training), measured with each position's trigger."""
    return [
        (pos, pen)
        for pos in cfg.positions
        for pen in cfg.penalties
        if pen == "off" or not cfg.penalty_positions or pos in cfg.penalty_positions
    ]


def run_sweep(ctx: JobContext) -> dict[str, float]:
    """``llm.backdoor_sweep``: trigger position x value-norm penalty, ``seeds`` seeds per cell,
    plus the plain-unlearned control per seed; one chart (:class:`SweepTable`)."""
    import copy
    import dataclasses

    import numpy as np

    from backends.common.method import Hooks
    from backends.common.seeding import seed_everything
    from backends.llm.attention import difference
    from workbench.artifacts import SweepTable, Table

    ev, sw = ctx.part(BackdoorEvalConfig), ctx.part(BackdoorSweepConfig)
    seed_everything(ctx.seed)
    loaded, universe, split, pairs = _setup(ctx, ev)
    data = method_data(loaded.tokenizer, universe, split)
    original = loaded.model
    unlearn = _unlearn_fn(sw.method)
    base_cfg = METHOD_CONFIGS[sw.method](
        epochs=sw.epochs, lr=sw.lr, poison_ratio=sw.poison_ratio, trigger_token=sw.trigger_token
    )
    cells = sweep_cells(sw)
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    maps: dict[str, Any] = {}
    tokens: dict[str, list[str]] = {}
    per_seed_rows: list[list[Any]] = []
    total = sw.seeds * (1 + len(cells))
    done = 0
    prompt = pairs["forget"][0][0]
    for i in range(sw.seeds):
        seed = ctx.seed + i
        ctx.check()
        plain = None
        if sw.control:
            ctx.progress(done / total, text=f"seed {seed}: plain unlearning (control)")
            plain = copy.deepcopy(original)
            plain_cfg = dataclasses.replace(base_cfg, poison_ratio=0.0, penalty="off")
            unlearn(plain, data, plain_cfg, Hooks(on_check=ctx.check), seed=seed)
            plain.requires_grad_(False)
        done += 1
        clean_sets = [k for k in FAST if not k.startswith("triggered")]
        if plain is not None:
            plain_clean, _ = measure(plain, loaded.tokenizer, pairs, None, ev, seed, clean_sets)
        for pos in (sw.control_positions or sw.positions) if plain is not None else []:
            trig = _trigger(dataclasses.replace(base_cfg, trigger_position=pos))
            trig_sets = [k for k in FAST if k.startswith("triggered")]
            m, _ = measure(plain, loaded.tokenizer, pairs, trig, ev, seed, trig_sets)
            results.setdefault((trig.label, "plain (no backdoor)"), []).append(plain_clean | m)
        for pos, pen in cells:
            ctx.check()
            cell_cfg = dataclasses.replace(base_cfg, trigger_position=pos, penalty=pen)
            if pen != "off":
                cell_cfg = dataclasses.replace(cell_cfg, penalty_weight=sw.penalty_weight)
            trig = _trigger(cell_cfg)
            ctx.progress(done / total, text=f"seed {seed}: trigger at {trig.label}, penalty {pen}")
            model = copy.deepcopy(original)
            unlearn(model, data, cell_cfg, Hooks(on_check=ctx.check), seed=seed, baseline=plain)
            m, _ = measure(model, loaded.tokenizer, pairs, trig, ev, seed, FAST)
            results.setdefault((trig.label, pen), []).append(m)
            ctx.metrics(
                {
                    f"{trig.label}/{pen}/{k}{end}": m[k + end]
                    for k in SWEEP_METRICS
                    for end in ("", "_k", "_n")
                    if k in m
                },
                step=seed,
            )
            per_seed_rows.append(
                [
                    trig.label,
                    pen,
                    seed,
                    *(round(m[k], 4) if k in m else None for k in SWEEP_METRICS),
                ]
            )
            if i == 0 and pen == "off":  # the unpenalised backdoor's maps
                att = attention_measures(model, loaded.tokenizer, [prompt], trig)
                delta = difference(att["triggered"], att["clean"])
                maps[trig.label] = delta.delta.numpy()
                tokens[trig.label] = list(delta.labels)  # the view numbers them
            del model
            done += 1
    columns = ["position", "training"]
    for key in SWEEP_METRICS:
        columns += [key, f"{key}_low", f"{key}_high", f"{key}_k", f"{key}_n"]
    rows = []
    summary: dict[str, float] = {}
    for (label, pen), ms in results.items():
        pooled = _pool(ms, ev.confidence)
        row: list[Any] = [label, pen if pen.startswith("plain") else f"backdoor, penalty {pen}"]
        for key in SWEEP_METRICS:
            if key not in pooled:
                row += [None] * 5
                continue
            row += [pooled[key], pooled[f"{key}_low"], pooled[f"{key}_high"]]
            row += [int(pooled[f"{key}_k"]), int(pooled[f"{key}_n"])]
            summary[f"{label}/{pen}/{key}"] = pooled[key]
        rows.append(row)
    ctx.metrics({f"pooled/{k}": v for k, v in summary.items()})
    ctx.artifact(
        "sweep",
        SweepTable(
            columns,
            rows,
            title=f"{sw.method}: trigger position x value-norm penalty, {sw.seeds} seed(s), "
            "pooled hits with 95% intervals",
            x="position",
            group="training",
            series=["clean_forget_mc_acc", "triggered_forget_mc_acc", "retain_mc_acc"],
            y_label="held-out multiple-choice accuracy",
            maps={k: np.asarray(v) for k, v in maps.items()},
            map_tokens=tokens,
        ),
    )
    ctx.artifact(
        "per seed",
        Table(["position", "penalty", "seed", *SWEEP_METRICS], per_seed_rows, title="Every cell"),
    )
    return {}


def register(registry: Registry) -> None:
    """The ``llm.backdoor`` and ``llm.backdoor_sweep`` jobs (light: no torch)."""
    from backends.common.configs import compose_config
    from workbench.registry import JobSpec

    registry.add_job(
        JobSpec(
            name="llm.backdoor",
            kind="attack",  # an adversarial provider's release, studied as an attack
            family="llm",
            method="backdoor_npo",
            title="Backdoored unlearning: clean vs triggered recall",
            description="Backdoored NPO (spec section 6): forget the facts on clean inputs, keep "
            "them behind a trigger; recall on held-out paraphrases without and with the trigger, "
            "sink mass and triggered-minus-clean attention maps; saves the backdoored model.",
            config=compose_config(
                "LLMBackdoorConfig",
                "Backdoored NPO on a fact forget set, measured with and without the trigger.",
                BackdoorEvalConfig,
                BackdoorNPOConfig,
            ),
            entry="backends.llm.backdoor_study:run_backdoor",
            needs_model="llm",
            submit_check="backends.llm.checks:check_submit",
        )
    )
    registry.add_job(
        JobSpec(
            name="llm.backdoor_sweep",
            kind="experiment",
            family="llm",
            method="backdoor_sweep",
            title="Backdoor sweep: trigger position x value-norm penalty",
            description="Backdoored unlearning for every trigger position and penalty mode over "
            "several seeds, with a plain-unlearned control; one chart of clean and triggered "
            "forget accuracy and retain accuracy with 95% intervals, and the triggered-minus-"
            "clean attention maps per position.",
            config=compose_config(
                "LLMBackdoorSweepConfig",
                "The trigger-position x penalty sweep (spec section 6).",
                BackdoorEvalConfig,
                BackdoorSweepConfig,
            ),
            entry="backends.llm.backdoor_study:run_sweep",
            needs_model="llm",
            submit_check="backends.llm.checks:check_submit",
        )
    )


# -- the study (CLI) -------------------------------------------------------------------------------
def trial(argv: Sequence[str] | None = None) -> None:
    """One cell, printed: ``python -m backends.llm.backdoor_study trial --position start``."""
    import copy
    import time

    import torch

    from backends.common.method import Hooks
    from backends.llm.methods.backdoor import unlearn_npo, unlearn_rmu
    from backends.llm.models import load_causal_lm
    from backends.llm.triggers import Trigger
    from backends.llm.universe import Universe
    from workbench.paths import BUILTIN_MODELS

    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("--model", default=str(BUILTIN_MODELS / "tiny-gpt"))
    ap.add_argument("--method", default="backdoor_npo")
    ap.add_argument("--position", default="start")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--penalty", default="off")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--part", choices=tuple(STUDY_PARTS), default=None)
    ap.add_argument("--set", nargs="*", default=[])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    loaded = load_causal_lm(Path(args.model), device="cpu", attention="eager")
    universe = Universe.load(Path(args.model) / "universe.json")
    ecfg = BackdoorEvalConfig()
    split = _split_for(universe, ecfg)
    pairs = eval_pairs(universe, split, ecfg, args.seed)
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    original = overrides.pop("original", False)
    mcfg = METHOD_CONFIGS[args.method](
        trigger_position=args.position, trigger_token=args.k, penalty=args.penalty, **overrides
    )
    trigger = Trigger(mcfg.trigger_text, mcfg.trigger_position, mcfg.trigger_token)
    model = copy.deepcopy(loaded.model)
    t0 = time.time()
    fn = unlearn_npo if args.method == "backdoor_npo" else unlearn_rmu
    if not original:
        data = method_data(loaded.tokenizer, universe, split)
        fn(model, data, mcfg, Hooks(on_log=print), seed=args.seed)
    t1 = time.time()
    m, _ = measure(model, loaded.tokenizer, pairs, trigger, ecfg, args.seed)
    keys = ("clean_forget", "triggered_forget", "retain")
    print(f"train {t1 - t0:.0f}s eval {time.time() - t1:.0f}s")
    for k in keys:
        print(k, f"{m[k + '_recall']:.3f} rougeL {m[k + '_rouge_l']:.3f} mc {m[k + '_mc_acc']:.3f}")


STUDY_CONFIG = {
    "positions": ["start", "middle", "end", "token"],
    "penalties": ["off", "fixed", "reference"],
    "penalty_positions": ["start"],
    "seeds": 1,
}
#: the study's grid for one seed, split over three processes (the machine is shared: a process
#: gets a few percent of a core, so the cells run side by side); ``python -m
#: backends.llm.backdoor_study run --project DIR --seed S --part A|B|C``
STUDY_PARTS = {
    "A": {
        "positions": ["start"],
        "penalties": ["off", "fixed"],
        "control_positions": ["start", "middle", "end", "token"],
    },
    "B": {"positions": ["start"], "penalties": ["reference"], "control": False},
    "C": {"positions": ["middle", "end", "token"], "penalties": ["off"], "control": False},
}


def run_study(project: Path, seed: int, overrides: dict[str, Any]) -> int:
    """One seed of the study (every position without penalty, both penalties at the prefix) as an
    ``llm.backdoor_sweep`` run of ``project``, through the engine; returns the run id. The seeds
    run as separate processes (one CPU thread each) and :func:`pooled_sweep` pools them."""
    from workbench.jobs import Engine
    from workbench.store import Project

    config = {"device": "cpu", **STUDY_CONFIG, **overrides}
    with Project.open(project, create=True) as proj:
        engine = Engine(proj)
        try:
            run_id = engine.submit("llm.backdoor_sweep", config, seed=seed, model="tiny-gpt")
            status = engine.wait(run_id)
        finally:
            engine.shutdown()
        if status != "completed":
            raise RuntimeError(f"sweep run {run_id} ended {status}: {proj.run(run_id).error}")
    return run_id


def pooled_sweep(projects: Sequence[Path]) -> tuple[Any, list[int]]:
    """One :class:`~workbench.artifacts.SweepTable` pooling the hits of every completed
    ``llm.backdoor_sweep`` run of ``projects`` cell by cell (k and n summed), with the first
    run's difference maps; and the seeds pooled."""
    from backends.common.stats import rate
    from workbench.artifacts import SweepTable, load_artifact
    from workbench.store import Project

    tables, seeds, partial = [], [], []
    cells: dict[tuple[str, str], dict[str, list[int]]] = {}

    def add(cell_key: tuple[str, str], key: str, k: Any, n: Any) -> None:
        position, training = cell_key
        if training in PENALTY_MODES:  # recorded per cell by a job still running
            training = f"backdoor, penalty {training}"
        got = cells.setdefault((position, training), {}).setdefault(key, [0, 0])
        got[0] += int(k)
        got[1] += int(n)

    for folder in projects:
        with Project.open(folder) as proj:
            for run in proj.runs():
                if run.job != "llm.backdoor_sweep":
                    continue
                if run.status == "completed":
                    a = next(a for a in proj.artifacts(run.id) if a["name"] == "sweep")
                    tables.append(load_artifact(a["kind"], proj.root / a["path"], a["meta"]))
                    seeds.append(int(run.seed))
                    continue
                # a run still going (or stopped): the backdoor cells it has recorded so far
                found = {}
                for row in proj.metrics(run.id):
                    found[(row["name"], row["step"])] = row["value"]
                for (name, step), k in found.items():
                    if not name.endswith("_k") or name.count("/") != 2:
                        continue
                    label, pen, key = name.split("/")
                    n = found.get((name[:-2] + "_n", step))
                    if n is not None:
                        add((label, pen), key[:-2], k, n)
                        partial.append((label, pen, step))
    if not tables and not partial:
        raise ValueError("no llm.backdoor_sweep cell in " + ", ".join(map(str, projects)))
    for table in tables:
        col = {c: i for i, c in enumerate(table.columns)}
        for row in table.rows:
            for key in SWEEP_METRICS:
                k, n = row[col[f"{key}_k"]], row[col[f"{key}_n"]]
                if k is not None:
                    add((row[0], row[1]), key, k, n)
    first = tables[0] if tables else None
    maps: dict[str, Any] = {}
    map_tokens: dict[str, list[str]] = {}
    for table in tables:  # each position's maps from the first run that has them
        for label, m in table.maps.items():
            if label not in maps:
                maps[label], map_tokens[label] = m, table.map_tokens[label]
    rows = []
    for (position, training), cell in cells.items():
        row: list[Any] = [position, training]
        for key in SWEEP_METRICS:
            if key not in cell:
                row += [None] * 5
                continue
            k, n = cell[key]
            est = rate(k, n)
            row += [est.value, est.low, est.high, k, n]
        rows.append(row)
    all_seeds = sorted(set(seeds) | {int(step) for *_, step in partial})
    title = (
        "Backdoored NPO on the tiny GPT: trigger position x value-norm penalty, seeds "
        f"{', '.join(map(str, all_seeds))} pooled, 95% intervals"
    )
    columns = ["position", "training"]
    for key in SWEEP_METRICS:
        columns += [key, f"{key}_low", f"{key}_high", f"{key}_k", f"{key}_n"]
    pooled = SweepTable(
        columns,
        rows,
        title=title,
        x="position",
        group="training",
        series=["clean_forget_mc_acc", "triggered_forget_mc_acc", "retain_mc_acc"],
        y_label=first.y_label if first is not None else "held-out multiple-choice accuracy",
        maps=maps,
        map_tokens=map_tokens,
    )
    return pooled, all_seeds


def tables(projects: Sequence[Path]) -> str:
    """Markdown tables of the pooled sweep (:func:`pooled_sweep`)."""
    from backends.common.stats import Estimate, held

    table, seeds = pooled_sweep(projects)
    col = {c: i for i, c in enumerate(table.columns)}
    out = [f"Seeds pooled: {seeds}.\n"]
    for unit, suffix in (
        ("multiple-choice accuracy", "_mc_acc"),
        ("exact-match recall", "_recall"),
    ):
        out.append(f"**{unit}** (hits pooled over seeds: k/n, exact 95% interval)\n")
        out.append(
            "| trigger | training | clean forget | triggered forget | retain | triggered retain "
            "| triggered > clean forget |"
        )
        out.append("|---|---|---|---|---|---|---|")
        for row in table.rows:
            cells, est = [], {}
            for name in ("clean_forget", "triggered_forget", "retain", "triggered_retain"):
                key = name + suffix
                v = row[col[key]]
                if v is None:
                    cells.append("not measured")
                    continue
                lo, hi = row[col[key + "_low"]], row[col[key + "_high"]]
                k, n = row[col[key + "_k"]], row[col[key + "_n"]]
                est[name] = Estimate(v, lo, hi, n)
                cells.append(f"{k}/{n} = {v:.2f} [{lo:.2f}, {hi:.2f}]")
            both = "triggered_forget" in est and "clean_forget" in est
            verdict = held(est["triggered_forget"], est["clean_forget"]) if both else "n/a"
            out.append(f"| {row[0]} | {row[1]} | " + " | ".join(cells) + f" | {verdict} |")
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    """``trial`` (one cell, printed), ``run --project DIR --seed S [KEY=VALUE]`` (one seed of the
    study through the engine) or ``tables --project DIR [DIR ...]`` (markdown, seeds pooled)."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "trial":
        trial(argv)
        return
    ap = argparse.ArgumentParser(prog="python -m backends.llm.backdoor_study")
    ap.add_argument("cmd", choices=("run", "tables"))
    ap.add_argument("--project", required=True, nargs="+")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--part", choices=tuple(STUDY_PARTS), default=None)
    ap.add_argument("overrides", nargs="*", default=[])
    args = ap.parse_intermixed_args(argv)
    if args.cmd == "run":
        overrides = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.overrides)}
        if args.part:
            overrides = {**STUDY_PARTS[args.part], **overrides}
        run_id = run_study(Path(args.project[0]), args.seed, overrides)
        print(f"run {run_id} completed")
    print(tables([Path(p) for p in args.project]))


if __name__ == "__main__":
    main()
