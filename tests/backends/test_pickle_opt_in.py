"""Pickle opt-in (issue 17 part 6): pickle weights are refused unless the model was added with
``allow_pickle`` (``workbench add-model --allow-pickle``); even then they are read with
``torch.load(weights_only=True)``, so a pickle that needs arbitrary code is still refused.

The pickled models are the built-in MLP architecture with seeded random weights, written in the
test's folder (a few kB); nothing here asserts what a model learned.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from backends.classifier.jobs import _allows_pickle
from backends.classifier.models import MLP, load_classifier
from backends.common.safe_load import UnsafeCheckpointError, find_weights, load_state_dict
from workbench import cli
from workbench.catalog import Catalog
from workbench.config import ConfigError
from workbench.jobs import Engine, EngineError
from workbench.registry import add_model_to_project, get_registry
from workbench.store import Project


class RunsCode:
    """Unpickling this calls ``os.mkdir(marker)``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


def _pickled_mlp(folder: Path, *, seed: int = 0) -> MLP:
    """A workbench MLP folder whose only weights are a pickle (``pytorch_model.bin``)."""
    torch.manual_seed(seed)
    model = MLP(64, [8], 10).eval()
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(model.arch_config()))
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return model


def test_pickle_is_refused_without_the_switch_and_the_message_names_file_and_switch(
    tmp_path: Path,
) -> None:
    _pickled_mlp(tmp_path / "m")
    with pytest.raises(UnsafeCheckpointError) as info:
        load_classifier(tmp_path / "m")
    message = str(info.value)
    assert "pytorch_model.bin" in message and "--allow-pickle" in message
    assert "Allow pickle weights" in message  # the GUI's checkbox
    with pytest.raises(UnsafeCheckpointError, match="pytorch_model.bin.*--allow-pickle"):
        load_state_dict(tmp_path / "m" / "pytorch_model.bin")


def test_allowed_pickle_loads_with_weights_only_and_gives_the_same_model(tmp_path: Path) -> None:
    original = _pickled_mlp(tmp_path / "m", seed=3)
    assert find_weights(tmp_path / "m", allow_pickle=True) == [tmp_path / "m" / "pytorch_model.bin"]
    loaded, config = load_classifier(tmp_path / "m", allow_pickle=True)
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), original(x))
    assert config["hidden"] == [8]
    # a training script's checkpoint dictionary: the weights under "state_dict"
    torch.save({"state_dict": original.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    nested = load_state_dict(tmp_path / "ckpt.pt", allow_pickle=True)
    assert set(nested) == set(original.state_dict())


def test_a_pickle_that_needs_code_is_refused_even_when_allowed(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "payload": RunsCode(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_state_dict(path, allow_pickle=True)
    assert str(path) in str(info.value) and "weights_only=True" in str(info.value)
    assert not marker.exists()  # the payload never ran


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_model_stores_the_switch(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _pickled_mlp(tmp_path / "m")
    root = str(project.root)
    code, _, err = _cli(capsys, "add-model", "mine", str(tmp_path / "m"), "--project", root)
    assert code == 2 and "pytorch_model.bin" in err and "--allow-pickle" in err
    assert "Traceback" not in err and project.model("mine") is None
    code, out, err = _cli(
        capsys, "add-model", "mine", str(tmp_path / "m"), "--allow-pickle", "--project", root
    )
    assert code == 0, err
    assert "warning: pickle weights allowed" in out and "weights_only=True" in out
    row = project.model("mine")
    assert row is not None and row["kind"] == "classifier.mlp"
    assert row["meta"] == {"allow_pickle": True}
    # what a job is handed: the resolved model carries the switch
    ref = Catalog(project, get_registry()).resolve_model("mine", "classifier")
    assert _allows_pickle(SimpleNamespace(model=ref))
    # adding it again without the switch is refused and leaves the stored model as it was
    code, _, _ = _cli(capsys, "add-model", "mine", str(tmp_path / "m"), "--project", root)
    assert code == 2 and project.model("mine")["meta"] == {"allow_pickle": True}


@pytest.mark.slow  # a retrain job through the engine: ~5 s alone, more on a loaded machine
def test_a_job_loads_the_allowed_pickle_and_refuses_the_same_folder_as_a_bare_path(
    project: Project, tmp_path: Path
) -> None:
    _pickled_mlp(tmp_path / "m")
    add_model_to_project(project, get_registry(), "mine", str(tmp_path / "m"), allow_pickle=True)
    engine = Engine(project)
    config = {"train_epochs": 1, "device": "cpu"}
    try:
        run_id = engine.submit("classifier.retrain", config, dataset="digits", model="mine")
        assert engine.wait(run_id, 300) == "completed", project.run(run_id).error
        # the same folder given as a bare path carries no switch: refused, naming the file
        try:
            bare = engine.submit(
                "classifier.retrain", config, dataset="digits", model=str(tmp_path / "m")
            )
        except (ConfigError, EngineError) as exc:
            message = str(exc)
        else:
            assert engine.wait(bare, 300) == "failed"
            message = project.run(bare).status_text or ""
        assert "pytorch_model.bin" in message and "--allow-pickle" in message
    finally:
        engine.shutdown()
