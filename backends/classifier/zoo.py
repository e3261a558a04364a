"""Build the classifier family's built-in models: ``python -m backends.classifier.zoo build``.

- ``digits-mlp``: a 64-128-10 MLP trained with the same loop as the ``classifier.train_mlp`` job;
- ``digits-cnn``: the small CNN (16 and 32 channels) trained the same way.

Both use the stratified 80/20 split of digits with split seed 0 (recorded as ``split.json``) and are
written to ``resources/models/`` (about 40 KB and 60 KB), from where every project can use them.
Unlearning jobs given one of these carve the attacker's shadow pool out of its test split.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from backends.classifier.data import load_digits, stratified_split
from backends.classifier.models import build_model, save_classifier
from backends.classifier.plugin import BUILTIN_DIGITS_CNN, BUILTIN_DIGITS_MLP
from backends.classifier.training import TrainSpec, accuracy, fit

BUILTIN_SEED = 0
BUILTINS = {
    "digits-mlp": ("mlp", [128], TrainSpec(epochs=40), BUILTIN_DIGITS_MLP),
    "digits-cnn": ("cnn", [16, 32], TrainSpec(epochs=40), BUILTIN_DIGITS_CNN),
}


def build(name: str, out: Path | None = None) -> dict[str, float]:
    """Train built-in model ``name`` and save it; returns its accuracies and training time."""
    arch, widths, spec, default_out = BUILTINS[name]
    torch.set_num_threads(1)
    data = load_digits()
    split = stratified_split(data.y, 0.2, BUILTIN_SEED)
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    train, test = torch.from_numpy(split.train), torch.from_numpy(split.test)
    torch.manual_seed(BUILTIN_SEED)
    model = build_model(arch, data.image_shape, data.num_classes, widths)
    t0 = time.perf_counter()
    fit(model, x[train], y[train], spec, BUILTIN_SEED)
    result = {
        "train_acc": accuracy(model, x[train], y[train]),
        "test_acc": accuracy(model, x[test], y[test]),
        "seconds": time.perf_counter() - t0,
    }
    folder = out or default_out
    save_classifier(
        model,
        folder,
        {
            "dataset": "digits",
            "image_shape": list(data.image_shape),
            "class_names": data.class_names,
            "split_seed": BUILTIN_SEED,
            "test_fraction": 0.2,
            "train_seed": BUILTIN_SEED,
            "train_spec": spec.__dict__,
            "recipe": "backends.classifier.zoo",
        },
    )
    (folder / "split.json").write_text(json.dumps(split.to_json()))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--only", choices=sorted(BUILTINS), help="build just this model")
    args = parser.parse_args()
    names = [args.only] if args.only else list(BUILTINS)
    print(json.dumps({name: build(name) for name in names}, indent=1))


if __name__ == "__main__":
    main()
