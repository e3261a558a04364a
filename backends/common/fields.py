"""Config fields every family's method configs share (light: no torch).

Each helper is a :func:`workbench.config.param` with the family's own default, help text and
range passed in (so a family's configs and saved runs keep their values); the helper only fixes
what the field is. Used by ``backends/{classifier,llm,diffusion}/methods/configs.py``.
"""

from __future__ import annotations

from typing import Any

from workbench.config import param

__all__ = ["batch_size", "checkpoint_every", "epochs", "lr", "optimizer"]


def epochs(default: int, help: str, *, range: tuple[int, int] = (1, 10_000)) -> Any:
    """Passes over a set (the help says which)."""
    return param(default, help, range=range)


def lr(default: float, help: str = "Learning rate.", *, low: float = 1e-8) -> Any:
    """The learning rate, from ``low`` to 10."""
    return param(default, help, range=(low, 10.0))


def batch_size(default: int, help: str, *, high: int) -> Any:
    """Examples per batch, from 1 to ``high``."""
    return param(default, help, range=(1, high))


def optimizer(default: str, help: str, choices: tuple[str, ...]) -> Any:
    """The optimiser's name, one of ``choices``."""
    return param(default, help, choices=choices)


def checkpoint_every(default: int, help: str, *, high: int = 1_000_000) -> Any:
    """Save a resumable checkpoint every N steps or epochs (an advanced field)."""
    return param(default, help, range=(1, high), advanced=True)
