"""Classifier data: datasets, recorded splits and forget sets.

- Datasets: scikit-learn's 8x8 digits (built in), any image folder with one sub-folder per class
  (read with Pillow, resized and normalised as configured), and CIFAR-10 / CIFAR-100 from the
  official *binary* version (``cifar-10-batches-bin``, ``cifar-100-binary``; never the pickle
  version: issue 17 part 3).  Images are ``float32`` arrays of shape ``(N, C, H, W)`` in [0, 1]
  before normalisation; with a Hugging Face model's image processor (:func:`processor_fn`) they
  are what that processor makes of them (resize, crop, normalise as its config says).
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# a model's image processor as a function: uint8 RGB images (H, W, 3) -> float32 (N, C, H', W')
Processor = Callable[[list[np.ndarray]], np.ndarray]
PROCESSOR_CHUNK = 256  # images handed to the processor at once


@dataclass
class ArrayDataset:
    """Images ``x`` (N, C, H, W float32), labels ``y`` (N int64) and class names."""

    name: str
    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    # the split the dataset ships with (CIFAR's training files, test file), as index arrays
    official_split: tuple[np.ndarray, np.ndarray] | None = None

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
    processor: Processor | None = None,
) -> ArrayDataset:
    """Read ``root/<class>/<image>`` files: resized to ``image_size``, scaled to [0, 1], then
    ``(x - mean) / std``; or, with a model's ``processor``, the RGB images as that processor makes
    them (``image_size``, ``grayscale``, ``mean`` and ``std`` are then unused).  Classes are the
    sub-folder names in sorted order."""
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
    raw: list[np.ndarray] = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            with Image.open(path) as im:
                if processor is not None:
                    raw.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
                    ys.append(label)
                    continue
                im = im.convert("L" if grayscale else "RGB").resize(
                    (image_size, image_size), Image.Resampling.BILINEAR
                )
                arr = np.asarray(im, dtype=np.float32) / 255.0
            xs.append(arr[None] if grayscale else arr.transpose(2, 0, 1))
            ys.append(label)
    if processor is not None and raw:
        x = apply_processor(processor, raw, f"image folder {root}")
        return ArrayDataset(f"folder:{root.name}", x, np.array(ys, np.int64), classes)
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


def apply_processor(processor: Processor, images: list[np.ndarray], what: str) -> np.ndarray:
    """Run a model's image processor over uint8 RGB images in chunks; one float32 array."""
    parts = []
    for start in range(0, len(images), PROCESSOR_CHUNK):
        try:
            out = processor(images[start : start + PROCESSOR_CHUNK])
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{what}: the model's image processor failed ({exc})") from None
        parts.append(np.asarray(out, dtype=np.float32))
    return np.concatenate(parts)


def processor_fn(model_folder: str | Path) -> Processor | None:
    """The ``AutoImageProcessor`` saved with a Hugging Face model (``preprocessor_config.json``)
    as a function of uint8 RGB images, or ``None`` when the folder has no processor config."""
    folder = Path(model_folder)
    if not (folder / "preprocessor_config.json").is_file():
        return None
    from transformers import AutoImageProcessor
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "falling back to the PIL backend" notice
    try:
        processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(
            f"{folder / 'preprocessor_config.json'} could not be read as an image processor ({exc})"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)

    def run(images: list[np.ndarray]) -> np.ndarray:
        out = processor(images=images, return_tensors="np", input_data_format="channels_last")
        return np.asarray(out["pixel_values"], dtype=np.float32)

    return run


# -- CIFAR, official binary version ---------------------------------------------------------------

CIFAR_PIXELS = 32 * 32 * 3
CIFAR10_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = "test_batch.bin"
CIFAR100_TRAIN, CIFAR100_TEST = "train.bin", "test.bin"
CIFAR10_CLASSES = (  # batches.meta.txt's order
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True)
class CifarLayout:
    """One of the two binary layouts: which files, how many label bytes, how many classes."""

    kind: str
    train: tuple[str, ...]
    test: str
    label_bytes: int  # CIFAR-10: <label>; CIFAR-100: <coarse label><fine label>
    classes: tuple[int, ...]  # per label byte
    folder: str  # the folder name the archive unpacks to
    archive: str

    @property
    def record(self) -> int:
        return self.label_bytes + CIFAR_PIXELS


CIFAR10 = CifarLayout(
    "cifar10-binary",
    CIFAR10_TRAIN,
    CIFAR10_TEST,
    1,
    (10,),
    "cifar-10-batches-bin",
    "cifar-10-binary.tar.gz",
)
CIFAR100 = CifarLayout(
    "cifar100-binary",
    (CIFAR100_TRAIN,),
    CIFAR100_TEST,
    2,
    (20, 100),
    "cifar-100-binary",
    "cifar-100-binary.tar.gz",
)
CIFAR_LAYOUTS = {CIFAR10.kind: CIFAR10, CIFAR100.kind: CIFAR100}


def check_cifar_files(root: str | Path, layout: CifarLayout) -> list[Path]:
    """The layout's files under ``root`` (train files, then the test file), each checked for size:
    one clear ``ValueError`` naming the file (missing, the pickle version, or a size that is not
    a whole number of records)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} does not exist or is not a folder")
    files = [root / name for name in (*layout.train, layout.test)]
    missing = [p for p in files if not p.is_file()]
    if missing:
        pickled = [p for p in root.iterdir() if p.name in ("data_batch_1", "train", "test_batch")]
        hint = (
            f" ({pickled[0]} is the Python pickle version, which the workbench does not read: "
            f"download {layout.archive} from {CIFAR_URL})"
            if pickled
            else f" (unpack {layout.archive} from {CIFAR_URL}; the folder is {layout.folder})"
        )
        raise ValueError(
            f"{missing[0]} is missing: a {layout.kind} folder holds "
            f"{', '.join(p.name for p in files)}{hint}"
        )
    for path in files:
        size = path.stat().st_size
        if size == 0 or size % layout.record:
            other = CIFAR100 if layout is CIFAR10 else CIFAR10
            looks = (
                f"; its size fits the {other.kind} layout, so check the dataset kind"
                if size and size % other.record == 0
                else ""
            )
            raise ValueError(
                f"{path} has {size} bytes, not a whole number of {layout.kind} records "
                f"({layout.label_bytes} label byte(s) + {CIFAR_PIXELS} pixels = {layout.record} "
                f"bytes each){looks}"
            )
    return files


def _cifar_names(root: Path, layout: CifarLayout, labels: str) -> list[str]:
    """Class names from the archive's text file when present, else CIFAR-10's or numbers."""
    if layout is CIFAR10:
        meta, k = root / "batches.meta.txt", 10
    else:
        k = 100 if labels == "fine" else 20
        meta = root / f"{labels}_label_names.txt"
    if meta.is_file():
        names = [n.strip() for n in meta.read_text(errors="replace").splitlines() if n.strip()]
        if len(names) == k:
            return names
    return list(CIFAR10_CLASSES) if layout is CIFAR10 else [str(i) for i in range(k)]


def read_cifar_file(path: Path, layout: CifarLayout, labels: str = "fine") -> tuple:
    """(images uint8 (N, 32, 32, 3), labels int64) of one binary file; the label byte(s) are
    checked against the layout's class counts."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % layout.record:
        check_cifar_files(path.parent, layout)  # raises naming the file
    records = raw.reshape(-1, layout.record)
    column = 0 if layout.label_bytes == 1 or labels == "coarse" else 1
    for byte, k in enumerate(layout.classes):
        bad = records[:, byte] >= k
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{path}: record {first} has label byte {int(records[first, byte])}, outside "
                f"0..{k - 1}; this is not the {layout.kind} layout (wrong file or dataset kind)"
            )
    images = records[:, layout.label_bytes :].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), records[:, column].astype(np.int64)


def load_cifar(
    root: str | Path,
    kind: str = CIFAR10.kind,
    *,
    labels: str = "fine",
    processor: Processor | None = None,
) -> ArrayDataset:
    """CIFAR-10 or CIFAR-100 from the official binary version: every training file then the test
    file, as one dataset whose ``official_split`` is (training files, test file).  ``labels``
    picks CIFAR-100's fine (100) or coarse (20) labels.  Without a ``processor`` images are
    ``(N, 3, 32, 32)`` in [0, 1]; with one, what the model's processor makes of them."""
    if kind not in CIFAR_LAYOUTS:
        raise ValueError(f"unknown CIFAR kind {kind!r}; one of {', '.join(CIFAR_LAYOUTS)}")
    if labels not in ("fine", "coarse"):
        raise ValueError(f"CIFAR-100 labels {labels!r}: choose fine or coarse")
    layout = CIFAR_LAYOUTS[kind]
    root = Path(root)
    files = check_cifar_files(root, layout)
    images, ys, sizes = [], [], []
    for path in files:
        im, y = read_cifar_file(path, layout, labels)
        images.append(im)
        ys.append(y)
        sizes.append(len(y))
    n_train = sum(sizes[:-1])
    all_images = np.concatenate(images)
    if processor is not None:
        x = apply_processor(processor, list(all_images), f"{kind} folder {root}")
    else:
        x = all_images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    y_all = np.concatenate(ys)
    split = (np.arange(n_train), np.arange(n_train, len(y_all)))
    suffix = f"-{labels}" if layout is CIFAR100 else ""
    return ArrayDataset(
        f"{kind}{suffix}:{root.name}", x, y_all, _cifar_names(root, layout, labels), split
    )


def load_dataset(
    name: str,
    path: str | None = None,
    *,
    kind: str | None = None,
    labels: str = "fine",
    processor: Processor | None = None,
    **folder_options: object,
) -> ArrayDataset:
    """A dataset by name: ``digits``; a CIFAR binary folder (``kind`` ``cifar10-binary`` or
    ``cifar100-binary``) or an image folder given by ``path``.  A model's ``processor`` applies
    to the image datasets (not to the 8x8 digits)."""
    if name == "digits" or kind == "digits":
        return load_digits()
    if path and kind in CIFAR_LAYOUTS:
        return load_cifar(path, kind, labels=labels, processor=processor)
    if path:
        return load_image_folder(path, processor=processor, **folder_options)  # type: ignore[arg-type]
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


def _preview_cifar(path: str | None, per_class: int, layout: CifarLayout) -> dict[str, object]:
    """Examples, class counts (of the fine labels for CIFAR-100) and the first ``per_class``
    training images of each class, read through a memory map (labels only, then a few images)."""
    if path is None:
        raise ValueError(f"a {layout.kind} dataset needs its folder")
    root = Path(path)
    files = check_cifar_files(root, layout)
    label_byte = layout.label_bytes - 1  # the fine label of CIFAR-100
    names = _cifar_names(root, layout, "fine")
    counts = np.zeros(len(names), dtype=np.int64)
    samples: list[tuple[str, np.ndarray]] = []
    taken = np.zeros(len(names), dtype=np.int64)
    for file in files:
        records = np.memmap(file, dtype=np.uint8, mode="r").reshape(-1, layout.record)
        labels = np.asarray(records[:, label_byte]).astype(np.int64)
        labels = labels[labels < len(names)]
        counts += np.bincount(labels, minlength=len(names))[: len(names)]
        for i, label in enumerate(labels.tolist()):
            if taken.min() >= per_class:
                break
            if taken[label] < per_class:
                pixels = np.asarray(records[i, layout.label_bytes :], dtype=np.float32) / 255.0
                samples.append((names[label], pixels.reshape(3, 32, 32).transpose(1, 2, 0)))
                taken[label] += 1
    classes = [(name, int(n)) for name, n in zip(names, counts, strict=True)]
    return {"examples": int(counts.sum()), "classes": classes, "samples": samples}


def preview_cifar10(path: str | None, per_class: int) -> dict[str, object]:
    """The project pane's details of a CIFAR-10 binary folder (see :func:`_preview_cifar`)."""
    return _preview_cifar(path, per_class, CIFAR10)


def preview_cifar100(path: str | None, per_class: int) -> dict[str, object]:
    """The project pane's details of a CIFAR-100 binary folder (fine labels)."""
    return _preview_cifar(path, per_class, CIFAR100)
