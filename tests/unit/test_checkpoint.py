"""backends.common.checkpoint: a run stopped after k steps and resumed ends bit-identical."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backends.common.checkpoint import CheckpointError, load_state, save_state


def _setup() -> tuple[nn.Module, torch.optim.Optimizer, torch.Generator]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    return model, torch.optim.Adam(model.parameters(), lr=1e-2), torch.Generator().manual_seed(1)


def _steps(model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, a: int, b: int):
    for _ in range(a, b):
        x = torch.randn(16, 4, generator=gen)
        noise = torch.rand(1)  # the global RNG, restored too
        loss = (model(x) ** 2).mean() + 0.0 * noise.sum()
        opt.zero_grad()
        (loss * (1 + noise)).backward()
        opt.step()


def test_resume_is_exact(tmp_path):
    model, opt, gen = _setup()
    _steps(model, opt, gen, 0, 10)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    model, opt, gen = _setup()
    _steps(model, opt, gen, 0, 4)
    path = save_state(
        tmp_path / "state.safetensors",
        step=4,
        modules={"m": model},
        optimizers={"o": opt},
        generators={"g": gen},
        extra={"note": "x"},
    )
    _steps(model, opt, gen, 4, 7)  # progress after the checkpoint is lost, as in a kill

    model, opt, gen = _setup()
    torch.manual_seed(123)  # a different global RNG state before resuming
    state = load_state(path, modules={"m": model}, optimizers={"o": opt}, generators={"g": gen})
    assert state.step == 4 and state.extra == {"note": "x"}
    _steps(model, opt, gen, state.step, 10)
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_wrong_names_and_foreign_files_are_refused(tmp_path):
    model, opt, _ = _setup()
    path = save_state(tmp_path / "s.safetensors", step=1, modules={"m": model})
    with pytest.raises(CheckpointError, match="no module 'student'"):
        load_state(path, modules={"student": model})
    with pytest.raises(CheckpointError, match="no optimiser 'o'"):
        load_state(path, optimizers={"o": opt})
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_state(bad)
