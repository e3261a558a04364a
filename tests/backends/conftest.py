"""Fixtures shared by the backend tests."""

from __future__ import annotations

from pathlib import Path

import pytest

DIFFUSION_FIXTURES = Path(__file__).parents[1] / "fixtures" / "diffusion"


@pytest.fixture(scope="session")
def tiny_sd_small() -> Path:
    """The small variant of the built-in tiny text-to-image pipeline: FIXED, shipped weights
    (``tests/fixtures/diffusion/tiny-sd-small``; its README names the command that built them).
    Tests that assert what a trained model does load these, so every machine measures the same
    model; only ``test_zoo_build_*`` builds afresh, and it asserts that the build works, never
    what the new weights do. Read-only: copy it before changing files."""
    return DIFFUSION_FIXTURES / "tiny-sd-small"


@pytest.fixture(scope="session")
def tiny_sd_small_control() -> Path:
    """The never-learned control of :func:`tiny_sd_small` (same recipe and budget, no striped
    image in training, sharing its VAE, tokenizer and probes): MemoRa's control (spec
    ``diffusion-methods.md`` section 2). Fixed, shipped weights like its model."""
    return DIFFUSION_FIXTURES / "tiny-sd-small-control"


@pytest.fixture(scope="session")
def tiny_sd_small_neighbours() -> Path:
    """The small tiny pipeline built on a world with the neighbour textures dotted and checkered
    (issue 14's collateral damage; its detector has a head per texture). Fixed, shipped weights;
    the command is in ``tests/fixtures/diffusion/README.md``."""
    return DIFFUSION_FIXTURES / "tiny-sd-small-neighbours"
