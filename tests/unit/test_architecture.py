"""Layering: the headless core imports neither Qt nor torch; contracts hold (import-linter)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_importing_the_whole_core_leaves_torch_and_qt_out() -> None:
    code = (
        "import sys, pkgutil, importlib, workbench\n"
        "for m in pkgutil.iter_modules(workbench.__path__):\n"
        "    importlib.import_module('workbench.' + m.name)\n"
        "heavy = [m for m in ('torch', 'PySide6', 'pyqtgraph', 'transformers', 'diffusers', 'peft',"
        " 'pandas') if m in sys.modules]\n"
        "print(','.join(heavy) or 'clean')\n"
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"


def test_the_store_opens_a_project_without_pandas_and_pandas_still_imports_later(
    tmp_path: Path,
) -> None:
    """sqlite-utils would import pandas (about 1.2 s of every job child's start); the store hides
    it for that one import, and the process can still import pandas afterwards."""
    code = (
        "import sys\n"
        "from workbench.store import Project\n"
        f"p = Project.create({str(tmp_path / 'p')!r})\n"
        "print('pandas' in sys.modules)\n"
        "import pandas\n"
        "print(pandas.DataFrame({'a': [1]}).shape)\n"
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "(1,", "1)"]


def test_listing_jobs_and_validating_a_config_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from workbench.registry import get_registry\n"
        "reg = get_registry()\n"
        "reg.to_json()\n"
        "reg.validate_job_config('classifier.train_mlp', {'epochs': 3})\n"
        "assert not reg.plugin_errors, reg.plugin_errors\n"
        "print('torch' in sys.modules)\n"
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_import_linter_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports"
    )
    assert exe, "import-linter is a dev dependency; `make install` provides lint-imports"
    out = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout
