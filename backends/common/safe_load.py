"""Weights are read as safetensors; pickle checkpoints are refused unless explicitly allowed.

A pickle file (``.bin``, ``.pt``, ``.pth``, ``.ckpt``, ``.pkl``) can run arbitrary code when loaded, so
a folder that has only pickle weights gets :class:`UnsafeCheckpointError` with what to do about it.

Pickle opt-in (issue 17 part 6): a model added with ``workbench add-model NAME PATH
--allow-pickle`` (or the *Allow pickle weights* box of File > Add model folder…) records
``allow_pickle`` with the model; its pickle weights are then read with
``torch.load(weights_only=True)`` (:func:`load_state_dict`), never ``weights_only=False``, so a
pickle that needs arbitrary code (any class or function beyond tensors and plain containers) is
still refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# how a user allows pickle weights for one model (named in every refusal)
PICKLE_SWITCH = (
    "add the model with `workbench add-model NAME PATH --allow-pickle` (or tick 'Allow pickle "
    "weights' in File > Add model folder…)"
)
# keys under which training scripts commonly nest the weights of a checkpoint dictionary
NESTED_STATE_KEYS = ("state_dict", "model_state_dict", "model")


class UnsafeCheckpointError(ValueError):
    """A folder offers only pickle weights and the user did not allow pickle loading."""


def find_weights(folder: str | Path, *, allow_pickle: bool = False) -> list[Path]:
    """The weight files of a model folder: its safetensors files, or (only with
    ``allow_pickle``) its pickle files; a pickle-only folder is refused otherwise."""
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
            "safe_serialization=True), or allow pickle loading explicitly if you trust the file: "
            f"{PICKLE_SWITCH}. Even then they are read with torch.load(weights_only=True)."
        )
    if pickles:
        return pickles
    raise ValueError(f"{folder} holds no weight files (*.safetensors)")


def load_state_dict(
    path: str | Path, device: str = "cpu", *, allow_pickle: bool = False
) -> dict[str, Any]:
    """Read a weights file into a dict of tensors: safetensors always; a pickle file only with
    ``allow_pickle``, and then with ``torch.load(weights_only=True)`` (a pickle that needs any
    code beyond tensors and plain containers is refused with :class:`UnsafeCheckpointError`)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=device)
    if not allow_pickle:
        raise UnsafeCheckpointError(
            f"{path.name} is not a safetensors file; refusing to unpickle it ({path}). If you "
            f"trust it, {PICKLE_SWITCH}."
        )
    return _load_pickle_weights_only(path, device)


def _load_pickle_weights_only(path: Path, device: str) -> dict[str, Any]:
    import torch

    try:
        loaded = torch.load(str(path), map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafeCheckpointError(
            f"{path} needs arbitrary code to unpickle, which is refused even with pickle loading "
            f"allowed (read with torch.load(weights_only=True): {first[:300]}). Convert it to "
            "safetensors where you trust it (load it, then save_file(model.state_dict(), ...))."
        ) from None
    except (OSError, RuntimeError, EOFError) as exc:
        raise ValueError(f"{path} could not be read as a torch checkpoint ({exc})") from None
    if isinstance(loaded, dict):
        for key in NESTED_STATE_KEYS:
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise ValueError(
            f"{path} is not a state dict (a mapping of parameter names to tensors, possibly under "
            f"{', '.join(NESTED_STATE_KEYS)}); save model.state_dict(), not the model"
        )
    return loaded
