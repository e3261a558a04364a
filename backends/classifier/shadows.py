"""Shadow models for the per-example attacks (U-LiRA, spec 1.3; Apollo online, spec 2).

The attacked *targets* are the forget examples (positives: trained on, then unlearned) and an equal
share of never-trained examples (negatives: for class unlearning the forget class's test examples,
for sample unlearning test examples).  K shadows train, vectorised, on random halves of a population
made of the attacker's shadow pool plus every target, so each target is *in* about half of the
shadows (LiRA's balanced design).

For a given unlearning method, every shadow then unlearns *its own* forget examples with that
method (for class unlearning: its members of the forget class; for sample unlearning: its members
among **all** attacked targets, positives and negatives alike, as the official Apollo code does:
the attacker does not know which targets were unlearned, and unlearning only the true positives
would hand it the answer), on copies, never in place: the cached shadows stay clean (a bug of the
official Apollo code, spec section 10).  For a target, the "in" shadows (trained on it, then
unlearned) model the unlearned distribution.  Two choices model the retrained one (U-LiRA's
``ulira_out`` option): ``plain``, the shadows that never trained on it (Hayes et al. and the
official code), or ``pipeline``, those same shadows after they too unlearned their own forget
examples.  The *retrained* shadows are every shadow retrained without its own forget examples
(Apollo's reference, and the exact unlearner's shadows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from backends.classifier.data import ForgetSet, Split
from backends.classifier.ensemble import Ensemble, half_membership, train_ensemble
from backends.classifier.references import ModelCache
from backends.classifier.setup import ClassifierSetup
from backends.classifier.training import TrainSpec


def attack_targets(
    setup: ClassifierSetup, seed: int, max_per_side: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(positives, negatives): forget examples and as many never-trained ones (seeded subsets)."""
    rng = np.random.default_rng(seed)
    positives = setup.forget_idx
    pool = setup.forget_test_idx if setup.forget_class is not None else setup.test_idx
    n = min(len(positives), len(pool))
    if max_per_side:
        n = min(n, max_per_side)
    if n == 0:
        raise ValueError("no never-trained examples to contrast the forget set with")
    pos = np.sort(rng.choice(positives, size=n, replace=False))
    neg = np.sort(rng.choice(pool, size=n, replace=False))
    return pos, neg


@dataclass
class ShadowBank:
    """K shadows over a population that contains every attacked target."""

    setup: ClassifierSetup
    population: np.ndarray  # dataset indices
    membership: np.ndarray  # (K, len(population)) bool
    ensemble: Ensemble
    positives: np.ndarray
    negatives: np.ndarray
    _unlearned: dict[str, Ensemble] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        setup: ClassifierSetup,
        factory: Callable[[], nn.Module],
        recipe: dict[str, Any],
        spec: TrainSpec,
        k: int,
        seed: int,
        cache: ModelCache,
        max_targets_per_side: int = 0,
        check: Callable[[], None] | None = None,
    ) -> ShadowBank:
        if len(setup.shadow_idx) == 0:
            raise ValueError(
                "the split has no shadow pool for the attacker; set shadow_fraction above 0"
            )
        positives, negatives = attack_targets(setup, seed, max_targets_per_side)
        population = np.union1d(setup.shadow_idx, np.union1d(positives, negatives))
        membership = half_membership(k, len(population), seed)
        x, y = setup.tensors(population)
        key = "shadows-" + setup.fingerprint(
            "shadows", recipe, spec.__dict__, k, seed, max_targets_per_side
        )

        def build_ensemble() -> Ensemble:
            return train_ensemble(factory, x, y, membership, spec, seed + 104729, check)

        describe = {"what": "shadows", **recipe, "seed": seed, "k": k}
        ens = cache.ensemble(key, build_ensemble, factory(), describe, setup.device)
        return cls(setup, population, membership, ens, positives, negatives)

    @property
    def k(self) -> int:
        return len(self.membership)

    @property
    def targets(self) -> np.ndarray:
        return np.concatenate([self.positives, self.negatives])

    @property
    def target_labels(self) -> np.ndarray:
        """1 for positives (unlearned), 0 for negatives (never trained)."""
        return np.concatenate(
            [np.ones(len(self.positives), bool), np.zeros(len(self.negatives), bool)]
        )

    def in_mask(self) -> np.ndarray:
        """(K, T): shadow k trained on target t."""
        cols = np.searchsorted(self.population, self.targets)
        return self.membership[:, cols]

    def shadow_setup(self, i: int) -> ClassifierSetup:
        """Shadow i's own set-up: its members as the training split and its forget examples."""
        members = self.population[self.membership[i]]
        split = Split(train=members, test=self.setup.test_idx, shadow=np.array([], np.int64))
        fs = self.setup.forget_set
        if fs.forget_class is not None:
            idx = members[self.setup.data.y[members] == fs.forget_class]
            forget = ForgetSet("class", idx, fs.forget_class)
        else:
            # every attacked target, not only the true positives (see the module docstring)
            forget = ForgetSet(fs.kind, np.intersect1d(members, self.targets))
        return self.setup.derive(split, forget)

    def unlearned(
        self,
        name: str,
        unlearn: Callable[[nn.Module, ClassifierSetup, int], nn.Module],
        seed: int,
        check: Callable[[], None] | None = None,
    ) -> Ensemble:
        """Every shadow after unlearning its own forget examples with ``unlearn`` (on copies)."""
        if name not in self._unlearned:
            models = []
            for i in range(self.k):
                if check is not None:
                    check()
                shadow = self.shadow_setup(i)
                model = self.ensemble.model(i)
                models.append(unlearn(model, shadow, seed + i) if len(shadow.forget_idx) else model)
            self._unlearned[name] = Ensemble.from_models([m.eval() for m in models])
            for p in self._unlearned[name].params.values():
                p.requires_grad_(False)
        return self._unlearned[name]

    @torch.no_grad()
    def stats(
        self, ensemble: Ensemble, statistic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ) -> np.ndarray:
        """(K, T) per-shadow statistic of every target (e.g. logit-scaled confidence)."""
        x, y = self.setup.tensors(self.targets)
        logits = ensemble.predict(x)
        return np.stack([_numpy(statistic(logits[k], y)) for k in range(len(ensemble))])


def _numpy(value: torch.Tensor | np.ndarray) -> np.ndarray:
    return value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
