"""Where the app's shipped resources live (icons, built-in models, configs, the demo template)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RESOURCES = REPO_ROOT / "resources"
BUILTIN_MODELS = RESOURCES / "models"
CONFIGS = RESOURCES / "configs"
ICON = RESOURCES / "icons" / "workbench.svg"
