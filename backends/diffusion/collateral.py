"""Collateral damage of concept erasure on neighbour concepts (issue 14 part 5).

ESD users ask what else an erasure removes ("ESD erases concepts beyond those being specified",
rohitgandikota/erasing#13). On a shapes world built with neighbour textures (``dotted``,
``checkered``: ``python -m backends.diffusion.zoo build --neighbours dotted,checkered``) the job
``diffusion.collateral``:

1. measures the original pipeline on the held-out half of the prompts (spec section 0's split):
   the target concept's rate on its own prompts ("a striped red circle"), each neighbour texture's
   rate on its prompts ("a dotted red circle", scored by that texture's detector head), and the
   plain-prompt rate and benign accuracy;
2. erases the target with each chosen method (its default config, trained on the other half of
   the prompts: the erasure never sees a neighbour word), from the same original weights;
3. measures each erased model on the same prompts and seeds, so every change is paired image by
   image: the change of each rate has a paired-bootstrap 95% interval, and a neighbour counts as
   "damaged" only when that interval lies below zero.

Metrics: ``<model>/<set>_rate`` with ``_low`` / ``_high`` (model = original or a method name; set =
the target word, each texture, plain), ``<method>/<set>_change`` with its interval, and
``<model>/benign_accuracy``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.diffusion.data import NEIGHBOUR_TEXTURES
from workbench.config import param

if TYPE_CHECKING:
    from workbench.jobs import JobContext

ERASERS = ("esd", "uce", "ca", "salun")


@dataclass
class CollateralConfig:
    """Which erasures to compare and which neighbour concepts to watch."""

    methods: list[str] = param(
        list(ERASERS),
        "Erasure methods, each run with its default config from the same original weights.",
        choices=ERASERS,
    )
    neighbours: list[str] = param(
        [],
        "Neighbour textures to measure (empty: every one the model's world was built with).",
        choices=NEIGHBOUR_TEXTURES,
    )
    n_bootstrap: int = param(
        2000, "Bootstrap replicates of each paired change's interval.", range=(100, 100_000)
    )


@dataclass
class ModelRates:
    """One model's per-image indicators (1 = the detector fires) on each measured set."""

    indicators: dict[str, np.ndarray]
    accuracy: float
    result: Any  # the EvalResult, for the gallery


def _indicators(result: Any, key_of: dict[str, str], threshold: float) -> dict[str, np.ndarray]:
    """Per set, 1.0 for each image whose detector (``key_of[set]``) exceeds the threshold."""
    return {
        name: (np.asarray(result.sets[name].scores[key]) > threshold).astype(float)
        for name, key in key_of.items()
    }


def changes(
    before: dict[str, np.ndarray],
    after: dict[str, np.ndarray],
    *,
    confidence: float,
    n_bootstrap: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired change (after - before) of each set's rate, with a percentile-bootstrap interval
    over images (both models drew each image from the same prompt and seed)."""
    from backends.common.stats import bootstrap_mean

    out = {}
    for name, b in before.items():
        a = after[name]
        if a.shape != b.shape:
            raise ValueError(f"collateral: {name} has {len(a)} images after, {len(b)} before")
        out[name] = bootstrap_mean(a - b, confidence=confidence, n_bootstrap=n_bootstrap, seed=seed)
    return out


def verdict(change: Any) -> str:
    """ "damaged" when the paired interval of the change lies below zero, else "not shown"."""
    return "damaged" if change.high < 0 else "not shown"


def head_rates(
    scores: dict[str, np.ndarray], heads: list[str], threshold: float, confidence: float = 0.95
) -> dict[str, Any]:
    """Per detector head, the share of images it fires on (``score > threshold``) with its exact
    interval: ``scores`` maps each head to the images' probabilities (one prompt set)."""
    from backends.common.stats import rate

    out = {}
    for h in heads:
        x = np.asarray(scores[h]) > threshold
        out[h] = rate(int(x.sum()), len(x), confidence)
    return out


def renders(own: Any, other: Any) -> bool:
    """The texture is rendered: its own head's rate interval lies above the other head's."""
    return bool(own.low > other.high)


def texture_base_rates(
    model: str | Path,
    samples: int = 4,
    seed: int = 1000,
    threshold: float = 0.5,
    confidence: float = 0.95,
    device: str = "cpu",
) -> dict[str, dict[str, Any]]:
    """Does a model render its world's neighbour textures? For each texture (and the target
    "striped" for reference), the held-out half of its prompts x ``samples`` seeds from
    ``seed``, DDIM 25 at guidance 2 (the evaluations' defaults), and every detector head's rate
    on those images (a texture is rendered when its own head's interval lies above the stripe
    head's). One torch thread."""
    import torch

    from backends.diffusion.data import prompt_list
    from backends.diffusion.pipeline import generate, load_pipeline
    from backends.diffusion.probes import PROBES_DIR, Probes

    torch.set_num_threads(1)
    loaded = load_pipeline(model, device=device)
    probes = Probes.load(Path(loaded.path) / PROBES_DIR)
    world = probes.world
    heads = list(probes.detector.concepts)
    out: dict[str, dict[str, Any]] = {}
    for kind in ("explicit", *world.neighbours):
        prompts = [p.text for p in prompt_list(kind, world, "eval") for _ in range(samples)]
        seeds = [seed + i for i in range(len(prompts))]
        images = generate(loaded, prompts, seeds, steps=25, guidance=2.0)
        out[kind] = head_rates(probes.score(images), heads, threshold, confidence)
    return out


@dataclass
class LatentCeiling:
    """How much of one texture survives the VAE: its head's rate on ``n`` drawn images, on the
    same images after an encode-decode round trip (the most any UNet of this latent space can
    render), and every head's rate on the round trip (what the texture turns into)."""

    texture: str
    drawn: Any
    round_trip: Any
    heads: dict[str, Any]


def latent_ceiling(
    pipe: Any,
    probes: Any,
    n: int = 64,
    seed: int = 777,
    threshold: float = 0.5,
    confidence: float = 0.95,
) -> dict[str, LatentCeiling]:
    """For the target texture ("striped") and each neighbour texture of ``probes.world``: draw
    ``n`` images carrying it (seed ``seed``, disjoint from the build's 0/1 and the eval seeds),
    pass them through the pipeline's VAE (posterior mean, no sampling) and score every detector
    head before and after. A texture whose round-trip rate is low cannot be rendered by any UNet
    on this VAE, so an erasure cannot damage it either (issue 14: the VAEs of the first textures
    builds turned checkered into stripes)."""
    from backends.diffusion.data import make_dataset
    from backends.diffusion.pipeline import decode, encode_images

    world = probes.world
    heads = list(probes.detector.concepts)
    out: dict[str, LatentCeiling] = {}
    for texture in ("striped", *world.neighbours):
        force: dict[str, Any] = {"striped": True} if texture == "striped" else {"texture": texture}
        drawn = make_dataset(n, seed, world, **force).images
        rec = decode(pipe, encode_images(pipe, drawn))  # both run without gradients
        before, after = probes.score(drawn), probes.score(rec)
        rates = head_rates(after, heads, threshold, confidence)
        out[texture] = LatentCeiling(
            texture,
            head_rates(before, [texture], threshold, confidence)[texture],
            rates[texture],
            rates,
        )
    return out


def run_collateral(ctx: JobContext) -> dict[str, float]:
    from backends.common.method import Hooks
    from backends.common.seeding import seed_everything
    from backends.common.stats import rate
    from backends.diffusion.evaluation import evaluate_prompt_sets
    from backends.diffusion.jobconfigs import ConceptConfig, EvalConfig
    from backends.diffusion.jobs import (
        CONCEPT_KEYS,
        Recorder,
        detector_record,
        gallery,
        load,
        load_probes,
        make_concept,
    )
    from backends.diffusion.methods import get_method
    from backends.diffusion.methods.common import DiffusionData
    from workbench.artifacts import Bars, Table

    ev, cc, col = ctx.part(EvalConfig), ctx.part(ConceptConfig), ctx.part(CollateralConfig)
    if cc.concept == "custom" or ev.detector != "probes":
        raise ValueError(
            "collateral damage is measured on the shapes world's neighbour textures: use a "
            "built-in concept (stripes or frame) and the probes detector"
        )
    seed_everything(ctx.seed)
    loaded = load(ctx, ev)
    probes = load_probes(ev, loaded.path)
    world = probes.world
    if not world.neighbours:
        raise ValueError(
            f"{loaded.path.name}'s shapes world has no neighbour textures, so there is nothing "
            "to watch: build a model that knows them with `python -m backends.diffusion.zoo "
            "build --neighbours dotted,checkered --out <folder>` and pick that folder"
        )
    textures = list(col.neighbours) or list(world.neighbours)
    missing = [t for t in textures if t not in world.neighbours]
    if missing:
        raise ValueError(
            f"neighbours: {', '.join(missing)} not in this model's world "
            f"(it knows {', '.join(world.neighbours)})"
        )
    if not col.methods:
        raise ValueError("methods: choose at least one erasure method")
    concept = make_concept(cc, probes)
    target_set = "style" if cc.concept == "frame" else "explicit"
    target_key = CONCEPT_KEYS[cc.concept]
    sets = (target_set, "benign", *textures)
    key_of = {target_set: target_key, "benign": target_key, **{t: t for t in textures}}
    label = {target_set: concept.word, "benign": "plain", **{t: t for t in textures}}
    record = Recorder(ctx)
    n_stages = 1 + len(col.methods)

    def measure(stage: int, name: str) -> ModelRates:
        ctx.progress(stage / n_stages, text=f"measuring {name}")
        result = evaluate_prompt_sets(
            loaded,
            probes,
            sets=sets,
            samples_per_prompt=ev.eval_samples,
            seed=ev.eval_seed,
            steps=ev.sampling_steps,
            guidance=ev.cfg_scale,
            threshold=ev.threshold,
            concept_key=target_key,
            scheduler=ev.sampler,
            check=ctx.check,
            split=cc.eval_split(),
        )
        ind = _indicators(result, key_of, ev.threshold)
        rates: dict[str, float] = {}
        for s, x in ind.items():
            est = rate(int(x.sum()), len(x), cc.confidence)
            rates.update(est.as_dict(f"{name}/{label[s]}_rate"))
        rates[f"{name}/benign_accuracy"] = float(result.metrics["utility/accuracy"])
        record(rates)
        return ModelRates(ind, rates[f"{name}/benign_accuracy"], result)

    ctx.log(
        f"collateral damage of erasing {concept.word!r} on {', '.join(textures)}; "
        f"{detector_record(ev)}; prompts: the {cc.eval_split()} half"
    )
    ceiling = latent_ceiling(loaded.pipe, probes, threshold=ev.threshold)
    bounds: dict[str, float] = {}
    for texture in textures:
        c = ceiling[texture]
        bounds.update(c.round_trip.as_dict(f"vae/{texture}_round_trip_rate"))
        ctx.log(
            f"VAE ceiling of {texture}: its head fires on {c.drawn} of drawn images and on "
            f"{c.round_trip} of their VAE round trips"
            + (
                ""
                if renders(c.round_trip, c.heads["striped"])
                else "; the latent space loses this texture (its head does not fire above the "
                "stripe head's on the round trips), so no erasure can be shown to damage it"
            )
        )
    record(bounds)
    original = measure(0, "original")
    base = {k: v.detach().clone() for k, v in loaded.pipe.unet.state_dict().items()}
    measured: dict[str, ModelRates] = {}
    diffs: dict[str, dict[str, Any]] = {}
    out: dict[str, float] = {}
    for i, name in enumerate(col.methods):
        loaded.pipe.unet.load_state_dict(base)
        info = get_method(name)
        start, end = (i + 1 - 0.8) / n_stages, (i + 1) / n_stages

        def on_progress(
            f: float, text: str | None = None, s: float = start, e: float = end
        ) -> None:
            ctx.progress(s + (e - s) * f, text=text)

        ctx.log(f"erasing with {info.title}")
        info.load()(
            loaded.pipe,
            DiffusionData(concept),
            info.config(),
            Hooks(on_check=ctx.check, on_log=ctx.log, on_progress=on_progress),
            seed=ctx.seed,
        )
        measured[name] = m = measure(i + 1, name)
        diffs[name] = changes(
            original.indicators,
            m.indicators,
            confidence=cc.confidence,
            n_bootstrap=col.n_bootstrap,
            seed=ctx.seed,
        )
        values: dict[str, float] = {}
        for s, d in diffs[name].items():
            values.update(d.as_dict(f"{name}/{label[s]}_change"))
            if s in textures:
                values[f"{name}/{s}_damaged"] = float(verdict(d) == "damaged")
        record(values)
        out.update(values)
        ctx.log(
            f"{name}: "
            + "; ".join(f"{label[s]} {d} ({verdict(d)})" for s, d in diffs[name].items())
        )

    # artifacts: grouped bars with intervals, the table, and a paired gallery per set
    models = {"original": original, **measured}
    cats = [label[s] for s in sets]

    def est(m: ModelRates, s: str) -> Any:
        x = m.indicators[s]
        return rate(int(x.sum()), len(x), cc.confidence)

    bars = {name: [est(m, s) for s in sets] for name, m in models.items()}
    ctx.artifact(
        "collateral damage",
        Bars(
            cats,
            {name: [e.value for e in row] for name, row in bars.items()},
            lower={name: [e.low for e in row] for name, row in bars.items()},
            upper={name: [e.high for e in row] for name, row in bars.items()},
            title=f"Erasing {concept.word!r}: the target's rate and its neighbours' "
            f"(held-out prompts, {ev.eval_samples} images a prompt, 95% intervals)",
            y_label="detector rate on the set's own prompts",
            highlight=[concept.word],
        ),
    )
    rows = [["original", *[str(e) for e in bars["original"]], f"{original.accuracy:.3f}"]]
    for name in measured:
        cells = []
        for s, e in zip(sets, bars[name], strict=True):
            d = diffs[name][s]
            tag = f" · {verdict(d)}" if s in textures else ""
            cells.append(f"{e} (change {d}{tag})")
        rows.append([name, *cells, f"{measured[name].accuracy:.3f}"])
    ctx.artifact(
        "collateral table",
        Table(
            ["model", *[f"{c} rate" for c in cats], "benign accuracy"],
            rows,
            title="Rates with 95% exact intervals; changes paired by prompt and seed, "
            "95% bootstrap intervals; 'damaged' = the change's interval lies below zero",
        ),
    )
    for s in (target_set, *textures):
        picks = range(0, len(original.result.sets[s].prompts), ev.eval_samples)
        ctx.artifact(
            f"gallery: {label[s]}",
            gallery(
                {name: m.result for name, m in models.items()},
                [(s, j) for j in picks][: ev.gallery_rows],
                key_of[s],
                f"{label[s]} p",
                ev.threshold,
                f"{label[s]} prompts: original | " + " | ".join(measured) + " (same seed a row)",
            ),
        )
    return out


if __name__ == "__main__":
    # python -m backends.diffusion.collateral base-rates <model folder> [samples]
    import json
    import sys

    if len(sys.argv) < 3 or sys.argv[1] != "base-rates":
        raise SystemExit(
            "usage: python -m backends.diffusion.collateral base-rates <model> [n] [cpu|cuda]"
        )
    rates = texture_base_rates(
        sys.argv[2],
        int(sys.argv[3]) if len(sys.argv) > 3 else 4,
        device=sys.argv[4] if len(sys.argv) > 4 else "cpu",
    )
    print(
        json.dumps(
            {
                k: {h: e.as_dict("rate") | {"n": e.n} for h, e in v.items()}
                for k, v in rates.items()
            },
            indent=1,
        )
    )
    for kind, per in rates.items():
        own = per.get(kind, per.get("striped"))
        line = "; ".join(f"{h} {e}" for h, e in per.items())
        verdict = "" if kind == "explicit" else f" -> rendered: {renders(own, per['striped'])}"
        print(f"{kind} prompts: {line}{verdict}")
    from backends.diffusion.pipeline import load_pipeline
    from backends.diffusion.probes import PROBES_DIR, Probes

    loaded = load_pipeline(sys.argv[2], device="cpu")
    for texture, c in latent_ceiling(loaded.pipe, Probes.load(loaded.path / PROBES_DIR)).items():
        turned = "; ".join(f"{h} {e}" for h, e in c.heads.items())
        print(f"VAE round trip of drawn {texture} images: {c.drawn} -> {c.round_trip} ({turned})")
