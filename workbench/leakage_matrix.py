"""The attack matrix's artifact (issue 18 part 1): unlearned runs x attacks, each cell one attack's
headline number with its 95% interval, the reference (retrained / never-learned) value where the
family has one, and the child run that measured it (numpy only; drawn by
``ui/views/leakage_view.py``).

=================  ====================================================================
``leakage_matrix``  ``<name>.json``: row labels and run ids, column (attack) names, titles,
                    metric names and directions, and per cell value, low, high, reference,
                    child run id
=================  ====================================================================

It registers itself in :data:`workbench.artifacts.ARTIFACT_TYPES` (imported at the end of that
module), so :func:`~workbench.artifacts.load_artifact` reads it like any other kind.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workbench.artifacts import ARTIFACT_TYPES, Artifact, safe_name

__all__ = ["LeakageMatrix", "distance_rgb", "leakage_distance"]

GRIDS = ("values", "lows", "highs", "references", "child_runs")
RED = (214, 96, 77)  # leaks more than the reference
BLUE = (67, 147, 195)  # leaks less
NO_REFERENCE_RGB = (250, 250, 245)
STRENGTH = 0.75  # the strongest colour is this far from white: black text stays readable
MIN_SCALE = 0.02  # a column whose distances are all smaller is drawn as near-white
NOT_APPLICABLE_NOTE = " does not apply to run "  # what the plan's notes on n/a cells say


def number(value: float, large: bool = False) -> str:
    """A cell's number: 3 decimals (rates, AUCs), or 1 for a cell whose numbers reach 10 or more
    (``large``: percentages), so that a cell stays one short line."""
    return f"{value:.1f}" if large else f"{value:.3f}"


def _grid(value: Any, shape: tuple[int, int], what: str) -> np.ndarray:
    rows = value.tolist() if isinstance(value, np.ndarray) else list(value)
    if len(rows) != shape[0] or any(len(list(r)) != shape[1] for r in rows):
        raise ValueError(f"leakage matrix: {what} is not {shape[0]} x {shape[1]}")
    return np.array(
        [[np.nan if v is None else float(v) for v in r] for r in rows], dtype=np.float64
    ).reshape(shape)


def leakage_distance(value: float, reference: float, higher_leaks: bool) -> float:
    """Signed distance from the reference, positive where the model leaks more than it:
    ``value - reference`` when a higher value leaks more, ``reference - value`` otherwise;
    NaN when either is missing."""
    if not (math.isfinite(value) and math.isfinite(reference)):
        return math.nan
    return value - reference if higher_leaks else reference - value


def distance_rgb(distance: float, scale: float) -> tuple[int, int, int]:
    """Diverging colour of a signed leakage distance (the view and the report share it): white
    at 0, red above (leaks more than the reference), blue below, saturating at ``scale`` (at
    most :data:`STRENGTH` of the way from white, so black text stays readable); off-white when
    there is no distance (no reference)."""
    if not math.isfinite(distance):
        return NO_REFERENCE_RGB
    t = max(-1.0, min(1.0, distance / max(scale, MIN_SCALE))) * STRENGTH
    end = RED if t > 0 else BLUE
    return tuple(int(round(255 + (e - 255) * abs(t))) for e in end)  # type: ignore[return-value]


@dataclass
class LeakageMatrix(Artifact):
    """Rows = unlearned runs (``row_runs``: their ids), columns = attacks (job names, with
    ``column_titles``, the headline ``metrics`` and ``higher_leaks``); ``values``, ``lows``,
    ``highs``, ``references`` (NaN: none) and ``child_runs`` (NaN: the attack does not apply to
    that run's model, so no child run) are rows x columns grids."""

    kind: ClassVar[str] = "leakage_matrix"
    rows: list[str]
    row_runs: list[int]
    columns: list[str]
    values: Any
    lows: Any = None
    highs: Any = None
    references: Any = None
    child_runs: Any = None
    column_titles: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    higher_leaks: list[bool] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    title: str = ""

    def __post_init__(self) -> None:
        shape = (len(self.rows), len(self.columns))
        if len(self.row_runs) != shape[0]:
            raise ValueError("leakage matrix: one run id per row")
        self.row_runs = [int(r) for r in self.row_runs]
        for what in GRIDS:
            value = getattr(self, what)
            grid = np.full(shape, np.nan) if value is None else _grid(value, shape, what)
            setattr(self, what, grid)
        n = shape[1]
        self.column_titles = list(self.column_titles) or list(self.columns)
        self.metrics = list(self.metrics) or [""] * n
        self.higher_leaks = [bool(v) for v in self.higher_leaks] or [True] * n
        for what in ("column_titles", "metrics", "higher_leaks"):
            if len(getattr(self, what)) != n:
                raise ValueError(f"leakage matrix: one entry of {what} per column")

    def child_run(self, r: int, c: int) -> int | None:
        """The child run that measured cell (r, c), or ``None`` (the attack does not apply)."""
        v = self.child_runs[r, c]
        return int(v) if math.isfinite(v) else None

    def distance(self, r: int, c: int) -> float:
        """:func:`leakage_distance` of cell (r, c) from its reference."""
        return leakage_distance(
            float(self.values[r, c]), float(self.references[r, c]), self.higher_leaks[c]
        )

    def cell_text(self, r: int, c: int) -> str:
        """``"0.731 [0.652, 0.803]"`` (then ``ref 0.512`` on a second line; one decimal where
        the numbers reach 10, e.g. a percentage: ``"40.0 [12.2, 73.8]"``); ``n/a`` where the
        attack does not apply, ``—`` where it ran but recorded no headline."""
        if self.child_run(r, c) is None:
            return "n/a"
        v, lo, hi, ref = (
            float(g[r, c]) for g in (self.values, self.lows, self.highs, self.references)
        )
        if not math.isfinite(v):
            return "—"
        large = max(abs(x) for x in (v, lo, hi, ref) if math.isfinite(x)) >= 10
        text = number(v, large)
        if math.isfinite(lo) and math.isfinite(hi):
            text += f" [{number(lo, large)}, {number(hi, large)}]"
        if math.isfinite(ref):
            text += f"\nref {number(ref, large)}"
        return text

    def short_metric(self, c: int) -> str:
        """Column ``c``'s headline metric for a header: its last two ``/`` parts
        (``recovered/concept_rate/explicit`` -> ``concept_rate/explicit``)."""
        return "/".join(self.metrics[c].split("/")[-2:])

    def shown_notes(self) -> list[str]:
        """The notes a reader needs: failures as they are, and the plan's one note per cell
        whose attack does not apply to the row's model folded into one count (those cells are
        already marked n/a)."""
        kept = [n for n in self.notes if NOT_APPLICABLE_NOTE not in n]
        folded = len(self.notes) - len(kept)
        if folded:
            kept.insert(
                0,
                f"{folded} cell(s) n/a: the attack does not apply to the kind of model the run "
                "produced (never planned, no child run).",
            )
        return kept

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """One row per cell: the long form every export (CSV, JSON, the report) writes."""
        header = [
            "run",
            "row",
            "attack",
            "metric",
            "higher_leaks",
            "value",
            "low",
            "high",
            "reference",
            "child_run",
        ]
        out: list[list[Any]] = []
        for r, label in enumerate(self.rows):
            for c, attack in enumerate(self.columns):
                cells = [float(g[r, c]) for g in (self.values, self.lows, self.highs)]
                ref = float(self.references[r, c])
                out.append(
                    [
                        self.row_runs[r],
                        label,
                        attack,
                        self.metrics[c],
                        self.higher_leaks[c],
                        *[v if math.isfinite(v) else None for v in cells],
                        ref if math.isfinite(ref) else None,
                        self.child_run(r, c),
                    ]
                )
        return header, out

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out = folder / f"{safe_name(name)}.json"

        def plain(grid: np.ndarray) -> list[list[float | None]]:
            return [[float(v) if math.isfinite(v) else None for v in row] for row in grid]

        payload = {
            "rows": list(self.rows),
            "row_runs": list(self.row_runs),
            "columns": list(self.columns),
            **{what: plain(getattr(self, what)) for what in GRIDS},
            "column_titles": list(self.column_titles),
            "metrics": list(self.metrics),
            "higher_leaks": list(self.higher_leaks),
            "notes": list(self.notes),
            "title": self.title,
        }
        out.write_text(json.dumps(payload))
        return out, {"rows": len(self.rows), "columns": len(self.columns), "title": self.title}

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> LeakageMatrix:
        return cls(**json.loads(path.read_text()))


ARTIFACT_TYPES[LeakageMatrix.kind] = LeakageMatrix
