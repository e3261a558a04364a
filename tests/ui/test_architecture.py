"""The GUI never imports backends or torch, and opening the main window does not load torch."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("backends", "torch")


def _imports(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):  # walks function bodies too: lazy imports count
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            names += [a.value for a in node.args if isinstance(a, ast.Constant)]
    return names


def test_ui_sources_import_no_backend_and_no_torch() -> None:
    offenders = []
    files = sorted((REPO / "ui").rglob("*.py"))
    assert files
    for path in files:
        for name in _imports(ast.parse(path.read_text(), str(path))):
            if name.split(".")[0] in FORBIDDEN:
                offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert offenders == []


PROBE = """
import json, sys
from PySide6.QtWidgets import QApplication
from PySide6.QtCore import QSettings
from ui.app import build_main_window
window = build_main_window(sys.argv[1], settings=QSettings(sys.argv[2], QSettings.Format.IniFormat),
                           ask_on_close=False)
window.show()
QApplication.processEvents()
shown = window.isVisible() and window.project is not None
jobs = sorted(window.registry.jobs)
window.close()
print(json.dumps({"torch": "torch" in sys.modules, "backends_loaded": [m for m in sys.modules if m.startswith("backends.classifier.train")], "shown": shown, "jobs": jobs}))
"""


def test_main_window_does_not_import_torch(tmp_path: Path) -> None:
    from workbench.store import Project

    Project.create(tmp_path / "project").close()
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "project"), str(tmp_path / "s.ini")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["shown"] is True
    assert "classifier.train_mlp" in result["jobs"]
    assert result["torch"] is False
    assert result["backends_loaded"] == []
