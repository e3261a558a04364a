"""The headless catalogue of models and datasets (:mod:`workbench.catalog`) and the engine's use
of it: what is listed, what resolves, and a folder model that a run records by its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit import fixture_jobs as fj
from workbench.catalog import Catalog, CatalogError, KindNotDetected, detect_model_kind
from workbench.jobs import Engine, EngineError
from workbench.registry import DatasetSpec, JobSpec, ModelKindSpec, Registry
from workbench.store import Project

WAIT = 30.0
MARKER = "marker.txt"


def check_marker(path: str) -> None:
    """The fixture model kind: a folder holding ``marker.txt``."""
    if not (Path(path) / MARKER).exists():
        raise ValueError(f"no {MARKER}")


def make_registry(tmp_path: Path) -> Registry:
    reg = Registry()
    builtin = tmp_path / "builtin-model"
    builtin.mkdir(exist_ok=True)
    reg.add_model_kind(
        ModelKindSpec(
            "test.kind",
            "test",
            "Marked folder",
            "A folder with a marker.",
            check=f"{__name__}:check_marker",
            builtin=(("shipped", str(builtin)), ("shadowed", str(builtin))),
        )
    )
    reg.add_model_kind(ModelKindSpec("other.kind", "other", "Other", "Another family."))
    reg.add_dataset(DatasetSpec("toy", "test", "Toy", "A built-in toy dataset."))
    reg.add_dataset(DatasetSpec("folder", "test", "Folder", "A kind of dataset.", builtin=False))
    reg.add_dataset(DatasetSpec("big", "other", "Big", "Another family's dataset."))
    reg.add_job(
        JobSpec(
            name="test.sized_model",
            kind="experiment",
            family="test",
            title="sized with a model",
            description="fixture job sized_job, with a model",
            config=fj.WidthConfigV1,
            entry="tests.unit.fixture_jobs:sized_job",
            model_heavy=False,
            supports_resume=True,
            needs_model="test",
        )
    )
    return reg


def marked_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / MARKER).write_text("x")
    return path


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return make_registry(tmp_path)


def test_models_are_the_projects_then_the_unshadowed_built_ins(
    project: Project, registry: Registry, tmp_path: Path
) -> None:
    project.add_model("mine", "test", "test.kind", str(marked_folder(tmp_path / "m")))
    project.add_model("shadowed", "test", "test.kind", str(marked_folder(tmp_path / "s")))
    project.add_model("orphan", "test", "gone.kind", str(marked_folder(tmp_path / "o")))
    catalog = Catalog(project, registry)
    listed = [(m.name, m.builtin) for m in catalog.models("test")]
    assert listed == [("mine", False), ("shadowed", False), ("orphan", False), ("shipped", True)]
    # only kinds a plugin can load (the builder's list); no family: every model (the pane's)
    assert [m.name for m in catalog.models("test", loadable=True)] == [
        "mine",
        "shadowed",
        "shipped",
    ]
    assert [m.name for m in Catalog(None, registry).models()] == ["shipped", "shadowed"]
    assert catalog.models("other") == []


def test_datasets_are_concrete_and_kinds_of_dataset_are_listed_apart(
    project: Project, registry: Registry, tmp_path: Path
) -> None:
    project.add_dataset("mine", "test", "folder", str(tmp_path))
    project.add_dataset("toy", "test", "folder", str(tmp_path))  # a built-in name: not repeated
    catalog = Catalog(project, registry)
    assert [(d.name, d.builtin) for d in catalog.datasets()] == [
        ("toy", True),
        ("big", True),
        ("mine", False),
    ]
    assert [d.name for d in catalog.datasets("test", kinds=["folder"])] == ["mine"]
    assert [d.name for d in catalog.datasets("test", kinds=["toy"])] == ["toy"]
    assert [k.name for k in catalog.dataset_kinds()] == ["folder"]
    with pytest.raises(CatalogError, match="is a kind of dataset, not a dataset"):
        catalog.resolve_dataset("folder")
    assert catalog.resolve_dataset("mine").path == tmp_path


def test_the_model_kind_of_a_folder_is_detected_in_one_place(
    registry: Registry, tmp_path: Path
) -> None:
    folder = marked_folder(tmp_path / "model")
    assert detect_model_kind(registry, folder, family="test").name == "test.kind"
    # the first kind that takes it; "other.kind" has no check of its own
    assert detect_model_kind(registry, tmp_path, family="other").name == "other.kind"
    with pytest.raises(KindNotDetected) as info:
        detect_model_kind(registry, tmp_path, checked_only=True)
    assert info.value.reasons == [f"Marked folder: no {MARKER}"]


def test_the_engine_keeps_its_error_messages(
    project: Project, registry: Registry, tmp_path: Path
) -> None:
    engine = Engine(project, registry=registry)
    try:
        with pytest.raises(EngineError, match="neither a model of this project") as info:
            engine.submit("test.sized_model", {}, model=str(tmp_path / "nowhere"))
        assert info.value.field == "model"
        with pytest.raises(EngineError, match=r"is not a model this job can load \(Marked"):
            engine.submit("test.sized_model", {}, model=str(tmp_path))
        project.add_model("alien", "other", "other.kind", str(tmp_path))
        with pytest.raises(EngineError, match="is a other model; job test.sized_model needs"):
            engine.submit("test.sized_model", {}, model="alien")
        assert project.runs() == []
    finally:
        engine.shutdown()


def test_a_run_on_a_bare_model_folder_resumes_from_elsewhere(
    project: Project, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run records the folder's absolute path (it recorded only the folder's name, so a
    resume, from any other working folder, could not find the model)."""
    marked_folder(tmp_path / "work" / "my-model")
    monkeypatch.chdir(tmp_path / "work")
    engine = Engine(project, registry=registry)
    try:
        run_id = engine.submit("test.sized_model", {"fail_at": 2}, model="my-model")
        assert engine.wait(run_id, WAIT) == "failed"
        record = project.run(run_id)
        assert record.model == str(tmp_path / "work" / "my-model")
        monkeypatch.chdir(tmp_path)
        assert engine.resume(run_id) == run_id
        assert engine.wait(run_id, WAIT) == "completed"
    finally:
        engine.shutdown()
