"""Registers the classifier family with the workbench (light module: no torch at import)."""

from __future__ import annotations

from backends.classifier.attack_config import ATTACK_JOBS, CLASSIFIER_KINDS, HEADLINES
from backends.classifier.jobconfigs import (
    CompareConfig,
    EvaluationConfig,
    RetrainConfig,
    SetupConfig,
    TrainMLPConfig,
    UnlearnCheckpointConfig,
)
from backends.classifier.pruning_config import PRUNING_JOB
from backends.classifier.sine import SINE_JOB
from backends.common.methods import unlearn_jobs
from workbench.attack_matrix import declare_attack
from workbench.exporters import ExporterSpec
from workbench.paths import BUILTIN_MODELS
from workbench.registry import DatasetSpec, DemoSpec, JobSpec, ModelKindSpec, Registry

BUILTIN_DIGITS_MLP = BUILTIN_MODELS / "digits-mlp"
BUILTIN_DIGITS_CNN = BUILTIN_MODELS / "digits-cnn"
# what the retrain / unlearn / compare jobs would refuse (forget class, model classes and input
# size), checked at submit where the engine runs submit checks, and again when the job starts
SUBMIT_CHECK = "backends.classifier.checks:check_submit"
# dataset kinds of the official CIFAR binary folders: (name, title, short name of the check
# (checks.check_<short>_binary) and preview (data.preview_<short>))
CIFAR_KINDS = (
    ("cifar10-binary", "CIFAR-10 (binary version)", "cifar10"),
    ("cifar100-binary", "CIFAR-100 (binary version)", "cifar100"),
)


def register_unlearning(registry: Registry) -> None:
    """Retrain, one job per unlearning method, and the comparison experiment."""
    from backends.classifier.methods import METHODS

    registry.add_job(
        JobSpec(
            name="classifier.retrain",
            kind="train",
            family="classifier",
            method="retrain",
            title="Retrain without the forget set",
            description="Train the original model (unless one is given) and retrain it from "
            "scratch on the retain set: the reference every unlearning method is compared with.",
            config=RetrainConfig,
            entry="backends.classifier.jobs:run_retrain",
            supports_resume=True,
            needs_dataset="classifier",
            needs_model="classifier",
            model_optional=True,
            submit_check=SUBMIT_CHECK,
        )
    )
    for job in unlearn_jobs(
        "classifier",
        METHODS,
        entry="backends.classifier.jobs:run_unlearn",
        title="Unlearn: {title}",
        description="{description} Then every chosen attack compares the result with the model "
        "retrained without the forget set.",
        config_name="Unlearn{config}",
        config_doc="{title} on a forget set, scored against retraining ({spec}).",
        before=(SetupConfig,),
        after=(EvaluationConfig,),
        checkpoint=UnlearnCheckpointConfig,
        needs_dataset="classifier",
        needs_model="classifier",
        model_optional=True,
        submit_check=SUBMIT_CHECK,
    ):
        registry.add_job(job)
    registry.add_job(
        JobSpec(
            name="classifier.compare",
            kind="experiment",
            family="classifier",
            method="compare",
            title="Compare unlearning methods against retraining",
            description="Retrain plus every chosen method on one forget set over several seeds, "
            "each attacked with SVC-MIA, U-MIA, MIA-NN, U-LiRA and Apollo; the gap-to-retrain "
            "table (mean and std) and the plots.",
            config=CompareConfig,
            entry="backends.classifier.jobs:run_compare",
            supports_resume=True,
            needs_dataset="classifier",
            needs_model="classifier",
            model_optional=True,
            submit_check=SUBMIT_CHECK,
        )
    )


def register(registry: Registry) -> None:
    registry.add_dataset(
        DatasetSpec(
            name="digits",
            family="classifier",
            title="scikit-learn digits",
            description="1797 greyscale 8x8 images of the digits 0-9, shipped with scikit-learn.",
            info={"classes": 10, "examples": 1797, "image_shape": [8, 8]},
            preview="backends.classifier.data:preview_digits",
        )
    )
    registry.add_dataset(
        DatasetSpec(
            name="image-folder",
            family="classifier",
            title="Image folder",
            description="Your images, one sub-folder per class (resized and normalised by the "
            "job's image settings).",
            builtin=False,
            check="backends.classifier.checks:check_image_folder",
        )
    )
    for name, title, short in CIFAR_KINDS:
        registry.add_dataset(
            DatasetSpec(
                name=name,
                family="classifier",
                title=title,
                description="The official binary version (not the pickle one), as unpacked "
                "from the archive; the training files and the test file are its official split.",
                builtin=False,
                check=f"backends.classifier.checks:check_{short}_binary",
                preview=f"backends.classifier.data:preview_{short}",
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
            required_keys=("model_type", "input_dim", "hidden", "num_classes"),
            builtin=builtin,
        )
    )
    registry.add_model_kind(
        ModelKindSpec(
            name="classifier.cnn",
            family="classifier",
            title="Workbench small CNN",
            description="A torch two-block CNN saved as config.json + model.safetensors.",
            check="backends.classifier.checks:check_cnn_folder",
            required_keys=("model_type", "in_channels", "image_size", "channels", "num_classes"),
            builtin=(("digits-cnn", str(BUILTIN_DIGITS_CNN)),)
            if BUILTIN_DIGITS_CNN.exists()
            else (),
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
    for kind in ("classifier.mlp", "classifier.cnn", "classifier.hf"):
        registry.add_exporter(
            ExporterSpec(
                kind=kind,
                format="safetensors",
                entry="backends.classifier.export:export_safetensors",
                title="model.safetensors + config.json (+ image processor) with a model card",
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
            entry="backends.classifier.train_mlp:run",
            supports_resume=True,
            needs_dataset="classifier",
        )
    )
    register_unlearning(registry)
    registry.add_job(PRUNING_JOB)
    registry.add_job(SINE_JOB)
    for job in ATTACK_JOBS:  # classifier.attack.<attack>: one MIA on an unlearned model (issue 18)
        registry.add_job(job)
    declare_attack(registry, "classifier.attack.svc_mia", CLASSIFIER_KINDS, HEADLINES["svc_mia"])
    declare_attack(registry, "classifier.attack.umia", CLASSIFIER_KINDS, HEADLINES["umia"])
    declare_attack(registry, "classifier.attack.mia_nn", CLASSIFIER_KINDS, HEADLINES["mia_nn"])
    declare_attack(registry, "classifier.attack.ulira", CLASSIFIER_KINDS, HEADLINES["ulira"])
    declare_attack(registry, "classifier.attack.apollo", CLASSIFIER_KINDS, HEADLINES["apollo"])
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
