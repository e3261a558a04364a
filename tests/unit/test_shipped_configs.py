"""Every run config shipped under resources/configs is accepted by the CLI's reader and the
registry's validation (no run: only that `workbench run` would start it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.cli import read_run_file
from workbench.paths import CONFIGS
from workbench.registry import get_registry

SHIPPED = sorted(CONFIGS.rglob("*.yaml"))


def test_configs_are_shipped() -> None:
    assert any(p.name == "compare.yaml" for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_shipped_config_validates(path: Path) -> None:
    request = read_run_file(path)
    registry = get_registry()
    spec = registry.job(request["job"])
    assert request["job"] == spec.name, f"use the job's current name {spec.name}"
    spec.validate(request["config"])
    if request["dataset"]:
        assert request["dataset"] in registry.datasets
    if request["model"]:
        builtin = {name for kind in registry.model_kinds.values() for name, _ in kind.builtin}
        assert request["model"] in builtin, f"{request['model']} is not a built-in model"
