"""Classifier export (issue 17 part 5): ``workbench export-model RUN --out DIR`` writes
safetensors plus config JSON (and the image processor of a Hugging Face model) with a model card;
loaded back, the export gives the same logits.  The models are seeded random weights (a few kB)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from backends.classifier.models import (
    HFImageClassifier,
    build_model,
    load_classifier,
    save_any,
)
from workbench import cli
from workbench.store import Project


def _produced_by_a_run(project: Project, name: str, kind: str, model: torch.nn.Module) -> int:
    run_id = project.create_run(
        job="classifier.unlearn.ga",
        kind="unlearn",
        family="classifier",
        method="ga",
        config={"epochs": 2, "lr": 0.003},
        seed=5,
        model="digits-mlp",
        dataset="digits",
        status="completed",
    )
    project.add_metrics(
        [{"run_id": run_id, "step": 2, "name": "forget_acc", "value": 0.125, "time": 0.0}]
    )
    folder = project.model_dir(name)
    save_any(model, folder, {"class_names": [f"k{i}" for i in range(10)]})
    (folder / "split.json").write_text(json.dumps({"train": [0, 1], "test": [2]}))
    project.add_model(name, "classifier", kind, str(folder), source_run=run_id)
    return run_id


def _tiny_resnet() -> HFImageClassifier:
    from transformers import AutoModelForImageClassification, ResNetConfig

    config = ResNetConfig(
        num_channels=3,
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        layer_type="basic",
        num_labels=10,
    )
    return HFImageClassifier(AutoModelForImageClassification.from_config(config)).eval()


@pytest.mark.parametrize(
    # the HF one imports and builds transformers models: slow on a loaded machine
    "kind",
    ["classifier.mlp", pytest.param("classifier.hf", marks=pytest.mark.slow)],
)
def test_export_round_trip_gives_the_same_logits(
    kind: str, project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    if kind == "classifier.mlp":
        model, x = build_model("mlp", (1, 8, 8), 10, [16]).eval(), torch.rand(4, 1, 8, 8)
    else:
        model, x = _tiny_resnet(), torch.rand(4, 3, 16, 16)
    run_id = _produced_by_a_run(project, "unlearned", kind, model)
    out = tmp_path / "export"
    code = cli.main(
        ["export-model", str(run_id), "--out", str(out), "--project", str(project.root)]
    )
    assert code == 0, capsys.readouterr().err
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "README.md", "split.json"} <= files
    assert not any(p.suffix in (".bin", ".pt", ".pth") for p in out.iterdir())
    again, config = load_classifier(out)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    card = (out / "README.md").read_text()
    assert "classifier.unlearn.ga" in card and "| forget_acc | 0.125 |" in card
    assert '"lr": 0.003' in card and "| seed | 5 |" in card
    if kind == "classifier.mlp":
        assert config["class_names"][3] == "k3"
    else:
        assert json.loads((out / "config.json").read_text())["architectures"] == [
            "ResNetForImageClassification"
        ]
    # an export never overwrites: the same destination again is refused with the reason
    code = cli.main(
        ["export-model", str(run_id), "--out", str(out), "--project", str(project.root)]
    )
    assert code == 2 and "already exists and is not empty" in capsys.readouterr().err
