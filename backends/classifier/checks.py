"""Light checks (no torch): that a folder is a model of a classifier kind (used by the registry),
and :func:`check_submit`, what a classifier job would refuse about its model, dataset and forget
class, checked before anything trains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backends.common.safe_load import find_weights
from workbench.config import ConfigError

MLP_MODEL_TYPE = "workbench-mlp"
CNN_MODEL_TYPE = "workbench-cnn"


def read_config(folder: str | Path) -> dict:
    folder = Path(folder)
    if not folder.exists():
        raise ValueError(f"{folder} does not exist")
    if not folder.is_dir():
        raise ValueError(f"{folder} is a file; a model is a folder with config.json and weights")
    cfg_path = folder / "config.json"
    if not cfg_path.exists():
        raise ValueError(f"{folder} has no config.json, so it is not a model folder")
    try:
        return json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{cfg_path} is not valid JSON ({exc})") from exc


def check_mlp_folder(path: str, *, allow_pickle: bool = False) -> None:
    """Raise ``ValueError`` unless ``path`` is a workbench MLP folder with safetensors weights."""
    cfg = read_config(path)
    if cfg.get("model_type") != MLP_MODEL_TYPE:
        raise ValueError(
            f"{path} is a {cfg.get('model_type', 'unknown')!r} model, not a workbench MLP"
        )
    find_weights(path, allow_pickle=allow_pickle)


def check_cnn_folder(path: str, *, allow_pickle: bool = False) -> None:
    """Raise ``ValueError`` unless ``path`` is a workbench small-CNN folder with safetensors weights."""
    cfg = read_config(path)
    if cfg.get("model_type") != CNN_MODEL_TYPE:
        raise ValueError(
            f"{path} is a {cfg.get('model_type', 'unknown')!r} model, not a workbench CNN"
        )
    find_weights(path, allow_pickle=allow_pickle)


def check_workbench_folder(path: str, *, allow_pickle: bool = False) -> None:
    """Raise ``ValueError`` unless ``path`` is a workbench MLP or CNN folder."""
    cfg = read_config(path)
    if cfg.get("model_type") not in (MLP_MODEL_TYPE, CNN_MODEL_TYPE):
        raise ValueError(
            f"{path} is a {cfg.get('model_type', 'unknown')!r} model, not a workbench MLP or CNN"
        )
    find_weights(path, allow_pickle=allow_pickle)


def check_hf_image_classifier(path: str, *, allow_pickle: bool = False) -> None:
    """Raise ``ValueError`` unless ``path`` looks like a Hugging Face image-classification folder."""
    cfg = read_config(path)
    archs = cfg.get("architectures") or []
    if not any("ImageClassification" in a for a in archs):
        raise ValueError(
            f"{path} is not a Hugging Face image classifier (architectures: {archs or 'none'})"
        )
    find_weights(path, allow_pickle=allow_pickle)


def check_image_folder(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` holds class sub-folders with images in each."""
    from backends.classifier.data import IMAGE_SUFFIXES

    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{root} does not exist or is not a folder")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root} has no class sub-folders; expected {root}/<class name>/<images>")
    empty = [
        c.name for c in classes if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in c.iterdir())
    ]
    if empty:
        raise ValueError(f"{root}: class folder(s) {', '.join(empty)} hold no images")


def check_cifar10_binary(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` is the official CIFAR-10 binary folder
    (``data_batch_1.bin`` ... ``data_batch_5.bin``, ``test_batch.bin``; whole records)."""
    from backends.classifier.data import CIFAR10, check_cifar_files

    check_cifar_files(path, CIFAR10)


def check_cifar100_binary(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` is the official CIFAR-100 binary folder
    (``train.bin``, ``test.bin`` with coarse and fine label bytes; whole records)."""
    from backends.classifier.data import CIFAR100, check_cifar_files

    check_cifar_files(path, CIFAR100)


# -- submit-time checks of the classifier jobs (light: config.json and folder names only) -----------
DIGITS_SHAPE = (1, 8, 8)
MAX_CONFIG_BYTES = 4 * 1024 * 1024
# Hugging Face model types whose forward takes only their config's image_size (fixed position
# embeddings or patch grids); convolutional ones (ResNet, ConvNeXt, ...) take any size
FIXED_SIZE_HF_TYPES = ("vit", "deit", "beit", "swin", "data2vec-vision")


def dataset_facts(dataset: Any, config: Any) -> tuple[int | None, tuple[int, ...] | None]:
    """(classes, image shape (C, H, W)) of a resolved dataset as a job reads it; ``None`` where
    it cannot be told without loading the data."""
    if dataset is None or getattr(dataset, "kind", None) == "digits":
        meta = getattr(dataset, "meta", None) or {}
        return int(meta.get("classes", 10)), DIGITS_SHAPE
    path = getattr(dataset, "path", None)
    if path is None or not Path(path).is_dir():
        return None, None
    kind = getattr(dataset, "kind", None)
    if kind == "cifar10-binary":
        return 10, (3, 32, 32)
    if kind == "cifar100-binary":
        return (20 if getattr(config, "cifar100_labels", "fine") == "coarse" else 100), (3, 32, 32)
    classes = [p for p in Path(path).iterdir() if p.is_dir() and not p.name.startswith(".")]
    size = int(getattr(config, "image_size", 32))
    channels = 1 if getattr(config, "grayscale", False) else 3
    return (len(classes) or None), (channels, size, size)


def model_facts(folder: str | Path) -> tuple[int | None, dict[str, int]]:
    """(classes, input facts) from a classifier folder's ``config.json``: ``input_dim`` (MLP),
    ``channels`` and ``image_size`` (CNN; a Hugging Face model's channels, and its image size
    for the fixed-size types :data:`FIXED_SIZE_HF_TYPES`)."""
    path = Path(folder) / "config.json"
    if not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES:
        return None, {}
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, {}
    if not isinstance(cfg, dict):
        return None, {}
    kind = cfg.get("model_type")
    facts: dict[str, int] = {}
    if kind == MLP_MODEL_TYPE:
        facts["input_dim"] = cfg.get("input_dim")
        classes = cfg.get("num_classes")
    elif kind == CNN_MODEL_TYPE:
        facts["channels"], facts["image_size"] = cfg.get("in_channels"), cfg.get("image_size")
        classes = cfg.get("num_classes")
    else:  # Hugging Face: id2label is the label set (num_labels is derived from it)
        labels = cfg.get("id2label")
        classes = len(labels) if isinstance(labels, dict) and labels else cfg.get("num_labels")
        facts["channels"] = cfg.get("num_channels")
        if kind in FIXED_SIZE_HF_TYPES:
            facts["image_size"] = cfg.get("image_size")
    facts = {k: v for k, v in facts.items() if isinstance(v, int) and not isinstance(v, bool)}
    return (classes if isinstance(classes, int) else None), facts


def check_submit(config: Any, model: Any, dataset: Any) -> None:
    """What a classifier retrain / unlearn / compare job would refuse, checked before it runs:
    the forget class must be one of the dataset's classes, and a given model must predict
    exactly the dataset's classes and take its input size.  Raises ``ConfigError`` naming the
    field (``forget_class`` or ``model``).  Light: reads ``config.json`` and folder names."""
    classes, shape = dataset_facts(dataset, config)
    data_name = getattr(dataset, "name", None) or "digits"
    if getattr(config, "forget_kind", None) == "class" and classes is not None:
        fc = int(config.forget_class)
        if not 0 <= fc < classes:
            raise ConfigError(
                f"forget class {fc} does not exist: dataset {data_name} has {classes} classes "
                f"(0-{classes - 1})",
                "forget_class",
            )
    path = getattr(model, "path", None)
    if path is None:
        return
    name = getattr(model, "name", None) or Path(path).name
    model_classes, facts = model_facts(path)
    if model_classes is not None and classes is not None and model_classes != classes:
        raise ConfigError(
            f"model {name} predicts {model_classes} classes but dataset {data_name} has "
            f"{classes}; pick a model trained on this dataset (or with a matching label count)",
            "model",
        )
    if shape is None or (Path(path) / "preprocessor_config.json").is_file():
        return  # a model with its own image processor gets images of the size it takes
    c, h, w = shape
    wanted = {"input_dim": c * h * w, "channels": c, "image_size": h}
    labels = {"input_dim": "inputs", "channels": "image channels", "image_size": "image side"}
    for key, have in facts.items():
        if have != wanted[key]:
            raise ConfigError(
                f"model {name} takes {have} {labels[key]} but dataset {data_name} gives "
                f"{wanted[key]} (images {c}x{h}x{w}); pick a model made for this data"
                + (" or change image_size / grayscale" if data_name != "digits" else ""),
                "model",
            )
