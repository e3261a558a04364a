"""What a run records about the software it ran on (read from package metadata, nothing imported)."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

__all__ = ["collect_versions", "TRACKED_PACKAGES"]

TRACKED_PACKAGES = (
    "unlearning-workbench",
    "torch",
    "numpy",
    "scikit-learn",
    "transformers",
    "diffusers",
    "peft",
    "safetensors",
    "PySide6-Essentials",
)


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@lru_cache(maxsize=1)
def collect_versions() -> dict[str, str]:
    """Python, platform, the tracked packages' versions and the source commit when known."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    commit = _git_commit()
    if commit:
        versions["workbench_commit"] = commit
    return dict(versions)
