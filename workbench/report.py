"""A run, a comparison of runs or an attack matrix as ONE self-contained HTML file, plus CSV and
JSON of every table it shows (issue 18 part 2): ``workbench report RUN [RUN ...] --out
report.html`` and the GUI's File → Export report….

Design: the report is written by plain Python in the headless core, from the recorded data, so
the CLI, a server without a display and the GUI produce the same file and ``workbench`` never
imports Qt.  Figures are drawn from their data, never screenshotted:

- curves (``curves``, ``interval_curves``, metric series of more than one step) and bars
  (``bars``) become SVG written here (:func:`svg_curves`, :func:`svg_bars`), embedded as
  ``data:image/svg+xml`` images: vector, a few kB, exact;
- images an artifact already holds as PNG (``image_grid`` cells) are embedded as
  ``data:image/png`` images, unchanged;
- tables, heatmaps and matrices (``table`` and its kinds, ``heatmap``, ``interval_matrix``,
  ``leakage_matrix``) become HTML tables (matrices with their cell colours), and each is also
  written as ``<name>.csv`` and ``<name>.json`` next to the report;
- ``text`` is shown as is; other kinds (graphs, attention stacks, files) are listed by name.

Nothing refers outside the file: no ``http(s)://``, no ``src`` that is a path.  Data URIs and
HTML tables are what Qt's rich-text engine (``QTextDocument`` / ``QTextBrowser``) renders too, so
the report opens in the app's own viewer as in a browser.  The run's config, seed, model,
dataset, status, recorded versions (python, torch, the app) and the versions of the workbench
that wrote the report are in every report.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import __version__
from workbench.artifacts import (
    Bars,
    Curves,
    Heatmap,
    ImageGrid,
    IntervalMatrix,
    Table,
    Text,
    load_artifact,
)
from workbench.leakage_matrix import LeakageMatrix, distance_rgb
from workbench.store import Project
from workbench.versions import collect_versions

__all__ = ["Report", "build_report", "svg_bars", "svg_curves", "write_report"]

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
MAX_SERIES_PLOTS = 6  # metric series drawn per run (all of them are in the tables)
MAX_LOG_LINES = 40
MAX_TABLE_ROWS = 2000  # rows shown in the HTML (the CSV and JSON hold all)
MAX_IMAGES = 64  # per image grid
CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.5em 0 1em 0; }
th, td { border: 1px solid #bbb; padding: 3px 6px; font-size: 0.9em; vertical-align: top; }
th { background: #eee; }
pre { background: #f6f6f6; padding: 0.5em; font-size: 0.85em; white-space: pre-wrap; }
.note { color: #555; font-size: 0.9em; }
"""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any) -> str:
    """A number as ``workbench show --json`` prints it (full precision; NaN, Infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    return json.dumps(value)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "table"


# -- SVG figures ----------------------------------------------------------------------------------


def _ticks(lo: float, hi: float, log: bool, n: int = 5) -> list[float]:
    if log:
        a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        return [10.0**e for e in range(a, b + 1)]
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= min((m for m in (1, 2, 5, 10) if m * step >= raw), default=10)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt_tick(v: float) -> str:
    return f"{v:.3g}"


@dataclass
class _Axes:
    x0: float
    x1: float
    y0: float
    y1: float
    log_x: bool = False
    log_y: bool = False
    width: int = 560
    height: int = 300
    left: int = 60
    right: int = 170  # room for the legend
    top: int = 28
    bottom: int = 44

    def _t(self, v: float, lo: float, hi: float, log: bool) -> float:
        if log:
            v, lo, hi = math.log10(v), math.log10(lo), math.log10(hi)
        return 0.5 if hi == lo else (v - lo) / (hi - lo)

    def px(self, x: float) -> float:
        w = self.width - self.left - self.right
        return self.left + w * self._t(x, self.x0, self.x1, self.log_x)

    def py(self, y: float) -> float:
        h = self.height - self.top - self.bottom
        return self.height - self.bottom - h * self._t(y, self.y0, self.y1, self.log_y)


def _titles(ax: _Axes, title: str, x_label: str, y_label: str, parts: list[str]) -> None:
    """The title above the plot area and the two axis labels (the y label rotated)."""
    right, bottom = ax.width - ax.right, ax.height - ax.bottom
    mid = (ax.left + right) / 2
    parts.append(
        f'<text x="{mid:.1f}" y="16" font-size="12" font-weight="bold" '
        f'text-anchor="middle">{_esc(title)}</text>'
    )
    parts.append(
        f'<text x="{mid:.1f}" y="{ax.height - 8}" font-size="11" '
        f'text-anchor="middle">{_esc(x_label)}</text>'
    )
    yc = (ax.top + bottom) / 2
    parts.append(
        f'<text x="14" y="{yc:.1f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 14 {yc:.1f})">{_esc(y_label)}</text>'
    )


def _frame(ax: _Axes, title: str, x_label: str, y_label: str, parts: list[str]) -> None:
    right = ax.width - ax.right
    bottom = ax.height - ax.bottom
    parts.append(
        f'<rect x="{ax.left}" y="{ax.top}" width="{right - ax.left}" '
        f'height="{bottom - ax.top}" fill="white" stroke="#888"/>'
    )
    for v in _ticks(ax.x0, ax.x1, ax.log_x):
        x = ax.px(v)
        parts.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#888"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 16}" font-size="10" '
            f'text-anchor="middle">{_fmt_tick(v)}</text>'
        )
    for v in _ticks(ax.y0, ax.y1, ax.log_y):
        y = ax.py(v)
        parts.append(
            f'<line x1="{ax.left - 4}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{ax.left - 6}" y="{y + 3:.1f}" font-size="10" '
            f'text-anchor="end">{_fmt_tick(v)}</text>'
        )
    _titles(ax, title, x_label, y_label, parts)


def _legend(ax: _Axes, names: Sequence[str], parts: list[str]) -> None:
    x = ax.width - ax.right + 10
    for i, name in enumerate(names[:14]):
        y = ax.top + 6 + 15 * i
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="{y}" width="12" height="8" fill="{colour}"/>')
        label = name if len(name) <= 24 else name[:23] + "…"
        parts.append(f'<text x="{x + 16}" y="{y + 8}" font-size="10">{_esc(label)}</text>')
    if len(names) > 14:
        parts.append(
            f'<text x="{x}" y="{ax.top + 6 + 15 * 14 + 8}" font-size="10">'
            f"… {len(names) - 14} more</text>"
        )


def _svg(ax: _Axes, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{ax.width}" height="{ax.height}" '
        f'viewBox="0 0 {ax.width} {ax.height}" font-family="sans-serif">'
        + "".join(parts)
        + "</svg>"
    )


def svg_curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "",
    x_label: str = "",
    y_label: str = "",
    log_x: bool = False,
    log_y: bool = False,
    scatter: bool = False,
) -> str | None:
    """Named x/y series as one SVG line plot (markers for series of few points or ``scatter``);
    non-finite points (and non-positive ones on a log axis) are left out.  ``None`` when there
    is nothing to draw."""
    clean: dict[str, list[tuple[float, float]]] = {}
    for name, (xs, ys) in series.items():
        pts = [
            (float(x), float(y))
            for x, y in zip(xs, ys, strict=False)
            if math.isfinite(float(x))
            and math.isfinite(float(y))
            and (not log_x or float(x) > 0)
            and (not log_y or float(y) > 0)
        ]
        if pts:
            clean[name] = pts
    if not clean:
        return None
    xs_all = [x for pts in clean.values() for x, _ in pts]
    ys_all = [y for pts in clean.values() for _, y in pts]
    ax = _Axes(min(xs_all), max(xs_all), min(ys_all), max(ys_all), log_x, log_y)
    if ax.y0 == ax.y1:
        ax.y0, ax.y1 = ax.y0 - 0.5, ax.y1 + 0.5
    parts: list[str] = []
    _frame(ax, title, x_label, y_label, parts)
    for i, pts in enumerate(clean.values()):
        colour = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{ax.px(x):.1f},{ax.py(y):.1f}" for x, y in pts)
        if not scatter and len(pts) > 1:
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.6"/>'
            )
        if scatter or len(pts) <= 12:
            parts.extend(
                f'<circle cx="{ax.px(x):.1f}" cy="{ax.py(y):.1f}" r="2.5" fill="{colour}"/>'
                for x, y in pts
            )
    _legend(ax, list(clean), parts)
    return _svg(ax, parts)


def svg_bars(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str = "",
    x_label: str = "",
    y_label: str = "",
) -> str | None:
    """Grouped bars (one group per category, one bar per series) as SVG; ``None`` when empty."""
    values = [float(v) for vs in series.values() for v in vs if math.isfinite(float(v))]
    if not categories or not values:
        return None
    ax = _Axes(0, len(categories), min(0.0, min(values)), max(0.0, max(values)))
    if ax.y0 == ax.y1:
        ax.y1 = 1.0
    ax.width = max(ax.width, ax.left + ax.right + 18 * len(categories) * max(1, len(series)))
    parts: list[str] = []
    right, bottom = ax.width - ax.right, ax.height - ax.bottom
    parts.append(
        f'<rect x="{ax.left}" y="{ax.top}" width="{right - ax.left}" '
        f'height="{bottom - ax.top}" fill="white" stroke="#888"/>'
    )
    for v in _ticks(ax.y0, ax.y1, False):
        y = ax.py(v)
        parts.append(
            f'<line x1="{ax.left - 4}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{ax.left - 6}" y="{y + 3:.1f}" font-size="10" '
            f'text-anchor="end">{_fmt_tick(v)}</text>'
        )
    group = (right - ax.left) / len(categories)
    width = group * 0.8 / max(1, len(series))
    zero = ax.py(0.0)
    for j, (name, vs) in enumerate(series.items()):
        colour = PALETTE[j % len(PALETTE)]
        for i, v in enumerate(vs):
            v = float(v)
            if not math.isfinite(v):
                continue
            x = ax.left + group * (i + 0.1) + width * j
            y = ax.py(v)
            parts.append(
                f'<rect x="{x:.1f}" y="{min(y, zero):.1f}" width="{width:.1f}" '
                f'height="{abs(zero - y):.1f}" fill="{colour}"><title>{_esc(name)} · '
                f"{_esc(categories[i])}: {v:.4g}</title></rect>"
            )
    for i, cat in enumerate(categories):
        x = ax.left + group * (i + 0.5)
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 14}" font-size="10" '
            f'text-anchor="middle">{_esc(str(cat)[:10])}</text>'
        )
    _titles(ax, title, x_label, y_label, parts)
    _legend(ax, list(series), parts)
    return _svg(ax, parts)


def _img(data: bytes, mime: str, alt: str) -> str:
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return f'<img src="{uri}" alt="{_esc(alt)}"/>'


def _svg_img(svg: str | None, alt: str) -> str:
    if svg is None:
        return f'<p class="note">{_esc(alt)}: nothing finite to draw</p>'
    return "<p>" + _img(svg.encode("utf-8"), "image/svg+xml", alt) + "</p>"


def _png(image: Any) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    if not hasattr(image, "save"):
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        image = Image.fromarray(arr)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


# -- the report -----------------------------------------------------------------------------------


@dataclass
class Report:
    """The HTML and every table it shows (``name -> (header, rows)``, full length)."""

    title: str
    html: str = ""
    tables: dict[str, tuple[list[str], list[list[Any]]]] = field(default_factory=dict)


class _Builder:
    def __init__(self, project: Project) -> None:
        self.project = project
        self.body: list[str] = []
        self.tables: dict[str, tuple[list[str], list[list[Any]]]] = {}

    def table(
        self,
        name: str,
        header: Sequence[Any],
        rows: Sequence[Sequence[Any]],
        *,
        colours: Sequence[Sequence[str | None]] | None = None,
        caption: str = "",
        precise: bool = False,
    ) -> None:
        """Show a table (its id is the table's name) and keep it for CSV / JSON (full
        precision).  Numbers are shown to 4 significant digits, or in full (as ``workbench show
        --json`` prints them) when ``precise``."""
        key = name
        n = 2
        while key in self.tables:
            key, n = f"{name}-{n}", n + 1
        self.tables[key] = ([str(h) for h in header], [list(r) for r in rows])
        out = [f'<table id="{_esc(_slug(key))}">']
        if caption:
            out.append(f"<caption>{_esc(caption)}</caption>")
        out.append("<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>")
        for i, row in enumerate(rows[:MAX_TABLE_ROWS]):
            cells = []
            for j, v in enumerate(row):
                colour = colours[i][j] if colours is not None else None
                bg = f' bgcolor="{colour}"' if colour else ""
                if isinstance(v, float) and not precise and math.isfinite(v):
                    text = f"{v:.4g}"
                else:
                    text = _num(v) if isinstance(v, (int, float)) else _esc(v)
                cells.append(f"<td{bg}>{text.replace(chr(10), '<br/>')}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
        if len(rows) > MAX_TABLE_ROWS:
            out.append(
                f'<p class="note">{len(rows) - MAX_TABLE_ROWS} more rows in {_esc(key)}.csv</p>'
            )
        self.body.append("".join(out))

    def add(self, fragment: str) -> None:
        self.body.append(fragment)

    # -- one run ----------------------------------------------------------------------------
    def run(self, run_id: int) -> None:
        from workbench.cli import run_details

        d = run_details(self.project, run_id)
        p = f"run{run_id}"
        self.add(f'<h2 id="{p}">Run {run_id}: {_esc(d["job"])} [{_esc(d["status"])}]</h2>')
        summary = [
            [k, d.get(k)]
            for k in (
                "id",
                "job",
                "kind",
                "family",
                "method",
                "status",
                "seed",
                "model",
                "dataset",
                "parent_id",
                "created",
                "started",
                "finished",
                "device",
                "status_text",
                "note",
            )
        ]
        summary.append(["tags", ", ".join(d.get("tags") or [])])
        summary = [row for row in summary if row[1] not in (None, "")]
        self.table(f"{p}-summary", ["field", "value"], summary, precise=True)
        for row in self.project.artifacts(run_id):
            self.artifact(row, p)
        children = [r for r in self.project.runs() if r.parent_id == run_id]
        if children:
            self.add("<h3>Child runs</h3>")
            self.table(
                f"{p}-children",
                ["id", "job", "model", "seed", "status"],
                [[c.id, c.job, c.model, c.seed, c.status] for c in children],
            )
        metrics = d["metrics"]
        self.add("<h3>Final metrics</h3>")
        if metrics:
            self.table(f"{p}-metrics", ["metric", "value"], list(metrics.items()), precise=True)
        else:
            self.add('<p class="note">no metrics recorded</p>')
        self.series(run_id, p)
        self.add("<h3>Config</h3><pre>" + _esc(json.dumps(d["config"], indent=2)) + "</pre>")
        versions = d.get("versions") or {}
        self.add("<h3>Versions the run recorded</h3>")
        self.table(f"{p}-versions", ["package", "version"], sorted(versions.items()))
        if d.get("error"):
            self.add("<h3>Error</h3><pre>" + _esc(d["error"]) + "</pre>")
        log = d.get("log") or []
        if log:
            self.add(f"<h3>Log (last {min(len(log), MAX_LOG_LINES)} lines)</h3><pre>")
            self.add(
                _esc(
                    "\n".join(
                        f"{r['time']} {r['level']}: {r['message']}" for r in log[-MAX_LOG_LINES:]
                    )
                )
                + "</pre>"
            )

    def series(self, run_id: int, prefix: str) -> None:
        series = {k: v for k, v in self.project.metric_series(run_id).items() if len(set(v[0])) > 1}
        if not series:
            return
        self.add("<h3>Metric curves</h3>")
        for name in list(series)[:MAX_SERIES_PLOTS]:
            steps, values = series[name]
            svg = svg_curves({name: (steps, values)}, title=name, x_label="step", y_label=name)
            self.add(_svg_img(svg, name))
        if len(series) > MAX_SERIES_PLOTS:
            self.add(
                f'<p class="note">{len(series) - MAX_SERIES_PLOTS} more metric series are not '
                "drawn</p>"
            )
        rows = [
            [n, s, v]
            for n, (steps, vals) in series.items()
            for s, v in zip(steps, vals, strict=True)
        ]
        self.tables[f"{prefix}-metric-series"] = (["metric", "step", "value"], rows)

    def artifact(self, row: dict[str, Any], prefix: str) -> None:
        name, kind = row["name"], row["kind"]
        key = f"{prefix}-artifact-{_slug(name)}"
        self.add(f"<h3>{_esc(name)} <span class='note'>({_esc(kind)})</span></h3>")
        try:
            art = load_artifact(kind, self.project.artifact_path(row), row["meta"])
        except Exception as exc:  # a damaged artifact must not stop the report
            self.add(f'<p class="note">not readable: {_esc(exc)}</p>')
            return
        if isinstance(art, LeakageMatrix):
            self.leakage(art, key)
        elif isinstance(art, IntervalMatrix):
            self.interval_matrix(art, key)
        elif isinstance(art, Table):
            if art.title:
                self.add(f'<p class="note">{_esc(art.title)}</p>')
            self.table(key, art.columns, art.rows)
        elif isinstance(art, Curves):
            svg = svg_curves(
                art.series,
                title=art.title,
                x_label=art.x_label,
                y_label=art.y_label,
                log_x=art.log_x,
                log_y=art.log_y,
                scatter=art.scatter,
            )
            self.add(_svg_img(svg, name))
            self.tables[key] = (
                ["series", "x", "y"],
                [
                    [s, x, y]
                    for s, (xs, ys) in art.series.items()
                    for x, y in zip(xs, ys, strict=True)
                ],
            )
        elif isinstance(art, Bars):
            svg = svg_bars(
                art.categories,
                art.series,
                title=art.title,
                x_label=art.x_label,
                y_label=art.y_label,
            )
            self.add(_svg_img(svg, name))
            self.tables[key] = (
                ["category", *art.series],
                [[c, *[vs[i] for vs in art.series.values()]] for i, c in enumerate(art.categories)],
            )
        elif isinstance(art, Heatmap):
            self.heatmap(art, key)
        elif isinstance(art, ImageGrid):
            self.images(art)
        elif isinstance(art, Text):
            self.add("<pre>" + _esc(art.text) + "</pre>")
        else:
            self.add(f'<p class="note">a {_esc(kind)} artifact: open it in the app</p>')

    def leakage(self, m: LeakageMatrix, key: str) -> None:
        self.add(f'<p class="note">{_esc(m.title)}</p>')
        scales = []
        for c in range(len(m.columns)):
            d = [abs(m.distance(r, c)) for r in range(len(m.rows))]
            finite = [x for x in d if math.isfinite(x)]
            scales.append(max(finite) if finite else 1.0)
        cells: list[list[Any]] = []
        colours: list[list[str | None]] = []
        for r, label in enumerate(m.rows):
            row: list[Any] = [label]
            colour: list[str | None] = [None]
            for c in range(len(m.columns)):
                row.append(m.cell_text(r, c))
                if m.child_run(r, c) is None:
                    colour.append("#e1e1e1")
                else:
                    rgb = distance_rgb(m.distance(r, c), scales[c])
                    colour.append("#{:02x}{:02x}{:02x}".format(*rgb))
            cells.append(row)
            colours.append(colour)
        arrows = ["higher leaks" if up else "lower leaks" for up in m.higher_leaks]
        header = ["run"] + [
            f"{t} ({m.short_metric(c)}, {a})"
            for c, (t, a) in enumerate(zip(m.column_titles, arrows, strict=True))
        ]
        self.table(key, header, cells, colours=colours)
        self.add(
            '<p class="note">Each cell: value [95% interval] and the reference (retrained / '
            "never-learned model). Colour: distance from the reference, red = leaks more, "
            "blue = leaks less, each column scaled by its largest distance; grey: the attack "
            "does not apply to the run's model.</p>"
        )
        links = [
            f'<a href="#run{m.child_run(r, c)}">run {m.child_run(r, c)}</a> '
            f"({_esc(m.rows[r])} × {_esc(m.columns[c])})"
            for r in range(len(m.rows))
            for c in range(len(m.columns))
            if m.child_run(r, c) is not None
        ]
        if links:
            self.add('<p class="note">Child runs (in full below): ' + "; ".join(links) + "</p>")
        header_long, rows_long = m.table()
        self.tables[f"{key}-cells"] = (header_long, rows_long)
        for note in m.shown_notes():
            self.add(f'<p class="note">{_esc(note)}</p>')

    def interval_matrix(self, m: IntervalMatrix, key: str) -> None:
        rows = []
        for r, label in enumerate(m.rows):
            row = [label]
            for c in range(len(m.columns)):
                parts = []
                for q, values in m.values.items():
                    v = float(values[r, c])
                    lo, hi = m.lows.get(q), m.highs.get(q)
                    if not math.isfinite(v):
                        parts.append(f"{q} —")
                    elif lo is not None and hi is not None and math.isfinite(float(lo[r, c])):
                        parts.append(f"{q} {v:.2f} [{float(lo[r, c]):.2f}, {float(hi[r, c]):.2f}]")
                    else:
                        parts.append(f"{q} {v:.2f}")
                row.append("\n".join(parts))
            rows.append(row)
        self.table(key, ["row", *m.columns], rows)
        if m.legend:
            self.add(f'<p class="note">{_esc(m.legend)}</p>')

    def heatmap(self, h: Heatmap, key: str) -> None:
        import numpy as np

        data = np.asarray(h.matrix, dtype=float)
        finite = data[np.isfinite(data)]
        lo = h.vmin if h.vmin is not None else (float(finite.min()) if finite.size else 0.0)
        hi = h.vmax if h.vmax is not None else (float(finite.max()) if finite.size else 1.0)
        rows, colours = [], []
        for i in range(data.shape[0]):
            label = h.y_labels[i] if i < len(h.y_labels) else str(i)
            rows.append([label, *[float(v) for v in data[i]]])
            colour: list[str | None] = [None]
            for v in data[i]:
                t = 0.0 if not math.isfinite(v) or hi == lo else (float(v) - lo) / (hi - lo)
                g = int(255 - 140 * min(max(t, 0.0), 1.0))
                colour.append(f"#{g:02x}{g:02x}ff" if math.isfinite(v) else "#e1e1e1")
            colours.append(colour)
        x_labels = list(h.x_labels) or [str(j) for j in range(data.shape[1])]
        if h.title:
            self.add(f'<p class="note">{_esc(h.title)}</p>')
        self.table(key, [h.y_title or "", *x_labels], rows, colours=colours)

    def images(self, grid: ImageGrid) -> None:
        out = ["<table>"]
        if grid.col_labels:
            out.append(
                "<tr>"
                + ("<th></th>" if grid.row_labels else "")
                + "".join(f"<th>{_esc(c)}</th>" for c in grid.col_labels)
                + "</tr>"
            )
        shown = grid.images[:MAX_IMAGES]
        for r in range(math.ceil(len(shown) / grid.cols)):
            cells = []
            if grid.row_labels:
                cells.append(
                    f"<th>{_esc(grid.row_labels[r] if r < len(grid.row_labels) else '')}</th>"
                )
            for c in range(grid.cols):
                i = r * grid.cols + c
                if i >= len(shown):
                    cells.append("<td></td>")
                    continue
                caption = grid.captions[i] if grid.captions else ""
                cells.append(
                    "<td>"
                    + _img(_png(shown[i]), "image/png", caption)
                    + (f"<br/>{_esc(caption)}" if caption else "")
                    + "</td>"
                )
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
        if len(grid.images) > MAX_IMAGES:
            out.append(f'<p class="note">{len(grid.images) - MAX_IMAGES} more images not shown</p>')
        self.add("".join(out))

    # -- several runs -----------------------------------------------------------------------
    def comparison(self, run_ids: Sequence[int]) -> None:
        """Final metrics of every run side by side (rows = metrics)."""
        finals = {rid: self.project.final_metrics(rid) for rid in run_ids}
        names = sorted({n for m in finals.values() for n in m})
        rows = [[n, *[finals[r].get(n) for r in run_ids]] for n in names]
        self.add("<h2>Comparison: final metrics</h2>")
        self.table("comparison", ["metric", *[f"run {r}" for r in run_ids]], rows)


def build_report(project: Project, run_ids: Sequence[int], title: str = "") -> Report:
    """The report of ``run_ids`` (one run, or several side by side then each in full)."""
    if not run_ids:
        raise ValueError("name at least one run to report")
    for rid in run_ids:
        project.run(rid)  # an unknown run fails here, naming it
    b = _Builder(project)
    title = title or (
        f"Run {run_ids[0]}" if len(run_ids) == 1 else f"Runs {', '.join(map(str, run_ids))}"
    )
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    b.add(f"<h1>{_esc(title)}</h1>")
    b.add(
        f'<p class="note">Unlearning Workbench {__version__} report of project '
        f"{_esc(project.root.name)}, written {now}. Figures are drawn from the recorded data; "
        "every table is also in the CSV / JSON files written next to this file.</p>"
    )
    if len(run_ids) > 1:
        b.comparison(run_ids)
    for rid in run_ids:
        b.run(rid)
        for child in [r.id for r in project.runs() if r.parent_id == rid]:
            if child not in run_ids:  # a matrix's (or any parent's) children, each in full
                b.run(child)
    b.add("<h2>Software that wrote this report</h2>")
    versions = {"unlearning-workbench": __version__, **collect_versions()}
    b.table("report-versions", ["package", "version"], sorted(versions.items()))
    doc = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"/>'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(b.body)
        + "</body></html>"
    )
    return Report(title, doc, b.tables)


def write_report(project: Project, run_ids: Sequence[int], out: str | Path) -> list[Path]:
    """Write the report to ``out`` (HTML) and each table as ``<out stem>_tables/<name>.csv`` and
    ``.json``; returns the paths written (the HTML first)."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        out = out.with_suffix(".html")
    report = build_report(project, run_ids)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.html, encoding="utf-8")
    written = [out]
    folder = out.with_name(out.stem + "_tables")
    folder.mkdir(exist_ok=True)
    for name, (header, rows) in report.tables.items():
        slug = _slug(name)
        with (folder / f"{slug}.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        (folder / f"{slug}.json").write_text(
            json.dumps({"columns": header, "rows": rows}, indent=1, default=str),
            encoding="utf-8",
        )
        written += [folder / f"{slug}.csv", folder / f"{slug}.json"]
    return written
