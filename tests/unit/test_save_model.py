"""JobContext.save_model: the one way every family saves a model.  A clash gets a unique name, a
failing write leaves neither a folder nor a registered model, and the log says where it went."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.config import param
from workbench.jobs import Engine, JobContext
from workbench.registry import JobSpec, Registry
from workbench.store import Project


@dataclass
class SaveConfig:
    fail: bool = param(False, "Raise inside write() after the first file.")


def save_job(ctx: JobContext) -> dict[str, float]:
    def write(folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        if ctx.config.fail:
            raise OSError("disk full (simulated)")

    ctx.save_model("mine", write, kind="test.kind", meta={"note": "x"})
    return {}


def test_save_model_names_registers_and_cleans_up(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "p")
    registry = Registry()
    registry.add_job(
        JobSpec(
            name="test.save",
            kind="train",
            family="test",
            title="save",
            description="saves a model",
            config=SaveConfig,
            entry="tests.unit.test_save_model:save_job",
            model_heavy=False,
        )
    )
    engine = Engine(project, registry=registry)
    try:
        first = engine.submit("test.save", {})
        engine.wait(first, 60)
        second = engine.submit("test.save", {})
        engine.wait(second, 60)
        broken = engine.submit("test.save", {"fail": True})
        engine.wait(broken, 60)
    finally:
        engine.shutdown()
    assert [project.run(r).status for r in (first, second, broken)] == [
        "completed",
        "completed",
        "failed",
    ]
    names = [m["name"] for m in project.models() if not m["builtin"]]
    assert names == ["mine", f"mine-run{second}"]  # the second run never overwrites the first
    assert project.model("mine")["kind"] == "test.kind"
    assert project.model("mine")["source_run"] == first
    assert (project.root / "models" / "mine" / "config.json").exists()
    assert not (project.root / "models" / f"mine-run{broken}").exists()  # no half folder
    assert "disk full" in (project.run(broken).error or "")
    logs = [entry["message"] for entry in project.logs(first)]
    assert any(m.startswith("saved model mine to ") for m in logs)
