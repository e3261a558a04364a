"""The export dispatch (workbench/exporters.py): a table keyed by model kind and format that each
family fills through its plugin; the model a run produced is found, the destination checked, the
exporter called with the run's facts, and a model card states method, config, seed and metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.exporters import ExportError, ExporterSpec, ExportSource, export_model, model_card
from workbench.registry import Registry, RegistryError
from workbench.store import Project

CALLS: list[ExportSource] = []


def toy_export(source: ExportSource) -> Path:
    """A toy exporter: copies config.json and writes the card."""
    CALLS.append(source)
    source.out.mkdir(parents=True, exist_ok=True)
    (source.out / "config.json").write_text((source.model_path / "config.json").read_text())
    (source.out / "README.md").write_text(model_card(source, library="toy", what="A toy."))
    return source.out


def _project_with_run(tmp_path: Path) -> tuple[Project, int]:
    project = Project.create(tmp_path / "p")
    run_id = project.create_run(
        job="toy.unlearn.shrink",
        kind="unlearn",
        family="toy",
        method="shrink",
        config={"lr": 0.5, "epochs": 3},
        seed=7,
        model="base",
        status="completed",
    )
    project.add_metrics(
        [
            {"run_id": run_id, "step": 0, "name": "forget_acc", "value": 0.9, "time": 0.0},
            {"run_id": run_id, "step": 1, "name": "forget_acc", "value": 0.25, "time": 1.0},
        ]
    )
    folder = project.model_dir("shrunk")
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"width": 3}')
    project.add_model("shrunk", "toy", "toy.kind", str(folder), source_run=run_id)
    return project, run_id


def _registry() -> Registry:
    registry = Registry()
    registry.add_exporter(
        ExporterSpec("toy.kind", "plain", "tests.unit.test_exporters:toy_export", "plain")
    )
    registry.add_exporter(
        ExporterSpec("toy.kind", "other", "tests.unit.test_exporters:toy_export", "other")
    )
    return registry


def test_export_calls_the_kinds_default_exporter_with_the_runs_facts(tmp_path: Path) -> None:
    project, run_id = _project_with_run(tmp_path)
    CALLS.clear()
    out = export_model(project, _registry(), tmp_path / "out", run_id=run_id)
    assert out == (tmp_path / "out").resolve()
    (source,) = CALLS
    assert source.model_name == "shrunk" and source.kind == "toy.kind"
    assert source.run is not None and source.run["seed"] == 7
    assert source.metrics == {"forget_acc": 0.25}  # the last recorded value
    card = (out / "README.md").read_text()
    assert "| method | shrink |" in card and "| seed | 7 |" in card
    assert '"lr": 0.5' in card and "| forget_acc | 0.25 |" in card
    assert (out / "config.json").read_text() == '{"width": 3}'


def test_export_refusals_name_what_to_do(tmp_path: Path) -> None:
    project, run_id = _project_with_run(tmp_path)
    registry = _registry()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(ExportError, match="not empty"):
        export_model(project, registry, tmp_path / "full", run_id=run_id)
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    with pytest.raises(ExportError, match="there is no format 'onnx'"):
        export_model(project, registry, tmp_path / "o1", run_id=run_id, format="onnx")
    with pytest.raises(ExportError, match="produced no model"):
        export_model(project, registry, tmp_path / "o2", run_id=run_id + 1)
    with pytest.raises(ExportError, match="cannot be exported yet"):
        export_model(project, Registry(), tmp_path / "o3", run_id=run_id)
    with pytest.raises(RegistryError, match="registered twice"):
        registry.add_exporter(ExporterSpec("toy.kind", "plain", "x:y", "again"))
