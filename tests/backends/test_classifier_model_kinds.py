"""Adding a classifier model folder checks the config keys its kind needs, at add time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from backends.classifier.plugin import BUILTIN_DIGITS_MLP
from workbench.registry import add_model_to_project, get_registry
from workbench.store import Project


def _mlp_copy(tmp_path: Path, drop: str | None = None) -> Path:
    folder = tmp_path / "mlp"
    shutil.copytree(BUILTIN_DIGITS_MLP, folder)
    if drop is not None:
        cfg = json.loads((folder / "config.json").read_text())
        del cfg[drop]
        (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_a_complete_mlp_folder_is_added(project: Project, tmp_path: Path) -> None:
    add_model_to_project(project, get_registry(), "mine", str(_mlp_copy(tmp_path)))
    assert project.model("mine") is not None


@pytest.mark.parametrize("key", ["input_dim", "hidden", "num_classes"])
def test_an_mlp_folder_missing_a_key_is_refused_and_named(
    project: Project, tmp_path: Path, key: str
) -> None:
    with pytest.raises(ValueError, match=key):
        add_model_to_project(project, get_registry(), "broken", str(_mlp_copy(tmp_path, key)))
    assert project.model("broken") is None
