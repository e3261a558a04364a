"""Regenerate the documentation screenshots: ``python -m ui.screenshots [OUT_DIR]``.

Builds a temporary project, runs the digits MLP job once from the job builder, selects it in the
run view and saves 1280x800 grabs of the main window (``screenshot.png``) and of the heatmap,
image-grid and graph viewers to ``OUT_DIR`` (default ``docs/``).

``python -m ui.screenshots diffusion [OUT_DIR] [CONTROL_PIPELINE]`` runs MemoRa on the tiny
text-to-image model instead and saves its gallery, stages and recovery curve.

``python -m ui.screenshots metrics PROJECT [OUT_PNG] [FILTER]`` grabs the Metrics tab of the first
finished ``classifier.compare`` run of a copy of PROJECT (default output
``docs/screenshot-metrics-table.png``), optionally with a filter typed in.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHOTS = {
    "screenshot-heatmap.png": "confusion matrix",
    "screenshot-image-grid.png": "misclassified",
    "screenshot-graph.png": "confusion graph",
}


def _settle(seconds: float = 0.3) -> None:
    """Let the event loop run for ``seconds`` so that queued paints and worker results land
    before a grab (a screenshot script, not a test: tests wait on signals)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def save_grab(widget: object, path: str | Path) -> Path:
    """Save ``widget.grab()`` as PNG at ``path`` (".png" added when it has no suffix); raise
    ``OSError`` when Qt cannot write it (before, a path without an extension printed "saved" and
    wrote nothing)."""
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    fmt = path.suffix.lstrip(".").upper()
    if not widget.grab().save(str(path), fmt):  # type: ignore[attr-defined]
        raise OSError(f"could not write {path} (format {fmt}); is the folder writable?")
    return path


def main(out_dir: str = "docs", epochs: int = 40) -> int:
    from PySide6.QtCore import QSettings

    from ui.app import build_main_window
    from workbench.store import Project

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="workbench-shots-"))
    Project.create(tmp / "demo-project").close()
    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    window = build_main_window(tmp / "demo-project", settings=settings, ask_on_close=False)
    window.resize(1280, 800)
    window.show()

    window.builder.select_job("classifier.train_mlp")
    window.builder.seed_spin.setValue(7)
    window.builder.form.set_values({"epochs": epochs})
    run_id = window.builder.submit()
    if run_id is None:
        print(window.builder.message.text(), file=sys.stderr)
        return 1
    deadline = time.monotonic() + 300
    while window.project_pane.run_status(run_id) != "completed" and time.monotonic() < deadline:
        _settle(0.05)
    _settle(0.6)
    window.builder.clear_message()
    window.select_run(run_id)
    window.run_view.tabs.setCurrentIndex(0)
    while window.run_view.loading and time.monotonic() < deadline:
        _settle(0.05)
    _settle()
    save_grab(window, out / "screenshot.png")
    for filename, name in SHOTS.items():
        window.run_view.show_artifact(name)
        _settle()
        save_grab(window, out / filename)
    window.close()
    print(f"saved screenshots to {out}/")
    return 0


DIFFUSION_SHOTS = {
    "screenshot-diffusion-gallery.png": "gallery",
    "screenshot-memora-stages.png": "memora stages",
    "screenshot-memora-curve.png": "recovery curve",
}


def diffusion(out_dir: str = "docs", control: str = "") -> int:
    """Run MemoRa (UCE erasure first) on the tiny text-to-image model from the job builder and
    grab its gallery, stages strip and recovery curve."""
    from PySide6.QtCore import QSettings

    from ui.app import build_main_window
    from workbench.store import Project

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="workbench-shots-"))
    Project.create(tmp / "p").close()
    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    window = build_main_window(tmp / "p", settings=settings, ask_on_close=False)
    window.resize(1280, 800)
    window.show()

    window.builder.select_job("diffusion.memora")
    values = {
        "erase_with": "uce",
        "curve_steps": [0, 25, 100],
        "eval_samples": 1,
        "gallery_rows": 6,
        "device": "cpu",
    }
    if control:
        values["control_model"] = control
    window.builder.form.set_values(values)
    run_id = window.builder.submit()
    if run_id is None:
        print(window.builder.message.text(), file=sys.stderr)
        return 1
    deadline = time.monotonic() + 3600
    while window.project_pane.run_status(run_id) not in ("completed", "failed") and (
        time.monotonic() < deadline
    ):
        _settle(0.2)
    _settle(0.6)
    window.builder.clear_message()
    window.select_run(run_id)
    while window.run_view.loading and time.monotonic() < deadline:
        _settle(0.05)
    for dock in (window.project_dock, window.builder_dock, window.monitor_dock):
        dock.hide()  # the gallery needs the width
    for filename, name in DIFFUSION_SHOTS.items():
        window.run_view.show_artifact(name)
        _settle()
        save_grab(window, out / filename)
    window.close()
    print(f"saved diffusion screenshots to {out}/")
    return 0


def metrics(
    project: str, out_png: str = "docs/screenshot-metrics-table.png", text: str = ""
) -> int:
    import shutil

    from PySide6.QtCore import QSettings

    from ui.app import build_main_window
    from workbench.store import Project

    tmp = Path(tempfile.mkdtemp(prefix="workbench-shots-"))
    shutil.copytree(project, tmp / "project")  # never touch the given project
    with Project.open(tmp / "project") as p:
        runs = [r for r in p.runs() if r.job == "classifier.compare" and r.status == "completed"]
    if not runs:
        print(f"{project} has no finished classifier.compare run", file=sys.stderr)
        return 1
    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    window = build_main_window(tmp / "project", settings=settings, ask_on_close=False)
    window.resize(1400, 900)
    window.show()

    window.select_run(runs[0].id)
    window.run_view.tabs.setCurrentIndex(0)
    deadline = time.monotonic() + 60
    while window.run_view.loading and time.monotonic() < deadline:
        _settle(0.05)
    window.run_view.metrics.filter.setText(text)
    _settle(1.0)
    saved = save_grab(window, out_png)
    window.close()
    print(f"saved {saved}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["metrics"]:
        raise SystemExit(metrics(*sys.argv[2:5]))
    if sys.argv[1:2] == ["diffusion"]:
        raise SystemExit(diffusion(*sys.argv[2:4]))
    raise SystemExit(main(*sys.argv[1:2]))
