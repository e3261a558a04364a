"""Entry functions of the LLM family's jobs.

- ``llm.unlearn.<method>``: unlearn a forget set (an entity's neighbourhood or a book) from a
  causal LM with GA, GradDiff, NPO, SimNPO or RMU (spec section 7), evaluated before and after:
  forget / retain / held-out-paraphrase recall, retain perplexity, LOSS and Min-K% MIAs; the
  unlearning loop checkpoints every ``checkpoint_every`` steps and a stopped run resumes exactly;
- ``llm.skeb``: SKeB probing (spec section 5): the questions in four framings, each answer judged
  against the universe, each prompt placed on the domain graph with its entanglement metrics;
- ``llm.attention``: attention maps and sink mass per layer and head (spec section 6).

The model is the job's model (default: the built-in tiny GPT); the fact universe is the job's
dataset, or the ``universe.json`` stored beside the model.
"""

from __future__ import annotations

import random
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends.common.seeding import seed_everything
from backends.llm.export import ADAPTER_DIR
from backends.llm.jobconfigs import LLMSetupConfig
from backends.llm.plugin import TINY_GPT
from backends.llm.universe import FactSplit, Universe
from backends.llm.zoo import UNIVERSE_FILE
from workbench.artifacts import Bars, Curves, Table, Text

if TYPE_CHECKING:
    from workbench.jobs import JobContext

MAX_HIGHLIGHT_SETS = 400  # prompts offered in the graph explorer's prompt picker
_LOAD_LOCK = threading.Lock()  # one model load at a time (see _load)


def _model_path(ctx: JobContext) -> Path:
    return ctx.model.path if ctx.model is not None else TINY_GPT


def _universe(ctx: JobContext, model_path: Path) -> Universe:
    """The job's dataset universe, else the one stored beside the model."""
    if ctx.dataset is not None and ctx.dataset.path is not None:
        path = Path(ctx.dataset.path)
        return Universe.load(path / UNIVERSE_FILE if path.is_dir() else path)
    candidate = model_path / UNIVERSE_FILE
    if candidate.exists():
        return Universe.load(candidate)
    raise ValueError(
        f"{model_path} has no {UNIVERSE_FILE}; give the job a fact-universe dataset "
        "(the facts to unlearn and probe)"
    )


def _split(universe: Universe, kind: str, target: str, hops: int) -> FactSplit:
    if not target:
        target = (
            next(e.name for e in universe.entities if e.kind == "person")
            if kind == "entity"
            else universe.books()[0].id
        )
    return universe.forget_set(kind, target, hops)


def _subsample(items: list, n: int, seed: int) -> list:
    if len(items) <= n:
        return list(items)
    return random.Random(seed).sample(items, n)


def _load(ctx: JobContext, device: str, dtype: str = "float32", device_map: str = "none") -> Any:
    from backends.llm.models import load_causal_lm

    # transformers builds a model on the meta device through process-wide state: two loads at
    # once on worker threads (llm.attention is not model-heavy, so it runs beside other jobs)
    # failed with "Cannot copy out of meta tensor" (3 of 4 concurrent runs, measured)
    with _LOAD_LOCK:
        loaded = load_causal_lm(
            _model_path(ctx), device=device, dtype=dtype, attention="eager", device_map=device_map
        )
    ctx.set_device(str(loaded.device))
    return loaded


# -- llm.unlearn.<method> -------------------------------------------------------------------------


def evaluate_lm(
    model: Any,
    tokenizer: Any,
    universe: Universe,
    split: FactSplit,
    setup: LLMSetupConfig,
    seed: int,
    render: Any = None,
) -> tuple[dict[str, float], dict[str, tuple[list[float], list[float]]]]:
    """Forget / retain / paraphrase recall (each k/n with its exact 95% interval), retain
    perplexity, and the LOSS and Min-K% membership attacks (spec section 8).

    The attacks score facts (the mean over a fact's training sentences): members are the forget
    facts, non-members the universe's never-trained facts (same templates, same entities, never
    seen by the model or by the retrained reference), so the AUC measures membership and nothing
    else. Returns ``(metrics, scores)``; ``scores[attack] = (member scores, non-member scores)``
    for PrivLeak. ``render(question)`` formats the QA prompts (a chat model's template); the
    held-out paraphrases are cloze completions and stay plain.
    """
    from backends.common.stats import bootstrap_auc, rate
    from backends.llm.evaluation import fact_scores, greedy_recall, perplexity

    def recall(name: str, pairs: list[tuple[str, str]], **kw: Any) -> dict[str, float]:
        _, items = greedy_recall(model, tokenizer, pairs, **kw)
        hits = sum(bool(i["correct"]) for i in items)
        est = rate(hits, len(items), setup.confidence)
        return {**est.as_dict(name), f"{name}_n": float(len(items))}

    forget_qa = [(q.question, q.answer) for q in universe.qa_pairs(split.forget)]
    retain_qa = _subsample(
        [(q.question, q.answer) for q in universe.qa_pairs(split.retain)],
        setup.max_eval_items,
        seed,
    )
    para = [(p.prompt, p.answer) for p in split.held_out_paraphrases]
    retain_texts = _subsample(
        universe.training_texts(split.retain, qa=False), setup.max_eval_items, seed
    )
    out: dict[str, float] = {}
    if forget_qa:
        out |= recall("forget_recall", forget_qa, render=render)
    out |= recall("retain_recall", retain_qa, render=render)
    out["retain_perplexity"] = perplexity(model, tokenizer, retain_texts)
    if para:
        out |= recall("paraphrase_recall", para, prompt_format="{question}")
    scores: dict[str, tuple[list[float], list[float]]] = {}
    members = [list(f.sentences) for f in split.forget]
    non_members = [list(f.sentences) for f in split.never_trained]
    if members and non_members:
        for attack in ("loss", "min_k"):
            m = fact_scores(model, tokenizer, members, attack, setup.mia_k)
            n = fact_scores(model, tokenizer, non_members, attack, setup.mia_k)
            scores[attack] = (m, n)
            auc = bootstrap_auc(
                m, n, confidence=setup.confidence, n_bootstrap=setup.n_bootstrap, seed=seed
            )
            out |= auc.as_dict(f"{attack}_mia_auc")
    return out, scores


def _estimate(m: dict[str, float], key: str) -> str:
    if key not in m:
        return "n/a"
    if f"{key}_low" in m:
        return f"{m[key]:.3f} [{m[f'{key}_low']:.3f}, {m[f'{key}_high']:.3f}]"
    return f"{m[key]:.3f}"


def _privleak(
    ctx: JobContext,
    loaded: Any,
    universe: Universe,
    split: FactSplit,
    setup: LLMSetupConfig,
    scores: dict[str, dict[str, tuple[list[float], list[float]]]],
) -> dict[str, dict[str, float]]:
    """PrivLeak of the original and the unlearned model against the retrained reference;
    returns ``{"before": ..., "after": ..., "retrained": ...}`` metric dicts (empty when the
    reference cannot be had: a model not built by the zoo, or no never-trained facts)."""
    from backends.llm.evaluation import privleak
    from backends.llm.references import load_reference, retrained_reference

    if not (split.forget and split.never_trained):
        ctx.log(
            "PrivLeak skipped: the universe has no never-trained facts (non-members)",
            level="warning",
        )
        return {}
    try:
        folder = retrained_reference(
            Path(loaded.path),
            split,
            ctx.project.root / "cache" / "llm",
            device=str(loaded.device),
            log=ctx.log,
        )
    except ValueError as exc:
        ctx.log(f"PrivLeak skipped: {exc}", level="warning")
        return {}
    reference = load_reference(folder, str(loaded.device))
    ref, ref_scores = evaluate_lm(reference, loaded.tokenizer, universe, split, setup, ctx.seed)
    out: dict[str, dict[str, float]] = {"before": {}, "after": {}, "retrained": ref}
    for when in ("before", "after"):
        for attack in ("loss", "min_k"):
            est = privleak(
                scores[when][attack],
                ref_scores[attack],
                n_bootstrap=setup.n_bootstrap,
                confidence=setup.confidence,
                seed=ctx.seed,
            )
            out[when] |= est.as_dict(f"privleak_{attack}")
    return out


def run_unlearn(ctx: JobContext) -> dict[str, float]:
    """The family's part of :func:`~backends.common.unlearn_job.run_unlearn_job`: load the model
    and its fact universe, evaluate, unlearn the model itself (nothing needs the original
    afterwards: the "before" numbers are measured first, PrivLeak's reference is the retrained
    model), merge a LoRA adapter, evaluate again with PrivLeak, save."""
    from backends.common.lora import LoraSpec, add_lora, merge_lora, save_lora
    from backends.common.unlearn_job import UnlearnSteps, run_unlearn_job
    from backends.llm.benchmarks.jobs import run_benchmark_unlearn, wants_benchmark
    from backends.llm.methods import get_method
    from backends.llm.methods.common import LLMData
    from backends.llm.models import chat_prompt, chat_text

    _note_processes(ctx)
    if wants_benchmark(ctx):  # TOFU / MUSE files as forget and retain sets (issue 17)
        return run_benchmark_unlearn(ctx)
    cfg = ctx.config
    setup = ctx.part(LLMSetupConfig)
    info = get_method(ctx.spec.method)
    method_cfg = ctx.part(info.config)
    run: dict[str, Any] = {}
    _log_memory_estimate(ctx, info.name)

    def texts(facts: list[Any]) -> list[str]:
        """The facts' training texts; a chat model gets its QA pairs as conversations."""
        loaded, universe = run["loaded"], run["universe"]
        if not run["chat"]:
            return universe.training_texts(facts)
        qa = [chat_text(loaded.tokenizer, q.question, q.answer) for q in universe.qa_pairs(facts)]
        return universe.training_texts(facts, qa=False) + qa

    def load() -> tuple[Any, LLMData]:
        loaded = run["loaded"] = _load(ctx, setup.device, setup.dtype, setup.device_map)
        universe = run["universe"] = _universe(ctx, loaded.path)
        split = run["split"] = _split(universe, setup.forget_kind, setup.forget_target, setup.hops)
        run["chat"] = setup.use_chat_template and loaded.has_chat_template
        if run["chat"]:
            ctx.log("the tokenizer has a chat template: QA pairs go through it")
        ctx.log(
            f"forget {split.kind} {split.target!r}: {len(split.forget)} facts about "
            f"{len(split.entities)} entities; retain {len(split.retain)} facts; "
            f"{len(split.never_trained)} never-trained facts are the attacks' non-members"
        )
        data = LLMData(loaded.tokenizer, texts(split.forget), texts(split.retain))
        return loaded.model, data

    def evaluate(model: Any) -> tuple[dict[str, float], Any]:
        tokenizer = run["loaded"].tokenizer
        render = (lambda q: chat_prompt(tokenizer, q)) if run["chat"] else None
        return evaluate_lm(
            model, tokenizer, run["universe"], run["split"], setup, ctx.seed, render=render
        )

    def working(model: Any) -> Any:
        if not setup.use_lora:
            return model
        return add_lora(model, LoraSpec(rank=setup.lora_rank, alpha=setup.lora_alpha))

    def finish(model: Any) -> Any:
        if not setup.use_lora:
            return model
        folder = run["adapter"] = save_lora(model, ctx.run_dir / ADAPTER_DIR)
        ctx.log(f"saved the LoRA adapter to {folder} (merged into the saved model)")
        return merge_lora(model)

    def after(model: Any, before: Any, _result: Any, _seconds: float) -> Any:
        (before, before_scores), (after, after_scores) = before, evaluate(model)
        retrained: dict[str, float] = {}
        if setup.privleak:
            ctx.progress(0.8, text="PrivLeak against the retrained reference")
            leak = _privleak(
                ctx,
                run["loaded"],
                run["universe"],
                run["split"],
                setup,
                {"before": before_scores, "after": after_scores},
            )
            if leak:
                before |= leak["before"]
                after |= leak["after"]
                retrained = leak["retrained"]
        ctx.metrics({f"before/{k}": v for k, v in before.items()}, step=0)
        ctx.metrics(after, step=1)
        if retrained:
            ctx.metrics({f"retrained/{k}": v for k, v in retrained.items()}, step=1)
        return before, after, retrained

    def save(model: Any) -> None:
        loaded, split = run["loaded"], run["split"]

        def write(folder: Path) -> None:
            model.save_pretrained(folder)
            loaded.tokenizer.save_pretrained(folder)
            run["universe"].save(folder / UNIVERSE_FILE)
            if "adapter" in run:  # the adapter alone too, for the original model (and export)
                shutil.copytree(run["adapter"], folder / ADAPTER_DIR)

        meta = {"method": info.name, "forget": split.target}
        ctx.save_model(f"{info.name}-run{ctx.run_id}", write, kind="llm.causal", meta=meta)

    def artifacts(_before: Any, measured: Any) -> None:
        before, after, retrained = measured
        keys = [k for k in ("forget_recall", "retain_recall", "paraphrase_recall") if k in after]
        ctx.artifact(
            "recall",
            Bars(
                keys,
                {"before": [before[k] for k in keys], "after": [after[k] for k in keys]},
                title=f"Greedy QA recall before and after {info.title}",
                y_label="recall",
            ),
        )
        shown = [k for k in after if not k.endswith(("_low", "_high", "_n"))]
        rows = [
            [k, _estimate(before, k), _estimate(after, k), _estimate(retrained, k)] for k in shown
        ]
        ctx.artifact(
            "before vs after",
            Table(
                ["metric", "before", "after", "retrained"],
                rows,
                title=f"{info.title} (95% intervals)",
            ),
        )

    steps = UnlearnSteps(
        load,
        evaluate,
        after,
        save,
        artifacts,
        working=working,
        finish=finish,
        measuring="evaluating the original",
    )
    return run_unlearn_job(ctx, steps, info, method_cfg, checkpoint_every=cfg.checkpoint_every)


def _note_processes(ctx: JobContext) -> None:
    """Say how many processes train: ``gpus`` > 1 outside an ``accelerate launch`` (the app, a
    resumed run) runs in this one process, which gives the same steps and result up to float
    rounding (:mod:`workbench.accelerate_launch`)."""
    from backends.common.devices import launched_local_rank

    gpus = ctx.part(LLMSetupConfig).gpus
    if gpus > 1 and launched_local_rank() is None:
        ctx.log(
            f"gpus={gpus}, but this run was not started by `workbench run` (accelerate launch): "
            "one process trains on one device (the same steps and result, up to float rounding)",
            level="warning",
        )


def _log_memory_estimate(ctx: JobContext, method: str) -> None:
    """The run's first log line: its memory estimate (:mod:`backends.llm.memory`), before any
    weight is loaded (the same figure the submit check compared with the device)."""
    from backends.llm.memory import device_capacity, estimate_for_config

    setup = ctx.part(LLMSetupConfig)
    try:
        _, what, on_gpu = device_capacity(setup.device, setup.device_map, setup.memory_limit_gb)
        needed = estimate_for_config(_model_path(ctx), method, ctx.config, on_gpu)
    except (OSError, ValueError) as exc:
        ctx.log(f"no memory estimate: {exc}", level="warning")
        return
    ctx.log(f"memory estimate: {needed.describe()}; {what}")
    ctx.metric("memory_estimate_gib", needed.total / 1024**3)


# -- llm.skeb -------------------------------------------------------------------------------------


def context_length(model: Any) -> int | None:
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def fit_context(ids: list[int], room: int, bos: int | None) -> tuple[list[int], bool]:
    """Keep a prompt within ``room`` tokens: the leading BOS (the attention sink) and the end of
    the prompt (the question and the answer cue) survive; the middle is cut."""
    if len(ids) <= room:
        return ids, False
    if bos is not None and ids and ids[0] == bos:
        return [bos] + ids[len(ids) - (room - 1) :], True
    return ids[len(ids) - room :], True


def _generate(loaded: Any, prompt: str, cfg: Any) -> tuple[str, bool]:
    """The model's response to ``prompt`` and whether the prompt had to be cut to fit."""
    import torch

    from backends.llm.models import apply_prompt

    ids, cut = apply_prompt(loaded, prompt), False
    limit = context_length(loaded.model)
    if limit is not None:
        ids, cut = fit_context(ids, limit - cfg.max_new_tokens, loaded.bos_token_id)
    ids = torch.tensor([ids], device=loaded.device)
    with torch.no_grad():
        out = loaded.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=cfg.max_new_tokens,
            do_sample=cfg.do_sample,
            temperature=cfg.temperature if cfg.do_sample else None,
            top_p=None,
            top_k=None,
            pad_token_id=loaded.tokenizer.pad_token_id or loaded.tokenizer.eos_token_id,
        )
    return loaded.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True), cut


def run_skeb(ctx: JobContext) -> dict[str, float]:
    """SKeB: every question in every framing, judged; entanglement metrics per prompt."""
    from backends.llm.skeb.analysis import (
        SkebRecord,
        correlation_heatmap,
        domain_graph_artifact,
        prompt_table,
        rates_bars,
        rates_by_framing,
        regress_rate_on_metrics,
        regression_table,
    )
    from backends.llm.skeb.framings import build_prompts
    from backends.llm.skeb.graph import EntityExtractor, build_graph, graph_from_csv
    from backends.llm.skeb.judge import RuleJudge, recalled
    from backends.llm.skeb.metrics import all_metrics
    from backends.llm.universe import qa_prompt

    cfg = ctx.config
    seed_everything(ctx.seed)
    loaded = _load(ctx, cfg.device)
    universe = _universe(ctx, loaded.path)
    split = _split(universe, cfg.forget_kind, cfg.forget_target, cfg.hops)
    facts = {"forget": split.forget, "retain": split.retain, "all": universe.trained_facts}[
        cfg.question_source
    ]
    facts = _subsample(list(facts), cfg.max_questions, ctx.seed)
    if cfg.graph_csv:
        graph, aliases = graph_from_csv(cfg.graph_csv, cfg.alias_file or None)
        ctx.log(
            f"domain graph from {cfg.graph_csv}: {len(graph)} entities, {graph.number_of_edges()} links"
        )
    else:
        graph, aliases = build_graph(universe.chapters(), universe.aliases()), universe.aliases()
    extractor = EntityExtractor(graph, aliases)
    questions = [f.qa.question for f in facts]
    entities = [extractor.extract(q) for q in questions]
    # the gold answer never goes into a framing's {related} slot
    prompts = build_prompts(
        questions,
        graph=graph,
        entities=entities,
        framings=cfg.framings,
        n_related=cfg.n_related,
        seed=ctx.seed,
        answers=[[f.answer] for f in facts],
    )
    judge = RuleJudge(universe.triples(), universe.entity_names(), universe.aliases())
    records, texts, cut_count = [], [], 0
    for i, p in enumerate(prompts):
        ctx.check()
        prompt = str(p["prompt"])
        fact = facts[int(p["item"])]
        # a chat model gets the framed text as is; a base model (the tiny GPT) reads the framing as
        # context and is then asked the question in the format it was trained to answer
        question = questions[int(p["item"])]
        text = prompt if loaded.has_chat_template else f"{prompt}\n{qa_prompt(question)}"
        response, cut = _generate(loaded, text, cfg)
        cut_count += cut
        if not loaded.has_chat_template:
            # a base model's answer is the line after "A:"; what follows is a new Q/A it invents
            response = response.strip().split("\n", 1)[0]
        # only the model's own answer is judged, against the asked fact (subject, relation); a
        # base model's bare answer is a short answer
        result = judge.judge(
            response,
            subject=fact.subject,
            relation=fact.relation,
            short=not loaded.has_chat_template,
        )
        ents = extractor.extract(prompt)
        records.append(
            SkebRecord(str(p["framing"]), all_metrics(graph, ents), result, p["item"], ents)
        )
        texts.append(
            {"question": question, "gold answer": fact.answer, "prompt": prompt, "answer": response}
        )
        ctx.progress(i + 1, len(prompts), f"prompt {i + 1}/{len(prompts)}")
    if cut_count:
        ctx.log(
            f"{cut_count} of {len(prompts)} prompts were longer than the model's context "
            f"({context_length(loaded.model)} positions, {cfg.max_new_tokens} kept for the answer); "
            "their middle was cut, keeping BOS and the question",
            level="warning",
        )
    ctx.metric("prompts_cut_to_fit", cut_count)
    rates = rates_by_framing(records)
    for framing, values in rates.items():
        ctx.metrics({f"{framing}/{k}": v for k, v in values.items()})
    ctx.artifact("rates by framing", rates_bars(records))
    regressions = regress_rate_on_metrics(records)
    ctx.artifact(
        "recall vs entanglement",
        regression_table(regressions, "Factual rate regressed on each metric"),
    )
    ctx.artifact("correlations", correlation_heatmap(records))
    first = next((r.entities for r in records if len(r.entities) >= 2), records[0].entities)
    per_prompt = {
        f"{r.framing} #{r.item}: {questions[int(r.item)][:70]}": r.entities
        for r in records[:MAX_HIGHLIGHT_SETS]
    }
    # a click on a node lists the facts about it (as subject or as answer) and its prompts
    node_facts: dict[str, list[str]] = {}
    for f in universe.facts:
        for name in {f.subject, f.object}:
            if name in graph:
                node_facts.setdefault(name, []).append(f.canonical)
    ctx.artifact(
        "domain graph",
        domain_graph_artifact(
            graph, first, seed=ctx.seed, highlight_sets=per_prompt, node_facts=node_facts
        ),
    )
    for metric in ("m5", "m9"):
        series = {}
        for framing in cfg.framings:
            mine = [r for r in records if r.framing == framing]
            series[framing] = (
                [r.metrics[metric] for r in mine],
                [float(recalled(r.result)) for r in mine],
            )
        ctx.artifact(
            f"{metric.upper()} vs recall",
            Curves(
                series,
                x_label=metric.upper(),
                y_label="recalled (0/1)",
                title=f"{metric.upper()} against response-level recall",
                scatter=True,
            ),
        )
    # every prompt, whole, with the model's answer and the judge's verdict (the SKeB view)
    ctx.artifact("prompts", prompt_table(records, texts))
    ctx.artifact(
        "about",
        Text(
            f"{len(prompts)} prompts ({len(questions)} {cfg.question_source} questions x "
            f"{len(cfg.framings)} framings), judged by the rule-based judge against the universe."
        ),
    )
    return {}


# -- llm.attention --------------------------------------------------------------------------------


def run_attention(ctx: JobContext) -> dict[str, float]:
    from backends.llm.attention import (
        attention_maps,
        attention_stack,
        difference,
        difference_heatmap,
        sink_heatmap,
        sink_mass,
        sink_ratio,
    )

    cfg = ctx.config
    loaded = _load(ctx, cfg.device)
    prompt = cfg.prompt
    if not prompt:
        universe = _universe(ctx, loaded.path)
        prompt = universe.qa_pairs()[0].prompt
    maps = attention_maps(loaded, prompt=prompt)
    mass = sink_mass(maps, k=cfg.sink_tokens)
    ctx.metrics(
        {"sink_ratio": sink_ratio(mass, cfg.threshold), "mean_sink_mass": float(mass.mean())}
    )
    layer = min(cfg.layer, maps.attentions.shape[0] - 1)
    head = min(cfg.head, maps.attentions.shape[1] - 1)
    # every layer and head in one file: the sink view's picker, grid and run-to-run difference
    ctx.artifact(
        "attention maps",
        attention_stack(
            maps, prompt=prompt, sink=mass, dtype=cfg.store_dtype, layer=layer, head=head
        ),
    )
    ctx.artifact(
        "sink mass", sink_heatmap(mass, k=cfg.sink_tokens, title="Sink mass per layer and head")
    )
    if cfg.compare_prompt:
        other = attention_maps(loaded, prompt=cfg.compare_prompt)
        ctx.artifact("difference", difference_heatmap(difference(maps, other), layer, head))
    return {}
