"""Artifacts as data: the shared shapes that views draw, and how they are stored as files.

Every artifact kind is a small dataclass with ``save(folder, name) -> (files, meta)`` and a matching
``load(path, meta)``; the catalogue records kind, relative path and metadata.  Views in ``ui/`` draw
these types without knowing which backend produced them.

Kinds and their files:

=============  =====================================================================
``image_grid``  ``<name>/`` with one PNG per cell and ``grid.json`` (captions, labels)
``heatmap``     ``<name>.npz`` (matrix) + metadata (axis labels, title, colour range)
``graph``       ``<name>.json`` (networkx node-link data, node/edge attributes, layout)
``curves``      ``<name>.json`` (named x/y series, axis labels, log axes)
``bars``        ``<name>.json`` (categories and one value per category for each series)
``table``       ``<name>.json`` (columns and rows)
``prompt_table`` ``<name>.json`` (a table of prompts with long text columns and column help)
``interval_matrix`` ``<name>.json`` (rows x columns of rates, each with its interval and n)
``attention``   ``<name>.npz`` (maps of every layer and head of one prompt) + tokens in metadata
``text``        ``<name>.txt``
``file``        any other file (a checkpoint, a model folder), shown as a path
=============  =====================================================================

Only numpy and Pillow are used here; images may be given as PIL images or uint8/float arrays.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "Artifact",
    "ImageGrid",
    "Heatmap",
    "Graph",
    "Curves",
    "SineFunctions",
    "IntervalCurves",
    "Bars",
    "Table",
    "PromptTable",
    "IntervalMatrix",
    "SweepTable",
    "AttentionStack",
    "Text",
    "FileRef",
    "ScanReport",
    "ARTIFACT_TYPES",
    "load_artifact",
    "safe_name",
]


def safe_name(name: str) -> str:
    """A file-system-safe version of an artifact name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "artifact"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class Artifact(ABC):
    """Base class: ``kind`` names the type; ``save`` writes files and returns (path, meta)."""

    kind: ClassVar[str] = ""

    @abstractmethod
    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        """Write the artifact's files under ``folder``; return the main path and its metadata."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> Artifact:
        """Read the artifact back from ``path`` with the metadata ``save`` returned."""


@dataclass
class ImageGrid(Artifact):
    """Images laid out in rows and columns, with a caption under each and row/column labels.

    ``images`` is row-major, ``len(images) == rows * cols`` (``cols`` defaults to all in one row).

    A gallery (e.g. original | erased | attacked | recovered for one prompt and seed per row) also
    carries a detector's score per image (``scores``, ``None`` where there is none), the score's
    name and the threshold above which the detector's verdict is "present".
    """

    kind: ClassVar[str] = "image_grid"
    images: list[Any]
    captions: list[str] = field(default_factory=list)
    row_labels: list[str] = field(default_factory=list)
    col_labels: list[str] = field(default_factory=list)
    cols: int = 0
    title: str = ""
    scores: list[float | None] = field(default_factory=list)
    score_name: str = ""
    threshold: float | None = None

    def __post_init__(self) -> None:
        if not self.cols:
            self.cols = len(self.col_labels) or len(self.images) or 1
        if self.captions and len(self.captions) != len(self.images):
            raise ValueError("image grid: one caption per image, or none")
        if self.scores and len(self.scores) != len(self.images):
            raise ValueError("image grid: one score per image (None for none), or none")
        for i, img in enumerate(self.images):
            shape = getattr(img, "shape", None)
            if shape is None and not hasattr(img, "mode"):  # not a PIL image: a nested list
                shape = np.shape(img)
            if shape is not None and not (
                len(shape) == 2 or (len(shape) == 3 and shape[2] in (3, 4))
            ):
                raise ValueError(
                    f"image grid: image {i} has shape {tuple(shape)}; expected (H, W) greyscale "
                    "or (H, W, 3|4) colour, channels last"
                )

    @property
    def rows(self) -> int:
        return -(-len(self.images) // self.cols)

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        from PIL import Image

        out = folder / safe_name(name)
        out.mkdir(parents=True, exist_ok=True)
        files = []
        for i, img in enumerate(self.images):
            if not isinstance(img, Image.Image):
                arr = np.asarray(img)
                if arr.dtype != np.uint8:
                    arr = (np.clip(arr, 0.0, 1.0) * 255).round().astype(np.uint8)
                img = Image.fromarray(arr)
            fname = f"{i:04d}.png"
            img.save(out / fname)
            files.append(fname)
        meta = {
            "files": files,
            "captions": list(self.captions),
            "row_labels": list(self.row_labels),
            "col_labels": list(self.col_labels),
            "cols": self.cols,
            "title": self.title,
            "scores": [None if v is None else float(v) for v in self.scores],
            "score_name": self.score_name,
            "threshold": self.threshold,
        }
        (out / "grid.json").write_text(json.dumps(meta, indent=1))
        return out, meta

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> ImageGrid:
        from PIL import Image

        if not meta.get("files"):
            meta = json.loads((path / "grid.json").read_text())
        images = []
        for f in meta["files"]:
            with Image.open(path / f) as im:
                images.append(im.copy())
        return cls(
            images=images,
            captions=meta.get("captions", []),
            row_labels=meta.get("row_labels", []),
            col_labels=meta.get("col_labels", []),
            cols=meta.get("cols", 0),
            title=meta.get("title", ""),
            scores=meta.get("scores", []),
            score_name=meta.get("score_name", ""),
            threshold=meta.get("threshold"),
        )


@dataclass
class Heatmap(Artifact):
    """A matrix with axis labels (e.g. attention over tokens, layer x head sink mass)."""

    kind: ClassVar[str] = "heatmap"
    matrix: Any
    x_labels: list[str] = field(default_factory=list)
    y_labels: list[str] = field(default_factory=list)
    title: str = ""
    x_title: str = ""
    y_title: str = ""
    vmin: float | None = None
    vmax: float | None = None
    diverging: bool = False

    def __post_init__(self) -> None:
        self.matrix = np.asarray(self.matrix, dtype=np.float64)
        if self.matrix.ndim != 2:
            raise ValueError(f"heatmap: expected a 2-D matrix, got shape {self.matrix.shape}")
        h, w = self.matrix.shape
        if self.x_labels and len(self.x_labels) != w:
            raise ValueError(f"heatmap: {len(self.x_labels)} x labels for {w} columns")
        if self.y_labels and len(self.y_labels) != h:
            raise ValueError(f"heatmap: {len(self.y_labels)} y labels for {h} rows")

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out = folder / f"{safe_name(name)}.npz"
        np.savez_compressed(out, matrix=self.matrix)
        meta = {
            "x_labels": list(self.x_labels),
            "y_labels": list(self.y_labels),
            "title": self.title,
            "x_title": self.x_title,
            "y_title": self.y_title,
            "vmin": self.vmin,
            "vmax": self.vmax,
            "diverging": self.diverging,
            "shape": list(self.matrix.shape),
        }
        return out, meta

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> Heatmap:
        with np.load(path, allow_pickle=False) as data:
            matrix = data["matrix"]
        keys = ("x_labels", "y_labels", "title", "x_title", "y_title", "vmin", "vmax", "diverging")
        return cls(matrix=matrix, **{k: meta[k] for k in keys if k in meta})


@dataclass
class Graph(Artifact):
    """A networkx graph as node-link data, with node/edge attributes and an optional layout.

    ``layout`` maps node id (as a string) to ``[x, y]``; ``node_size``/``edge_weight`` name the
    attributes views use for node size and edge width.  ``highlight`` is the node set shown
    first; ``highlight_sets`` are named alternatives the viewer offers (e.g. each prompt's
    entities).
    """

    kind: ClassVar[str] = "graph"
    data: dict[str, Any]
    layout: dict[str, list[float]] = field(default_factory=dict)
    title: str = ""
    node_size: str = ""
    edge_weight: str = "weight"
    highlight: list[str] = field(default_factory=list)
    highlight_sets: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_networkx(cls, graph: Any, *, layout: dict[Any, Any] | None = None, **kw: Any) -> Graph:
        import networkx as nx

        data = nx.node_link_data(graph, edges="links")
        lay = {str(k): [float(v[0]), float(v[1])] for k, v in (layout or {}).items()}
        return cls(data=_jsonable(data), layout=lay, **kw)

    def to_networkx(self) -> Any:
        import networkx as nx

        return nx.node_link_graph(self.data, edges="links")

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out = folder / f"{safe_name(name)}.json"
        payload = {
            "data": self.data,
            "layout": self.layout,
            "title": self.title,
            "node_size": self.node_size,
            "edge_weight": self.edge_weight,
            "highlight": self.highlight,
            "highlight_sets": self.highlight_sets,
        }
        out.write_text(json.dumps(_jsonable(payload)))
        nodes = len(self.data.get("nodes", []))
        edges = len(self.data.get("links", self.data.get("edges", [])))
        return out, {"nodes": nodes, "edges": edges, "title": self.title}

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> Graph:
        return cls(**json.loads(path.read_text()))


@dataclass
class Curves(Artifact):
    """Named x/y series drawn on one plot (ROC curves, recovery curves, loss curves)."""

    kind: ClassVar[str] = "curves"
    series: dict[str, tuple[list[float], list[float]]]
    x_label: str = ""
    y_label: str = ""
    title: str = ""
    log_x: bool = False
    log_y: bool = False
    scatter: bool = False  # points only (e.g. a metric against recall, one point per prompt)

    def __post_init__(self) -> None:
        clean = {}
        for key, (xs, ys) in self.series.items():
            xs, ys = (
                [float(v) for v in np.asarray(xs).ravel()],
                [float(v) for v in np.asarray(ys).ravel()],
            )
            if len(xs) != len(ys):
                raise ValueError(f"curves: series {key!r} has {len(xs)} x and {len(ys)} y values")
            clean[str(key)] = (xs, ys)
        self.series = clean

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out = folder / f"{safe_name(name)}.json"
        payload = {
            "series": {k: [xs, ys] for k, (xs, ys) in self.series.items()},
            "x_label": self.x_label,
            "y_label": self.y_label,
            "title": self.title,
            "log_x": self.log_x,
            "log_y": self.log_y,
            "scatter": self.scatter,
        }
        out.write_text(json.dumps(payload))
        return out, {"series": list(self.series), "title": self.title}

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> Curves:
        payload = json.loads(path.read_text())
        payload["series"] = {k: (v[0], v[1]) for k, v in payload["series"].items()}
        return cls(**payload)


@dataclass
class SineFunctions(Curves):
    """Functions of one input drawn against a reference: the sine-poisoning view (MinNorm-OG).
    Series named ``"<method> @<epochs>"`` are grouped by budget; ``"forget points"`` and
    ``"retain points"`` are drawn as markers, ``"sin x"`` as the reference."""

    kind: ClassVar[str] = "sine_functions"


@dataclass
class IntervalCurves(Curves):
    """Curves with a 95% interval band per series: ``bands[name] = (lows, highs)``, one pair per
    x of that series (e.g. a concept rate against fine-tuning steps, one line per method)."""

    kind: ClassVar[str] = "interval_curves"
    bands: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        clean = {}
        for key, (lows, highs) in self.bands.items():
            if str(key) not in self.series:
                raise ValueError(f"interval curves: band {key!r} has no series")
            n = len(self.series[str(key)][0])
            lo = [float(v) for v in np.asarray(lows).ravel()]
            hi = [float(v) for v in np.asarray(highs).ravel()]
            if len(lo) != n or len(hi) != n:
                raise ValueError(
                    f"interval curves: band {key!r} has {len(lo)}/{len(hi)} ends for {n} points"
                )
            clean[str(key)] = (lo, hi)
        self.bands = clean

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out, meta = super().save(folder, name)
        payload = json.loads(out.read_text())
        payload["bands"] = {k: [lo, hi] for k, (lo, hi) in self.bands.items()}
        out.write_text(json.dumps(payload))
        return out, meta

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> IntervalCurves:
        payload = json.loads(path.read_text())
        payload["series"] = {k: (v[0], v[1]) for k, v in payload["series"].items()}
        payload["bands"] = {k: (v[0], v[1]) for k, v in payload.get("bands", {}).items()}
        return cls(**payload)


@dataclass
class Bars(Artifact):
    """Grouped bars: one value per category for each named series (e.g. per-class accuracy of the
    original, unlearned and retrained models; where the forget class's probability mass goes)."""

    kind: ClassVar[str] = "bars"
    categories: list[str]
    series: dict[str, list[float]]
    title: str = ""
    y_label: str = ""
    x_label: str = ""
    highlight: list[str] = field(default_factory=list)
    # optional interval ends per series (e.g. 95% intervals), drawn as error bars
    lower: dict[str, list[float]] = field(default_factory=dict)
    upper: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.categories = [str(c) for c in self.categories]
        self.series = self._clean(self.series, "series")
        self.lower = self._clean(self.lower, "lower")
        self.upper = self._clean(self.upper, "upper")
        for name in (*self.lower, *self.upper):
            if name not in self.series:
                raise ValueError(f"bars: interval for {name!r}, which is not a series")
        if set(self.lower) != set(self.upper):
            raise ValueError("bars: every series with a lower end needs an upper end too")

    def _clean(self, data: dict[str, Any], what: str) -> dict[str, list[float]]:
        clean = {}
        for name, values in data.items():
            vals = [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]
            if len(vals) != len(self.categories):
                raise ValueError(
                    f"bars: {what} {name!r} has {len(vals)} values for "
                    f"{len(self.categories)} categories"
                )
            clean[str(name)] = vals
        return clean

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out = folder / f"{safe_name(name)}.json"
        payload = {
            "categories": self.categories,
            "series": self.series,
            "title": self.title,
            "y_label": self.y_label,
            "x_label": self.x_label,
            "highlight": self.highlight,
            "lower": self.lower,
            "upper": self.upper,
        }
        out.write_text(json.dumps(payload))
        return out, {"series": list(self.series), "title": self.title}

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> Bars:
        return cls(**json.loads(path.read_text()))


@dataclass
class Table(Artifact):
    """Columns and rows (a gap-to-retrain table, per-class accuracies)."""

    kind: ClassVar[str] = "table"
    columns: list[str]
    rows: list[list[Any]]
    title: str = ""

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table: row {i} has {len(row)} cells for {len(self.columns)} columns"
                )

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out = folder / f"{safe_name(name)}.json"
        payload = {"columns": self.columns, "rows": _jsonable(self.rows), "title": self.title}
        out.write_text(json.dumps(payload))
        return out, {"columns": list(self.columns), "n_rows": len(self.rows), "title": self.title}

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> Table:
        return cls(**json.loads(path.read_text()))


@dataclass
class PromptTable(Table):
    """One row per prompt (e.g. SKeB: the prompt, the model's answer, the judge's verdict and the
    prompt's metric values).

    ``long_columns`` hold free text (prompt, answer, verdict) that a view shows whole in a detail
    pane rather than cut in a cell; ``column_help`` explains a column (a metric's definition) and
    ``legend`` is help text for the whole table.
    """

    kind: ClassVar[str] = "prompt_table"
    long_columns: list[str] = field(default_factory=list)
    column_help: dict[str, str] = field(default_factory=dict)
    legend: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [c for c in self.long_columns if c not in self.columns]
        if unknown:
            raise ValueError(f"prompt table: long columns {unknown} are not columns")

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out = folder / f"{safe_name(name)}.json"
        payload = {
            "columns": self.columns,
            "rows": _jsonable(self.rows),
            "title": self.title,
            "long_columns": self.long_columns,
            "column_help": self.column_help,
            "legend": self.legend,
        }
        out.write_text(json.dumps(payload))
        return out, {"columns": list(self.columns), "n_rows": len(self.rows), "title": self.title}

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> PromptTable:
        return cls(**json.loads(path.read_text()))


@dataclass
class IntervalMatrix(Artifact):
    """Rates on a grid, each with its interval (e.g. the defence matrix: erased models as rows,
    guidance x negative concept as columns, DSR and prompt preservation in every cell).

    ``values``, ``lows``, ``highs`` and ``counts`` map a quantity's name to a rows x columns
    matrix (NaN / None where a cell was not measured); ``higher_is_better`` says how to colour
    each quantity; ``column_groups`` optionally names each column's group (a header above it).
    """

    kind: ClassVar[str] = "interval_matrix"
    rows: list[str]
    columns: list[str]
    values: dict[str, Any]
    lows: dict[str, Any] = field(default_factory=dict)
    highs: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    column_groups: list[str] = field(default_factory=list)
    title: str = ""
    legend: str = ""

    def __post_init__(self) -> None:
        shape = (len(self.rows), len(self.columns))
        for what in ("values", "lows", "highs", "counts"):
            table = getattr(self, what)
            for name, matrix in list(table.items()):
                grid = matrix.tolist() if isinstance(matrix, np.ndarray) else list(matrix)
                if len(grid) != shape[0] or any(len(row) != shape[1] for row in grid):
                    raise ValueError(
                        f"interval matrix: {what}[{name!r}] is not {shape[0]} x {shape[1]}"
                    )
                arr = np.array(
                    [[np.nan if v is None else float(v) for v in row] for row in grid],
                    dtype=np.float64,
                ).reshape(shape)
                table[name] = arr
        unknown = [
            k for t in (self.lows, self.highs, self.counts) for k in t if k not in self.values
        ]
        if unknown:
            raise ValueError(f"interval matrix: no values for {sorted(set(unknown))}")
        if self.column_groups and len(self.column_groups) != len(self.columns):
            raise ValueError("interval matrix: one column group per column, or none")

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out = folder / f"{safe_name(name)}.json"

        def plain(table: dict[str, np.ndarray]) -> dict[str, Any]:
            return {
                k: [[None if not np.isfinite(v) else float(v) for v in row] for row in m]
                for k, m in table.items()
            }

        payload = {
            "rows": list(self.rows),
            "columns": list(self.columns),
            "values": plain(self.values),
            "lows": plain(self.lows),
            "highs": plain(self.highs),
            "counts": plain(self.counts),
            "higher_is_better": dict(self.higher_is_better),
            "column_groups": list(self.column_groups),
            "title": self.title,
            "legend": self.legend,
        }
        out.write_text(json.dumps(payload))
        return out, {
            "rows": len(self.rows),
            "columns": len(self.columns),
            "quantities": list(self.values),
            "title": self.title,
        }

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> IntervalMatrix:
        return cls(**json.loads(path.read_text()))


@dataclass
class SweepTable(Table):
    """A sweep's cells as rows (setting columns, then measured columns), drawn as a chart by the
    sweep view; ``series`` names the measured columns to plot (each with ``<col>_low`` /
    ``<col>_high`` columns when it has an interval), ``x`` and ``group`` the setting columns on the
    x axis and across panels. ``maps`` holds optional difference maps per setting label:
    ``{label: (layers, heads, T, T)}`` with their token labels in ``map_tokens``."""

    kind: ClassVar[str] = "sweep_table"
    x: str = ""
    group: str = ""
    series: list[str] = field(default_factory=list)
    y_label: str = ""
    maps: dict[str, Any] = field(default_factory=dict)
    map_tokens: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        missing = [c for c in (self.x, self.group, *self.series) if c and c not in self.columns]
        if missing:
            raise ValueError(f"sweep table: {missing} are not columns")
        self.maps = {str(k): np.asarray(v, dtype=np.float32) for k, v in self.maps.items()}
        for label, m in self.maps.items():
            if m.ndim != 4 or len(self.map_tokens.get(label, [])) != m.shape[-1]:
                raise ValueError(f"sweep table: maps {label!r} need (L, H, T, T) and T tokens")

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out = folder / f"{safe_name(name)}.json"
        labels = list(self.maps)
        if labels:
            np.savez_compressed(
                folder / f"{safe_name(name)}.maps.npz",
                **{f"m{i}": self.maps[k].astype(np.float16) for i, k in enumerate(labels)},
            )
        payload = {
            "columns": self.columns,
            "rows": _jsonable(self.rows),
            "title": self.title,
            "x": self.x,
            "group": self.group,
            "series": self.series,
            "y_label": self.y_label,
            "map_labels": labels,
            "map_tokens": self.map_tokens,
        }
        out.write_text(json.dumps(payload))
        return out, {"columns": list(self.columns), "n_rows": len(self.rows), "title": self.title}

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> SweepTable:
        payload = json.loads(path.read_text())
        labels = payload.pop("map_labels", [])
        maps = {}
        if labels:
            with np.load(path.with_suffix(".maps.npz"), allow_pickle=False) as data:
                maps = {k: data[f"m{i}"] for i, k in enumerate(labels)}
        return cls(maps=maps, **payload)


@dataclass
class AttentionStack(Artifact):
    """Attention maps of one prompt for every layer and head: ``maps[l, h, q, k]``, shape
    ``(layers, heads, T, T)``, rows sum to 1, with the prompt's tokens (one per position).

    Stored as one compressed ``.npz`` (in ``maps``' dtype: float16 halves it); ``sink_mass``
    (layers x heads) is optional; ``layer``/``head`` name the map a view shows first.
    """

    kind: ClassVar[str] = "attention"
    maps: Any
    tokens: list[str] = field(default_factory=list)
    prompt: str = ""
    title: str = ""
    input_ids: list[int] = field(default_factory=list)
    sink_mass: Any = None
    layer: int = 0
    head: int = 0

    def __post_init__(self) -> None:
        self.maps = np.asarray(self.maps)
        if self.maps.dtype not in (np.float16, np.float32, np.float64):
            self.maps = self.maps.astype(np.float32)
        if self.maps.ndim != 4 or self.maps.shape[-1] != self.maps.shape[-2]:
            raise ValueError(
                f"attention stack: expected (layers, heads, T, T), got shape {self.maps.shape}"
            )
        t = self.maps.shape[-1]
        if self.tokens and len(self.tokens) != t:
            raise ValueError(f"attention stack: {len(self.tokens)} tokens for {t} positions")
        if self.input_ids and len(self.input_ids) != t:
            raise ValueError(f"attention stack: {len(self.input_ids)} token ids for {t} positions")
        if self.sink_mass is not None:
            self.sink_mass = np.asarray(self.sink_mass, dtype=np.float64)
            if self.sink_mass.shape != self.maps.shape[:2]:
                raise ValueError(
                    f"attention stack: sink mass of shape {self.sink_mass.shape} for "
                    f"{self.maps.shape[0]} layers x {self.maps.shape[1]} heads"
                )

    @property
    def num_layers(self) -> int:
        return int(self.maps.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.maps.shape[1])

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out = folder / f"{safe_name(name)}.npz"
        arrays = {"maps": self.maps}
        if self.sink_mass is not None:
            arrays["sink_mass"] = self.sink_mass
        np.savez_compressed(out, **arrays)
        meta = {
            "tokens": list(self.tokens),
            "input_ids": [int(i) for i in self.input_ids],
            "prompt": self.prompt,
            "title": self.title,
            "layer": int(self.layer),
            "head": int(self.head),
            "shape": list(self.maps.shape),
            "dtype": str(self.maps.dtype),
        }
        return out, meta

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> AttentionStack:
        with np.load(path, allow_pickle=False) as data:
            maps = data["maps"]
            sink = data["sink_mass"] if "sink_mass" in data.files else None
        keys = ("tokens", "input_ids", "prompt", "title", "layer", "head")
        return cls(maps=maps, sink_mass=sink, **{k: meta[k] for k in keys if k in meta})


@dataclass
class Text(Artifact):
    """Plain text (a generated answer, a report)."""

    kind: ClassVar[str] = "text"
    text: str
    title: str = ""

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out = folder / f"{safe_name(name)}.txt"
        out.write_text(self.text, encoding="utf-8")
        return out, {"title": self.title, "chars": len(self.text)}

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> Text:
        return cls(text=path.read_text(encoding="utf-8"), title=meta.get("title", ""))


@dataclass
class FileRef(Artifact):
    """A file or folder the job wrote itself (a checkpoint, a model folder)."""

    kind: ClassVar[str] = "file"
    path: Path
    description: str = ""

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        return Path(self.path), {"description": self.description}

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> FileRef:
        return cls(path=path, description=meta.get("description", ""))


@dataclass
class ScanReport(Artifact):
    """A backdoor scan's verdict and its evidence (``llm.scan_backdoor``): the ranked prefixes
    (``candidates``), the ranked heads (``heads``), the evaluation questions answered clean and
    with the best prefix (``answers``), and ``summary`` (verdict, score, threshold, references).
    Rows are plain dicts; ``*_columns`` order them for a table."""

    kind: ClassVar[str] = "scan_report"
    summary: dict[str, Any]
    candidates: list[dict[str, Any]]
    heads: list[dict[str, Any]]
    answers: list[dict[str, Any]]
    title: str = ""

    def save(self, folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
        out = folder / f"{safe_name(name)}.json"
        payload = {
            "summary": _jsonable(self.summary),
            "candidates": _jsonable(self.candidates),
            "heads": _jsonable(self.heads),
            "answers": _jsonable(self.answers),
            "title": self.title,
        }
        out.write_text(json.dumps(payload))
        return out, {"title": self.title, "verdict": self.summary.get("verdict")}

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> ScanReport:
        return cls(**json.loads(path.read_text()))


ARTIFACT_TYPES: dict[str, type[Artifact]] = {
    cls.kind: cls
    for cls in (
        ImageGrid,
        Heatmap,
        Graph,
        Curves,
        SineFunctions,
        IntervalCurves,
        Bars,
        Table,
        PromptTable,
        IntervalMatrix,
        SweepTable,
        AttentionStack,
        Text,
        FileRef,
        ScanReport,
    )
}


def load_artifact(kind: str, path: Path, meta: dict[str, Any]) -> Artifact:
    """Read an artifact back from its files (``path`` absolute)."""
    try:
        cls = ARTIFACT_TYPES[kind]
    except KeyError:
        raise ValueError(
            f"unknown artifact kind {kind!r}; known: {', '.join(ARTIFACT_TYPES)}"
        ) from None
    return cls.load(Path(path), meta)


from workbench import influence_artifacts as _influence_artifacts  # noqa: E402,F401 (registers its kinds)
from workbench import leakage_matrix as _leakage_matrix  # noqa: E402,F401 (registers its kind)
