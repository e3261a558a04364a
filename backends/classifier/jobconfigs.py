"""Typed configs of the classifier family's jobs (light: no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from backends.classifier.methods import METHODS
from backends.common import fields
from backends.common.devices import DEVICE_CHOICES
from workbench.config import param

# the compare job offers every catalogued method
METHOD_CHOICES = tuple(METHODS)

MAX_WIDTH = 16_384  # per hidden layer / conv block: [1e9] would ask for hundreds of GB
MAX_LAYERS = 16
MAX_INDEX_FILE_BYTES = 64 * 1024 * 1024  # index lists of a few million examples


@dataclass
class TrainMLPConfig:
    """Train a multilayer perceptron on scikit-learn's 8x8 digits (the family's first model)."""

    DATASET_KINDS: ClassVar[tuple[str, ...]] = ("digits",)  # the job reads no image folders

    hidden: list[int] = param(
        [128],
        "Hidden layer widths, comma separated (e.g. 128 or 256,128).",
        range=(1, MAX_WIDTH),
        length=(1, MAX_LAYERS),
    )
    epochs: int = param(30, "Passes over the training split.", range=(1, 100_000))
    batch_size: int = param(64, "Examples per optimisation step.", range=(1, 4096))
    lr: float = param(1e-3, "Learning rate.", range=(1e-7, 10.0))
    weight_decay: float = param(
        0.0, "L2 weight decay (0 keeps the model leaky for attacks).", range=(0.0, 1.0)
    )
    optimizer: str = param("adam", "Optimiser.", choices=("adam", "sgd"))
    momentum: float = param(
        0.9, "SGD momentum (ignored by Adam).", range=(0.0, 0.999), advanced=True
    )
    test_fraction: float = param(
        0.2, "Share of the data held out as the test split.", range=(0.05, 0.9)
    )
    split_seed: int = param(
        0, "Seed of the train/test split (kept apart from the training seed).", range=(0, 2**31 - 1)
    )
    checkpoint_every: int = fields.checkpoint_every(
        1,
        "Save a resumable checkpoint every N epochs.",
        high=100_000,
    )
    model_name: str = param(
        "", "Name of the trained model in the project (empty: digits-mlp-run<id>).", name=True
    )
    device: str = param("auto", "Where to train.", choices=DEVICE_CHOICES)


@dataclass
class SetupConfig:
    """The data, split, forget set and (when no model is given) the original model's recipe.

    The defaults make a deliberately *leaky* target on digits (a 40% training pool trained long with
    no weight decay) so that membership attacks have a signal to find; the shadow pool (40%) is
    the attacker's population for shadow and reference models.
    """

    forget_kind: str = param("class", "What to forget.", choices=("class", "random", "indices"))
    forget_class: int = param(3, "The class to forget (forget_kind = class).", range=(0, 100_000))
    forget_fraction: float = param(
        0.1, "Share of the training split to forget (forget_kind = random).", range=(0.001, 0.9)
    )
    forget_indices_file: str = param(
        "",
        "JSON list of dataset indices to forget (forget_kind = indices).",
        file="json",
        max_bytes=MAX_INDEX_FILE_BYTES,
    )
    test_fraction: float = param(0.2, "Share of the data held out for testing.", range=(0.05, 0.9))
    shadow_fraction: float = param(
        0.4, "Share of the data kept as the attacker's shadow pool.", range=(0.0, 0.9)
    )
    split_seed: int = param(0, "Seed of the train/test/shadow split.", range=(0, 2**31 - 1))
    split_file: str = param(
        "",
        "JSON file of explicit train/test/shadow index lists (overrides the fractions).",
        file="json",
        max_bytes=MAX_INDEX_FILE_BYTES,
    )
    official_split: bool = param(
        True,
        "Datasets that ship a train/test split (CIFAR): train on its training files; its test "
        "file gives the test split and the shadow pool (split_file, or a model's recorded split, "
        "takes precedence).",
        advanced=True,
    )
    cifar100_labels: str = param(
        "fine",
        "CIFAR-100's label set: fine (100 classes) or coarse (20 superclasses).",
        choices=("fine", "coarse"),
        advanced=True,
    )
    arch: str = param(
        "mlp",
        "Original model architecture (when no model is given): the MLP, the small CNN, or "
        "ResNet-18 (transformers' ResNetConfig, ImageNet stem; see docs, GPU).",
        choices=("mlp", "cnn", "resnet18"),
    )
    widths: list[int] = param(
        [128],
        "Hidden widths (MLP) or conv channels (CNN), comma separated (ResNet-18: unused).",
        range=(1, MAX_WIDTH),
        length=(1, MAX_LAYERS),
    )
    train_epochs: int = param(
        150, "Epochs to train the original and retrained models.", range=(1, 100_000)
    )
    train_lr: float = param(
        1e-3, "Learning rate of the original and retrained models.", range=(1e-7, 10.0)
    )
    train_batch_size: int = param(
        64, "Batch size of the original and retrained models.", range=(1, 4096)
    )
    train_weight_decay: float = param(
        0.0, "Weight decay of the original and retrained models (0: leaky).", range=(0.0, 1.0)
    )
    image_size: int = param(
        32, "Image side for image-folder datasets.", range=(4, 1024), advanced=True
    )
    grayscale: bool = param(False, "Read image-folder datasets as greyscale.", advanced=True)
    device: str = param("auto", "Where to run.", choices=DEVICE_CHOICES)
    dtype: str = param(
        "float32",
        "Floating-point type of the models.",
        choices=("float32", "float64"),
        advanced=True,
    )


@dataclass
class RetrainConfig(SetupConfig):
    """Retrain from scratch on the retain set: the reference every method is compared with."""

    model_name: str = param(
        "", "Name of the retrained model in the project (empty: automatic).", name=True
    )


ATTACK_CHOICES = ("svc_mia", "umia", "mia_nn", "ulira", "apollo")


@dataclass
class EvaluationConfig:
    """Which attacks score an unlearned model, and their budgets (see docs/methods)."""

    attacks: list[str] = param(
        list(ATTACK_CHOICES),
        "Attacks to run: svc_mia, umia, mia_nn, ulira, apollo.",
        choices=ATTACK_CHOICES,
    )
    references: int = param(8, "Retrained references for MIA-NN (R).", range=(2, 256))
    shadows: int = param(16, "Shadow models for U-LiRA and Apollo (K).", range=(4, 512))
    max_targets_per_side: int = param(
        60,
        "Attacked examples per side (unlearned / never trained) for U-LiRA and Apollo.",
        range=(4, 100_000),
    )
    apollo_mode: str = param(
        "online",
        "Apollo with unlearned shadows against retrained ones (online) or the retrained ones "
        "only (offline).  Sample unlearning only: under class unlearning Apollo does not apply "
        "and the run says why.",
        choices=("online", "offline"),
    )
    ulira_out: str = param(
        "pipeline",
        "U-LiRA's 'out' shadows: pipeline (never trained on the target, then unlearned their "
        "own forget examples like the attacked model; default) or plain (never trained on it, "
        "not unlearned: Hayes et al. and the official Apollo code).",
        choices=("pipeline", "plain"),
    )
    floor_seed_offset: int = param(
        1000,
        "MIA-NN noise floor: the retrain row is scored against a second model retrained "
        "without the forget set with seed + this offset.",
        range=(1, 2**20),
        advanced=True,
    )
    n_bootstrap: int = param(
        1000,
        "Bootstrap replicates of the 95% intervals of AUCs and gaps.",
        range=(10, 100_000),
        advanced=True,
    )


@dataclass
class CompareConfig(EvaluationConfig, SetupConfig):
    """Retrain plus every chosen method on one forget set over several seeds, each attacked."""

    methods: list[str] = param(
        list(METHOD_CHOICES),
        "Unlearning methods to compare (each with its default config).",
        choices=METHOD_CHOICES,
    )
    seeds: int = param(3, "Number of seeds (the run's seed, seed+1, ...).", range=(1, 100))
    method_overrides: list[str] = param(
        [],
        "Method settings that differ from their defaults, as method.field=value "
        "(e.g. ga.lr=0.003), comma separated.",
    )


@dataclass
class UnlearnCheckpointConfig:
    """How often an unlearning run saves a checkpoint it can resume from (Engine.resume)."""

    checkpoint_every: int = fields.checkpoint_every(
        1,
        "Save a resumable checkpoint of the unlearning every N epochs (and after the last).",
        high=100_000,
    )
