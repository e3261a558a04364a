"""Shared test set-up: offline, offscreen, one thread for torch, and a fresh project per test."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from workbench.store import Project  # noqa: E402


@pytest.fixture
def project(tmp_path: Path):
    """A new, empty project in a temporary folder (closed after the test)."""
    proj = Project.create(tmp_path / "project")
    yield proj
    proj.close()


def pytest_configure(config: pytest.Config) -> None:
    # also in pyproject's markers once the lead adds it; registered here so it works without
    config.addinivalue_line(
        "markers",
        "ray: needs Ray (`pip install 'ray[default]'`): starts a Ray head on 127.0.0.1; skipped "
        "when ray is not importable",
    )
