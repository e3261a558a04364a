"""Light checks that a folder is a model of a classifier kind (no torch; used by the registry)."""

from __future__ import annotations

import json
from pathlib import Path

from backends.common.safe_load import find_weights

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


def check_mlp_folder(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` is a workbench MLP folder with safetensors weights."""
    cfg = read_config(path)
    if cfg.get("model_type") != MLP_MODEL_TYPE:
        raise ValueError(
            f"{path} is a {cfg.get('model_type', 'unknown')!r} model, not a workbench MLP"
        )
    find_weights(path)


def check_cnn_folder(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` is a workbench small-CNN folder with safetensors weights."""
    cfg = read_config(path)
    if cfg.get("model_type") != CNN_MODEL_TYPE:
        raise ValueError(
            f"{path} is a {cfg.get('model_type', 'unknown')!r} model, not a workbench CNN"
        )
    find_weights(path)


def check_workbench_folder(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` is a workbench MLP or CNN folder."""
    cfg = read_config(path)
    if cfg.get("model_type") not in (MLP_MODEL_TYPE, CNN_MODEL_TYPE):
        raise ValueError(
            f"{path} is a {cfg.get('model_type', 'unknown')!r} model, not a workbench MLP or CNN"
        )
    find_weights(path)


def check_hf_image_classifier(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` looks like a Hugging Face image-classification folder."""
    cfg = read_config(path)
    archs = cfg.get("architectures") or []
    if not any("ImageClassification" in a for a in archs):
        raise ValueError(
            f"{path} is not a Hugging Face image classifier (architectures: {archs or 'none'})"
        )
    find_weights(path)


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
