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
