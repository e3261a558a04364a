"""Classifier unlearning on the researcher's own model (issue 11): a model trained in the project
and a Hugging Face image classifier folder run through retrain, unlearn and compare; models that
do not fit the data, and forget classes outside the classes, are refused before anything trains.

The runs here assert that the jobs work and what they record, never what a model learned; the
ViT is built with seeded random weights in the test's folder (a few kB).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from backends.classifier.checks import check_submit
from backends.classifier.jobconfigs import SetupConfig
from backends.classifier.models import build_model, load_classifier, save_classifier
from workbench.config import ConfigError
from workbench.jobs import Engine, EngineError
from workbench.store import Project

SMALL = {
    "train_epochs": 3,
    "references": 2,
    "shadows": 4,
    "max_targets_per_side": 5,
    "attacks": ["svc_mia", "mia_nn"],
    "n_bootstrap": 50,
    "device": "cpu",
}
DIGITS = SimpleNamespace(name="digits", kind="digits", path=None, meta={"classes": 10})


@pytest.fixture
def engine(project: Project) -> Iterator[Engine]:
    eng = Engine(project)
    yield eng
    eng.shutdown()


def _vit(folder: Path, channels: int = 1, image_size: int = 8, labels: int = 10) -> Path:
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        image_size=image_size,
        patch_size=4,
        num_channels=channels,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=labels,
    )
    torch.manual_seed(0)
    ViTForImageClassification(config).save_pretrained(folder)
    return folder


def _run(engine: Engine, job: str, config: dict, model: str) -> int:
    run_id = engine.submit(job, config, seed=1, dataset="digits", model=model)
    assert engine.wait(run_id, 300) == "completed", engine.project.run(run_id).error
    return run_id


@pytest.mark.parametrize(
    "kind",
    ["project-mlp", pytest.param("hf-vit", marks=pytest.mark.slow)],  # the ViT: ~8 s, slow
)
def test_retrain_unlearn_and_compare_run_on_the_researchers_model(
    kind: str, engine: Engine, project: Project, tmp_path: Path
) -> None:
    if kind == "project-mlp":
        trained = engine.submit(
            "classifier.train_mlp",
            {"epochs": 2, "hidden": [16], "model_name": "mine"},
            dataset="digits",
        )
        assert engine.wait(trained, 300) == "completed"
        model, expected_kind = "mine", "classifier.mlp"
    else:
        model, expected_kind = str(_vit(tmp_path / "vit")), "classifier.hf"
    retrain = _run(engine, "classifier.retrain", {"train_epochs": 3, "device": "cpu"}, model)
    unlearn = _run(engine, "classifier.unlearn.ga", {**SMALL, "epochs": 2}, model)
    compare = _run(
        engine,
        "classifier.compare",
        {**SMALL, "methods": ["ga"], "seeds": 1, "method_overrides": ["ga.epochs=2"]},
        model,
    )
    assert project.run(unlearn).model == project.run(compare).model
    assert "forget_acc" in project.final_metrics(unlearn)
    assert "ga/forget_acc" in project.final_metrics(compare)
    assert "retrained_test_acc" in project.final_metrics(retrain)
    # the unlearned and retrained models are registered as the kind they are, and load back
    for name in (f"ga-run{unlearn}", f"retrained-run{retrain}"):
        row = project.model(name)
        assert row is not None and row["kind"] == expected_kind, row
        loaded, _ = load_classifier(project.abspath(row["path"]))
        assert loaded(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


# -- refusals: each checked by check_submit (what the engine runs at submit) ---------------------
def _refusal(config: dict, model: Path | None, dataset: object = DIGITS) -> ConfigError:
    typed = SetupConfig(**config)
    ref = None if model is None else SimpleNamespace(name=model.name, path=model)
    with pytest.raises(ConfigError) as err:
        check_submit(typed, ref, dataset)
    return err.value


def test_a_model_with_another_number_of_classes_is_refused(tmp_path: Path) -> None:
    save_classifier(build_model("mlp", (1, 8, 8), 5, [8]), tmp_path / "five")
    err = _refusal({}, tmp_path / "five")
    assert err.field == "model"
    assert str(err).startswith("model five predicts 5 classes but dataset digits has 10")
    err = _refusal({}, _vit(tmp_path / "vit3", labels=3))
    assert err.field == "model" and "predicts 3 classes" in str(err)


def test_a_model_for_another_input_size_is_refused(tmp_path: Path) -> None:
    save_classifier(build_model("mlp", (1, 4, 4), 10, [8]), tmp_path / "small-mlp")
    err = _refusal({}, tmp_path / "small-mlp")
    assert err.field == "model"
    assert "takes 16 inputs but dataset digits gives 64 (images 1x8x8)" in str(err)
    save_classifier(build_model("cnn", (3, 8, 8), 10, [4]), tmp_path / "rgb-cnn")
    assert "takes 3 image channels but dataset digits gives 1" in str(
        _refusal({}, tmp_path / "rgb-cnn")
    )
    err = _refusal({}, _vit(tmp_path / "vit16", image_size=16))
    assert "takes 16 image side but dataset digits gives 8" in str(err)


def test_a_forget_class_outside_the_classes_is_refused(tmp_path: Path) -> None:
    err = _refusal({"forget_class": 12}, None)
    assert err.field == "forget_class"
    assert str(err) == "forget class 12 does not exist: dataset digits has 10 classes (0-9)"
    # an image folder: its classes are its sub-folders
    for name in ("cat", "dog", "owl"):
        (tmp_path / "pets" / name).mkdir(parents=True)
    pets = SimpleNamespace(name="pets", kind="image-folder", path=tmp_path / "pets", meta={})
    err = _refusal({"forget_class": 3}, None, pets)
    assert str(err) == "forget class 3 does not exist: dataset pets has 3 classes (0-2)"
    # a sample forget set names no class: nothing to check
    check_submit(SetupConfig(forget_kind="random", forget_class=12), None, DIGITS)


def test_a_fitting_model_passes(tmp_path: Path) -> None:
    save_classifier(build_model("cnn", (1, 8, 8), 10, [4]), tmp_path / "cnn")
    check_submit(SetupConfig(), SimpleNamespace(name="cnn", path=tmp_path / "cnn"), DIGITS)
    check_submit(SetupConfig(), SimpleNamespace(name="vit", path=_vit(tmp_path / "vit")), DIGITS)
    # a convolutional Hugging Face model takes any image size, whatever its config's image_size
    (tmp_path / "convnext").mkdir()
    (tmp_path / "convnext" / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["ConvNextForImageClassification"],
                "model_type": "convnext",
                "num_channels": 1,
                "image_size": 224,
                "id2label": {str(i): str(i) for i in range(10)},
            }
        )
    )
    check_submit(SetupConfig(), SimpleNamespace(name="cnx", path=tmp_path / "convnext"), DIGITS)
    # but not another number of channels: an RGB image folder of 10 classes
    for c in range(10):
        (tmp_path / "pets" / f"class{c}").mkdir(parents=True)
    rgb = SimpleNamespace(name="pets", kind="image-folder", path=tmp_path / "pets", meta={})
    with pytest.raises(ConfigError, match="takes 1 image channels but dataset pets gives 3"):
        check_submit(SetupConfig(), SimpleNamespace(name="cnx", path=tmp_path / "convnext"), rgb)


def test_the_engine_refuses_a_model_that_does_not_fit_before_anything_trains(
    engine: Engine, project: Project, tmp_path: Path
) -> None:
    """At submit where the engine runs submit checks; otherwise the run fails at its start,
    with the same message and nothing trained."""
    save_classifier(build_model("mlp", (1, 4, 4), 10, [8]), tmp_path / "small-mlp")
    try:
        run_id = engine.submit(
            "classifier.unlearn.ga", SMALL, dataset="digits", model=str(tmp_path / "small-mlp")
        )
    except (ConfigError, EngineError) as exc:
        message = str(exc)
    else:
        assert engine.wait(run_id, 300) == "failed"
        message = project.run(run_id).status_text
        assert not (project.root / "cache").exists()  # refused before anything trained
    assert "takes 16 inputs but dataset digits gives 64" in message
