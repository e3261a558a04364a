"""Reference models, trained once and cached in the project.

- the *original* (target) model trained on the training split by a recipe, when the user gives none;
- the model *retrained from scratch* on the retain set (the gold standard every method is compared
  with);
- R retrained *references* for MIA-NN (spec 1.1), as one vectorised ensemble;
- K *shadow* models for U-LiRA and Apollo (see :mod:`backends.classifier.shadows`).

Every cached entry lives in ``<project>/cache/classifier/<key>/`` where the key hashes the model
recipe, the data, the split, the forget set and the seed, so the same request never trains twice
and a change of any of them trains anew.  Entries are safetensors plus a JSON description.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from backends.classifier.ensemble import Ensemble, train_ensemble
from backends.classifier.models import build_model, load_classifier, save_any
from backends.classifier.setup import ClassifierSetup
from backends.classifier.training import TrainSpec, fit
from backends.common.safe_load import load_state_dict


class ModelCache:
    """Models and ensembles keyed by content hashes, under one folder (``None``: no caching)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.hits = 0
        self.misses = 0

    def _dir(self, key: str) -> Path | None:
        return None if self.root is None else self.root / key

    def model(
        self,
        key: str,
        build: Callable[[], nn.Module],
        describe: dict[str, Any],
        device: torch.device,
    ) -> nn.Module:
        folder = self._dir(key)
        if folder is not None and (folder / "model.safetensors").exists():
            self.hits += 1
            model, _ = load_classifier(folder, device)
            return model.eval()
        self.misses += 1
        t0 = time.perf_counter()
        model = build()
        if folder is not None:
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            save_any(model, tmp, {"cache": {**describe, "seconds": time.perf_counter() - t0}})
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
        return model.eval()

    def ensemble(
        self,
        key: str,
        build: Callable[[], Ensemble],
        base: nn.Module,
        describe: dict[str, Any],
        device: torch.device,
    ) -> Ensemble:
        folder = self._dir(key)
        path = None if folder is None else folder / "ensemble.safetensors"
        if path is not None and path.exists():
            self.hits += 1
            return Ensemble.from_state_dict(base, load_state_dict(path), device)
        self.misses += 1
        t0 = time.perf_counter()
        ens = build()
        if folder is not None and path is not None:
            from safetensors.torch import save_file

            folder.mkdir(parents=True, exist_ok=True)
            save_file(ens.state_dict(), str(path.with_suffix(".tmp")))
            path.with_suffix(".tmp").rename(path)
            meta = {**describe, "seconds": time.perf_counter() - t0, "models": len(ens)}
            (folder / "ensemble.json").write_text(json.dumps(meta, indent=1, default=str))
        return ens


def recipe_key(arch: str, widths: list[int], spec: TrainSpec) -> dict[str, Any]:
    return {"arch": arch, "widths": list(widths), "spec": spec.__dict__}


def train_original(
    setup: ClassifierSetup,
    arch: str,
    widths: list[int],
    spec: TrainSpec,
    seed: int,
    cache: ModelCache,
    check: Callable[[], None] | None = None,
) -> nn.Module:
    """The target model: ``arch`` trained on the whole training split (forget set included)."""
    recipe = recipe_key(arch, widths, spec)
    key = "original-" + setup.fingerprint("original", recipe, seed)

    def build() -> nn.Module:
        torch.manual_seed(seed)
        model = build_model(arch, setup.data.image_shape, setup.num_classes, widths).to(
            setup.device
        )
        return fit(model, *setup.tensors(setup.train_idx), spec, seed, check)

    return cache.model(key, build, {"what": "original", **recipe, "seed": seed}, setup.device)


def retrain(
    setup: ClassifierSetup,
    factory: Callable[[], nn.Module],
    recipe: dict[str, Any],
    spec: TrainSpec,
    seed: int,
    cache: ModelCache,
    check: Callable[[], None] | None = None,
) -> nn.Module:
    """Retrain from scratch on the retain set (same architecture and recipe as the original)."""
    key = "retrain-" + setup.fingerprint("retrain", recipe, spec.__dict__, seed)

    def build() -> nn.Module:
        torch.manual_seed(seed)
        model = factory().to(setup.device)
        return fit(model, *setup.retain, spec, seed, check)

    return cache.model(key, build, {"what": "retrain", **recipe, "seed": seed}, setup.device)


def references(
    setup: ClassifierSetup,
    factory: Callable[[], nn.Module],
    recipe: dict[str, Any],
    spec: TrainSpec,
    count: int,
    seed: int,
    cache: ModelCache,
    check: Callable[[], None] | None = None,
) -> Ensemble:
    """``count`` models retrained on the retain set with different seeds, trained vectorised."""
    key = "references-" + setup.fingerprint("references", recipe, spec.__dict__, count, seed)
    x, y = setup.retain

    def build() -> Ensemble:
        membership = np.ones((count, len(y)), dtype=bool)
        return train_ensemble(factory, x, y, membership, spec, seed + 7919, check)

    describe = {"what": "references", **recipe, "seed": seed}
    return cache.ensemble(key, build, factory(), describe, setup.device)
