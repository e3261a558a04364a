"""The benchmark jobs: ``llm.benchmark_eval`` and the benchmark data of ``llm.unlearn.<method>``.

- :func:`benchmark_source` decides where a job's benchmark comes from: a dataset of kind ``tofu``,
  ``muse`` or ``wmdp`` chosen for the job, else the config's ``benchmark`` and ``benchmark_path``
  (an empty path is refused with what to fill in; ``tiny-world`` writes the model's own fact
  universe in the TOFU layout into the project's cache, :mod:`.tofu_world`).
- :func:`run_benchmark_eval` evaluates the job's model (and the retain-only model, when there is
  one) on TOFU, MUSE or WMDP / MMLU and records every metric with its interval.
- :func:`run_benchmark_unlearn` is what ``llm.unlearn.<method>`` runs when a benchmark is chosen:
  the method, UNCHANGED, gets an :class:`~backends.llm.methods.common.LLMData` of the benchmark's
  forget and retain texts (TOFU: the forget / retain splits' QA pairs in ``prompt_format``; MUSE:
  the raw forget / retain1 corpora, else the KnowMem QA and VerbMem texts); the model is evaluated
  on the benchmark before and after, next to the retain-only model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends.llm.benchmarks.configs import TINY_WORLD, BenchmarkConfig, BenchmarkRunConfig
from workbench.artifacts import Table

if TYPE_CHECKING:
    from workbench.jobs import JobContext

BENCHMARK_KINDS = ("tofu", "muse", "wmdp")


@dataclass
class Source:
    """A job's benchmark: its kind, its folder, the TOFU forget split, and for ``tiny-world`` the
    universe's forget set the files were written from (it names the retrained reference)."""

    kind: str
    path: Path
    tofu_split: str
    world_split: Any = None


def wants_benchmark(ctx: JobContext) -> bool:
    """Whether an ``llm.unlearn.<method>`` run unlearns from a benchmark (a benchmark dataset, or
    the config's ``benchmark`` other than none)."""
    ds = ctx.dataset
    if ds is not None and ds.kind in BENCHMARK_KINDS:
        return True
    cfg = ctx.part(BenchmarkConfig)
    return cfg.benchmark != "none"


def benchmark_source(ctx: JobContext, cfg: BenchmarkConfig, model_path: Path) -> Source:
    """Where the job's benchmark is (module docstring); a missing path is one clear error."""
    ds = ctx.dataset
    if ds is not None and ds.kind in BENCHMARK_KINDS and ds.path is not None:
        return Source(ds.kind, Path(ds.path), cfg.tofu_split)
    kind = cfg.benchmark if cfg.benchmark != "none" else "tofu"
    if not cfg.benchmark_path.strip():
        raise ValueError(
            f"config field 'benchmark_path' is empty: fill in the folder of your {kind.upper()} "
            f"files (docs/own-models.md says where to get them and how to lay them out), or "
            f"'{TINY_WORLD}' for the built-in model's own facts in the TOFU layout"
        )
    if cfg.benchmark_path.strip() == TINY_WORLD:
        if kind != "tofu":
            raise ValueError(f"'{TINY_WORLD}' is a TOFU-layout world; set benchmark to tofu")
        folder, name, split = tiny_world(ctx, model_path)
        return Source("tofu", folder, name, split)
    path = Path(cfg.benchmark_path).expanduser()
    if not path.exists():
        raise ValueError(
            f"config field 'benchmark_path': {path} does not exist; fill in the folder of your "
            f"{kind.upper()} files (see docs/own-models.md)"
        )
    return Source(kind, path, cfg.tofu_split)


def tiny_world(ctx: JobContext, model_path: Path) -> tuple[Path, str, Any]:
    """The model's universe (default forget set) in the TOFU layout, written once into
    ``<project>/cache/llm/tofu-world/<key>``."""
    from backends.llm.benchmarks.tofu_world import (
        WORLD_FILE,
        world_key,
        world_split,
        write_tofu_world,
    )
    from backends.llm.jobs import _split
    from backends.llm.universe import Universe
    from backends.llm.zoo import UNIVERSE_FILE

    universe_file = model_path / UNIVERSE_FILE
    if not universe_file.is_file():
        raise ValueError(
            f"'{TINY_WORLD}' needs a model with a {UNIVERSE_FILE} (the built-in tiny GPT); "
            f"{model_path} has none"
        )
    universe = Universe.load(universe_file)
    folder = (
        ctx.project.root
        / "cache"
        / "llm"
        / "tofu-world"
        / world_key(universe_file, "entity", "", 1)
    )
    if not (folder / WORLD_FILE).is_file():
        split = _split(universe, "entity", "", 1)
        write_tofu_world(universe, split, folder)
        ctx.log(f"wrote the tiny GPT's facts in the TOFU layout to {folder}")
    name, split = world_split(folder, universe)
    return folder, name, split


def load_source(src: Source) -> Any:
    from backends.llm.benchmarks.loaders import load_benchmark

    return load_benchmark(src.kind, src.path, src.tofu_split)


def _reference(
    ctx: JobContext, cfg: BenchmarkConfig, src: Source, loaded: Any
) -> tuple[Any, str] | None:
    """The retain-only model (``retain_model``, else the tiny GPT's retrained reference of a
    tiny-world forget set) with a line saying which; ``None`` when there is none."""
    if cfg.retain_model.strip():
        from transformers import AutoModelForCausalLM

        from backends.llm.models import check_causal_lm_folder

        folder = Path(cfg.retain_model).expanduser()
        try:
            check_causal_lm_folder(str(folder))
        except ValueError as exc:
            raise ValueError(f"config field 'retain_model': {exc}") from None
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
        return model.to(loaded.device).eval(), f"retain-only model {folder}"
    if src.world_split is not None:
        from backends.llm.references import load_reference, retrained_reference

        folder = retrained_reference(
            Path(loaded.path),
            src.world_split,
            ctx.project.root / "cache" / "llm",
            device=str(loaded.device),
            log=ctx.log,
        )
        return load_reference(folder, str(loaded.device)), f"retrained reference {folder.name}"
    return None


def score(model: Any, tok: Any, src: Source, data: Any, cfg: BenchmarkConfig, seed: int) -> Any:
    from backends.llm.benchmarks import evaluate as E

    if src.kind == "tofu":
        return E.score_tofu(model, tok, data, cfg, seed)
    if src.kind == "muse":
        return E.score_muse(model, tok, data, cfg, seed)
    return E.score_mc(model, tok, data, cfg, seed)


def metrics_of(
    scores: Any, reference: Any, src: Source, cfg: BenchmarkConfig, run: Any, seed: int
) -> dict[str, float]:
    from backends.llm.benchmarks import evaluate as E

    boot = dict(n_bootstrap=run.n_bootstrap, confidence=run.confidence, seed=seed)
    if src.kind == "tofu":
        return E.tofu_metrics(scores, reference, **boot)
    if src.kind == "muse":
        return E.muse_metrics(scores, reference, cfg, **boot)
    return E.mc_metrics(scores, **boot)


def _estimate(m: dict[str, float], key: str) -> str:
    if key not in m:
        return "n/a"
    if f"{key}_low" in m:
        return f"{m[key]:.3f} [{m[f'{key}_low']:.3f}, {m[f'{key}_high']:.3f}]"
    return f"{m[key]:.3f}"


def _table(columns: dict[str, dict[str, float]], title: str) -> Table:
    keys: list[str] = []
    for m in columns.values():
        keys += [k for k in m if not k.endswith(("_low", "_high", "_n")) and k not in keys]
    rows = [[k] + [_estimate(m, k) for m in columns.values()] for k in keys]
    return Table(["metric", *columns], rows, title=title)


def _load(ctx: JobContext, device: str, dtype: str) -> Any:
    from backends.llm.jobs import _load as load

    return load(ctx, device, dtype)


# -- llm.benchmark_eval ----------------------------------------------------------------------------
def run_benchmark_eval(ctx: JobContext) -> dict[str, float]:
    """Evaluate the job's model on its benchmark; with a retain-only model also that model, and
    TOFU forget quality / MUSE PrivLeak against it."""
    from backends.common.seeding import seed_everything

    cfg = ctx.part(BenchmarkConfig)
    run = ctx.part(BenchmarkRunConfig)
    seed_everything(ctx.seed)
    from backends.llm.jobs import _model_path

    src = benchmark_source(ctx, cfg, _model_path(ctx))
    data = load_source(src)
    loaded = _load(ctx, run.device, run.dtype)
    ctx.log(f"{src.kind} from {src.path}" + (f" ({src.tofu_split})" if src.kind == "tofu" else ""))
    ctx.progress(0.1, text="scoring the model")
    mine = score(loaded.model, loaded.tokenizer, src, data, cfg, ctx.seed)
    ref_scores, ref_metrics = None, {}
    ref = _reference(ctx, cfg, src, loaded) if src.kind != "wmdp" else None
    if ref is not None:
        ctx.progress(0.55, text=f"scoring the {ref[1]}")
        ctx.log(f"against the {ref[1]}")
        ref_scores = score(ref[0], loaded.tokenizer, src, data, cfg, ctx.seed)
        ref_metrics = metrics_of(ref_scores, ref_scores, src, cfg, run, ctx.seed)
    elif src.kind != "wmdp":
        ctx.log(
            "no retain-only model: forget quality / PrivLeak against it are skipped",
            level="warning",
        )
    out = metrics_of(mine, ref_scores, src, cfg, run, ctx.seed)
    ctx.metrics(out, step=0)
    if ref_metrics:
        ctx.metrics({f"retrained/{k}": v for k, v in ref_metrics.items()}, step=0)
    columns = {"model": out} | ({"retain-only": ref_metrics} if ref_metrics else {})
    ctx.artifact("benchmark", _table(columns, f"{src.kind.upper()} metrics (95% intervals)"))
    return {k: v for k, v in out.items() if not k.endswith(("_low", "_high"))}


# -- llm.unlearn.<method> on a benchmark -----------------------------------------------------------
def training_texts(src: Source, data: Any, cfg: BenchmarkConfig, seed: int) -> tuple[list, list]:
    """(forget texts, retain texts) an unlearning method trains on (module docstring)."""
    from backends.llm.benchmarks.evaluate import subsample

    if src.kind == "tofu":
        fmt = lambda it: cfg.prompt_format.format(question=it.question) + cfg.answer_sep + it.answer  # noqa: E731
        forget = [fmt(it) for it in data.forget]
        retain = [fmt(it) for it in data.retain]
    elif src.kind == "muse":
        qa = lambda it: f"Question: {it.question}\nAnswer: {it.answer}"  # noqa: E731
        forget = data.raw_forget or (
            [qa(it) for it in data.forget_qa] + [p + " " + g for p, g in data.verbmem]
        )
        retain = data.raw_retain or [qa(it) for it in data.retain_qa]
    else:
        raise ValueError(
            "WMDP / MMLU multiple-choice files hold no forget corpus to unlearn from: unlearn "
            "from a TOFU or MUSE folder and evaluate WMDP with llm.benchmark_eval"
        )
    if cfg.max_train_texts:
        retain = subsample(retain, cfg.max_train_texts, seed)
    return forget, retain


def run_benchmark_unlearn(ctx: JobContext) -> dict[str, float]:
    """``llm.unlearn.<method>`` on a benchmark's forget / retain sets (module docstring)."""
    from backends.common.lora import LoraSpec, add_lora, merge_lora
    from backends.common.unlearn_job import UnlearnSteps, run_unlearn_job
    from backends.llm.jobconfigs import LLMSetupConfig
    from backends.llm.methods import get_method
    from backends.llm.methods.common import LLMData

    cfg = ctx.part(BenchmarkConfig)
    setup = ctx.part(LLMSetupConfig)
    info = get_method(ctx.spec.method)
    method_cfg = ctx.part(info.config)
    state: dict[str, Any] = {}

    def load() -> tuple[Any, LLMData]:
        from backends.llm.jobs import _model_path

        # the files first: a missing path or a wrong layout stops the run before the model loads
        src = state["src"] = benchmark_source(ctx, cfg, _model_path(ctx))
        data = state["data"] = load_source(src)
        loaded = state["loaded"] = _load(ctx, setup.device, setup.dtype)
        forget, retain = training_texts(src, data, cfg, ctx.seed)
        ctx.log(f"{src.kind} from {src.path}: {len(forget)} forget and {len(retain)} retain texts")
        return loaded.model, LLMData(loaded.tokenizer, forget, retain)

    def evaluate(model: Any) -> Any:
        return score(model, state["loaded"].tokenizer, state["src"], state["data"], cfg, ctx.seed)

    def working(model: Any) -> Any:
        return add_lora(model, LoraSpec(rank=setup.lora_rank)) if setup.use_lora else model

    def finish(model: Any) -> Any:
        return merge_lora(model) if setup.use_lora else model

    def after(model: Any, before: Any, _result: Any, _seconds: float) -> Any:
        src, loaded = state["src"], state["loaded"]
        after_scores = evaluate(model)
        ref_scores = None
        ref = _reference(ctx, cfg, src, loaded)
        if ref is not None:
            ctx.progress(0.8, text=f"scoring the {ref[1]}")
            ctx.log(f"against the {ref[1]}")
            ref_scores = evaluate(ref[0])
        run = setup  # n_bootstrap and confidence
        b = metrics_of(before, ref_scores, src, cfg, run, ctx.seed)
        a = metrics_of(after_scores, ref_scores, src, cfg, run, ctx.seed)
        r = metrics_of(ref_scores, ref_scores, src, cfg, run, ctx.seed) if ref_scores else {}
        ctx.metrics({f"before/{k}": v for k, v in b.items()}, step=0)
        ctx.metrics(a, step=1)
        if r:
            ctx.metrics({f"retrained/{k}": v for k, v in r.items()}, step=1)
        return b, a, r

    def save(model: Any) -> None:
        loaded, src = state["loaded"], state["src"]

        def write(folder: Path) -> None:
            model.save_pretrained(folder)
            loaded.tokenizer.save_pretrained(folder)
            (folder / "benchmark.json").write_text(
                json.dumps({"benchmark": src.kind, "path": str(src.path), "split": src.tofu_split})
            )

        meta = {"method": info.name, "benchmark": src.kind, "forget": src.tofu_split}
        ctx.save_model(f"{info.name}-run{ctx.run_id}", write, kind="llm.causal", meta=meta)

    def artifacts(_before: Any, measured: Any) -> None:
        b, a, r = measured
        columns = {"before": b, "after": a} | ({"retain-only": r} if r else {})
        title = f"{info.title} on {state['src'].kind.upper()} (95% intervals)"
        ctx.artifact("before vs after", _table(columns, title))

    steps = UnlearnSteps(
        load,
        evaluate,
        after,
        save,
        artifacts,
        working=working,
        finish=finish,
        measuring="evaluating the original on the benchmark",
    )
    return run_unlearn_job(
        ctx, steps, info, method_cfg, checkpoint_every=getattr(ctx.config, "checkpoint_every", None)
    )
