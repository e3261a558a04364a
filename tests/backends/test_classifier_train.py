"""The real ``classifier.train_mlp`` job through the engine: metrics, model folder, resume, checks.

Everything runs on the CPU with one torch thread (``OMP_NUM_THREADS=1`` from the conftest) on
scikit-learn's digits, which trains in well under a second per run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from backends.classifier.checks import check_mlp_folder
from backends.classifier.data import load_digits
from backends.classifier.models import load_mlp
from backends.classifier.train_mlp import accuracy
from backends.common.safe_load import UnsafeCheckpointError, load_state_dict
from workbench.jobs import Engine, EngineError, Event
from workbench.registry import get_registry
from workbench.store import Project

JOB = "classifier.train_mlp"
WAIT = 120.0
SMALL = {"hidden": [32], "epochs": 6, "batch_size": 64, "device": "cpu"}


def _engine(project: Project) -> Engine:
    return Engine(project, registry=get_registry(), max_workers=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, int]]:
    """One 20-epoch run shared by the tests that only read its results."""
    torch.set_num_threads(1)
    project = Project.create(tmp_path_factory.mktemp("trained") / "project")
    engine = _engine(project)
    run_id = engine.submit(
        JOB,
        {"epochs": 20, "hidden": "64", "model_name": "digits-20", "device": "cpu"},
        seed=0,
        dataset="digits",
    )
    status = engine.wait(run_id, WAIT)
    engine.shutdown()
    assert status == "completed", project.run(run_id).error
    yield project, run_id
    project.close()


def test_run_completes_with_per_epoch_metrics(trained: tuple[Project, int]) -> None:
    project, run_id = trained
    record = project.run(run_id)
    assert record.status == "completed" and record.error is None
    assert record.device == "cpu" and record.progress == 1.0
    assert record.config["hidden"] == [64] and record.config["epochs"] == 20
    series = project.metric_series(run_id)
    for name in ("train_loss", "train_acc", "test_acc"):
        assert series[name][0] == list(range(1, 21)), name
    # what the freshly trained weights reach is not asserted (that differs between machines);
    # that the recorded numbers are the model's is (here and in the next test)
    final = project.final_metrics(run_id)
    assert final["train_acc"] == series["train_acc"][1][-1]
    assert final["test_acc"] == series["test_acc"][1][-1]


def test_model_is_registered_and_loads_back_with_the_same_accuracy(
    trained: tuple[Project, int],
) -> None:
    project, run_id = trained
    model_row = project.model("digits-20")
    assert model_row is not None
    assert model_row["source_run"] == run_id and model_row["kind"] == "classifier.mlp"
    assert model_row["path"] == "models/digits-20"
    folder = project.abspath(model_row["path"])
    check_mlp_folder(str(folder))
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "split.json",
    ]

    model, config = load_mlp(folder)
    assert config["hidden"] == [64] and config["train_seed"] == 0
    split = json.loads((folder / "split.json").read_text())
    data = load_digits()
    test_idx = np.array(split["test"])
    acc = accuracy(model, torch.from_numpy(data.x[test_idx]), torch.from_numpy(data.y[test_idx]))
    assert acc == pytest.approx(project.final_metrics(run_id)["test_acc"], abs=1e-6)
    assert acc == pytest.approx(model_row["meta"]["test_acc"], abs=1e-6)
    train_idx = np.array(split["train"])
    train_acc = accuracy(
        model, torch.from_numpy(data.x[train_idx]), torch.from_numpy(data.y[train_idx])
    )
    assert train_acc == pytest.approx(project.final_metrics(run_id)["train_acc"], abs=1e-6)
    # the split the model records is the one it trained and was scored on: disjoint, complete
    assert not set(split["train"]) & set(split["test"])
    assert len(split["train"]) + len(split["test"]) == len(data.y)


def test_checkpoint_is_safetensors(trained: tuple[Project, int]) -> None:
    project, run_id = trained
    record = project.run(run_id)
    assert record.checkpoint is not None and record.checkpoint.endswith(".safetensors")
    assert record.checkpoint_step == 20
    path = project.abspath(record.checkpoint)
    assert path.is_file()
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["epoch"] == "20"
        assert any(k.startswith("model.") for k in f.keys())  # noqa: SIM118
        assert any(k.startswith("optim.") for k in f.keys())  # noqa: SIM118
    assert not list(path.parent.glob("*.bin")) and not list(path.parent.glob("*.pt"))


def test_artifacts_are_written(trained: tuple[Project, int]) -> None:
    project, run_id = trained
    kinds = {a["name"]: a["kind"] for a in project.artifacts(run_id)}
    assert kinds["training curves"] == "curves"
    assert kinds["confusion matrix"] == "heatmap"
    assert kinds["per-class accuracy"] == "table"
    assert kinds["summary"] == "text"
    for art in project.artifacts(run_id):
        assert project.abspath(art["path"]).exists()


def _weights(project: Project, run_id: int) -> dict[str, torch.Tensor]:
    name = next(m["name"] for m in project.models() if m["source_run"] == run_id)
    return load_state_dict(project.abspath(project.model(name)["path"]) / "model.safetensors")


def test_cancel_then_resume_equals_an_uninterrupted_run(project: Project) -> None:
    engine = _engine(project)
    try:
        fired: list[int] = []

        def cancel_at_epoch_3(event: Event) -> None:
            if event.type == "metric" and event.data["step"] == 3 and not fired:
                fired.append(event.run_id)
                engine.cancel(event.run_id)

        engine.add_listener(cancel_at_epoch_3)
        interrupted = engine.submit(JOB, SMALL, seed=5, dataset="digits")
        assert engine.wait(interrupted, WAIT) == "cancelled"
        stopped = project.run(interrupted)
        assert stopped.checkpoint_step == 3
        assert project.metric_series(interrupted)["test_acc"][0] == [1, 2, 3]
        assert project.models() == []  # it never got to save a model

        engine.resume(interrupted)
        assert engine.wait(interrupted, WAIT) == "completed", project.run(interrupted).error
        assert project.metric_series(interrupted)["test_acc"][0] == [1, 2, 3, 4, 5, 6]

        straight = engine.submit(JOB, SMALL, seed=5, dataset="digits")
        assert engine.wait(straight, WAIT) == "completed"
    finally:
        engine.shutdown()

    resumed_w, straight_w = _weights(project, interrupted), _weights(project, straight)
    assert resumed_w.keys() == straight_w.keys()
    for key in straight_w:
        assert torch.equal(resumed_w[key], straight_w[key]), key
    a, b = project.metric_series(interrupted), project.metric_series(straight)
    assert a["test_acc"] == b["test_acc"] and a["train_loss"] == b["train_loss"]


def test_check_mlp_folder_messages(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ValueError, match=f"{missing} does not exist"):
        check_mlp_folder(str(missing))

    no_config = tmp_path / "no-config"
    no_config.mkdir()
    (no_config / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="has no config.json, so it is not a model folder"):
        check_mlp_folder(str(no_config))

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps({"model_type": "workbench-mlp"}))
    (pickled / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(UnsafeCheckpointError) as info:
        check_mlp_folder(str(pickled))
    message = str(info.value)
    assert "only pickle weights (pytorch_model.bin)" in message
    assert "arbitrary code" in message and "safetensors" in message

    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="is a 'bert' model, not a workbench MLP"):
        check_mlp_folder(str(other))

    a_file = tmp_path / "weights.safetensors"
    a_file.write_bytes(b"")
    with pytest.raises(ValueError, match="is a file; a model is a folder"):
        check_mlp_folder(str(a_file))

    with pytest.raises(UnsafeCheckpointError, match="refusing to unpickle"):
        load_state_dict(pickled / "pytorch_model.bin")


def test_engine_refuses_a_folder_that_is_not_a_model(project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "workbench-mlp"}))
    (folder / "pytorch_model.bin").write_bytes(b"x")
    engine = _engine(project)
    try:
        with pytest.raises(EngineError) as info:
            engine.submit(JOB, SMALL, dataset="digits", model=str(folder))
    finally:
        engine.shutdown()
    assert str(folder) in str(info.value) and "pickle" in str(info.value)
    assert project.runs() == []


def test_empty_hidden_is_refused_at_submit_readably(project: Project) -> None:
    """The config declares 1..16 hidden widths (issue 10), so an empty list never starts a run."""
    from workbench.config import ConfigError

    engine = _engine(project)
    try:
        with pytest.raises(ConfigError, match="'hidden': 0 items"):
            engine.submit(JOB, {**SMALL, "hidden": []}, dataset="digits")
    finally:
        engine.shutdown()
    assert project.runs() == [] and project.models() == []


def test_training_needs_a_dataset(project: Project) -> None:
    engine = _engine(project)
    try:
        with pytest.raises(EngineError, match="needs a dataset"):
            engine.submit(JOB, SMALL)
        with pytest.raises(EngineError, match="known datasets: .*digits"):
            engine.submit(JOB, SMALL, dataset="cifar")
    finally:
        engine.shutdown()
