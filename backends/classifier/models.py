"""Classifier models: the built-in MLP and small CNN, their folder format, and HF classifiers.

A workbench model folder is ``config.json`` (``model_type`` ``workbench-mlp`` or ``workbench-cnn``
plus the architecture) and ``model.safetensors``, the same shape as a Hugging Face folder.  A
user's Hugging Face image classifier (ResNet, ViT, ...) loads with
``AutoModelForImageClassification.from_pretrained(path, local_files_only=True)`` and is wrapped so
that every model maps an image batch ``(N, C, H, W)`` to logits ``(N, K)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backends.classifier.checks import (
    CNN_MODEL_TYPE,
    MLP_MODEL_TYPE,
    check_hf_image_classifier,
    check_mlp_folder,
    check_workbench_folder,
    read_config,
)
from backends.common.safe_load import find_weights, load_state_dict

ARCHITECTURES = ("mlp", "cnn", "resnet18")
PROCESSOR_FILE = "preprocessor_config.json"  # a Hugging Face model's image processor


def resnet18_config(num_channels: int, num_classes: int) -> Any:
    """ResNet-18 as transformers builds it (``ResNetConfig``: basic blocks, depths 2-2-2-2,
    widths 64-128-256-512, the ImageNet stem of a 7x7 stride-2 convolution and max-pool), the
    recipe the CIFAR comparison trains when no model is given (docs/own-models: not the CIFAR
    variant with a 3x3 stem, so 32x32 images are 8x8 after the stem)."""
    from transformers import ResNetConfig

    return ResNetConfig(
        num_channels=num_channels,
        embedding_size=64,
        hidden_sizes=[64, 128, 256, 512],
        depths=[2, 2, 2, 2],
        layer_type="basic",
        num_labels=num_classes,
    )


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

    def arch_config(self) -> dict[str, Any]:
        return {
            "model_type": MLP_MODEL_TYPE,
            "input_dim": self.input_dim,
            "hidden": self.hidden,
            "num_classes": self.num_classes,
        }


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks (ReLU, 2x2 max-pool when the map is still large) and a linear head.

    No batch norm, so stacked copies train under ``torch.func.vmap`` with no shared statistics.
    """

    def __init__(
        self, in_channels: int, image_size: int, channels: list[int], num_classes: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, size = in_channels, image_size
        for width in channels:
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU()]
            if size >= 8:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            c = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c * size * size, num_classes)
        self.in_channels, self.image_size = in_channels, image_size
        self.channels, self.num_classes = list(channels), num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))

    def arch_config(self) -> dict[str, Any]:
        return {
            "model_type": CNN_MODEL_TYPE,
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "channels": self.channels,
            "num_classes": self.num_classes,
        }


def build_model(
    arch: str, image_shape: tuple[int, ...], num_classes: int, widths: list[int]
) -> nn.Module:
    """A fresh built-in model: ``mlp`` (``widths`` = hidden sizes) or ``cnn`` (conv channels)."""
    if not widths:
        raise ValueError(f"{arch}: give at least one layer width")
    if arch == "mlp":
        dim = 1
        for s in image_shape:
            dim *= s
        return MLP(dim, widths, num_classes)
    if arch == "cnn":
        c, h, w = image_shape
        if h != w:
            raise ValueError(f"the small CNN takes square images, got {h}x{w}")
        return SmallCNN(c, h, widths, num_classes)
    if arch == "resnet18":
        from transformers import AutoModelForImageClassification

        config = resnet18_config(image_shape[0], num_classes)
        return HFImageClassifier(AutoModelForImageClassification.from_config(config))
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def model_factory(model: nn.Module) -> Callable[[], nn.Module]:
    """A function building fresh, untrained copies of a model's architecture (a built-in MLP or
    CNN, or a Hugging Face classifier rebuilt from its config, eager attention so that the
    vectorised ensembles can batch it)."""
    if isinstance(model, HFImageClassifier):
        from transformers import AutoModelForImageClassification

        hf_config = model.model.config
        dtype = next(model.parameters()).dtype

        processor = model.processor_folder

        def fresh() -> nn.Module:
            built = AutoModelForImageClassification.from_config(
                hf_config, attn_implementation="eager"
            )
            return HFImageClassifier(built, processor).to(dtype)

        return fresh
    cfg = model.arch_config() if hasattr(model, "arch_config") else None
    if cfg is None:
        raise ValueError(f"{type(model).__name__} cannot be rebuilt from scratch here")
    return lambda: _from_config(cfg)


def _from_config(cfg: dict[str, Any]) -> nn.Module:
    if cfg["model_type"] == MLP_MODEL_TYPE:
        return MLP(cfg["input_dim"], cfg["hidden"], cfg["num_classes"])
    return SmallCNN(cfg["in_channels"], cfg["image_size"], cfg["channels"], cfg["num_classes"])


def save_classifier(
    model: nn.Module, folder: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for a built-in model."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**model.arch_config(), **(extra or {})}
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    return folder


save_mlp = save_classifier  # the name the first job used


def load_workbench_model(
    folder: str | Path, device: str | torch.device = "cpu", *, allow_pickle: bool = False
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a workbench MLP or CNN folder; a clear ``ValueError`` if it is not one.  With
    ``allow_pickle`` a pickle-only folder's weights are read with ``torch.load(weights_only=True)``."""
    check_workbench_folder(str(folder), allow_pickle=allow_pickle)
    config = read_config(folder)
    model = _from_config(config)
    weights = find_weights(folder, allow_pickle=allow_pickle)
    if len(weights) != 1:
        raise ValueError(
            f"{folder} holds {len(weights)} weight files ({', '.join(p.name for p in weights)}); "
            "a workbench model has one"
        )
    state = load_state_dict(weights[0], allow_pickle=allow_pickle)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{folder}: weights do not match config.json ({exc})") from exc
    return model.to(device), config


def load_mlp(folder: str | Path, device: str | torch.device = "cpu") -> tuple[MLP, dict[str, Any]]:
    """Load a workbench MLP folder (refusing other kinds)."""
    check_mlp_folder(str(folder))
    model, config = load_workbench_model(folder, device)
    return model, config  # type: ignore[return-value]


class HFImageClassifier(nn.Module):
    """Wraps a transformers image classifier so that ``forward(pixels)`` returns logits."""

    def __init__(self, model: nn.Module, processor_folder: str | Path | None = None) -> None:
        super().__init__()
        self.model = model
        self.num_classes = int(model.config.num_labels)
        # where the model's image processor config lies (saved along with the model)
        self.processor_folder = Path(processor_folder) if processor_folder else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits


def load_hf_classifier(
    folder: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    allow_pickle: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """A local Hugging Face image-classification folder: safetensors weights, or (only with
    ``allow_pickle``) one pickle file read with ``torch.load(weights_only=True)``.  Its image
    processor (``preprocessor_config.json``) is remembered and saved with the model."""
    from transformers import AutoConfig, AutoModelForImageClassification

    check_hf_image_classifier(str(folder), allow_pickle=allow_pickle)
    weights = find_weights(folder, allow_pickle=allow_pickle)
    if weights[0].suffix == ".safetensors":
        model = AutoModelForImageClassification.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=True, dtype=dtype
        )
    else:  # allowed pickle: our own weights-only read, never transformers' unpickling
        if len(weights) != 1:
            raise ValueError(
                f"{folder} holds {len(weights)} pickle files ({', '.join(p.name for p in weights)})"
                "; sharded pickle checkpoints are not read: convert them to safetensors"
            )
        state = load_state_dict(weights[0], allow_pickle=True)
        hf_config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        model = AutoModelForImageClassification.from_config(hf_config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise ValueError(f"{weights[0]}: weights do not match config.json ({first})") from None
        model = model.to(dtype).eval()
    config = model.config.to_dict()
    labels = config.get("id2label") or {}
    config["class_names"] = [
        labels.get(str(i), labels.get(i, str(i))) for i in range(model.config.num_labels)
    ]
    processor = Path(folder) if (Path(folder) / PROCESSOR_FILE).is_file() else None
    return HFImageClassifier(model, processor).to(device), config


def load_classifier(
    folder: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    allow_pickle: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Any supported classifier folder: a workbench MLP/CNN or a Hugging Face image classifier.
    ``allow_pickle``: the model was added with pickle loading allowed (``add-model
    --allow-pickle``); pickle weights are then read with ``torch.load(weights_only=True)``."""
    config = read_config(folder)
    if config.get("model_type") in (MLP_MODEL_TYPE, CNN_MODEL_TYPE):
        model, config = load_workbench_model(folder, device, allow_pickle=allow_pickle)
        return model.to(dtype=dtype), config
    return load_hf_classifier(folder, device, dtype, allow_pickle=allow_pickle)


HF_META_FILE = "workbench.json"  # what the workbench adds to a saved Hugging Face folder


def model_kind(model: nn.Module) -> str:
    """The project model kind of ``model``: ``classifier.mlp``, ``classifier.cnn`` or
    ``classifier.hf``."""
    if isinstance(model, HFImageClassifier):
        return "classifier.hf"
    return "classifier.cnn" if isinstance(model, SmallCNN) else "classifier.mlp"


def save_any(model: nn.Module, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Save a built-in model (:func:`save_classifier`) or a Hugging Face classifier
    (``save_pretrained`` with safetensors, the workbench's notes in ``workbench.json``)."""
    if not isinstance(model, HFImageClassifier):
        return save_classifier(model, folder, extra)
    import shutil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.model.save_pretrained(str(folder))  # safetensors (transformers 5 writes nothing else)
    source = model.processor_folder
    processor = source / PROCESSOR_FILE if source is not None else None
    if (
        processor is not None
        and processor.is_file()
        and processor.resolve() != ((folder / PROCESSOR_FILE).resolve())
    ):
        shutil.copyfile(processor, folder / PROCESSOR_FILE)
    (folder / HF_META_FILE).write_text(json.dumps(extra or {}, indent=1, default=str))
    return folder


def num_classes_of(model: nn.Module) -> int:
    return int(model.num_classes)


def check_label_count(model: nn.Module, num_classes: int, model_name: str, data_name: str) -> None:
    """A clear error when a model's output size does not match the dataset's classes."""
    k = num_classes_of(model)
    if k != num_classes:
        raise ValueError(
            f"model {model_name} predicts {k} classes but dataset {data_name} has {num_classes}; "
            "pick a model trained on this dataset (or with a matching label count)"
        )
