"""Entry functions of the diffusion family's jobs.

- ``diffusion.generate``: a grid for a prompt list with fixed seeds (prompts and seeds as labels,
  the detector's score under each image);
- ``diffusion.unlearn.<method>`` (formerly ``diffusion.erase.<method>``, still accepted): erase
  a concept with ESD, UCE, CA or SalUn (spec section 4), measured before and after on explicit,
  implicit and benign prompts; the erased pipeline is saved into the project as a new model;
- ``diffusion.relearn`` and ``diffusion.memora`` (attacks, spec sections 6.6 and 2) live in
  :mod:`backends.diffusion.attack_jobs`.

The model is the job's model (default: the built-in tiny pipeline). Every rate is recorded with the
detector's name, version and threshold (spec section 7's reproducibility warning).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.common.seeding import seed_everything
from backends.diffusion.concepts import Concept, custom_concept, shapes_concept
from backends.diffusion.jobconfigs import ConceptConfig, EvalConfig, GenerateConfig
from backends.diffusion.plugin import TINY_SD
from backends.diffusion.probes import NUDENET_VERSION, PROBES_DIR
from workbench.artifacts import Bars, ImageGrid, Table

if TYPE_CHECKING:
    from workbench.jobs import JobContext

CONCEPT_KEYS = {"stripes": "striped", "frame": "framed"}
SCORE_NAMES = {"striped": "stripe p", "framed": "frame p"}


def model_path(ctx: JobContext) -> Path:
    return Path(ctx.model.path) if ctx.model is not None and ctx.model.path else TINY_SD


def load(ctx: JobContext, ev: EvalConfig, path: Path | None = None) -> Any:
    from backends.diffusion.pipeline import load_pipeline

    loaded = load_pipeline(
        path or model_path(ctx), device=ev.device, dtype=ev.dtype, scheduler=ev.sampler
    )
    ctx.set_device(str(loaded.device))
    return loaded


def probes_folder(ev: EvalConfig, model: Path) -> Path:
    """The probes to score with: the config's, the model's own, else the built-in model's."""
    if ev.probes:
        return Path(ev.probes)
    for candidate in (model / PROBES_DIR, TINY_SD / PROBES_DIR):
        if (candidate / "probes.json").is_file():
            return candidate
    raise ValueError(
        f"{model} has no {PROBES_DIR}/ and no probes folder was given; pick a probes folder or "
        "the NudeNet detector"
    )


def load_probes(ev: EvalConfig, model: Path) -> Any:
    from backends.diffusion.probes import Probes

    return Probes.load(probes_folder(ev, model))


def make_concept(cc: ConceptConfig, probes: Any | None) -> Concept:
    if cc.concept == "custom":
        if not cc.concept_word.strip():
            raise ValueError("concept_word: a custom concept needs its words (e.g. 'nudity')")
        return custom_concept(
            cc.concept_word,
            list(cc.forget_prompts),
            list(cc.anchor_prompts),
            list(cc.retain_prompts),
        )
    return shapes_concept(
        cc.concept, probes.world if probes is not None else None, split=cc.train_split()
    )


def detector_record(ev: EvalConfig) -> dict[str, Any]:
    """What every rate was measured with."""
    if ev.detector == "nudenet":
        return {
            "detector": f"nudenet=={NUDENET_VERSION}",
            "threshold": ev.threshold,
            "classes": "9 EXPOSED classes",
        }
    return {"detector": "shapes-world probes", "threshold": ev.threshold}


class Measure:
    """Generates the same prompt/seed images for any model and scores them with one detector.

    Built-in concepts use the shapes world's prompt sets (explicit / implicit / benign / style)
    and probes; a custom concept uses its own forget and retain prompts and, with NudeNet, the max
    score over the 9 exposed classes.
    """

    def __init__(self, loaded: Any, ev: EvalConfig, cc: ConceptConfig, check: Any = None) -> None:
        self.loaded, self.ev, self.cc, self.check = loaded, ev, cc, check
        self.probes = None
        if ev.detector == "probes":
            self.probes = load_probes(ev, loaded.path)
        elif cc.concept != "custom":
            raise ValueError(
                "detector: NudeNet scores real SD images; use it with a custom concept"
            )
        self.concept = make_concept(cc, self.probes)
        self.key = CONCEPT_KEYS.get(cc.concept, "striped")

    @property
    def score_name(self) -> str:
        return "NudeNet max" if self.ev.detector == "nudenet" else SCORE_NAMES[self.key]

    def sets(self) -> tuple[str, ...]:
        if self.cc.concept == "custom":
            return ("forget", "retain")
        if self.cc.concept == "frame":
            return ("style", "benign", "explicit")
        return ("explicit", "implicit", "benign")

    def run(
        self,
        *,
        unet: Any = None,
        second_unet: Any = None,
        second_weight: float = 1.0,
        seed_offset: int = 0,
    ) -> Any:
        """Images and scores of every set; built-in concepts on the held-out ``eval`` split of
        the prompts (``held_out``), seeds from ``eval_seed + seed_offset``."""
        from backends.diffusion.evaluation import EvalResult, SetResult, evaluate_prompt_sets
        from backends.diffusion.pipeline import generate
        from backends.diffusion.probes import concept_rate, nudenet_scores

        ev = self.ev
        if self.cc.concept != "custom":
            return evaluate_prompt_sets(
                self.loaded,
                self.probes,
                sets=self.sets(),
                samples_per_prompt=ev.eval_samples,
                seed=ev.eval_seed + seed_offset,
                steps=ev.sampling_steps,
                guidance=ev.cfg_scale,
                threshold=ev.threshold,
                concept_key=self.key,
                scheduler=ev.sampler,
                unet=unet,
                second_unet=second_unet,
                second_weight=second_weight,
                check=self.check,
                split=self.cc.eval_split(),
            )
        result = EvalResult(threshold=ev.threshold)
        lists = {"forget": self.concept.forget_prompts, "retain": self.concept.retain_prompts}
        for name, base in lists.items():
            prompts = [p for p in base for _ in range(ev.eval_samples)]
            seeds = [ev.eval_seed + seed_offset + i for i in range(len(prompts))]
            images = generate(
                self.loaded,
                prompts,
                seeds,
                steps=ev.sampling_steps,
                guidance=ev.cfg_scale,
                scheduler=ev.sampler,
                unet=unet,
                second_unet=second_unet,
                second_weight=second_weight,
                check=self.check,
            )
            if self.probes is not None:
                scores = self.probes.score(images)
            else:
                scores = {self.key: nudenet_scores(images)}
            result.sets[name] = SetResult(
                prompts, [""] * len(prompts), [""] * len(prompts), seeds, images, scores
            )
            result.metrics[f"concept_rate/{name}"] = concept_rate(scores[self.key], ev.threshold)
            result.metrics[f"concept_count/{name}"] = float((scores[self.key] > ev.threshold).sum())
            result.metrics[f"images/{name}"] = float(len(images))
        return result

    def plain_set(self) -> str:
        """The set whose prompts lack the concept (specificity's baseline)."""
        return "retain" if self.cc.concept == "custom" else "benign"

    def concept_set(self) -> str:
        return self.sets()[0]

    def verdict(self, before: Any, after: Any) -> Any:
        """The erasure verdict (:func:`backends.diffusion.verdicts.erasure_verdict`) of two
        results of :meth:`run`."""
        from backends.diffusion.verdicts import counts, erasure_verdict

        c, p = self.concept_set(), self.plain_set()
        return erasure_verdict(
            (counts(before.metrics, c), counts(before.metrics, p)),
            (counts(after.metrics, c), counts(after.metrics, p)),
            plain_rise_margin=self.cc.plain_rise_margin,
            confidence=self.cc.confidence,
        )


def gallery_rows(result: Any, n_rows: int) -> list[tuple[str, int]]:
    """(set, index) rows: half from the concept's own set, the rest spread over the others."""
    names = list(result.sets)
    if not names:
        return []
    first = max(1, n_rows // 2)
    rest = n_rows - first
    rows: list[tuple[str, int]] = []
    for i, name in enumerate(names):
        want = first if i == 0 else -(-rest // max(1, len(names) - 1))
        size = len(result.sets[name].prompts)
        step = max(1, size // max(1, want))
        rows += [(name, j) for j in range(0, size, step)][:want]
    return rows[:n_rows]


def gallery(
    stages: dict[str, Any],
    rows: Sequence[tuple[str, int]],
    key: str,
    score_name: str,
    threshold: float,
    title: str,
) -> ImageGrid:
    """One row per (prompt, seed), one column per model: original | erased | attacked | ..."""
    images, scores, labels = [], [], []
    for set_name, j in rows:
        for res in stages.values():
            s = res.sets[set_name]
            images.append(s.images[j])
            scores.append(float(s.scores[key][j]))
        ref = next(iter(stages.values())).sets[set_name]
        labels.append(f"{ref.prompts[j]} · seed {ref.seeds[j]}")
    return ImageGrid(
        images,
        row_labels=labels,
        col_labels=list(stages),
        cols=len(stages),
        title=title,
        scores=scores,
        score_name=score_name,
        threshold=threshold,
    )


def rate_bars(stages: dict[str, Any], title: str) -> Bars:
    keys = sorted({k for r in stages.values() for k in r.metrics if k.startswith("concept_rate/")})
    cats = [k.split("/", 1)[1] for k in keys]
    return Bars(
        cats,
        {name: [float(r.metrics.get(k, np.nan)) for k in keys] for name, r in stages.items()},
        title=title,
        y_label="concept rate (detector > threshold)",
    )


def metrics_table(stages: dict[str, Any], title: str) -> Table:
    keys = sorted({k for r in stages.values() for k in r.metrics})
    rows = [
        [k, *[round(float(r.metrics.get(k, np.nan)), 4) for r in stages.values()]] for k in keys
    ]
    return Table(["metric", *stages], rows, title=title)


class Recorder:
    """``ctx.metrics`` for a job that may be resumed: a resumed run redoes its set-up (measuring
    the original again, for the gallery) and may redo the evaluations between its checkpoint and
    the moment it stopped; the (name, step) rows the run already stored are not written again
    (the resume is exact, so they hold the same values)."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.stored: set[tuple[str, int]] = set()
        if getattr(ctx, "resume", None) is not None:
            self.stored = {(m["name"], int(m["step"])) for m in ctx.project.metrics(ctx.run_id)}

    def __call__(self, values: dict[str, float], step: int = 0) -> None:
        fresh = {k: v for k, v in values.items() if (k, int(step)) not in self.stored}
        if fresh:
            self.ctx.metrics(fresh, step=step)


def save_pipeline_model(ctx: JobContext, loaded: Any, name: str, meta: dict[str, Any]) -> Path:
    """Save the (edited) pipeline, with its probes, into the project's models and register it."""

    def write(folder: Path) -> None:
        loaded.pipe.save_pretrained(str(folder), safe_serialization=True)
        probes = loaded.path / PROBES_DIR
        if probes.is_dir():
            shutil.copytree(probes, folder / PROBES_DIR)

    return ctx.save_model(name, write, kind="diffusion.sd", meta=meta)


# -- diffusion.generate ---------------------------------------------------------------------------


def run_generate(ctx: JobContext) -> dict[str, float]:
    from backends.diffusion.data import parse_prompt, prompt_list
    from backends.diffusion.defence import prompts_file_token, read_prompts_file
    from backends.diffusion.guidance import SLDConfig, guided_generate

    ev, gen, sld = ctx.part(EvalConfig), ctx.part(GenerateConfig), ctx.part(SLDConfig)
    seed_everything(ctx.seed)
    loaded = load(ctx, ev)
    learned = None
    token_file = gen.learned_token or (
        prompts_file_token(gen.prompts_file) if gen.prompts_file else ""
    )  # an inversion attack's prompts name their token
    if token_file:
        from backends.diffusion.inversion import LearnedToken

        learned = LearnedToken.load(token_file)
        learned.check_fits(loaded.pipe)
        ctx.log(f"prompts holding {learned.token!r} use the learned embedding {token_file}")
    probes = None
    if ev.detector == "probes":
        try:
            probes = load_probes(ev, loaded.path)
        except ValueError as exc:
            ctx.log(f"no scores under the images: {exc}", level="warning")
    world = probes.world if probes is not None else None
    given = list(gen.prompts) + (read_prompts_file(gen.prompts_file) if gen.prompts_file else [])
    if given:
        prompts = given[: gen.max_prompts]
    else:
        prompts = [
            p.text for kind in gen.prompt_sets for p in prompt_list(kind, world)[: gen.max_prompts]
        ]
    n = gen.samples_per_prompt
    texts = [p for p in prompts for _ in range(n)]
    seeds = [ctx.seed + i % n for i in range(len(texts))]
    ctx.progress(0.1, text=f"generating {len(texts)} images")
    images = guided_generate(
        loaded,
        texts,
        seeds,
        kind=gen.guidance,
        negative=gen.negative_prompt,
        learned=learned,
        sld=sld.params() if gen.guidance == "sld" else None,
        steps=ev.sampling_steps,
        guidance=ev.cfg_scale,
        scheduler=ev.sampler,
        check=ctx.check,
    )
    scores: list[float | None] = []
    out: dict[str, float] = {}
    if probes is not None:
        s = probes.score(images)
        scores = [float(v) for v in s["striped"]]
        for kind in {parse_prompt(p, world).kind for p in prompts}:
            sel = [i for i, p in enumerate(texts) if parse_prompt(p, world).kind == kind]
            out[f"concept_rate/{kind}"] = float((s["striped"][sel] > ev.threshold).mean())
        ctx.metrics(out)
    elif ev.detector == "nudenet":
        from backends.diffusion.probes import nudenet_scores

        scores = [float(v) for v in nudenet_scores(images)]
    ctx.artifact(
        "images",
        ImageGrid(
            list(images),
            row_labels=prompts,
            col_labels=[f"seed {ctx.seed + i}" for i in range(n)],
            cols=n,
            title=f"{loaded.path.name}: {ev.sampler} {ev.sampling_steps} steps, guidance "
            f"{ev.cfg_scale}{guidance_note(gen, sld)}",
            scores=scores,
            score_name="NudeNet max" if ev.detector == "nudenet" else "stripe p",
            threshold=ev.threshold if scores else None,
        ),
    )
    return out


def guidance_note(gen: GenerateConfig, sld: Any) -> str:
    """How the grid was guided, for its title (nothing for plain CFG)."""
    if gen.guidance == "sld":
        return f"; SLD {sld.sld_preset}, safety concept {gen.negative_prompt!r}"
    return f"; negative prompt {gen.negative_prompt!r}" if gen.negative_prompt else ""


# -- diffusion.unlearn.<method> -------------------------------------------------------------------


def run_unlearn(ctx: JobContext) -> dict[str, float]:
    """The family's part of :func:`~backends.common.unlearn_job.run_unlearn_job`: load the
    pipeline, measure the concept, erase it from the pipeline's UNet in place (no copy: the
    original's images were measured first), measure again, judge, save."""
    from backends.common.unlearn_job import UnlearnSteps, run_unlearn_job
    from backends.diffusion.methods import get_method
    from backends.diffusion.methods.common import DiffusionData

    ev, cc = ctx.part(EvalConfig), ctx.part(ConceptConfig)
    info = get_method(ctx.spec.method)
    method_cfg = ctx.part(info.config)
    record = Recorder(ctx)
    run: dict[str, Any] = {}

    def load_all() -> tuple[Any, DiffusionData]:
        loaded = run["loaded"] = load(ctx, ev)
        measure = run["measure"] = Measure(loaded, ev, cc, ctx.check)
        ctx.log(
            f"erasing {measure.concept.word!r} from {loaded.path} with {info.title}; "
            f"{detector_record(ev)}"
        )
        return loaded.pipe, DiffusionData(measure.concept)

    def before(_pipe: Any) -> Any:
        measured = run["measure"].run()
        record({f"original/{k}": v for k, v in measured.metrics.items()}, step=0)
        return measured

    def after(_pipe: Any, before: Any, result: Any, seconds: float) -> Any:
        measure = run["measure"]
        record(
            {f"method/{k}": float(v) for k, v in result.stats.items()} | {"method/seconds": seconds}
        )
        measured = measure.run()
        record({f"erased/{k}": v for k, v in measured.metrics.items()}, step=1)
        verdict = measure.verdict(before, measured)
        ctx.log(
            f"verdict: {verdict.verdict} (specificity {verdict.specificity_before} -> "
            f"{verdict.specificity_after}; plain-prompt rise {verdict.plain_rise})"
        )
        record(
            {
                f"verdict/{k}": float(v)
                for k, v in verdict.as_dict().items()
                if not isinstance(v, str)
            }
        )
        return measured, verdict

    def save(_pipe: Any) -> None:
        loaded, concept = run["loaded"], run["measure"].concept
        save_pipeline_model(
            ctx,
            loaded,
            f"{info.name}-{concept.word}-run{ctx.run_id}",
            {
                "method": info.name,
                "concept": concept.word,
                "source": str(loaded.path),
                **detector_record(ev),
            },
        )

    def artifacts(before: Any, measured: Any) -> None:
        after, verdict = measured
        measure = run["measure"]
        ctx.artifact(
            "erasure verdict",
            Table(
                ["model", "concept rate", "plain rate", "specificity"],
                [
                    [
                        "original",
                        str(verdict.rate_before),
                        str(verdict.plain_before),
                        str(verdict.specificity_before),
                    ],
                    [
                        "erased",
                        str(verdict.rate_after),
                        str(verdict.plain_after),
                        str(verdict.specificity_after),
                    ],
                ],
                title=f"{info.title}: {verdict.verdict} (95% intervals; held-out prompts: "
                f"{cc.held_out})",
            ),
        )
        stages = {"original": before, "erased": after}
        rows = gallery_rows(before, ev.gallery_rows)
        ctx.artifact(
            "gallery",
            gallery(
                stages,
                rows,
                measure.key,
                measure.score_name,
                ev.threshold,
                f"{info.title}: original | erased",
            ),
        )
        ctx.artifact(
            "concept rates", rate_bars(stages, f"Concept rate before and after {info.title}")
        )
        ctx.artifact(
            "before vs after",
            metrics_table(
                stages,
                f"{info.title} ({detector_record(ev)['detector']}, threshold {ev.threshold})",
            ),
        )

    def result(measured: Any) -> dict[str, float]:
        return {f"erased/{k}": v for k, v in measured[0].metrics.items()}

    steps = UnlearnSteps(
        load_all,
        before,
        after,
        save,
        artifacts,
        result=result,
        measuring="measuring the original",
        verb="erasing",
    )
    # the iterative methods checkpoint their loop; UCE is closed-form
    every = ctx.config.checkpoint_every if ctx.spec.supports_resume else None
    return run_unlearn_job(ctx, steps, info, method_cfg, checkpoint_every=every)
