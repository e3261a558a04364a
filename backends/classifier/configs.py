"""Typed configs of the classifier family's jobs (light: no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from backends.common.devices import DEVICE_CHOICES
from workbench.config import param


@dataclass
class TrainMLPConfig:
    """Train a multilayer perceptron on scikit-learn's 8x8 digits (the family's first model)."""

    hidden: list[int] = param([128], "Hidden layer widths, comma separated (e.g. 128 or 256,128).")
    epochs: int = param(30, "Passes over the training split.", range=(1, 100_000))
    batch_size: int = param(64, "Examples per optimisation step.", range=(1, 4096))
    lr: float = param(1e-3, "Learning rate.", range=(1e-7, 10.0))
    weight_decay: float = param(
        0.0, "L2 weight decay (0 keeps the model leaky for attacks).", range=(0.0, 1.0)
    )
    optimizer: str = param("adam", "Optimiser.", choices=("adam", "sgd"))
    momentum: float = param(
        0.9, "SGD momentum (ignored by Adam).", range=(0.0, 0.999), advanced=True
    )
    test_fraction: float = param(
        0.2, "Share of the data held out as the test split.", range=(0.05, 0.9)
    )
    split_seed: int = param(
        0, "Seed of the train/test split (kept apart from the training seed).", range=(0, 2**31 - 1)
    )
    checkpoint_every: int = param(
        1, "Save a resumable checkpoint every N epochs.", range=(1, 100_000), advanced=True
    )
    model_name: str = param(
        "", "Name of the trained model in the project (empty: digits-mlp-run<id>)."
    )
    device: str = param("auto", "Where to train.", choices=DEVICE_CHOICES)
