"""``diffusion.audit``: a real text-to-image audit of one SD model on a benchmark prompt list
(issue 17 part 4; spec ``diffusion-methods.md`` section 1 "Evaluation protocol", sections 7 and 8).

For each row of an I2P or UnlearnDiffAtk CSV (:mod:`backends.diffusion.prompts_csv`) the job
generates ``eval_samples`` images with the row's own seed and guidance (the job's where the row has
none), then measures:

- **concept rate**: the fraction of images the detector flags (NudeNet 3.4.2's max over the 9
  EXPOSED classes above the threshold, the spec's IP; or the built-in probes on the tiny model),
  with its exact 95% interval (:func:`backends.common.stats.rate`), overall and per I2P category;
- **CLIP score**: mean 100·cos(image, own prompt) from a local CLIP folder, with a bootstrap 95%
  interval;
- **FID and KID on CLIP image features** against a folder of reference images (e.g. COCO-10k
  real images), and, when asked, **Inception FID** with the user's Inception weights file.

Every number is recorded with the extractor or detector that produced it (the ``audit`` table and
the run log): CLIP-feature FID is not Inception FID, and the name says so. A metric whose weights
are not given is refused at submit, naming the field to fill in; nothing is substituted.

This module is light at import (config, submit check, job spec); the job imports torch.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.config import ConfigError, param

if TYPE_CHECKING:
    from workbench.jobs import JobContext

AUDIT_METRICS = ("concept_rate", "clip_score", "clip_fid", "inception_fid")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class AuditConfig:
    """What to audit: a benchmark prompt list and the metrics' weights (paths you fill in)."""

    prompts_csv: str = param(
        "",
        "Your benchmark prompt list (FILL IN): a CSV in the I2P layout (prompt, categories, "
        "evaluation_seed / sd_seed, evaluation_guidance / sd_guidance_scale, ...) or the "
        "UnlearnDiffAtk layout (case_number, prompt, evaluation_seed, ...).",
        path=True,
    )
    prompt_layout: str = param(
        "auto",
        "Layout of the CSV: auto (UnlearnDiffAtk when it has case_number, else I2P).",
        choices=("auto", "i2p", "unlearndiffatk"),
    )
    categories: list[str] = param(
        [],
        "I2P: keep only rows in these categories (e.g. sexual); empty: every row.",
    )
    max_prompts: int = param(
        0, "Audit only the first N prompts (0: all of them).", range=(0, 1_000_000)
    )
    metrics: list[str] = param(
        ["concept_rate", "clip_score", "clip_fid"],
        "What to measure: concept rate (the detector below), CLIP score and FID/KID on CLIP "
        "features (need clip_model; FID needs reference_images), Inception FID (needs "
        "inception_weights, reference_images and the torch-fidelity package).",
        choices=AUDIT_METRICS,
    )
    clip_model: str = param(
        "",
        "Local CLIP folder as transformers saves it (FILL IN for CLIP score and CLIP FID/KID), "
        "e.g. openai/clip-vit-base-patch32 saved with save_pretrained.",
        path=True,
    )
    reference_images: str = param(
        "",
        "Folder of reference images for FID/KID (FILL IN), e.g. the COCO-10k real images.",
        path=True,
    )
    max_reference_images: int = param(
        10_000, "Use at most this many reference images (sorted by name).", range=(2, 1_000_000)
    )
    inception_weights: str = param(
        "",
        "FID Inception weights file pt_inception-2015-12-05-6726825d.pth (for inception_fid).",
        path=True,
        advanced=True,
    )
    kid_subsets: int = param(
        100, "KID: number of random subsets.", range=(1, 10_000), advanced=True
    )
    kid_subset_size: int = param(
        1000, "KID: images per subset (capped by the set sizes).", range=(2, 100_000), advanced=True
    )
    batch: int = param(8, "Images generated per batch.", range=(1, 1024), advanced=True)


def _missing(value: str) -> bool:
    return not str(value).strip()


def check_audit(config: Any, model: Any, dataset: Any) -> None:
    """Submit-time checks: every path a chosen metric needs is filled in and exists, the CSV has
    the layout's columns, the packages are installed (light: no torch)."""
    from backends.diffusion.checks import check_submit
    from backends.diffusion.prompts_csv import PromptCSVError, read_prompt_csv

    check_submit(config, model, dataset)
    if _missing(config.prompts_csv):
        raise ConfigError(
            "config field 'prompts_csv': fill in the path of your prompt list (an I2P or "
            "UnlearnDiffAtk CSV; see docs/own-models for where to get them)",
            "prompts_csv",
        )
    try:
        read_prompt_csv(
            config.prompts_csv, config.prompt_layout, categories=config.categories, limit=1
        )
    except PromptCSVError as exc:
        raise ConfigError(f"config field 'prompts_csv': {exc}", "prompts_csv") from None
    if not config.metrics:
        raise ConfigError("config field 'metrics': choose at least one metric", "metrics")
    chosen = set(config.metrics)
    if chosen & {"clip_score", "clip_fid"}:
        if _missing(config.clip_model):
            raise ConfigError(
                "config field 'clip_model': CLIP score and CLIP FID/KID need a local CLIP folder; "
                "fill in its path, or leave clip_score and clip_fid out of metrics",
                "clip_model",
            )
        if not Path(config.clip_model).is_dir():
            raise ConfigError(
                f"config field 'clip_model': {config.clip_model} is not a folder", "clip_model"
            )
    if chosen & {"clip_fid", "inception_fid"}:
        if _missing(config.reference_images):
            raise ConfigError(
                "config field 'reference_images': FID/KID need a folder of reference images; "
                "fill in its path, or leave clip_fid and inception_fid out of metrics",
                "reference_images",
            )
        if len(reference_files(config.reference_images, 3)) < 2:
            raise ConfigError(
                f"config field 'reference_images': {config.reference_images} holds fewer than 2 "
                f"images ({', '.join(IMAGE_SUFFIXES)})",
                "reference_images",
            )
    if "inception_fid" in chosen:
        if _missing(config.inception_weights) or not Path(config.inception_weights).is_file():
            raise ConfigError(
                "config field 'inception_weights': Inception FID needs the FID Inception weights "
                "file pt_inception-2015-12-05-6726825d.pth; fill in its path, or leave "
                "inception_fid out of metrics",
                "inception_weights",
            )
        if importlib.util.find_spec("torch_fidelity") is None:
            raise ConfigError(
                "config field 'metrics': Inception FID needs the torch-fidelity package (pip "
                "install torch-fidelity), which is not installed; leave inception_fid out",
                "metrics",
            )


def reference_files(folder: str | Path, limit: int) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted), at most ``limit``."""
    root = Path(folder)
    if not root.is_dir():
        return []
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return files[:limit]


def load_images(files: list[Path]) -> list[Any]:
    """uint8 RGB arrays (each at its own size)."""
    import numpy as np
    from PIL import Image

    out = []
    for f in files:
        try:
            with Image.open(f) as im:
                out.append(np.asarray(im.convert("RGB")))
        except Exception as exc:  # Pillow raises many types for a broken file
            raise ValueError(f"reference image {f} does not decode ({exc})") from None
    return out


def generate_rows(
    loaded: Any,
    plan: list[tuple[Any, int, float]],
    *,
    steps: int,
    sampler: str,
    batch: int,
    check: Any = None,
    progress: Any = None,
) -> Any:
    """One image per ``(row, seed, guidance)`` of ``plan`` (rows grouped by guidance, since one
    sampler call has one guidance scale), in the plan's order."""
    import numpy as np

    from backends.diffusion.pipeline import generate

    out: list[Any] = [None] * len(plan)
    by_guidance: dict[float, list[int]] = {}
    for i, (_, _, g) in enumerate(plan):
        by_guidance.setdefault(float(g), []).append(i)
    done = 0
    for g, idx in by_guidance.items():
        for start in range(0, len(idx), batch):
            part = idx[start : start + batch]
            images = generate(
                loaded,
                [plan[i][0].prompt for i in part],
                [plan[i][1] for i in part],
                steps=steps,
                guidance=g,
                scheduler=sampler,
                batch=batch,
                check=check,
            )
            for i, im in zip(part, images, strict=True):
                out[i] = im
            done += len(part)
            if progress is not None:
                progress(done / len(plan))
    return np.stack(out)


def run_audit(ctx: JobContext) -> dict[str, float]:
    """The ``diffusion.audit`` job (see the module docstring)."""
    import numpy as np

    from backends.common.seeding import seed_everything
    from backends.common.stats import bootstrap_mean, rate
    from backends.diffusion.jobconfigs import EvalConfig
    from backends.diffusion.jobs import detector_record, load, load_probes
    from backends.diffusion.prompts_csv import read_prompt_csv
    from workbench.artifacts import ImageGrid, Table

    ac, ev = ctx.part(AuditConfig), ctx.part(EvalConfig)
    seed_everything(ctx.seed)
    prompts = read_prompt_csv(
        ac.prompts_csv, ac.prompt_layout, categories=ac.categories, limit=ac.max_prompts
    )
    plan = prompts.seeds_and_guidance(ev.eval_samples, ev.eval_seed, ev.cfg_scale)
    ctx.log(
        f"{len(prompts.rows)} prompts from {prompts.path} ({prompts.layout} layout), "
        f"{ev.eval_samples} image(s) each: {len(plan)} images"
    )
    loaded = load(ctx, ev)
    ctx.progress(0.05, text=f"generating {len(plan)} images")
    images = generate_rows(
        loaded,
        plan,
        steps=ev.sampling_steps,
        sampler=ev.sampler,
        batch=ac.batch,
        check=ctx.check,
        progress=lambda f: ctx.progress(0.05 + 0.6 * f),
    )
    out: dict[str, float] = {"images": float(len(images))}
    rows: list[list[Any]] = []  # metric, value, low, high, n, extractor
    scores: list[float | None] = [None] * len(images)
    clip_per: list[float] = []
    conf = 0.95
    if "concept_rate" in ac.metrics:
        ctx.progress(0.68, text="scoring the concept")
        record = detector_record(ev)
        if ev.detector == "nudenet":
            from backends.diffusion.probes import nudenet_scores

            s = nudenet_scores(list(images))
        else:
            s = load_probes(ev, loaded.path).score(images)["striped"]
        flags = np.asarray(s) > ev.threshold
        scores = [float(v) for v in s]
        est = rate(int(flags.sum()), len(flags), conf)
        out.update(est.as_dict("concept_rate"))
        detector = f"{record['detector']} > {ev.threshold}" + (
            f" ({record['classes']})" if "classes" in record else ""
        )
        rows.append(["concept_rate", est.value, est.low, est.high, est.n, detector])
        cats = sorted({c for r, _, _ in plan for c in r.categories})
        for cat in cats if len(cats) > 1 else []:
            sel = [i for i, (r, _, _) in enumerate(plan) if cat in r.categories]
            e = rate(int(flags[sel].sum()), len(sel), conf)
            rows.append([f"concept_rate/{cat}", e.value, e.low, e.high, e.n, detector])
            out[f"concept_rate/{cat}"] = e.value
    clip = None
    if {"clip_score", "clip_fid"} & set(ac.metrics):
        from backends.diffusion.metrics_real import ClipFeatures

        clip = ClipFeatures(ac.clip_model, device=str(loaded.device))
        ctx.log(f"CLIP metrics with {clip.name} from {ac.clip_model}")
    if "clip_score" in ac.metrics and clip is not None:
        from backends.diffusion.metrics_real import clip_score

        ctx.progress(0.75, text="CLIP score")
        res = clip_score(clip, list(images), [r.prompt for r, _, _ in plan])
        clip_per = res.per_image
        est = bootstrap_mean(res.per_image, confidence=conf, seed=ctx.seed)
        out.update(est.as_dict("clip_score"))
        rows.append(["clip_score", est.value, est.low, est.high, est.n, res.extractor])
    reference: list[Any] = []
    if {"clip_fid", "inception_fid"} & set(ac.metrics):
        files = reference_files(ac.reference_images, ac.max_reference_images)
        reference = load_images(files)
        ctx.log(f"{len(reference)} reference images from {ac.reference_images}")
    if "clip_fid" in ac.metrics and clip is not None:
        from backends.diffusion.metrics_real import clip_fid

        ctx.progress(0.85, text="FID/KID on CLIP features")
        fid, kid = clip_fid(
            clip,
            list(images),
            reference,
            kid_subsets=ac.kid_subsets,
            kid_subset_size=ac.kid_subset_size,
            seed=ctx.seed,
        )
        out["clip_fid"] = fid.value
        out["clip_kid"], out["clip_kid_std"] = kid.value, kid.extra["std"]
        rows.append(["clip_fid", fid.value, None, None, len(images), fid.extractor])
        rows.append(["clip_kid", kid.value, None, None, len(images), kid.extractor])
    if "inception_fid" in ac.metrics:
        from backends.diffusion.metrics_real import inception_fid

        ctx.progress(0.92, text="Inception FID")
        res = inception_fid(list(images), reference, ac.inception_weights)
        out["inception_fid"] = res.value
        rows.append(["inception_fid", res.value, None, None, len(images), res.extractor])
    for name, value, low, high, n, extractor in rows:
        ival = f" [{low:.4f}, {high:.4f}]" if low is not None else ""
        ctx.log(f"{name} = {value:.4f}{ival} (n={n}; {extractor})")
    ctx.metrics(out)
    ctx.artifact(
        "audit",
        Table(
            ["metric", "value", "95% low", "95% high", "images", "extractor / detector"],
            rows,
            title=f"{loaded.path.name} on {prompts.path.name}: {ev.sampler} "
            f"{ev.sampling_steps} steps, {ev.eval_samples} image(s) per prompt",
        ),
    )
    ctx.artifact(
        "prompts",
        Table(
            ["case", "prompt", "seed", "guidance", "detector score", "CLIP score"],
            [
                [
                    r.case,
                    r.prompt,
                    s,
                    g,
                    scores[i],
                    clip_per[i] if clip_per else None,
                ]
                for i, (r, s, g) in enumerate(plan)
            ],
            title="every generated image: its row, seed and guidance, and its scores",
        ),
    )
    n_rows = min(ev.gallery_rows, len(prompts.rows)) * ev.eval_samples
    ctx.artifact(
        "images",
        ImageGrid(
            list(images[:n_rows]),
            captions=[f"seed {s}, cfg {g:g}" for _, s, g in plan[:n_rows]],
            row_labels=[r.prompt for r, _, _ in plan[: n_rows : ev.eval_samples]],
            cols=ev.eval_samples,
            title=f"{loaded.path.name}: {prompts.path.name} ({prompts.layout})",
            scores=scores[:n_rows] if "concept_rate" in ac.metrics else [],
            score_name="NudeNet max" if ev.detector == "nudenet" else "stripe p",
            threshold=ev.threshold if "concept_rate" in ac.metrics else None,
        ),
    )
    return out


def job_spec() -> Any:
    """``diffusion.audit`` (issue 17 part 4)."""
    from backends.common.configs import compose_config
    from backends.diffusion.jobconfigs import EvalConfig
    from workbench.registry import JobSpec

    return JobSpec(
        name="diffusion.audit",
        kind="evaluate",
        family="diffusion",
        method="audit",
        title="Audit on a benchmark prompt list (I2P / UnlearnDiffAtk)",
        description="Generate every prompt of an I2P or UnlearnDiffAtk CSV with its own seed and "
        "guidance, then measure the concept rate (NudeNet or the probes) with its 95% interval, "
        "the CLIP score, and FID/KID on CLIP features (or Inception FID) against reference "
        "images; each number names the network that produced it. For SD folders and single-file "
        "checkpoints (spec sections 1, 7, 8).",
        config=compose_config(
            "DiffusionAuditConfig",
            "A real text-to-image audit on a benchmark prompt list.",
            AuditConfig,
            EvalConfig,
        ),
        entry="backends.diffusion.audit:run_audit",
        needs_model="diffusion",
        submit_check="backends.diffusion.audit:check_audit",
    )
