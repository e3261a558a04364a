"""Classifier datasets: scikit-learn's 8x8 digits (built in), with fixed, recorded splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ArrayDataset:
    """Features ``x`` (N x D float32, normalised), labels ``y`` (N int64), and the image shape."""

    x: np.ndarray
    y: np.ndarray
    image_shape: tuple[int, ...]
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class Split:
    """Index lists into the dataset, recorded with every model trained on it."""

    train: np.ndarray
    test: np.ndarray

    def to_json(self) -> dict[str, list[int]]:
        return {"train": self.train.tolist(), "test": self.test.tolist()}


def load_digits() -> ArrayDataset:
    """The 1797 8x8 digits shipped with scikit-learn, pixel values scaled to [0, 1]."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    return ArrayDataset(x=x, y=y, image_shape=(8, 8), class_names=[str(c) for c in range(10)])


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> Split:
    """A stratified train/test split, deterministic in ``seed``."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=y)
    return Split(train=np.sort(train), test=np.sort(test))


def load_dataset(name: str) -> ArrayDataset:
    if name == "digits":
        return load_digits()
    raise ValueError(f"unknown classifier dataset {name!r}; built-in: digits")
