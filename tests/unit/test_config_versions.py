"""Config versions and migrations: a field renamed in version 2 of a job's config.

The "old app" is a registry whose ``test.sized`` config is version 1 (``width``); the "new app" has
version 2 (``size``) and a migration hook.  Runs and run files made by the old app rerun and
resume under the new one; a file from a newer app than this one is refused with a clear error.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from tests.unit import fixture_jobs as fj
from workbench import cli
from workbench.config import ConfigError
from workbench.jobs import Engine
from workbench.registry import Registry
from workbench.request import RunRequest
from workbench.store import Project

WAIT = 30.0


def use_app(monkeypatch: pytest.MonkeyPatch, version: int) -> Registry:
    """Make the CLI run as the app whose ``test.sized`` config is ``version``."""
    reg = fj.sized_registry(version)
    monkeypatch.setattr(cli, "_registry", lambda: reg)
    monkeypatch.setattr(cli, "_engine", lambda p: Engine(p, registry=reg))
    return reg


def old_run(project: Project, **config: int) -> int:
    """A run made by the old app (version 1), waited for."""
    engine = Engine(project, registry=fj.sized_registry(1))
    try:
        run_id = engine.submit("test.sized", config)
        engine.wait(run_id, WAIT)
    finally:
        engine.shutdown()
    return run_id


def final(project: Project, run_id: int, name: str) -> float:
    return project.final_metrics(run_id)[name]


def test_a_run_records_its_config_version_and_export_writes_it(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = old_run(project, width=7)
    assert project.run(run_id).versions["config_version"] == "1"
    use_app(monkeypatch, 2)
    out = tmp_path / "run.yaml"
    assert cli.main(["export", str(run_id), "--project", str(project.root), "-o", str(out)]) == 0
    data = yaml.safe_load(out.read_text())
    assert data["config_version"] == 1 and data["config"]["width"] == 7


def test_an_exported_v1_file_reruns_under_the_v2_app(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = old_run(project, width=7)
    path = RunRequest.from_record(project.run(run_id)).to_file(tmp_path / "run.json")
    use_app(monkeypatch, 2)
    assert cli.main(["run", str(path), "--project", str(project.root), "--quiet"]) == 0
    rerun = project.runs()[-1]
    assert rerun.id != run_id and rerun.status == "completed"
    assert rerun.config["size"] == 7 and "width" not in rerun.config
    assert rerun.versions["config_version"] == "2"
    assert final(project, rerun.id, "size") == 7.0
    # the old run's record is untouched
    assert project.run(run_id).config["width"] == 7


def test_a_file_without_a_version_is_version_1(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("job: test.sized\nconfig: {width: 5}\n")
    assert RunRequest.from_file(path).config_version == 1
    use_app(monkeypatch, 2)
    assert cli.main(["run", str(path), "--project", str(project.root), "--quiet"]) == 0
    assert project.runs()[-1].config["size"] == 5


def test_a_v1_run_resumes_under_the_v2_app(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = old_run(project, width=9, fail_at=2)
    assert project.run(run_id).status == "failed" and project.run(run_id).checkpoint_step == 2
    use_app(monkeypatch, 2)
    assert cli.main(["resume", str(run_id), "--project", str(project.root)]) == 0
    record = project.run(run_id)
    assert record.status == "completed" and final(project, run_id, "size") == 9.0
    logs = [row["message"] for row in project.logs(run_id)]
    assert any("migrated to version 2" in line for line in logs)


@pytest.mark.parametrize("how", ["run", "resume"])
def test_a_config_from_a_newer_app_is_refused_clearly(
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    if how == "run":
        path = tmp_path / "v3.json"
        path.write_text(json.dumps({"job": "test.sized", "config": {"z": 1}, "config_version": 3}))
        args = ["run", str(path)]
    else:  # a run a newer app recorded, resumed here
        run_id = old_run(project, fail_at=1)
        project.update_run(run_id, versions={"config_version": "3"})
        args = ["resume", str(run_id)]
    use_app(monkeypatch, 2)
    before = len(project.runs())
    quiet = ["--quiet"] if how == "run" else []
    assert cli.main([*args, "--project", str(project.root), *quiet]) == 2
    err = capsys.readouterr().err
    assert "made by a newer version of the workbench" in err and "update" in err
    assert "Traceback" not in err and len(project.runs()) == before


def test_a_newer_config_in_the_builder_path_is_a_config_error() -> None:
    spec = fj.sized_registry(2).job("test.sized")
    assert spec.migrate_config({"width": 4}, 1) == {"size": 4}
    assert spec.migrate_config({"size": 4}, None) == {"size": 4}  # current: untouched
    with pytest.raises(ConfigError, match="newer version of the workbench"):
        spec.migrate_config({"size": 4}, 3)
    old = fj.sized_registry(1).job("test.sized")
    assert old.config_version == 1 and spec.config_version == 2


def test_an_old_config_without_a_migration_hook_says_so() -> None:
    spec = dataclasses.replace(fj.sized_registry(2).job("test.sized"), migrate=None)
    with pytest.raises(ConfigError, match="has no migration"):
        spec.migrate_config({"width": 4}, 1)
