"""Seed every random number generator a job may touch, first thing in the job."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and, when present, CUDA) with ``seed``."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
