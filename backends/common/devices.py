"""Device and dtype choice from a job config ("auto" picks CUDA when it is there).

Inside a multi-GPU launch (``accelerate launch``: ``WORLD_SIZE`` > 1 and ``LOCAL_RANK`` set, see
:mod:`workbench.accelerate_launch`) ``"auto"`` and ``"cuda"`` mean this process's own GPU,
``cuda:LOCAL_RANK``, which also becomes the current CUDA device.
"""

from __future__ import annotations

import os
from typing import Any

DEVICE_CHOICES = ("auto", "cpu", "cuda")
DTYPE_CHOICES = ("float32", "float64", "bfloat16", "float16")


def resolve_device(name: str) -> Any:
    """A ``torch.device`` for ``"auto"``, ``"cpu"`` or ``"cuda"``; a clear error if CUDA is absent."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' was asked for but this machine has no usable CUDA GPU; use 'cpu' or 'auto'"
        )
    local = launched_local_rank()
    if name == "cuda" and local is not None:
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device(name)


def launched_local_rank() -> int | None:
    """This process's ``LOCAL_RANK`` in a multi-process launch (``WORLD_SIZE`` > 1), else None."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", "-1"))
    except ValueError:
        return None
    return local if world > 1 and local >= 0 else None


def gpu_count() -> int:
    """The number of CUDA GPUs torch sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_device(name: str) -> None:
    """Raise ``ValueError`` when ``name`` is not a device this machine has (the engine calls this
    at submit, so ``device: cuda`` without a GPU is refused before a run is created)."""
    if name in ("auto", "cpu"):
        return
    if not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    import torch

    if not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r} was asked for but this machine has no usable CUDA GPU; "
            "use 'cpu' or 'auto'"
        )
    index = name.partition(":")[2]
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        raise ValueError(
            f"device {name!r} does not exist; this machine has {torch.cuda.device_count()} GPU(s)"
        )


def resolve_dtype(name: str) -> Any:
    import torch

    try:
        return {
            "float32": torch.float32,
            "float64": torch.float64,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }[name]
    except KeyError:
        raise ValueError(
            f"unknown dtype {name!r}; choose one of {', '.join(DTYPE_CHOICES)}"
        ) from None
