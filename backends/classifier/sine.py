"""The sine-poisoning experiment of MinNorm-OG: its typed config (light: no torch at import).

Spec: ``specs/classifier-and-llm-methods.md`` section 3, "Experiments and metrics" 1 (data
poisoning), checked against the authors' code (github.com/jacob-block/overparameterized-unlearning,
``experiments/sin/*``, ``configs/sin/grid_*epochs.json``, ``common/unlearners/unlearners.py``).
The torch side (data, the vectorised MLPs, the grid and the job) is :mod:`backends.classifier.
sine_run`.

Every constant of the experiment is a field here; the grids default to the official ones
(``configs/sin/grid_{10,100,1000}epochs.json``).  The grid axes that differ by budget (learning
rates, MinNorm-OG's final descent-only epochs ``T_GD`` and projection period ``T_Proj``) are given
for the short budget (10 epochs) and as fractions of the budget for the longer ones (100 and 1000
epochs: 25 / 50 % and 1 / 2 % at 100; 10 / 20 / 50 % and 1 / 5 / 10 % at 1000).
"""

from __future__ import annotations

from dataclasses import dataclass

from backends.common.devices import DEVICE_CHOICES
from workbench.config import param
from workbench.registry import JobSpec

SINE_METHODS = ("retrain", "gd", "ga", "ngd", "neggrad_plus", "l1_sparse", "ridge", "minnorm_og")


@dataclass
class SineConfig:
    """MinNorm-OG's sine-poisoning experiment: pretrain, unlearn on a grid, sup-error (spec 3)."""

    seeds: int = param(
        6,
        "Independent trials (data, initialisation, pretraining); seeds run vectorised.",
        range=(2, 64),
    )
    width: int = param(300, "Width of both hidden layers of the 3-layer SiLU MLP.", range=(2, 4096))
    n_retain: int = param(50, "Retain points, x uniform on [-x_limit, x_limit], y = sin x.")
    n_forget: int = param(
        5, "Forget (poison) points, x uniform, y = forget_value.", range=(1, 1000)
    )
    forget_value: float = param(1.5, "Target of the poisoned points.", range=(-100.0, 100.0))
    x_limit: float = param(15.708, "Half-width of the input interval (5 pi).", range=(0.1, 1000.0))
    n_test: int = param(1000, "Evenly spaced points on which the sup-error is taken.")
    pretrain_epochs: int = param(
        100_000,
        "Full-batch AdamW epochs of pretraining on retain + forget (cached in the project).",
        range=(1, 1_000_000),
    )
    pretrain_lr: float = param(1e-3, "Pretraining learning rate (AdamW).", range=(1e-6, 1.0))
    weight_decay: float = param(
        0.01, "AdamW decoupled weight decay (torch's default), pretraining and unlearning."
    )
    budgets: list[int] = param(
        [10, 100, 1000],
        "Unlearning budgets (epochs; one full-batch step each).",
        choices=(10, 100, 1000),
    )
    methods: list[str] = param(
        list(SINE_METHODS),
        "Methods to run (each over its grid).",
        choices=SINE_METHODS,
    )
    lrs_short: list[float] = param(
        [1e-2, 1e-3, 1e-4], "Learning-rate grid at 10 epochs.", range=(1e-8, 1.0)
    )
    lrs_long: list[float] = param(
        [1e-3, 5e-4, 1e-4], "Learning-rate grid at 100 and 1000 epochs.", range=(1e-8, 1.0)
    )
    noise_sigmas: list[float] = param(
        [0.1, 0.5, 1.0], "NGD: std of the Gaussian noise added to the gradient.", range=(0.0, 100.0)
    )
    reg_coefs: list[float] = param(
        [0.1, 1.0, 3.0],
        "Ridge / l1-sparse weight; MinNorm-OG initial strength lambda (values > 1 are dropped).",
        range=(0.0, 100.0),
    )
    reg_decays: list[float] = param(
        [0.3, 0.6, 0.9],
        "Ridge: weight decay factor per epoch; MinNorm-OG: lambda decay per projection.",
        range=(0.0, 1.0),
    )
    ga_coefs: list[float] = param(
        [1e-3, 1e-2, 1e-1, 1.0], "NegGrad+: weight of the ascended forget loss.", range=(0.0, 100.0)
    )
    gd_epochs_short: list[int] = param(
        [1, 2, 5], "MinNorm-OG T_GD (final descent-only epochs) at 10 epochs.", range=(0, None)
    )
    proj_every_short: list[int] = param(
        [1, 2, 5],
        "MinNorm-OG T_Proj (project every this many epochs) at 10 epochs.",
        range=(1, None),
    )
    gd_fractions_100: list[float] = param(
        [0.25, 0.5], "MinNorm-OG T_GD as a fraction of the budget at 100 epochs.", range=(0.0, 1.0)
    )
    proj_fractions_100: list[float] = param(
        [0.01, 0.02],
        "MinNorm-OG T_Proj as a fraction of the budget at 100 epochs.",
        range=(0.0, 1.0),
    )
    gd_fractions_1000: list[float] = param(
        [0.1, 0.2, 0.5],
        "MinNorm-OG T_GD as a fraction of the budget at 1000 epochs.",
        range=(0.0, 1.0),
    )
    proj_fractions_1000: list[float] = param(
        [0.01, 0.05, 0.1],
        "MinNorm-OG T_Proj as a fraction of the budget at 1000 epochs.",
        range=(0.0, 1.0),
    )
    n_pert: int = param(
        50, "MinNorm-OG: retain points whose output gradients span G.", range=(1, 100_000)
    )
    device: str = param(
        "cpu",
        "Where the stacked models train: cpu, cuda or auto (cuda when there is one). Data and "
        "initialisations are drawn on the CPU either way, so the seeds are the same models.",
        choices=DEVICE_CHOICES,
    )
    max_models: int = param(
        512,
        "Models trained at once (configs x seeds are split into chunks of this size).",
        range=(1, 100_000),
        advanced=True,
    )


SINE_JOB = JobSpec(
    name="classifier.sine_minnorm",
    kind="experiment",
    family="classifier",
    method="minnorm_og",
    title="MinNorm-OG sine poisoning",
    description="The MinNorm-OG paper's data-poisoning experiment: a width-300 SiLU MLP fitted to "
    "sin x plus 5 poisoned points, then Retrain, GD, GA, NGD, NegGrad+, l1-sparse, Ridge and "
    "MinNorm-OG over their official grids at 10, 100 and 1000 epochs; median sup-error over "
    "seeds, hyperparameters selected on the metric itself (official) and on held-out seeds.",
    config=SineConfig,
    entry="backends.classifier.sine_run:run",
)
