"""Build the classifier family's built-in models: ``python -m backends.classifier.zoo build``.

The built-in ``digits-mlp`` is trained here with the same loop as the ``classifier.train_mlp`` job and
written to ``resources/models/digits-mlp`` (about 40 KB), from where every project can use it.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from backends.classifier.configs import TrainMLPConfig
from backends.classifier.models import save_mlp
from backends.classifier.plugin import BUILTIN_DIGITS_MLP
from backends.classifier.train import accuracy, prepare, train_epochs

BUILTIN_CONFIG = TrainMLPConfig(hidden=[128], epochs=40, device="cpu")
BUILTIN_SEED = 0


def build_digits_mlp(out=BUILTIN_DIGITS_MLP) -> dict[str, float]:
    torch.set_num_threads(1)
    cfg = BUILTIN_CONFIG
    data, split, tensors, model, optimizer = prepare(
        cfg, "digits", BUILTIN_SEED, torch.device("cpu")
    )
    t0 = time.perf_counter()
    train_epochs(
        model,
        optimizer,
        tensors,
        start_epoch=0,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=BUILTIN_SEED,
    )
    result = {
        "train_acc": accuracy(model, tensors[0], tensors[1]),
        "test_acc": accuracy(model, tensors[2], tensors[3]),
        "seconds": time.perf_counter() - t0,
    }
    save_mlp(
        model,
        out,
        {
            "dataset": "digits",
            "image_shape": [8, 8],
            "class_names": data.class_names,
            "split_seed": cfg.split_seed,
            "test_fraction": cfg.test_fraction,
            "train_seed": BUILTIN_SEED,
            "recipe": "backends.classifier.zoo",
        },
    )
    (out / "split.json").write_text(json.dumps(split.to_json()))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["build"])
    parser.parse_args()
    print(json.dumps(build_digits_mlp(), indent=1))


if __name__ == "__main__":
    main()
