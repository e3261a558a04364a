"""Built-in classifier models and their folder format (``config.json`` + ``model.safetensors``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backends.classifier.checks import MLP_MODEL_TYPE, check_mlp_folder
from backends.common.safe_load import load_state_dict


class MLP(nn.Module):
    """A plain ReLU multilayer perceptron on flattened inputs."""

    def __init__(self, input_dim: int, hidden: list[int], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)
        self.input_dim = input_dim
        self.hidden = list(hidden)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


def save_mlp(model: MLP, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (the same shape as a Hugging Face folder)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": MLP_MODEL_TYPE,
        "input_dim": model.input_dim,
        "hidden": model.hidden,
        "num_classes": model.num_classes,
        **(extra or {}),
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    return folder


def load_mlp(folder: str | Path, device: str | torch.device = "cpu") -> tuple[MLP, dict[str, Any]]:
    """Load a workbench MLP folder; a clear ``ValueError`` if it is not one."""
    check_mlp_folder(str(folder))
    config = json.loads((Path(folder) / "config.json").read_text())
    model = MLP(config["input_dim"], config["hidden"], config["num_classes"])
    state = load_state_dict(Path(folder) / "model.safetensors")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{folder}: weights do not match config.json ({exc})") from exc
    return model.to(device), config
