"""Headless facts for the details dialog, and renaming / removing models and datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.details import dataset_details, model_details, safetensors_parameters
from workbench.registry import get_registry
from workbench.store import Project


def _safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + bytes(offset))


def test_built_in_digits_show_counts_and_samples_from_the_backend() -> None:
    details = dataset_details(get_registry(), None, "digits")
    assert details.fact("Examples") == "1,797"
    assert len(details.classes) == 10 and sum(n for _, n in details.classes) == 1797
    assert dict(details.classes)["0"] == 178  # scikit-learn's digits hold 178 zeros
    assert len(details.samples) == 60 and {s.label for s in details.samples} == set("0123456789")
    first = details.samples[0].image
    assert first.shape == (8, 8) and first.dtype == np.uint8 and first.max() > 128


def test_model_facts_come_from_config_and_safetensors_headers(project: Project) -> None:
    folder = project.root / "models" / "m"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps(
            {"architectures": ["ResNetForImageClassification"], "id2label": {"0": "a", "1": "b"}}
        )
    )
    _safetensors(folder / "model.safetensors", {"w": [3, 4], "b": [4]})
    (folder / "sub").mkdir()
    _safetensors(folder / "sub" / "extra.safetensors", {"v": [5]})
    assert safetensors_parameters(folder) == {"model.safetensors": 16, "sub/extra.safetensors": 5}
    run = project.create_run(
        job="j",
        kind="train",
        family="classifier",
        method="m",
        config={},
        seed=0,
        status="completed",
    )
    project.add_model("m", "classifier", "classifier.hf", str(folder), source_run=run)
    details = model_details(get_registry(), project, "m")
    assert details.fact("Architecture") == "ResNetForImageClassification"
    assert details.fact("Classes") == "2 (a, b)"
    assert details.fact("Parameters") == "21 (21); model.safetensors 16, sub 5"
    assert details.fact("Made by") == f"run #{run} j (completed)"
    with pytest.raises(LookupError):
        model_details(get_registry(), project, "nope")


def test_a_missing_dataset_folder_is_a_note_not_an_error(project: Project, tmp_path) -> None:
    folder = tmp_path / "gone"
    (folder / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / "a" / "x.png")
    project.add_dataset("gone", "classifier", "image-folder", str(folder))
    (folder / "a" / "x.png").unlink()
    (folder / "a").rmdir()
    folder.rmdir()
    details = dataset_details(get_registry(), project, "gone")
    assert details.notes == [f"{folder} no longer exists"]


def test_rename_and_remove_entries_in_the_store(project: Project, tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    project.add_dataset("d", "classifier", "image-folder", str(outside))
    project.add_dataset("e", "classifier", "image-folder", str(outside))
    run = project.create_run(
        job="j", kind="train", family="classifier", method="m", config={}, seed=0, dataset="d"
    )
    with pytest.raises(ValueError, match="already has a dataset named 'e'"):
        project.rename_entry("datasets", "d", "e")
    assert project.rename_entry("datasets", "d", "d2") == 1
    assert project.run(run).dataset == "d2"
    # files outside the project are never deleted: refused, and nothing is removed
    with pytest.raises(ValueError, match="outside the project"):
        project.remove_entry("datasets", "d2", delete_files=True)
    assert [r["name"] for r in project.datasets()] == ["d2", "e"]
    assert project.remove_entry("datasets", "d2") == outside
    assert [r["name"] for r in project.datasets()] == ["e"] and outside.exists()
    with pytest.raises(LookupError):
        project.remove_entry("models", "none")


def test_a_renamed_or_removed_run_model_keeps_its_folder_safe(project: Project) -> None:
    from tests.unit import fixture_jobs as fj
    from workbench.jobs import Engine

    engine = Engine(project, registry=fj.make_registry())
    try:
        first = engine.submit("test.naming", {"key": "m"})
        assert engine.wait(first, 30) == "completed"
        project.rename_entry("models", "m", "best")  # models/m moves to models/best
        assert project.model("best")["path"] == "models/best"
        assert (project.root / "models" / "best" / "config.json").is_file()
        assert not (project.root / "models" / "m").exists()
        # removed with its files kept: a later run picking the same name gets its own folder
        project.remove_entry("models", "best")
        (project.root / "models" / "best" / "config.json").write_text('{"kept": true}')
        second = engine.submit("test.naming", {"key": "best"})
        assert engine.wait(second, 30) == "completed", project.run(second).status_text
        assert project.model(f"best-run{second}") is not None
        assert (project.root / "models" / "best" / "config.json").read_text() == '{"kept": true}'
    finally:
        engine.shutdown()
