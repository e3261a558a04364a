"""Views of influence pruning (spec section 4): the histogram of the forget points' influence with
the threshold of the chosen pruning level, and the compute-vs-quality curve over the levels with
95% intervals.  They draw the ``influence`` and ``pruning_curve`` artifacts
(:mod:`workbench.influence_artifacts`) of the ``classifier.influence_pruning`` job."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from ui.export import write_csv
from ui.views.plotting import Figure, series_styles, style_of
from workbench.influence_artifacts import InfluenceScores, PruningCurve

__all__ = ["InfluenceView", "PruningCurveView"]

BINS = 30
QUALITY_GROUPS = {
    "accuracies": ("forget_acc", "retain_acc", "test_acc"),
    "MIAs": ("umia_auc", "svc_mia_efficacy"),
    "gap to retrain": ("avg_gap",),
}


def _title(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("font-weight: bold;")
    return label


class InfluenceView(QWidget):
    """Histogram of the influence scores; a vertical line at the chosen level's threshold and how
    many points it drops.  Scores spanning more than two decades are binned on a log10 axis."""

    def __init__(self, artifact: InfluenceScores, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        self.scores = np.asarray(artifact.scores, dtype=float)
        finite = self.scores[np.isfinite(self.scores)]
        positive = finite[finite > 0]
        wide = (
            positive.size == finite.size and positive.size and positive.max() > 100 * positive.min()
        )
        self.level = QComboBox()
        self.level.addItems(list(artifact.thresholds))
        self.log = QCheckBox("log10 scores")
        self.log.setChecked(bool(wide))
        self.log.setEnabled(bool(positive.size == finite.size and positive.size))
        self.summary = QLabel("")
        self.plot = Figure("", "influence score", "forget points")
        self.line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#d62728", width=2))
        self.plot.plot_item.addItem(self.line)
        self.bars: pg.BarGraphItem | None = None
        top = QHBoxLayout()
        top.addWidget(QLabel("pruning level:"))
        top.addWidget(self.level)
        top.addWidget(self.log)
        top.addStretch(1)
        lay = QVBoxLayout(self)
        if artifact.title:
            lay.addWidget(_title(artifact.title))
        lay.addLayout(top)
        lay.addWidget(self.summary)
        lay.addWidget(self.plot, 1)
        if artifact.note:
            note = QLabel(artifact.note)
            note.setWordWrap(True)
            lay.addWidget(note)
        self.level.currentTextChanged.connect(self._show_level)
        self.log.toggled.connect(self._draw)
        if self.level.count() > 1:
            self.level.setCurrentIndex(self.level.count() // 2)
        self._draw()

    def _values(self) -> np.ndarray:
        s = self.scores[np.isfinite(self.scores)]
        return np.log10(s) if self.log.isChecked() else s

    def _draw(self, *_: object) -> None:
        values = self._values()
        if self.bars is not None:
            self.plot.plot_item.removeItem(self.bars)
            self.plot.items.pop("forget points", None)
            self.plot.entries.clear()
        if values.size:
            counts, edges = np.histogram(values, bins=BINS)
            width = float(edges[1] - edges[0]) if len(edges) > 1 else 1.0
            centres = 0.5 * (edges[1:] + edges[:-1])
            self.bars = self.plot.add_bars(
                "forget points", centres, counts, width * 0.9, style_of("forget points")
            )
        label = "log10 influence score" if self.log.isChecked() else "influence score"
        self.plot.plot_item.setLabel("bottom", label)
        self._show_level(self.level.currentText())

    def _show_level(self, name: str) -> None:
        tau = self.artifact.thresholds.get(name, -math.inf)
        n = self.scores.size
        if not math.isfinite(tau):
            self.line.hide()
            self.summary.setText(f"{name}: nothing dropped ({n} forget points kept)")
            return
        dropped = (
            int(np.sum(self.scores <= tau))
            if name.startswith("q")
            else int(np.sum(self.scores < tau))
        )
        x = math.log10(tau) if self.log.isChecked() and tau > 0 else tau
        self.line.setValue(x)
        self.line.show()
        self.summary.setText(
            f"{name}: threshold {tau:.3g}; {dropped} of {n} forget points dropped "
            f"({dropped / max(1, n):.0%}), {n - dropped} unlearned"
        )

    def export_figure(self, path: str | Path) -> Path:
        return self.plot.export_figure(path)

    def export_table(self, path: str | Path) -> Path:
        return write_csv(path, ["point", "score"], list(enumerate(self.artifact.scores)))


class PruningCurveView(QWidget):
    """Compute saved (top) and a group of quality measures (bottom) against the pruning level,
    each point the mean over seeds with its 95% interval as an error bar."""

    def __init__(self, artifact: PruningCurve, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.artifact = artifact
        self.group = QComboBox()
        groups = [
            g for g, names in QUALITY_GROUPS.items() if any(n in artifact.quality for n in names)
        ]
        others = [n for n in artifact.quality if not any(n in v for v in QUALITY_GROUPS.values())]
        self.group.addItems(groups + others)
        self.compute = Figure(
            "compute saved (share of the unpruned run)", artifact.x_label, "saved"
        )
        self.quality = Figure("quality on the full forget set", artifact.x_label, "value")
        self._draw(self.compute, artifact.compute, list(artifact.compute))
        self.off_scale = self._clip_compute()
        top = QHBoxLayout()
        top.addWidget(QLabel("quality:"))
        top.addWidget(self.group)
        top.addStretch(1)
        lay = QVBoxLayout(self)
        if artifact.title:
            lay.addWidget(_title(artifact.title))
        notes = [artifact.note] if artifact.note else []
        if self.off_scale:
            notes.append(f"Below the plot (cost more than the unpruned run): {self.off_scale}.")
        if notes:
            text = QLabel(" ".join(notes))
            text.setWordWrap(True)
            lay.addWidget(text)
        lay.addWidget(self.compute, 1)
        lay.addLayout(top)
        lay.addWidget(self.quality, 1)
        self.group.currentTextChanged.connect(self._show_group)
        self._show_group(self.group.currentText())

    def _draw(self, fig: Figure, data: dict[str, dict[str, list[float]]], names: list[str]) -> None:
        for item in list(fig.plot_item.items):
            if isinstance(item, pg.ErrorBarItem):
                fig.plot_item.removeItem(item)
        fig.clear()
        styles = series_styles(names)
        x = np.asarray(self.artifact.x, dtype=float)
        for name in names:
            d = data[name]
            mean, low, high = (np.asarray(d[k], dtype=float) for k in ("mean", "low", "high"))
            fig.add_series(name, x, mean, styles[name])
            ok = np.isfinite(mean) & np.isfinite(low) & np.isfinite(high)
            if ok.any():
                fig.plot_item.addItem(
                    pg.ErrorBarItem(
                        x=x[ok],
                        y=mean[ok],
                        top=high[ok] - mean[ok],
                        bottom=mean[ok] - low[ok],
                        beam=0.015,
                        pen=styles[name].pen(1),
                    )
                )

    def _clip_compute(self) -> str:
        """Shares saved below -1 (a net cost over twice the unpruned run's) would squash the
        others: the axis stops at -1 and those points are named instead."""
        low = [v for d in self.artifact.compute.values() for v in d["mean"] if np.isfinite(v)]
        if not low or min(low) >= -1.0:
            return ""
        self.compute.plot_item.setYRange(-1.0, 1.0, padding=0.05)
        out = []
        for name, d in self.artifact.compute.items():
            below = [
                (x, v)
                for x, v in zip(self.artifact.x, d["mean"], strict=True)
                if np.isfinite(v) and v < -1.0
            ]
            if len(below) == 1:
                out.append(f"{name} {below[0][1]:.1f} at {below[0][0]:g}")
            elif below:
                values = [v for _, v in below]
                out.append(f"{name} {min(values):.1f} to {max(values):.1f} at {len(below)} levels")
        return ", ".join(out)

    def _show_group(self, group: str) -> None:
        names = [n for n in QUALITY_GROUPS.get(group, (group,)) if n in self.artifact.quality]
        self._draw(self.quality, self.artifact.quality, names)

    def export_figure(self, path: str | Path) -> Path:
        return self.quality.export_figure(path)

    def export_table(self, path: str | Path) -> Path:
        rows = []
        for group in (self.artifact.compute, self.artifact.quality):
            for name, d in group.items():
                for i, x in enumerate(self.artifact.x):
                    rows.append((name, x, d["mean"][i], d["low"][i], d["high"][i]))
        return write_csv(path, ["measure", self.artifact.x_label, "mean", "low", "high"], rows)


def save_screenshots(project_dir: str, run_id: int, out_dir: str = "docs") -> list[Path]:
    """Grab the influence histogram and the pruning curve of run ``run_id`` of a project as
    ``screenshot-influence.png`` and ``screenshot-pruning-curve.png`` in ``out_dir``::

        QT_QPA_PLATFORM=offscreen python -m ui.views.influence_view PROJECT RUN [OUT_DIR]
    """
    from PySide6.QtWidgets import QApplication

    from workbench.artifacts import load_artifact
    from workbench.store import Project

    app = QApplication.instance() or QApplication([])
    project = Project.open(project_dir)
    saved = []
    try:
        for row in project.artifacts(run_id):
            kind = row["kind"]
            if kind not in ("influence", "pruning_curve"):
                continue
            artifact = load_artifact(kind, project.abspath(row["path"]), row["meta"])
            view = InfluenceView(artifact) if kind == "influence" else PruningCurveView(artifact)
            view.resize(1000, 620 if kind == "influence" else 820)
            view.show()
            for _ in range(20):
                app.processEvents()
            view.compute.arrange_legend() if kind == "pruning_curve" else view.plot.arrange_legend()
            app.processEvents()
            name = (
                "screenshot-influence.png"
                if kind == "influence"
                else "screenshot-pruning-curve.png"
            )
            path = Path(out_dir) / name
            view.grab().save(str(path))
            saved.append(path)
            view.close()
    finally:
        project.close()
    return saved


if __name__ == "__main__":
    import sys

    args = sys.argv[1:]
    if len(args) not in (2, 3):
        raise SystemExit("usage: python -m ui.views.influence_view PROJECT RUN [OUT_DIR]")
    for p in save_screenshots(args[0], int(args[1]), *args[2:]):
        print(f"saved {p}")
