"""Fixtures shared by the backend tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_sd_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small variant of the built-in tiny text-to-image pipeline, built once per session
    (about a minute on one thread). ``WORKBENCH_TINY_SD_SMALL=<folder>`` reuses an earlier build while
    developing; CI always builds it fresh."""
    ready = os.environ.get("WORKBENCH_TINY_SD_SMALL")
    if ready and (Path(ready) / "model_index.json").is_file():
        return Path(ready)
    import torch

    from backends.diffusion.zoo import build

    out = tmp_path_factory.mktemp("tiny-sd") / "small"
    threads = torch.get_num_threads()
    try:
        build(out, variant="small", threads=1, log=lambda _msg: None)
    finally:
        torch.set_num_threads(threads)
    return out
