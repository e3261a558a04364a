"""Weights are read as safetensors; pickle checkpoints are refused unless explicitly allowed.

A pickle file (``.bin``, ``.pt``, ``.pth``, ``.ckpt``, ``.pkl``) can run arbitrary code when loaded, so
a folder that has only pickle weights gets :class:`UnsafeCheckpointError` with what to do about it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


class UnsafeCheckpointError(ValueError):
    """A folder offers only pickle weights and the user did not allow pickle loading."""


def find_weights(folder: str | Path, *, allow_pickle: bool = False) -> list[Path]:
    """The safetensors weight files of a model folder (refusing pickle-only folders)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    safetensors = sorted(folder.glob("*.safetensors"))
    if safetensors:
        return safetensors
    pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles and not allow_pickle:
        names = ", ".join(p.name for p in pickles)
        raise UnsafeCheckpointError(
            f"{folder} has only pickle weights ({names}). Pickle files can run arbitrary code when "
            "loaded, so they are refused: convert them to safetensors (e.g. save_pretrained with "
            "safe_serialization=True), or allow pickle loading explicitly if you trust the file."
        )
    if pickles:
        return pickles
    raise ValueError(f"{folder} holds no weight files (*.safetensors)")


def load_state_dict(path: str | Path, device: str = "cpu") -> dict[str, Any]:
    """Read a safetensors file into a dict of tensors."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise UnsafeCheckpointError(
            f"{path.name} is not a safetensors file; refusing to unpickle it"
        )
    return load_file(str(path), device=device)
