"""The unlearning set-up every classifier method and attack works on.

A :class:`ClassifierSetup` holds the dataset as tensors on the job's device, the recorded split
(train / test / shadow) and the forget set, and names the index sets the papers use:

- ``forget``: training examples to forget (D_f); ``retain``: the rest of the training split (D_r);
- ``test``: never trained on; for class unlearning ``forget_test`` are the test examples of the
  forgotten class and ``retain_test`` the others;
- ``shadow``: the attacker's population (disjoint from train and test) for shadow and reference
  models.

Methods receive the original model and a set-up, and return an unlearned copy; they never touch
the project or Qt.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch

from backends.classifier.data import ArrayDataset, ForgetSet, Split


@dataclass
class ClassifierSetup:
    data: ArrayDataset
    split: Split
    forget_set: ForgetSet
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        self.x = torch.from_numpy(self.data.x).to(self.device, self.dtype)
        self.y = torch.from_numpy(self.data.y).to(self.device)

    # -- index sets (numpy, into the dataset) ----------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def forget_class(self) -> int | None:
        return self.forget_set.forget_class

    @cached_property
    def forget_idx(self) -> np.ndarray:
        return self.forget_set.indices

    @cached_property
    def retain_idx(self) -> np.ndarray:
        return np.setdiff1d(self.split.train, self.forget_set.indices)

    @property
    def train_idx(self) -> np.ndarray:
        return self.split.train

    @property
    def test_idx(self) -> np.ndarray:
        return self.split.test

    @property
    def shadow_idx(self) -> np.ndarray:
        return self.split.shadow

    @cached_property
    def forget_test_idx(self) -> np.ndarray:
        """Test examples of the forgotten class (empty for sample unlearning)."""
        if self.forget_class is None:
            return np.array([], dtype=np.int64)
        return self.test_idx[self.data.y[self.test_idx] == self.forget_class]

    @cached_property
    def retain_test_idx(self) -> np.ndarray:
        if self.forget_class is None:
            return self.test_idx
        return self.test_idx[self.data.y[self.test_idx] != self.forget_class]

    @property
    def remaining_classes(self) -> list[int]:
        return [c for c in range(self.num_classes) if c != self.forget_class]

    # -- tensors ---------------------------------------------------------------------------------
    def tensors(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) for an index set, on the set-up's device."""
        t = torch.as_tensor(idx, dtype=torch.long, device=self.device)
        return self.x[t], self.y[t]

    @property
    def forget(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tensors(self.forget_idx)

    @property
    def retain(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tensors(self.retain_idx)

    @property
    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tensors(self.test_idx)

    def derive(self, split: Split, forget_set: ForgetSet) -> ClassifierSetup:
        """The same data and tensors (shared, not copied) with another split and forget set,
        e.g. a shadow model's own training members and forget examples."""
        new = copy.copy(self)
        new.split, new.forget_set = split, forget_set
        for name in ("forget_idx", "retain_idx", "forget_test_idx", "retain_test_idx"):
            new.__dict__.pop(name, None)
        return new

    # -- identity --------------------------------------------------------------------------------
    def fingerprint(self, *extra: Any) -> str:
        """A key for caches: data, split, forget set and anything else given (recipe, seed)."""
        payload = json.dumps(
            [
                self.data.fingerprint(),
                self.split.fingerprint(),
                self.forget_set.fingerprint(),
                str(self.dtype),
                *extra,
            ],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    def describe(self) -> dict[str, Any]:
        """What a run records about its set-up."""
        return {
            "dataset": self.data.name,
            "classes": self.num_classes,
            "train": len(self.train_idx),
            "test": len(self.test_idx),
            "shadow": len(self.shadow_idx),
            "forget": self.forget_set.describe(),
            "forget_size": len(self.forget_idx),
            "retain_size": len(self.retain_idx),
        }
