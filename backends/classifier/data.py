"""Classifier data: datasets, recorded splits and forget sets.

- Datasets: scikit-learn's 8x8 digits (built in) and any image folder with one sub-folder per class
  (read with Pillow, resized and normalised as configured).  Images are ``float32`` arrays of shape
  ``(N, C, H, W)`` in [0, 1] before normalisation.
- Splits: ``train`` (the target model's training pool), ``test`` (never trained on) and ``shadow``
  (the attacker's population for shadow and reference models).  Made from a seed and fractions, or
  read from a JSON file of index lists (``{"train": [...], "test": [...], "shadow": [...]}``) to
  reproduce another tool's or paper's splits.  Splits are recorded with every model and run.
- Forget sets: one class, a seeded random subset of the training split, or an explicit index list
  (indices into the whole dataset, all of which must be in the training split).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class ArrayDataset:
    """Images ``x`` (N, C, H, W float32), labels ``y`` (N int64) and class names."""

    name: str
    x: np.ndarray
    y: np.ndarray
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def input_dim(self) -> int:
        return int(np.prod(self.x.shape[1:]))

    def fingerprint(self) -> str:
        """A short content hash (what caches of references and shadows are keyed by)."""
        h = hashlib.sha256()
        h.update(self.name.encode())
        h.update(np.ascontiguousarray(self.x).tobytes())
        h.update(np.ascontiguousarray(self.y).tobytes())
        return h.hexdigest()[:16]


def load_digits() -> ArrayDataset:
    """The 1797 8x8 digits shipped with scikit-learn, pixel values scaled to [0, 1]."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    return ArrayDataset("digits", x, y, [str(c) for c in range(10)])


def load_image_folder(
    root: str | Path,
    *,
    image_size: int = 32,
    grayscale: bool = False,
    mean: float = 0.0,
    std: float = 1.0,
) -> ArrayDataset:
    """Read ``root/<class>/<image>`` files: resized to ``image_size``, scaled to [0, 1], then
    ``(x - mean) / std``.  Classes are the sub-folder names in sorted order."""
    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist or is not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(
            f"image folder {root} has no class sub-folders; expected {root}/<class name>/<images>"
        )
    xs, ys = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            with Image.open(path) as im:
                im = im.convert("L" if grayscale else "RGB").resize(
                    (image_size, image_size), Image.Resampling.BILINEAR
                )
                arr = np.asarray(im, dtype=np.float32) / 255.0
            xs.append(arr[None] if grayscale else arr.transpose(2, 0, 1))
            ys.append(label)
    if not xs:
        raise ValueError(
            f"image folder {root} has class folders ({', '.join(classes)}) but no images "
            f"({', '.join(IMAGE_SUFFIXES)})"
        )
    empty = [c for c in classes if c not in {classes[y] for y in ys}]
    if empty:
        raise ValueError(f"image folder {root}: class folder(s) {', '.join(empty)} hold no images")
    x = (np.stack(xs) - mean) / std
    return ArrayDataset(
        f"folder:{root.name}", x.astype(np.float32), np.array(ys, np.int64), classes
    )


def load_dataset(name: str, path: str | None = None, **folder_options: object) -> ArrayDataset:
    """A dataset by name: ``digits``, or an image folder given by ``path``."""
    if name == "digits":
        return load_digits()
    if path:
        return load_image_folder(path, **folder_options)  # type: ignore[arg-type]
    raise ValueError(
        f"unknown classifier dataset {name!r}; built-in: digits, or give an image folder"
    )


# -- splits -------------------------------------------------------------------------------------


@dataclass
class Split:
    """Index lists into the dataset: target training pool, test, and attacker's shadow pool."""

    train: np.ndarray
    test: np.ndarray
    shadow: np.ndarray

    def to_json(self) -> dict[str, list[int]]:
        return {
            "train": self.train.tolist(),
            "test": self.test.tolist(),
            "shadow": self.shadow.tolist(),
        }

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json()).encode()).hexdigest()[:16]


def stratified_split(
    y: np.ndarray, test_fraction: float, seed: int, shadow_fraction: float = 0.0
) -> Split:
    """Stratified train / test / shadow split, deterministic in ``seed``.

    ``test_fraction`` and ``shadow_fraction`` are shares of the whole dataset; the rest is train.
    """
    from sklearn.model_selection import train_test_split

    if (
        not 0 < test_fraction < 1
        or not 0 <= shadow_fraction < 1
        or test_fraction + shadow_fraction >= 1
    ):
        raise ValueError(
            f"split fractions test={test_fraction}, shadow={shadow_fraction} must be in (0, 1) "
            "and leave a training share"
        )
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=y)
    shadow = np.array([], dtype=np.int64)
    if shadow_fraction > 0:
        share = shadow_fraction / (1 - test_fraction)
        rest, shadow = train_test_split(
            rest, test_size=share, random_state=seed + 1, stratify=y[rest]
        )
    return Split(train=np.sort(rest), test=np.sort(test), shadow=np.sort(shadow))


def load_split_json(path: str | Path, n: int) -> Split:
    """Read explicit index lists; they must be disjoint and inside the dataset."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"split file {path} could not be read as JSON ({exc})") from exc
    missing = [k for k in ("train", "test") if k not in data]
    if missing:
        raise ValueError(
            f"split file {path} lacks {', '.join(missing)}; it needs train and test lists"
        )
    parts = {k: np.asarray(data.get(k, []), dtype=np.int64) for k in ("train", "test", "shadow")}
    for key, arr in parts.items():
        if len(arr) and (arr.min() < 0 or arr.max() >= n):
            raise ValueError(f"split file {path}: {key} has indices outside 0..{n - 1}")
    seen: dict[int, str] = {}
    for key, arr in parts.items():
        for i in arr.tolist():
            if i in seen:
                raise ValueError(f"split file {path}: index {i} is in both {seen[i]} and {key}")
            seen[i] = key
    return Split(**{k: np.sort(v) for k, v in parts.items()})


# -- forget sets --------------------------------------------------------------------------------


@dataclass
class ForgetSet:
    """Which training examples to forget (indices into the dataset) and how they were chosen."""

    kind: str  # "class", "random" or "indices"
    indices: np.ndarray
    forget_class: int | None = None

    def describe(self) -> str:
        if self.kind == "class":
            return f"class {self.forget_class} ({len(self.indices)} training examples)"
        return f"{len(self.indices)} {self.kind} training examples"

    def fingerprint(self) -> str:
        payload = json.dumps([self.kind, self.forget_class, self.indices.tolist()])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def make_forget_set(
    data: ArrayDataset,
    split: Split,
    *,
    kind: str,
    forget_class: int = 0,
    fraction: float = 0.1,
    seed: int = 0,
    indices_file: str = "",
) -> ForgetSet:
    """Build a forget set of one of three kinds (see the module docstring); clear errors."""
    train = split.train
    if kind == "class":
        if not 0 <= forget_class < data.num_classes:
            raise ValueError(
                f"forget class {forget_class} does not exist: {data.name} has classes "
                f"0..{data.num_classes - 1} ({', '.join(data.class_names)})"
            )
        idx = train[data.y[train] == forget_class]
        if len(idx) == 0:
            raise ValueError(f"the training split holds no example of class {forget_class}")
        return ForgetSet("class", np.sort(idx), forget_class)
    if kind == "random":
        if not 0 < fraction < 1:
            raise ValueError(f"forget fraction {fraction} must be between 0 and 1")
        count = max(1, round(fraction * len(train)))
        rng = np.random.default_rng(seed)
        return ForgetSet("random", np.sort(rng.choice(train, size=count, replace=False)))
    if kind == "indices":
        if not indices_file:
            raise ValueError("forget set kind 'indices' needs an indices file (a JSON list)")
        try:
            raw = json.loads(Path(indices_file).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"forget indices file {indices_file} could not be read ({exc})"
            ) from exc
        if isinstance(raw, dict):
            raw = raw.get("forget", raw.get("indices"))
        idx = np.unique(np.asarray(raw, dtype=np.int64))
        if len(idx) == 0:
            raise ValueError(f"forget indices file {indices_file} lists no indices")
        outside = np.setdiff1d(idx, train)
        if len(outside):
            raise ValueError(
                f"forget indices {outside[:5].tolist()} are not in the training split; "
                "only trained-on examples can be forgotten"
            )
        return ForgetSet("indices", idx)
    raise ValueError(f"forget set kind {kind!r} is not one of 'class', 'random', 'indices'")


def display_image(x: np.ndarray) -> np.ndarray:
    """One (C, H, W) example as an (H, W) or (H, W, C) array in [0, 1] for an image grid."""
    arr = np.asarray(x, dtype=np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:  # normalised data: rescale for display
        arr = (arr - lo) / (hi - lo or 1.0)
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def preview_digits(_path: str | None, per_class: int) -> dict[str, object]:
    """What the project pane's details show of the built-in digits: the number of examples, class
    counts and the first ``per_class`` images of each class (8x8, values in [0, 1])."""
    data = load_digits()
    labels = data.y.tolist()
    samples = []
    for c, name in enumerate(data.class_names):
        picked = [i for i, y in enumerate(labels) if y == c][:per_class]
        samples += [(name, display_image(data.x[i])) for i in picked]
    counts = [(name, labels.count(c)) for c, name in enumerate(data.class_names)]
    return {"examples": len(labels), "classes": counts, "samples": samples}
