"""Typed config of the Apollo attack (light: no torch, so the GUI and CLI can read its schema).

Apollo (Tang et al., github.com/LiouTang/Unlearn-Apollo-Attack) is a label-only, a-posteriori
membership-inference attack against machine unlearning; see ``docs/methods/apollo.md`` and
section 2 of the classifier-and-LLM methods spec.  The defaults follow the official code except
``eps``: its default of 10 (pixel-L2 per step) is meaningless on 8x8 images in [0, 1], so the
default here is 0.1 per step (spec section 10).
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.config import ConfigError, param

MODES = ("online", "offline")
COMBINES = ("under", "over", "both")


@dataclass
class ApolloConfig:
    """Apollo: label-only membership inference against an unlearned classifier."""

    mode: str = param(
        "offline",
        "online: shadows unlearned with the same method vs shadows retrained without the "
        "attacked targets; offline: the retrained shadows only (margin + CE losses, no "
        "simulated unlearning).",
        choices=MODES,
    )
    atk_epochs: int = param(
        30, "SGD steps on the probe x' per attack type (Under and Over).", range=(1, 10_000)
    )
    atk_lr: float = param(0.1, "Learning rate of the SGD on the probe x'.", range=(1e-6, 1e3))
    eps: float = param(
        0.1,
        "Annulus width in input-space L2: after step t, ||x' - x|| lies in [eps*t, eps*(t+1)] "
        "(0.1 suits [0, 1]-scaled 8x8 images; the official CIFAR default is 10).",
        range=(0.0, 1e4),
    )
    w0: float = param(
        1.0,
        "Weight of the unlearned-shadow CE (online) or of the logit-margin term (offline).",
        range=(0.0, 1e4),
    )
    w1: float = param(
        1.0, "Weight of the retrained-shadow CE (online) or shadow CE (offline).", range=(0.0, 1e4)
    )
    clip_min: float = param(0.0, "Lowest value an input pixel may take.", advanced=True)
    clip_max: float = param(1.0, "Highest value an input pixel may take.", advanced=True)
    combine: str = param(
        "under",
        "Which artefact scores a target: under (how low the retrained shadows' confidence gets "
        "at a probe the target still labels y), over (how high it is at a probe the target no "
        "longer labels y) or both (the larger of the two ranks).",
        choices=COMBINES,
    )
    low_fprs: list[float] = param(
        [0.01, 0.05],
        "False-positive rates at which TPR is reported, and at which thresholds are picked on a "
        "held-out retrained shadow (the null model).",
    )
    calibrate: bool = param(
        True,
        "Also run the attack with a held-out retrained shadow as the oracle and pick the "
        "operating thresholds on its scores (never on the evaluated targets).",
    )
    n_bootstrap: int = param(
        1000, "Bootstrap replicates of the AUC's 95% interval.", range=(10, 100_000), advanced=True
    )
    bootstrap_seed: int = param(0, "Seed of the bootstrap.", range=(0, 2**31 - 1), advanced=True)
    batch_size: int = param(
        256,
        "Targets optimised together (memory only; results do not depend on it).",
        range=(1, 1_000_000),
        advanced=True,
    )
    keep_probes: bool = param(
        True,
        "Keep the probes of the first, middle and last step for the image view.",
        advanced=True,
    )

    def __post_init__(self) -> None:
        if self.clip_min >= self.clip_max:
            raise ConfigError(
                f"apollo: clip_min ({self.clip_min}) must be below clip_max ({self.clip_max})",
                "clip_min",
            )
        for f in self.low_fprs:
            if not 0.0 <= f <= 1.0:
                raise ConfigError(f"apollo: low_fprs must lie in [0, 1], got {f}", "low_fprs")
