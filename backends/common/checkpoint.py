"""Exact resume for every iterative job: one safetensors file per checkpoint, no pickle.

A checkpoint holds, under prefixed keys, the state of the named modules (``module.<name>.*``),
optimisers (``optim.<name>.<param id>.<key>``: their tensors; their scalars and param groups go
to JSON metadata), torch generators (``rng.<name>``: :meth:`torch.Generator.get_state`), the
global torch RNG (``rng.__torch__``) and any extra tensors (``tensor.<name>``), plus the completed
``step`` and a JSON ``extra`` dict for plain values.  The file is written to a temporary name and
renamed, so a job killed while saving leaves the previous checkpoint intact.

Typical use inside a job (see ``backends/classifier/train_mlp.py``)::

    state = load_state(ctx.resume.path, modules={"model": m}, optimizers={"opt": o}) \
        if ctx.resume else None
    start = state.step if state else 0
    for step in range(start, total):
        ...
        if (step + 1) % every == 0 or step + 1 == total:
            path = save_state(ctx.checkpoint_dir / "state.safetensors", step=step + 1,
                              modules={"model": m}, optimizers={"opt": o})
            ctx.record_checkpoint(path, step + 1)

Loops that draw their batches from generators seeded by ``(seed, epoch)`` resume bit-exactly at
epoch boundaries; loops that keep a generator across steps must pass it in ``generators``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch stays out of import time
    import torch
    from torch import nn

__all__ = ["CheckpointError", "ResumeState", "load_state", "save_state"]

FORMAT = "workbench-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint file that does not match what the job tries to restore from it."""


@dataclass
class ResumeState:
    """What :func:`load_state` gives back besides restoring modules, optimisers and generators."""

    step: int
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def save_state(
    path: str | os.PathLike[str],
    *,
    step: int,
    modules: Mapping[str, nn.Module] | None = None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
    tensors: Mapping[str, torch.Tensor] | None = None,
    extra: Mapping[str, Any] | None = None,
    torch_rng: bool = True,
) -> Path:
    """Write the state after ``step`` completed steps to ``path`` (atomically); returns the path."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    out: dict[str, torch.Tensor] = {}

    def put(key: str, value: torch.Tensor) -> None:
        out[key] = value.detach().cpu().contiguous().clone()

    for name, module in (modules or {}).items():
        for key, value in module.state_dict().items():
            put(f"module.{name}.{key}", value)
    optim_meta: dict[str, Any] = {}
    for name, optimizer in (optimizers or {}).items():
        state = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, values in state["state"].items():
            for key, value in values.items():
                if torch.is_tensor(value):
                    put(f"optim.{name}.{pid}.{key}", value)
                else:
                    scalars.setdefault(str(pid), {})[key] = value
        optim_meta[name] = {"param_groups": state["param_groups"], "scalars": scalars}
    for name, generator in (generators or {}).items():
        put(f"rng.{name}", generator.get_state())
    if torch_rng:
        put("rng.__torch__", torch.get_rng_state())
    for name, value in (tensors or {}).items():
        put(f"tensor.{name}", value)
    meta = {
        "format": FORMAT,
        "step": str(int(step)),
        "optimizers": json.dumps(optim_meta),
        "extra": json.dumps(dict(extra or {})),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(out, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def load_state(
    path: str | os.PathLike[str],
    *,
    modules: Mapping[str, nn.Module] | None = None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
    torch_rng: bool = True,
) -> ResumeState:
    """Restore the named modules, optimisers and generators in place from ``path``.

    Raises :class:`CheckpointError` when the file is not a workbench checkpoint or lacks a name
    that is asked for (a checkpoint of another job or method)."""
    import torch
    from safetensors import safe_open

    from backends.common.safe_load import load_state_dict

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # not a safetensors file, truncated, unreadable
        raise CheckpointError(f"{path} is not a readable checkpoint ({exc})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a workbench checkpoint (format {meta.get('format')})")
    saved = load_state_dict(path)

    def prefixed(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in saved.items() if k.startswith(prefix)}

    for name, module in (modules or {}).items():
        values = prefixed(f"module.{name}.")
        if not values:
            raise CheckpointError(f"{path} holds no module {name!r}")
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        module.load_state_dict({k: v.to(device) for k, v in values.items()})
    optim_meta = json.loads(meta.get("optimizers", "{}"))
    for name, optimizer in (optimizers or {}).items():
        if name not in optim_meta:
            raise CheckpointError(f"{path} holds no optimiser {name!r}")
        state: dict[int, dict[str, Any]] = {}
        for key, value in prefixed(f"optim.{name}.").items():
            pid, _, entry = key.partition(".")
            state.setdefault(int(pid), {})[entry] = value
        for pid, values in optim_meta[name]["scalars"].items():
            state.setdefault(int(pid), {}).update(values)
        optimizer.load_state_dict(
            {"state": state, "param_groups": optim_meta[name]["param_groups"]}
        )
    for name, generator in (generators or {}).items():
        if f"rng.{name}" not in saved:
            raise CheckpointError(f"{path} holds no generator {name!r}")
        generator.set_state(saved[f"rng.{name}"])
    if torch_rng and "rng.__torch__" in saved:
        torch.set_rng_state(saved["rng.__torch__"])
    return ResumeState(
        step=int(meta["step"]),
        tensors=prefixed("tensor."),
        extra=json.loads(meta.get("extra", "{}")),
    )
