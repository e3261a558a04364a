"""Artifacts of influence pruning (spec section 4): the scores with their thresholds, and the
compute-vs-quality curve over the thresholds (numpy only; drawn by ``ui/views/influence_view.py``).

=================  ====================================================================
``influence``       ``<name>.json``: one score per forget point, the threshold of each
                    pruning level, the estimator, a note (estimators' agreement)
``pruning_curve``   ``<name>.json``: per threshold, mean and 95% interval of each quality
                    measure and of the compute saved, over seeds
=================  ====================================================================

Both register themselves in :data:`workbench.artifacts.ARTIFACT_TYPES` (imported at the end of
that module), so :func:`~workbench.artifacts.load_artifact` reads them like any other kind.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workbench.artifacts import ARTIFACT_TYPES, Artifact, safe_name

__all__ = ["InfluenceScores", "PruningCurve"]


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=float).ravel()]


@dataclass
class InfluenceScores(Artifact):
    """Influence scores of the forget points and the threshold of each pruning level
    (``thresholds``: label -> score; points at or under it are dropped; ``-inf``: none)."""

    kind: ClassVar[str] = "influence"
    scores: list[float]
    thresholds: dict[str, float] = field(default_factory=dict)
    estimator: str = ""
    title: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        self.scores = _floats(self.scores)
        self.thresholds = {str(k): float(v) for k, v in self.thresholds.items()}

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out = folder / f"{safe_name(name)}.json"
        payload = {
            "scores": self.scores,
            # JSON has no infinity: "nothing dropped" is stored as null
            "thresholds": {
                k: (v if math.isfinite(v) else None) for k, v in self.thresholds.items()
            },
            "estimator": self.estimator,
            "title": self.title,
            "note": self.note,
        }
        out.write_text(json.dumps(payload))
        return out, {"estimator": self.estimator, "points": len(self.scores), "title": self.title}

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> InfluenceScores:
        payload = json.loads(path.read_text())
        payload["thresholds"] = {
            k: (-math.inf if v is None else v) for k, v in payload["thresholds"].items()
        }
        return cls(**payload)


@dataclass
class PruningCurve(Artifact):
    """Quality and compute against the pruning level.  ``x``: the levels (quantiles or
    fractions of the maximum); ``quality`` and ``compute``: ``{measure: {"mean": [...], "low":
    [...], "high": [...]}}`` with one value per level (NaN where not measured)."""

    kind: ClassVar[str] = "pruning_curve"
    x: list[float]
    quality: dict[str, dict[str, list[float]]]
    compute: dict[str, dict[str, list[float]]]
    x_label: str = "quantile dropped"
    title: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        self.x = _floats(self.x)
        for group in (self.quality, self.compute):
            for name, parts in list(group.items()):
                clean = {k: _floats(parts[k]) for k in ("mean", "low", "high")}
                if any(len(v) != len(self.x) for v in clean.values()):
                    raise ValueError(
                        f"pruning curve: {name!r} needs one value per level ({len(self.x)})"
                    )
                group[name] = clean

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out = folder / f"{safe_name(name)}.json"

        def nan_free(group: dict[str, dict[str, list[float]]]) -> Any:
            return {
                n: {k: [v if math.isfinite(v) else None for v in vs] for k, vs in p.items()}
                for n, p in group.items()
            }

        payload = {
            "x": self.x,
            "quality": nan_free(self.quality),
            "compute": nan_free(self.compute),
            "x_label": self.x_label,
            "title": self.title,
            "note": self.note,
        }
        out.write_text(json.dumps(payload))
        return out, {"levels": len(self.x), "title": self.title}

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> PruningCurve:
        payload = json.loads(path.read_text())
        for group in ("quality", "compute"):
            payload[group] = {
                n: {k: [math.nan if v is None else v for v in vs] for k, vs in p.items()}
                for n, p in payload[group].items()
            }
        return cls(**payload)


ARTIFACT_TYPES.setdefault(InfluenceScores.kind, InfluenceScores)
ARTIFACT_TYPES.setdefault(PruningCurve.kind, PruningCurve)
