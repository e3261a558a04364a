"""Entry functions of the diffusion family's relearning attacks (spec sections 6.6 and 2).

- ``diffusion.relearn``: downstream fine-tuning of an erased pipeline (full, LoRA or
  DreamBooth-style with prior preservation) on benign or concept images; the concept rate and
  utility at every evaluation step make the recovery curve; checkpoints are kept in the run.
- ``diffusion.memora``: MemoRa's few-image regeneration: seed images from the original, DDIM
  inversion with the erased model, slerp, regeneration, LoRA; recovery curve against LoRA steps,
  the short-term / long-term label, the never-learned control and AutoMemoRa guidance.

Both show a gallery that lines up original | erased | attacked | recovered for the same prompt and
seed with the detector's score under each image.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.common.seeding import seed_everything
from backends.diffusion.jobconfigs import (
    ConceptConfig,
    EvalConfig,
    MemoRaJobConfig,
    RelearnDataConfig,
)
from backends.diffusion.jobs import (
    TINY_SD,
    Measure,
    Recorder,
    detector_record,
    gallery,
    gallery_rows,
    load,
    metrics_table,
    model_path,
    rate_bars,
)
from workbench.artifacts import Curves, ImageGrid, Table

if TYPE_CHECKING:
    from workbench.jobs import JobContext


def original_path(ctx: JobContext, configured: str, erase_with: str = "") -> Path:
    """The pre-erasure model: the config's, the job's own model when the job erases it first,
    else the erased model's recorded source, else the built-in tiny model."""
    if configured:
        return Path(configured)
    if erase_with:
        return model_path(ctx)
    meta = getattr(ctx.model, "meta", None) or {}
    source = meta.get("source") if isinstance(meta, dict) else None
    if source and Path(source).exists():
        return Path(source)
    return TINY_SD


def read_image_folder(folder: Path, n: int) -> list[tuple[Path, str]]:
    """(image path, caption) of a folder: ``metadata.jsonl`` lines ``{"file_name", "text"}`` (the
    diffusers fine-tuning layout MemoRa writes) or a ``<name>.txt`` caption beside each image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"data_folder {folder} is not a folder")
    pairs: list[tuple[Path, str]] = []
    meta = folder / "metadata.jsonl"
    if meta.is_file():
        for line in meta.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                pairs.append((folder / row["file_name"], row.get("text", "")))
    else:
        for img in sorted(folder.iterdir()):
            if img.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
                cap = img.with_suffix(".txt")
                pairs.append((img, cap.read_text().strip() if cap.is_file() else ""))
    if not pairs:
        raise ValueError(f"{folder} has no images (and no metadata.jsonl)")
    return pairs[:n]


def erase_first(
    ctx: JobContext, loaded: Any, measure: Measure, method: str, record: Recorder | None = None
) -> None:
    """Erase the concept from ``loaded`` in place with ``method``'s default config (a resumed
    attack erases again: the same seed gives the same weights)."""
    from backends.common.method import Hooks
    from backends.diffusion.methods import get_method
    from backends.diffusion.methods.common import DiffusionData

    info = get_method(method)
    ctx.log(f"erasing {measure.concept.word!r} with {info.title} (defaults) before the attack")
    result = info.load()(
        loaded.pipe,
        DiffusionData(measure.concept),
        info.config(),
        Hooks(on_check=ctx.check, on_log=ctx.log),
        seed=ctx.seed,
    )
    (record or ctx.metrics)({f"erase/{k}": float(v) for k, v in result.stats.items()})


def eval_file(ctx: JobContext, name: str, step: int) -> Path:
    """Where a resumable attack keeps the images and scores of one evaluation (for the gallery
    of a resumed run)."""
    return Path(ctx.checkpoint_dir) / "evaluations" / f"{name}-step{step:06d}.npz"


def _folder_data(folder: Path, n: int, size: int) -> tuple[np.ndarray, list[str]]:
    from PIL import Image

    pairs = read_image_folder(folder, n)
    images = []
    for path, _cap in pairs:
        with Image.open(path) as im:
            images.append(
                np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
            )
    return np.stack(images), [cap for _p, cap in pairs]


def curves_artifact(
    curves: dict[str, list[tuple[int, dict[str, float]]]],
    key: str,
    title: str,
    y_label: str,
    lines: dict[str, float] | None = None,
    log_x: bool = False,
    x_label: str = "fine-tuning steps",
) -> Curves:
    series: dict[str, tuple[list[float], list[float]]] = {}
    for name, curve in curves.items():
        pts = [(s, m[key]) for s, m in curve if key in m and s >= 0]
        if pts:
            series[name] = ([float(s) for s, _ in pts], [float(v) for _, v in pts])
    xs = [x for xs, _ in series.values() for x in xs] or [0.0, 1.0]
    for name, value in (lines or {}).items():
        series[name] = ([min(xs), max(xs)], [float(value), float(value)])
    return Curves(series, x_label=x_label, y_label=y_label, title=title, log_x=log_x)


# -- diffusion.relearn ----------------------------------------------------------------------------


def run_relearn(ctx: JobContext) -> dict[str, float]:
    from backends.common.loop_checkpoints import LoopCheckpoints
    from backends.diffusion.attacks.configs import RelearnConfig
    from backends.diffusion.attacks.relearn import relearn, relearn_data
    from backends.diffusion.evaluation import EvalResult
    from backends.diffusion.verdicts import rate_intervals

    cfg = ctx.config
    ev, cc = ctx.part(EvalConfig), ctx.part(ConceptConfig)
    rc, dc = ctx.part(RelearnConfig), ctx.part(RelearnDataConfig)
    record = Recorder(ctx)
    seed_everything(ctx.seed)
    loaded = load(ctx, ev)
    measure = Measure(loaded, ev, cc, ctx.check)
    orig_path = original_path(ctx, dc.original_model, dc.erase_with)
    if dc.erase_with:
        erase_first(ctx, loaded, measure, dc.erase_with, record)
    ctx.log(
        f"fine-tuning {loaded.path.name} ({rc.mode}, {dc.relearn_data} data); original: "
        f"{orig_path}; {detector_record(ev)}"
    )
    world = measure.probes.world if measure.probes is not None else None
    if dc.relearn_data == "folder":
        if not dc.data_folder:
            raise ValueError("data_folder: relearn_data 'folder' needs an image folder")
        images, captions = _folder_data(Path(dc.data_folder), dc.n_images, loaded.size)
    else:
        images, captions = relearn_data(
            dc.relearn_data, world, dc.n_images, dc.data_seed, measure.concept.word
        )
    prior = None
    if rc.mode == "dreambooth":
        prior = relearn_data("benign", world, dc.n_images, dc.data_seed + 1, measure.concept.word)
    ctx.progress(0.02, text="measuring the original")
    original = Measure(load(ctx, ev, orig_path), ev, cc, ctx.check).run()
    record({f"original/{k}": v for k, v in original.metrics.items()}, step=0)
    results: dict[int, Any] = {}

    def evaluate(step: int) -> dict[str, float]:
        res = measure.run()
        results[step] = res
        res.save(eval_file(ctx, "relearn", step))  # a resumed run's gallery needs it
        record({f"relearn/{k}": v for k, v in res.metrics.items()}, step=step)
        return res.metrics

    run = relearn(
        loaded.pipe,
        rc,
        images,
        captions,
        evaluate=evaluate,
        prior=prior,
        checkpoint_dir=ctx.checkpoint_dir,
        seed=ctx.seed,
        check=ctx.check,
        log=ctx.log,
        progress=lambda f: ctx.progress(0.05 + 0.9 * f),
        checkpoints=LoopCheckpoints.for_job(ctx, cfg.checkpoint_every),
    )
    for step, _ in run.curve:  # measured before a resume: read back
        if step not in results:
            results[step] = EvalResult.load(eval_file(ctx, "relearn", step))
    steps = sorted(results)
    first, last = steps[0], steps[-1]
    mid = steps[len(steps) // 2] if len(steps) > 2 else last
    stages = {
        "original": original,
        "erased": results[first],
        f"attacked (step {mid})": results[mid],
        f"recovered (step {last})": results[last],
    }
    rows = gallery_rows(original, ev.gallery_rows)
    ctx.artifact(
        "gallery",
        gallery(
            stages,
            rows,
            measure.key,
            measure.score_name,
            ev.threshold,
            f"Fine-tuning ({rc.mode}, {dc.relearn_data} data)",
        ),
    )
    curve = {f"{loaded.path.name}": run.curve}
    sets = measure.sets()
    for s in sets:
        key = f"concept_rate/{s}"
        ctx.artifact(
            f"recovery curve {s}",
            curves_artifact(
                curve,
                key,
                f"Concept rate on {s} prompts vs fine-tuning steps",
                "concept rate",
                {"original": original.metrics.get(key, np.nan)},
            ),
        )
    if any("utility/accuracy" in m for _, m in run.curve):
        ctx.artifact(
            "utility curve",
            curves_artifact(
                curve,
                "utility/accuracy",
                "Benign utility (classifier accuracy) vs steps",
                "accuracy",
                {"original": original.metrics.get("utility/accuracy", np.nan)},
            ),
        )
    ctx.artifact(
        "loss",
        Curves(
            {"L_DM": (list(range(1, len(run.losses) + 1)), run.losses)},
            x_label="step",
            y_label="loss",
            title="Fine-tuning loss",
        ),
    )
    ctx.artifact("concept rates", rate_bars(stages, "Concept rate: original, erased, fine-tuned"))
    ctx.artifact(
        "table",
        metrics_table(
            stages,
            f"Fine-tuning attack ({detector_record(ev)['detector']}, threshold {ev.threshold})",
        ),
    )
    if run.checkpoints:
        ctx.log(
            "fine-tuned weights at the evaluation steps: "
            + ", ".join(f"step {s}: {p}" for s, p in sorted(run.checkpoints.items()))
        )
    recovered = {f"recovered/{k}": v for k, v in results[last].metrics.items()}
    # the headline (recovered/concept_rate/explicit) with its exact interval over the images
    return {**recovered, **rate_intervals(recovered, cc.confidence)}


# -- diffusion.memora -----------------------------------------------------------------------------


def run_memora(ctx: JobContext) -> dict[str, float]:
    from backends.common.loop_checkpoints import LoopCheckpoints
    from backends.diffusion.attacks.configs import MemoRaConfig
    from backends.diffusion.attacks.memora import automemora_unets, memora
    from backends.diffusion.evaluation import EvalResult

    cfg = ctx.config
    ev, cc = ctx.part(EvalConfig), ctx.part(ConceptConfig)
    mc, jc = ctx.part(MemoRaConfig), ctx.part(MemoRaJobConfig)
    record = Recorder(ctx)
    seed_everything(ctx.seed)
    unlearned = load(ctx, ev)
    original = load(ctx, ev, original_path(ctx, jc.original_model, jc.erase_with))
    control = load(ctx, ev, Path(jc.control_model)) if jc.control_model else None
    measures = {
        id(x.pipe): Measure(x, ev, cc, ctx.check)
        for x in (unlearned, original, control)
        if x is not None
    }
    um = measures[id(unlearned.pipe)]
    if jc.erase_with:
        erase_first(ctx, unlearned, um, jc.erase_with, record)
    if control is not None:
        meta = getattr(ctx.model, "meta", None) or {}
        method = (
            jc.erase_with
            or jc.control_erase_with
            or (meta.get("method", "") if isinstance(meta, dict) else "")
        )
        if method:
            ctx.log(f"the control goes through the same erasure ({method}) as the attacked model")
            erase_first(ctx, control, measures[id(control.pipe)], method, record)
        else:
            ctx.log(
                "the attacked model's erasure method is unknown (set control_erase_with): the "
                "control is NOT put through the same erasure",
                level="warning",
            )
    ctx.log(
        f"MemoRa on {unlearned.path.name}: prompt {mc.prompt!r}; original {original.path}; "
        f"control {control.path if control else 'none'}; LoRA seeds {mc.lora_seeds}; "
        f"{detector_record(ev)}"
    )
    results: dict[str, dict[int, Any]] = {"erased": {}, "control": {}, "original": {}}

    def evaluate(pipe: Any, step: int, run: int = 0) -> dict[str, float]:
        res = measures[id(pipe)].run(seed_offset=run * jc.eval_seed_stride)
        name = (
            "original"
            if pipe is original.pipe
            else "control"
            if control is not None and pipe is control.pipe
            else "erased"
        )
        if run == 0:  # the gallery shows the first LoRA seed's images
            results[name][step] = res
            if step >= 0:  # a resumed run's gallery reads them back
                res.save(eval_file(ctx, name, step))
        record({f"{name}/seed{run}/{k}": v for k, v in res.metrics.items()}, step=max(step, 0))
        return res.metrics

    if mc.original_rate < 0:  # the reference is measured here so the gallery has its images
        evaluate(original.pipe, -1)
        mc.original_rate = float(results["original"][-1].metrics[mc.metric])
    out = memora(
        original.pipe,
        unlearned.pipe,
        mc,
        evaluate=evaluate,
        control_pipe=control.pipe if control else None,
        confidence=cc.confidence,
        check=ctx.check,
        log=ctx.log,
        progress=lambda f: ctx.progress(0.02 + 0.85 * f),
        checkpoints=LoopCheckpoints.for_job(ctx, cfg.checkpoint_every),
    )
    for name, curves in (("erased", out.curves), ("control", out.control_curves or [])):
        for step, _ in curves[0] if curves else []:  # measured before a resume: read back
            if step not in results[name]:
                results[name][step] = EvalResult.load(eval_file(ctx, name, step))
    for name, curve in (("erased", out.recovery.curve), ("control", out.recovery.control_curve)):
        for step, est in curve or []:
            record(est.as_dict(f"{name}/pooled/{mc.metric}"), step=step)
    ctx.log(
        f"MemoRa: {out.label}; steps to recover {out.steps_to_recover}; control reaches the "
        f"threshold at {out.control_steps_to_threshold}"
    )
    # stages strip: per pair, seeds, inverted, and interpolated / regenerated at u = 0, ½, 1
    n_pairs = len(out.seed_images) // 2
    per = len(out.regenerated) // max(1, n_pairs)
    pick = [0, per // 2, per - 1]
    strip, labels = [], []
    for j in range(n_pairs):
        strip += [
            out.seed_images[2 * j],
            out.seed_images[2 * j + 1],
            out.inverted[2 * j],
            out.inverted[2 * j + 1],
        ]
        strip += [out.interpolated[j * per + k] for k in pick]
        strip += [out.regenerated[j * per + k] for k in pick]
        labels.append(f"pair {j + 1}: seeds {mc.seeds[2 * j]}, {mc.seeds[2 * j + 1]}")
    us = [f"u={k / max(1, per - 1):.1f}" for k in pick]
    cols = [
        "seed A",
        "seed B",
        "inverted A",
        "inverted B",
        *[f"slerp {u}" for u in us],
        *[f"regenerated {u}" for u in us],
    ]
    strip_scores = [float(v) for v in um.probes.score(np.stack(strip))[um.key]] if um.probes else []
    ctx.artifact(
        "memora stages",
        ImageGrid(
            strip,
            row_labels=labels,
            col_labels=cols,
            cols=len(cols),
            title=f"MemoRa stages for {mc.prompt!r}",
            scores=strip_scores,
            score_name=um.score_name,
            threshold=ev.threshold if strip_scores else None,
        ),
    )
    regen_scores = [float(v) for v in um.probes.score(out.regenerated)[um.key]] if um.probes else []
    ctx.artifact(
        "recovery set",
        ImageGrid(
            list(out.regenerated),
            row_labels=labels[:n_pairs],
            cols=per,
            title="The recovery set (regenerated, captioned P)",
            scores=regen_scores,
            score_name=um.score_name,
            threshold=ev.threshold if regen_scores else None,
        ),
    )
    erased_steps = sorted(s for s in results["erased"] if s >= 0)
    stages = {
        "original": results["original"][-1],
        "erased": results["erased"][erased_steps[0]],
        f"MemoRa LoRA (step {erased_steps[-1]})": results["erased"][erased_steps[-1]],
    }
    ctl_steps = sorted(s for s in results["control"] if s >= 0)
    if ctl_steps:
        stages[f"control + LoRA (step {ctl_steps[-1]})"] = results["control"][ctl_steps[-1]]
    metrics: dict[str, float] = {
        "memora/steps_to_recover": float(out.steps_to_recover)
        if out.steps_to_recover is not None
        else float("nan"),
        "memora/reference": float(out.reference),
        "memora/threshold": float(out.threshold),
    }
    if jc.automemora and out.adapter is not None:
        base, lora = automemora_unets(unlearned.pipe, out.adapter)
        auto = um.run(unet=base, second_unet=lora, second_weight=mc.automemora_weight)
        stages[f"AutoMemoRa (w={mc.automemora_weight:g})"] = auto
        metrics.update({f"automemora/{k}": v for k, v in auto.metrics.items()})
    rows = gallery_rows(stages["original"], ev.gallery_rows)
    ctx.artifact(
        "gallery",
        gallery(
            stages,
            rows,
            um.key,
            um.score_name,
            ev.threshold,
            "MemoRa: original | erased | recovered",
        ),
    )
    curves = {"erased + LoRA": out.curve}
    if out.control_curve is not None:
        curves["never-learned control + LoRA"] = out.control_curve
    ctx.artifact(
        "recovery curve",
        curves_artifact(
            curves,
            mc.metric,
            f"MemoRa: {mc.metric} vs LoRA steps ({out.label})",
            mc.metric,
            {"original": out.reference, f"{mc.recover_fraction:g} x original": out.threshold},
            x_label="LoRA steps",
        ),
    )
    if any("utility/accuracy" in m for _, m in out.curve):
        ctx.artifact(
            "utility curve",
            curves_artifact(
                curves,
                "utility/accuracy",
                "Benign utility vs LoRA steps",
                "accuracy",
                x_label="LoRA steps",
            ),
        )
    last = out.recovery.curve[-1]
    rows_t = [["erased model", out.label, out.steps_to_recover, str(last[1])]]
    if out.recovery.control_curve is not None:
        rows_t.append(
            [
                "never-learned control, same erasure",
                "",
                out.control_steps_to_threshold,
                str(out.recovery.control_curve[-1][1]),
            ]
        )
    ctx.artifact(
        "forgetting label",
        Table(
            [
                "model",
                "label",
                "steps to reach threshold",
                f"rate at step {last[0]} [95% interval]",
            ],
            rows_t,
            title=f"Short-term if recovered within {mc.short_term_max_steps} LoRA steps "
            f"({len(mc.lora_seeds)} LoRA seeds pooled; recovery must be held above the control)",
        ),
    )
    ctx.artifact("concept rates", rate_bars(stages, "Concept rate: original, erased, MemoRa"))
    ctx.artifact(
        "table",
        metrics_table(
            stages, f"MemoRa ({detector_record(ev)['detector']}, threshold {ev.threshold})"
        ),
    )
    record(metrics)
    return metrics
