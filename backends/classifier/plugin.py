"""Registers the classifier family with the workbench (light module: no torch at import)."""

from __future__ import annotations

from backends.classifier.configs import TrainMLPConfig
from workbench.paths import BUILTIN_MODELS
from workbench.registry import DatasetSpec, DemoSpec, JobSpec, ModelKindSpec, Registry

BUILTIN_DIGITS_MLP = BUILTIN_MODELS / "digits-mlp"


def register(registry: Registry) -> None:
    registry.add_dataset(
        DatasetSpec(
            name="digits",
            family="classifier",
            title="scikit-learn digits",
            description="1797 greyscale 8x8 images of the digits 0-9, shipped with scikit-learn.",
            info={"classes": 10, "examples": 1797, "image_shape": [8, 8]},
        )
    )
    builtin = (("digits-mlp", str(BUILTIN_DIGITS_MLP)),) if BUILTIN_DIGITS_MLP.exists() else ()
    registry.add_model_kind(
        ModelKindSpec(
            name="classifier.mlp",
            family="classifier",
            title="Workbench MLP",
            description="A torch MLP saved as config.json + model.safetensors.",
            check="backends.classifier.checks:check_mlp_folder",
            builtin=builtin,
        )
    )
    registry.add_model_kind(
        ModelKindSpec(
            name="classifier.hf",
            family="classifier",
            title="Hugging Face image classifier",
            description="A local AutoModelForImageClassification folder (ResNet, ViT, ...).",
            check="backends.classifier.checks:check_hf_image_classifier",
        )
    )
    registry.add_job(
        JobSpec(
            name="classifier.train_mlp",
            kind="train",
            family="classifier",
            method="train",
            title="Train an MLP on digits",
            description="Train a multilayer perceptron classifier from scratch, with per-epoch "
            "metrics and resumable checkpoints; the result becomes a project model.",
            config=TrainMLPConfig,
            entry="backends.classifier.train:run",
            supports_resume=True,
            needs_dataset="classifier",
        )
    )
    registry.add_demo(
        DemoSpec(
            family="classifier",
            title="Train the digits MLP",
            runs=(
                {
                    "job": "classifier.train_mlp",
                    "seed": 0,
                    "dataset": "digits",
                    "model": None,
                    "config": {"epochs": 30, "model_name": "demo-digits-mlp"},
                },
            ),
        )
    )
