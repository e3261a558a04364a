"""Facts about a model or dataset for the project pane's details (headless: no Qt, no torch).

:func:`dataset_details` and :func:`model_details` read what the catalogue, the registry and the
files on disk tell without loading a model: kind, path, size on disk, number of examples, class
counts and sample images of a dataset; kind, ``config.json`` key facts, the parameter count from
the safetensors headers and the run that made a model.  A built-in dataset whose examples only its
backend can read (scikit-learn's digits) contributes them through its ``DatasetSpec.preview`` hook,
imported lazily like a folder check.  Both functions can take a while on a large folder, so the GUI
calls them on a worker thread.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.catalog import Catalog
from workbench.registry import IMAGE_SUFFIXES, Registry, resolve_entry

__all__ = [
    "Details",
    "Sample",
    "dataset_details",
    "model_details",
    "folder_size",
    "human_bytes",
    "safetensors_parameters",
]

SAMPLES_PER_CLASS = 6
MAX_SAMPLE_CLASSES = 12
THUMBNAIL_PIXELS = 64
MAX_FILES_WALKED = 200_000
CONFIG_MAX_BYTES = 4 * 1024 * 1024
HEADER_MAX_BYTES = 100 * 1024 * 1024


@dataclass
class Sample:
    """One example to show: its class label and pixels (uint8, (H, W) or (H, W, 3))."""

    label: str
    image: np.ndarray


@dataclass
class Details:
    """What the details dialog shows: ordered facts, class counts, samples and notes."""

    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    classes: list[tuple[str, int]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    folder: Path | None = None

    def fact(self, key: str) -> str | None:
        return next((v for k, v in self.facts if k == key), None)


def human_bytes(n: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def human_count(n: int) -> str:
    """``1234567`` -> ``1.23 M`` (parameter counts)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return str(n)


def folder_size(path: Path) -> tuple[int, int, bool]:
    """(bytes, files, complete) of everything under ``path`` (a file counts itself); stops after
    :data:`MAX_FILES_WALKED` files, then ``complete`` is False."""
    if path.is_file():
        return path.stat().st_size, 1, True
    total = files = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
            files += 1
            if files >= MAX_FILES_WALKED:
                return total, files, False
    return total, files, True


def _size_fact(path: Path) -> str:
    size, files, complete = folder_size(path)
    more = "" if complete else " or more"
    return f"{human_bytes(size)}{more} in {files:,} file(s){more}"


def _thumbnail(file: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(file) as opened:
        im = opened.convert("RGB") if opened.mode not in ("L", "RGB") else opened
        im.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
        return np.asarray(im, dtype=np.uint8).copy()


def to_uint8(x: Any) -> np.ndarray:
    """An (H, W), (H, W, C) or (C, H, W) array in [0, 1] or [0, 255] as uint8 (H, W[, 3])."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    finite = arr[np.isfinite(arr)]
    hi = float(finite.max()) if finite.size else 1.0
    if hi <= 1.0:
        arr = arr * 255.0
    return np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)


def image_folder_facts(root: Path, details: Details) -> None:
    """Class counts and sample thumbnails of an ``root/<class>/<image>`` folder."""
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    total = 0
    for folder in classes:
        images = sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        details.classes.append((folder.name, len(images)))
        total += len(images)
        if len(details.classes) <= MAX_SAMPLE_CLASSES:
            for file in images[:SAMPLES_PER_CLASS]:
                try:
                    details.samples.append(Sample(folder.name, _thumbnail(file)))
                except Exception as exc:  # Pillow raises many types for a broken file
                    details.notes.append(f"{file.name} does not decode ({type(exc).__name__})")
    if len(classes) > MAX_SAMPLE_CLASSES:
        details.notes.append(f"samples of the first {MAX_SAMPLE_CLASSES} classes only")
    details.facts.append(("Examples", f"{total:,}"))
    details.facts.append(("Classes", str(len(classes))))


def _preview(spec: Any, path: str | None, details: Details) -> None:
    """Ask the dataset's backend hook for examples, class counts and samples."""
    hook = getattr(spec, "preview", None)
    if not hook:
        return
    try:
        data = resolve_entry(hook)(path, SAMPLES_PER_CLASS)
    except Exception as exc:  # a backend that cannot read its data must not break the dialog
        details.notes.append(f"samples unavailable: {type(exc).__name__}: {exc}")
        return
    if "examples" in data and details.fact("Examples") is None:
        details.facts.append(("Examples", f"{int(data['examples']):,}"))
    details.classes = [(str(name), int(n)) for name, n in data.get("classes", [])]
    if details.classes and details.fact("Classes") is None:
        details.facts.append(("Classes", str(len(details.classes))))
    details.samples = [Sample(str(label), to_uint8(img)) for label, img in data.get("samples", [])]


def dataset_details(registry: Registry, project: Any, name: str) -> Details:
    """Facts about dataset ``name``: a built-in of the registry or a dataset of ``project``."""
    spec = registry.datasets.get(name)
    if spec is not None and spec.builtin:
        details = Details(f"Dataset {name}")
        details.facts += [
            ("Name", name),
            ("Kind", f"{spec.title} (built in)"),
            ("Family", spec.family),
            ("Path", "(shipped with the workbench)"),
            ("Description", spec.description),
        ]
        if "examples" in spec.info:
            details.facts.append(("Examples", f"{int(spec.info['examples']):,}"))
        if "classes" in spec.info:
            details.facts.append(("Classes", str(spec.info["classes"])))
        if "image_shape" in spec.info:
            shape = " x ".join(str(d) for d in spec.info["image_shape"])
            details.facts.append(("Image size", shape))
        _preview(spec, None, details)
        return details
    row = next((r for r in (project.datasets() if project else []) if r["name"] == name), None)
    if row is None:
        raise LookupError(f"no dataset named {name!r}")
    kind = registry.datasets.get(row["kind"])
    details = Details(f"Dataset {name}")
    details.facts += [
        ("Name", name),
        ("Kind", kind.title if kind else row["kind"]),
        ("Family", row["family"]),
    ]
    if not row["path"]:
        return details
    path = project.abspath(row["path"])
    details.folder = path
    details.facts.append(("Path", str(path)))
    if not path.exists():
        details.notes.append(f"{path} no longer exists")
        return details
    details.facts.append(("Size on disk", _size_fact(path)))
    if path.is_dir() and any(p.is_dir() for p in path.iterdir()) and row["kind"] == "image-folder":
        image_folder_facts(path, details)
    elif kind is not None and kind.preview:
        _preview(kind, str(path), details)
    else:
        details.notes.append(
            "Examples and classes of this dataset kind are read by its jobs; no preview here."
        )
    return details


def safetensors_parameters(folder: Path) -> dict[str, int]:
    """Parameter count per safetensors file under ``folder`` (top level and one folder down),
    read from the headers only; ``{}`` when there are none."""
    counts: dict[str, int] = {}
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*/*.safetensors"))
    for file in files[:512]:
        try:
            with open(file, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                if n > HEADER_MAX_BYTES:
                    continue
                header = json.loads(fh.read(n).decode("utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if not isinstance(header, dict):
            continue
        total = 0
        for key, entry in header.items():
            if key == "__metadata__" or not isinstance(entry, dict):
                continue
            shape = entry.get("shape")
            if isinstance(shape, list) and all(isinstance(d, int) for d in shape):
                total += math.prod(shape)
        counts[file.relative_to(folder).as_posix()] = total
    return counts


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        if not path.is_file() or path.stat().st_size > CONFIG_MAX_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


_CONFIG_FACTS = (
    ("model_type", "Model type"),
    ("input_dim", "Input size"),
    ("hidden", "Hidden layers"),
    ("channels", "Channels"),
    ("image_shape", "Image shape"),
    ("image_size", "Image size"),
    ("n_layer", "Layers"),
    ("num_hidden_layers", "Layers"),
    ("n_head", "Attention heads"),
    ("num_attention_heads", "Attention heads"),
    ("n_embd", "Hidden size"),
    ("hidden_size", "Hidden size"),
    ("vocab_size", "Vocabulary"),
    ("n_positions", "Context length"),
    ("max_position_embeddings", "Context length"),
    ("dataset", "Trained on"),
)


def _config_facts(config: dict[str, Any], details: Details) -> None:
    archs = config.get("architectures")
    if isinstance(archs, list) and archs:
        details.facts.append(("Architecture", ", ".join(map(str, archs))))
    seen = {k for k, _ in details.facts}
    for key, label in _CONFIG_FACTS:
        if key in config and label not in seen and config[key] is not None:
            value = config[key]
            text = " x ".join(map(str, value)) if isinstance(value, list) else str(value)
            details.facts.append((label, text))
            seen.add(label)
    labels = config.get("class_names") or config.get("id2label")
    if isinstance(labels, dict):
        labels = [labels[k] for k in sorted(labels, key=lambda k: int(k) if k.isdigit() else 0)]
    n = config.get("num_classes") or config.get("num_labels") or (len(labels) if labels else None)
    if n:
        text = str(n)
        if isinstance(labels, list) and labels:
            shown = ", ".join(map(str, labels[:10])) + (", ..." if len(labels) > 10 else "")
            text += f" ({shown})"
        details.facts.append(("Classes", text))


def model_details(registry: Registry, project: Any, name: str) -> Details:
    """Facts about model ``name``: a model of ``project`` or a built-in of the registry."""
    row = project.model(name) if project is not None else None
    details = Details(f"Model {name}")
    if row is not None:
        kind = registry.model_kinds.get(row["kind"])
        path = project.abspath(row["path"])
        details.facts += [
            ("Name", name),
            ("Kind", kind.title if kind else row["kind"]),
            ("Family", row["family"]),
            ("Path", str(path)),
        ]
        if row.get("source_run") is not None:
            made = f"run #{row['source_run']}"
            try:
                run = project.run(row["source_run"])
                made += f" {run.job} ({run.status})"
            except Exception:  # the run was deleted; the model stays
                made += " (deleted)"
            details.facts.append(("Made by", made))
        else:
            details.facts.append(("Made by", "added to the project from a folder"))
    else:
        builtin = Catalog(None, registry).builtin_model(name)
        if builtin is None:
            raise LookupError(f"no model named {name!r}")
        kind, raw = builtin
        path = Path(raw)
        details.facts += [
            ("Name", name),
            ("Kind", kind.title),
            ("Family", kind.family),
            ("Path", str(path)),
            ("Made by", "shipped with the workbench (built in)"),
        ]
    details.folder = path
    if not path.exists():
        details.notes.append(f"{path} no longer exists")
        return details
    details.facts.append(("Size on disk", _size_fact(path)))
    config = _read_json(path / "config.json")
    if config is not None:
        _config_facts(config, details)
    index = _read_json(path / "model_index.json")
    if index is not None:
        details.facts.append(("Pipeline", str(index.get("_class_name", "?"))))
        parts = [k for k, v in index.items() if isinstance(v, list) and v and v[0]]
        details.facts.append(("Components", ", ".join(parts)))
    counts = safetensors_parameters(path)
    if counts:
        total = sum(counts.values())
        text = f"{human_count(total)} ({total:,})"
        by_part: dict[str, int] = {}
        for key, n in counts.items():
            by_part[key.split("/")[0]] = by_part.get(key.split("/")[0], 0) + n
        if len(by_part) > 1:
            text += "; " + ", ".join(f"{k} {human_count(v)}" for k, v in by_part.items())
        details.facts.append(("Parameters", text))
    else:
        details.notes.append("no safetensors weights found, so no parameter count")
    return details
