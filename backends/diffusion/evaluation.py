"""Concept rate and utility of a pipeline on the shapes world's prompt sets (spec sections 0, 7).

:func:`evaluate_prompt_sets` generates ``samples_per_prompt`` images for every prompt of the
explicit ("a striped red circle"), implicit ("a zebra red circle"), benign ("a red circle") and
style ("a framed red circle") sets with fixed seeds, scores them with the probes and returns:

- ``concept_rate/<set>``: fraction of images whose concept probability (``concept_key``: stripes
  by default, or the frame) exceeds the threshold, with ``concept_count/<set>`` and
  ``images/<set>`` (the counts behind it, for exact intervals: :mod:`backends.diffusion.verdicts`);
- ``style_rate/style``: the same for the frame (style concept) on the style prompts;
- ``texture_rate/<texture>``: for a world with neighbour textures (``dotted``, ``checkered``) and
  those sets asked for, the texture detector's rate on its own prompts (collateral damage);
- ``utility/accuracy``, ``utility/alignment``, ``utility/feature_fid`` on the benign prompts.

Seeds are ``seed + i`` for the i-th image of a set, so two models are compared image by image.
``split`` picks the shape x colour combinations (:func:`backends.diffusion.data.prompt_list`):
``"eval"`` is the half no erasure method trains on (issue 9), ``"all"`` every combination.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backends.diffusion.data import prompt_list
from backends.diffusion.pipeline import generate
from backends.diffusion.probes import Probes, concept_rate, utility

DEFAULT_SETS = ("explicit", "implicit", "benign", "style")


@dataclass
class SetResult:
    """Images and scores of one prompt set."""

    prompts: list[str]
    shapes: list[str]
    colours: list[str]
    seeds: list[int]
    images: np.ndarray
    scores: dict[str, np.ndarray]


@dataclass
class EvalResult:
    """Per-set images and scores, and the summary numbers."""

    sets: dict[str, SetResult] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    threshold: float = 0.5

    def summary(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in self.metrics.items()}

    def save(self, path: str | Path) -> Path:
        """Write images, scores and the rest to one ``.npz`` (no pickle), for a resumed job."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {"metrics": self.metrics, "threshold": self.threshold, "sets": {}}
        for i, (name, r) in enumerate(self.sets.items()):
            arrays[f"images{i}"] = np.asarray(r.images)
            for j, value in enumerate(r.scores.values()):
                arrays[f"scores{i}_{j}"] = np.asarray(value)
            meta["sets"][name] = {
                "prompts": r.prompts,
                "shapes": r.shapes,
                "colours": r.colours,
                "seeds": [int(x) for x in r.seeds],
                "scores": list(r.scores),
            }
        arrays["meta"] = np.array(json.dumps(meta))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> EvalResult:
        """What :meth:`save` wrote."""
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            out = cls(
                metrics={k: float(v) for k, v in meta["metrics"].items()},
                threshold=float(meta["threshold"]),
            )
            for i, (name, m) in enumerate(meta["sets"].items()):
                scores = {key: data[f"scores{i}_{j}"] for j, key in enumerate(m["scores"])}
                out.sets[name] = SetResult(
                    m["prompts"], m["shapes"], m["colours"], m["seeds"], data[f"images{i}"], scores
                )
        return out


def prompts_for(
    kind: str,
    probes: Probes,
    samples_per_prompt: int,
    seed: int,
    limit: int = 0,
    split: str = "all",
) -> tuple[list[Any], list[int]]:
    """The prompt objects of a set, each repeated ``samples_per_prompt`` times, and their seeds."""
    base = prompt_list(kind, probes.world, split)
    if limit:
        base = base[:limit]
    prompts = [p for p in base for _ in range(samples_per_prompt)]
    return prompts, [seed + i for i in range(len(prompts))]


def evaluate_prompt_sets(
    loaded: Any,
    probes: Probes,
    *,
    sets: Sequence[str] = DEFAULT_SETS,
    samples_per_prompt: int = 2,
    seed: int = 1000,
    steps: int = 25,
    guidance: float = 2.0,
    threshold: float = 0.5,
    concept_key: str = "striped",
    scheduler: str = "ddim",
    prompt_limit: int = 0,
    unet: Any = None,
    second_unet: Any = None,
    second_weight: float = 1.0,
    check: Callable[[], None] | None = None,
    split: str = "all",
) -> EvalResult:
    """Generate, score and summarise each prompt set (see the module docstring)."""
    result = EvalResult(threshold=threshold)
    for kind in sets:
        prompts, seeds = prompts_for(kind, probes, samples_per_prompt, seed, prompt_limit, split)
        images = generate(
            loaded,
            [p.text for p in prompts],
            seeds,
            steps=steps,
            guidance=guidance,
            scheduler=scheduler,
            unet=unet,
            second_unet=second_unet,
            second_weight=second_weight,
            check=check,
        )
        scores = probes.score(images)
        result.sets[kind] = SetResult(
            [p.text for p in prompts],
            [p.shape for p in prompts],
            [p.colour for p in prompts],
            seeds,
            images,
            scores,
        )
        result.metrics[f"concept_rate/{kind}"] = concept_rate(scores[concept_key], threshold)
        result.metrics[f"concept_count/{kind}"] = float((scores[concept_key] > threshold).sum())
        result.metrics[f"images/{kind}"] = float(len(images))
        if kind == "style":
            result.metrics["style_rate/style"] = concept_rate(scores["framed"], threshold)
        if kind in probes.world.neighbours and kind in scores:
            # a neighbour texture's own rate on its prompts (issue 14's collateral damage)
            result.metrics[f"texture_rate/{kind}"] = concept_rate(scores[kind], threshold)
            result.metrics[f"texture_count/{kind}"] = float((scores[kind] > threshold).sum())
        if kind == "benign":
            u = utility(
                probes, images, [p.shape for p in prompts], [p.colour for p in prompts], scores
            )
            result.metrics.update({f"utility/{k}": v for k, v in u.items()})
    return result
