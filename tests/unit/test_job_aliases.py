"""Former job names keep working: ``diffusion.erase.<method>`` became ``diffusion.unlearn.<method>``
(issue 12), and a project whose runs record the old name still shows, exports and reruns them."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from tests.unit.fixture_jobs import StepsConfig
from workbench import cli
from workbench.config import to_dict
from workbench.jobs import Engine
from workbench.registry import JobSpec, Registry, RegistryError, get_registry
from workbench.request import RunRequest
from workbench.store import Project


class HeldExecutor:
    """Takes the engine's runs and never starts them: submitting is what is tested, not training."""

    def __init__(self) -> None:
        self.held: list[Callable[[], Any]] = []

    def submit(self, fn: Callable[[], Any], /) -> Future[Any]:
        self.held.append(fn)
        return Future()


def _spec(name: str, aliases: tuple[str, ...] = ()) -> JobSpec:
    return JobSpec(
        name=name,
        kind="experiment",
        family="test",
        title=name,
        description="",
        config=StepsConfig,
        entry="tests.unit.fixture_jobs:steps_job",
        aliases=aliases,
    )


def test_an_alias_resolves_to_its_job_and_listings_show_the_canonical_name() -> None:
    registry = Registry()
    spec = registry.add_job(_spec("fam.unlearn.x", aliases=("fam.erase.x",)))
    assert registry.job("fam.erase.x") is spec
    assert registry.find_job("fam.erase.x") is spec and registry.find_job("fam.nope") is None
    assert registry.canonical_job("fam.erase.x") == "fam.unlearn.x"
    listed = registry.to_json()["jobs"]
    assert [j["name"] for j in listed] == ["fam.unlearn.x"]
    assert listed[0]["aliases"] == ["fam.erase.x"]
    with pytest.raises(RegistryError, match="unknown job 'fam.nope'; known jobs: fam.unlearn.x"):
        registry.job("fam.nope")


def test_an_alias_cannot_shadow_a_job_or_another_alias() -> None:
    registry = Registry()
    registry.add_job(_spec("fam.a", aliases=("fam.old",)))
    with pytest.raises(RegistryError, match="'fam.a' is registered twice"):
        registry.add_job(_spec("fam.b", aliases=("fam.a",)))
    with pytest.raises(RegistryError, match="'fam.old' is registered twice"):
        registry.add_job(_spec("fam.old"))
    assert set(registry.jobs) == {"fam.a"} and registry.aliases == {"fam.old": "fam.a"}


def test_every_former_diffusion_erase_name_is_an_alias() -> None:
    registry = get_registry()
    for method in ("esd", "uce", "ca", "salun"):
        assert registry.job(f"diffusion.erase.{method}").name == f"diffusion.unlearn.{method}"
        assert f"diffusion.erase.{method}" not in registry.jobs


def test_a_run_recorded_under_the_old_name_shows_exports_and_reruns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = get_registry()
    spec = registry.job("diffusion.erase.esd")
    config = {**to_dict(spec.validate({})), "iterations": 7}
    project = Project.create(tmp_path / "old")
    try:
        old_id = project.create_run(
            job="diffusion.erase.esd",  # what a project made before the rename recorded
            kind="unlearn",
            family="diffusion",
            method="esd",
            config=config,
            seed=4,
            model="tiny-sd",
            status="cancelled",
        )
    finally:
        project.close()

    where = ["--project", str(tmp_path / "old")]
    assert cli.main(["show", str(old_id), *where, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["job"] == "diffusion.erase.esd"  # the record is left as it was
    assert cli.main(["export", str(old_id), *where]) == 0
    run_file = tmp_path / "run.yaml"
    run_file.write_text(capsys.readouterr().out)

    request = RunRequest.from_file(run_file)
    assert request.job == "diffusion.erase.esd" and request.config["iterations"] == 7
    project = Project.open(tmp_path / "old")
    executor = HeldExecutor()
    engine = Engine(project, executor=executor, registry=registry)
    try:
        new_id = engine.submit(request)
        rerun = project.run(new_id)
        assert rerun.job == "diffusion.unlearn.esd"  # a rerun records the canonical name
        assert rerun.config == config and rerun.seed == 4 and rerun.model == "tiny-sd"
        assert project.run(old_id).job == "diffusion.erase.esd"
        assert len(executor.held) == 1
    finally:
        project.close()
