"""Launchers (issue 18 part 3): the local launcher, submitit's local executor (the Slurm launcher's
code path on this machine), run folders and their ingestion, and the project's launcher settings.

Remote runs execute ``python -m workbench.remote RUN_FOLDER`` in another process; the fixture jobs
of ``tests/unit/fixture_jobs.py`` reach it through ``PYTHONPATH``.  A run that must be running when
the test cancels it waits on its cancel token (``test.wait_cancel``); the tests wait on the
engine's events, never on sleeps.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit import fixture_jobs
from tests.unit.engine_events import EngineEvents, log_messages
from workbench import cli
from workbench.jobs import Engine, EngineError
from workbench.launchers import (
    Handle,
    LauncherError,
    LauncherSettings,
    LocalLauncher,
    RayLauncher,
    RunSpec,
    SlurmLauncher,
    load_settings,
    make_launcher,
    save_settings,
)
from workbench.remote import FolderProject, Ingester, RemoteCatalogueError, run_folder_for
from workbench.request import RunRequest
from workbench.store import Project

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0


@pytest.fixture
def importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remote processes import this checkout (and the fixture jobs) first."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))


# -- local ----------------------------------------------------------------------------------------


def test_the_local_launcher_runs_ingests_and_cancels_through_the_engine(project: Project) -> None:
    engine = Engine(project, registry=fixture_jobs.make_registry())
    launcher = LocalLauncher(engine)
    seen = EngineEvents(engine)
    try:
        done = launcher.submit(RunSpec(RunRequest("test.steps", 0, None, None, {"steps": 4})))
        assert engine.wait(done.run_id, TIMEOUT) == "completed"
        assert launcher.status(done).state == "completed"
        assert project.metric_series(done.run_id)["loss"][0] == [0, 1, 2, 3]
        assert "all steps done" in launcher.logs(done)

        waiting = launcher.submit(RunSpec(RunRequest("test.wait_cancel", 0, None, None, {})))
        seen.wait_for(lambda e: e.run_id == waiting.run_id and e.type == "metric")
        assert launcher.status(waiting).state == "running"
        launcher.cancel(waiting)
        assert engine.wait(waiting.run_id, TIMEOUT) == "cancelled"
        assert launcher.status(waiting).state == "cancelled"
        assert "waiting for a cancel" in launcher.logs(waiting)
    finally:
        engine.shutdown()


# -- submitit (Slurm's code path, on this machine) --------------------------------------------


@pytest.fixture
def submitit_engine(project: Project, tmp_path: Path, importable: None) -> Iterator[Engine]:
    pytest.importorskip("submitit")
    launcher = SlurmLauncher(tmp_path / "submitit", cluster="local", timeout_min=5)
    engine = Engine(
        project, registry=fixture_jobs.make_registry(), launcher=launcher, remote_poll_s=0.05
    )
    yield engine
    engine.shutdown()


def test_submitit_runs_a_job_whose_metrics_logs_and_artifacts_are_ingested(
    project: Project, submitit_engine: Engine
) -> None:
    run_id = submitit_engine.submit("test.steps", {"steps": 5})
    assert submitit_engine.wait(run_id, TIMEOUT) == "completed", project.run(run_id).error
    series = project.metric_series(run_id)
    assert series["loss"] == ([0, 1, 2, 3, 4], [1.0, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert project.final_metrics(run_id)["score"] == 0.5
    messages = log_messages(project, run_id)
    assert messages[0].startswith("submitted to slurm (local) as ")
    assert "all steps done" in messages
    arts = {a["name"]: a for a in project.artifacts(run_id)}
    assert set(arts) == {"notes", "table"}
    # the artifact lives in the run's own folder of the project, like a local run's
    notes = project.artifact_path(arts["notes"])
    assert notes.parent == project.run_dir(run_id) / "artifacts"
    assert notes.read_text() == "all steps done"
    # the job ran in another process and wrote its run folder, never the catalogue
    folder = run_folder_for(project.root, run_id)
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "completed" and status["pid"] != os.getpid()
    assert json.loads((folder / "handle.json").read_text())["launcher"] == "slurm"


def test_submitit_cancel_stops_a_running_job(project: Project, submitit_engine: Engine) -> None:
    seen = EngineEvents(submitit_engine)
    run_id = submitit_engine.submit("test.wait_cancel", {})
    seen.wait_for(lambda e: e.run_id == run_id and e.type == "metric")  # it is running
    assert submitit_engine.cancel(run_id)
    assert submitit_engine.wait(run_id, TIMEOUT) == "cancelled"
    record = project.run(run_id)
    assert record.status_text == "cancelled by the user"
    assert project.metric_series(run_id)["alive"] == ([0], [1.0])
    status = json.loads((run_folder_for(project.root, run_id) / "status.json").read_text())
    assert status["status"] == "cancelled"  # the job itself stopped: its cancel token fired
    assert "waiting for a cancel" in log_messages(project, run_id)


def test_a_remote_failure_fails_the_run_with_the_jobs_traceback(
    project: Project, submitit_engine: Engine
) -> None:
    run_id = submitit_engine.submit("test.steps", {"steps": 5, "fail_at": 2})
    assert submitit_engine.wait(run_id, TIMEOUT) == "failed"
    record = project.run(run_id)
    assert record.status_text == "RuntimeError: fixture failure at step 2"
    assert "Traceback" in record.error and "fixture failure at step 2" in record.error
    assert project.metric_series(run_id)["loss"][0] == [0, 1]  # what it reported is kept


# -- run folders and ingestion (no cluster needed) ------------------------------------------


def test_the_ingester_reads_whole_lines_only(project: Project, tmp_path: Path) -> None:
    run_id = project.create_run(
        job="test.steps", kind="experiment", family="test", method="m", config={}, seed=0
    )
    folder = tmp_path / "shared" / "run"
    folder.mkdir(parents=True)
    events: list[tuple[str, dict]] = []
    ingester = Ingester(project, run_id, folder, lambda t, d: events.append((t, d)))
    line = json.dumps({"name": "loss", "step": 1, "time": 1.0, "value": 0.5})
    with open(folder / "metrics.jsonl", "w") as fh:
        fh.write(line + "\n" + line[:10])  # the second line is still being written
    assert ingester.poll() is None
    assert project.metric_series(run_id) == {"loss": ([1], [0.5])}
    with open(folder / "metrics.jsonl", "a") as fh:
        fh.write(line[10:].replace('"step": 1', '"step": 2') + "\n")
    ingester.poll()
    assert project.metric_series(run_id) == {"loss": ([1, 2], [0.5, 0.5])}
    assert [t for t, _ in events] == ["metric", "metric"]


def test_a_run_folder_outside_the_project_has_its_artifacts_and_models_copied_in(
    project: Project, tmp_path: Path
) -> None:
    """A shared ``run_root`` (what a cluster sees) lies outside the project: ingestion copies."""
    run_id = project.create_run(
        job="test.steps", kind="experiment", family="test", method="m", config={}, seed=0
    )
    folder = run_folder_for(project.root, run_id, str(tmp_path / "shared"))
    assert not folder.is_relative_to(project.root)
    folder.mkdir(parents=True)
    remote = FolderProject(folder)
    (folder / "artifacts").mkdir()
    (folder / "artifacts" / "notes.txt").write_text("hello")
    remote.add_artifact(run_id, "text", "notes", str(folder / "artifacts" / "notes.txt"))
    model = remote.model_dir("tiny")
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    remote.add_model("tiny", "test", "test.kind", str(model), source_run=run_id)
    project.add_model("tiny", "test", "test.kind", str(project.root), source_run=None)  # taken
    Ingester(project, run_id, folder).poll()
    art = project.artifacts(run_id)[0]
    assert project.artifact_path(art).read_text() == "hello"
    assert project.artifact_path(art).is_relative_to(project.run_dir(run_id))
    ingested = project.model(f"tiny-run{run_id}")  # the name was taken: made unique
    assert ingested is not None and ingested["source_run"] == run_id
    assert (project.model_dir(f"tiny-run{run_id}") / "config.json").read_text() == "{}"


def test_a_remote_job_reading_the_catalogue_gets_a_clear_error(tmp_path: Path) -> None:
    remote = FolderProject(tmp_path)
    with pytest.raises(RemoteCatalogueError, match="run it with the local launcher"):
        remote.run(1)
    remote.add_metrics([{"run_id": 1, "step": 0, "name": "a", "value": 1.0, "time": 0.0}])
    remote.add_metrics([{"run_id": 1, "step": 0, "name": "a", "value": 2.0, "time": 0.0}])
    assert remote.metric_series(1) == {"a": ([0, 0], [1.0, 2.0])}  # its own metrics it can read
    assert remote.final_metrics(1) == {"a": 2.0}


def test_remote_engines_do_not_resume(project: Project, tmp_path: Path) -> None:
    engine = Engine(
        project,
        registry=fixture_jobs.make_registry(),
        launcher=SlurmLauncher(tmp_path / "s", cluster="local"),
    )
    run_id = project.create_run(
        job="test.counter", kind="experiment", family="test", method="m", config={}, seed=0,
        status="cancelled",
    )  # fmt: skip
    project.update_run(run_id, checkpoint="runs/1/x.json", checkpoint_step=1)
    (project.run_dir(run_id) / "x.json").write_text("{}")
    with pytest.raises(EngineError, match="choose the local launcher to resume"):
        engine.resume(run_id)
    engine.shutdown()


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kind": "kubernetes"}, "launcher 'kubernetes' is not one of local, ray, slurm"),
        ({"kind": "ray"}, "the ray launcher needs the cluster's address"),
        ({"kind": "ray", "ray_address": "127.0.0.1:8265"}, "is not an http\\(s\\) address"),
        ({"kind": "slurm", "slurm_cluster": "pbs"}, "slurm_cluster 'pbs' is not one of"),
        ({"kind": "slurm", "slurm_timeout_min": 0}, "slurm_timeout_min must be a whole number"),
        ({"kind": "local", "adress": "x"}, "unknown launcher setting\\(s\\) adress"),
    ],
)
def test_bad_launcher_settings_are_refused_with_the_setting_named(settings, message) -> None:
    with pytest.raises(LauncherError, match=message):
        LauncherSettings.from_dict(settings)


def test_settings_round_trip_and_choose_the_launcher(project: Project, tmp_path: Path) -> None:
    assert load_settings(project.root) == LauncherSettings()  # none saved: local
    assert make_launcher(LauncherSettings(), project.root) is None
    (project.root / "settings.json").write_text(json.dumps({"other": 1}))
    ray = LauncherSettings(kind="ray", ray_address="http://127.0.0.1:8265", run_root="/shared")
    save_settings(project.root, ray)
    assert load_settings(project.root) == ray
    assert json.loads((project.root / "settings.json").read_text())["other"] == 1  # kept
    launcher = make_launcher(ray, project.root)
    assert isinstance(launcher, RayLauncher) and launcher.run_root == "/shared"
    slurm = make_launcher(
        LauncherSettings(kind="slurm", slurm_partition="gpu", slurm_cluster="local"), project.root
    )
    assert isinstance(slurm, SlurmLauncher) and slurm.partition == "gpu"
    assert slurm.folder == project.root / "remote" / "submitit"


def test_a_missing_ray_package_is_named_with_its_pip_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.setitem(sys.modules, "ray.job_submission", None)
    launcher = RayLauncher("http://127.0.0.1:1")
    with pytest.raises(LauncherError, match=r"pip install 'ray\[default\]'"):
        launcher.submit(RunSpec(run_id=1, folder=tmp_path))
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(LauncherError, match="pip install submitit"):
        SlurmLauncher(tmp_path).submit(RunSpec(run_id=1, folder=tmp_path))


def test_handles_round_trip_through_json() -> None:
    handle = Handle("ray", "raysubmit_1", 3, "/p/remote/3")
    assert Handle.from_json(handle.to_json()) == handle


def test_the_cli_sets_the_launcher_and_explains_bad_settings(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    where = str(project.root)
    assert cli.main(["launcher", "--project", where, "kind=ray"]) == 2
    assert "needs the cluster's address" in capsys.readouterr().err
    assert load_settings(project.root).kind == "local"  # nothing saved
    code = cli.main(
        ["launcher", "--project", where, "kind=ray", "ray_address=http://10.0.0.1:8265", "--json"]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["ray_address"] == "http://10.0.0.1:8265"
    assert load_settings(project.root).kind == "ray"
    config = project.root / "run.yaml"
    config.write_text("job: classifier.train_mlp\nseed: 0\ndataset: digits\n")
    save_settings(project.root, LauncherSettings())  # local in the project...
    assert cli.main(["run", str(config), "--project", where, "--launcher", "ray"]) == 2
    err = capsys.readouterr().err  # ...and the flag chose ray, which has no address
    assert "the ray launcher needs the cluster's address" in err
    assert "workbench launcher KEY=VALUE" in err
    assert project.runs() == []  # refused before anything was recorded


@pytest.mark.slow
def test_a_real_classifier_run_through_submitit_equals_the_local_run(
    tmp_path: Path, importable: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``workbench run --launcher slurm`` (submitit's local executor) trains the digits MLP on
    the cluster side: the same final metrics as the run on this machine, and its artifacts and
    model ingested into the project."""
    pytest.importorskip("submitit")
    where = str(tmp_path / "project")
    config = tmp_path / "run.yaml"
    config.write_text(
        "job: classifier.train_mlp\nseed: 0\ndataset: digits\nconfig:\n  epochs: 2\n  device: cpu\n"
    )
    assert cli.main(["run", str(config), "--project", where, "--quiet"]) == 0
    assert cli.main(["launcher", "--project", where, "kind=slurm", "slurm_cluster=local"]) == 0
    assert cli.main(["run", str(config), "--project", where, "--quiet"]) == 0, capsys.readouterr()
    with Project.open(where) as project:
        local, remote = project.runs()
        assert project.final_metrics(remote.id) == project.final_metrics(local.id)
        names = sorted(a["name"] for a in project.artifacts(remote.id))
        assert names == sorted(a["name"] for a in project.artifacts(local.id))
        model = project.model(f"digits-mlp-run{remote.id}")
        assert model is not None and model["source_run"] == remote.id
        assert (project.model_dir(model["name"]) / "config.json").is_file()
        assert project.logs(remote.id)[0]["message"].startswith("submitted to slurm (local)")


def test_remote_run_runs_a_run_folder_here(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``workbench remote-run FOLDER`` (what a cluster job runs) fills the folder, and ingesting
    it gives the project the run's metrics; a folder without run.json is refused."""
    from workbench.remote import read_status, write_run_folder

    spec = fixture_jobs.make_registry().job("test.steps")
    run_id = project.create_run(
        job="test.steps", kind="experiment", family="test", method="m", config={}, seed=0
    )
    folder = write_run_folder(
        tmp_path / "run", run_id=run_id, project_root=project.root, spec=spec,
        config={"steps": 3}, seed=0, model=None, dataset=None,
    )  # fmt: skip
    assert cli.main(["remote-run", str(folder)]) == 0
    assert (read_status(folder) or {})["status"] == "completed"
    Ingester(project, run_id, folder).poll()
    assert project.metric_series(run_id)["loss"][0] == [0, 1, 2]
    assert cli.main(["remote-run", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err
