"""The ``workbench`` command in a subprocess, on temporary projects: the scripting contract."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def wb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env.pop("WORKBENCH_PROJECT", None)
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_config(path: Path, **overrides: object) -> Path:
    data = {"job": "classifier.train_mlp", "seed": 0, "dataset": "digits", "config": {"epochs": 3}}
    data.update(overrides)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("cli") / "demo"
    out = wb("demo", "--project", str(project), "--quiet")
    assert out.returncode == 0, out.stderr
    return project


def test_demo_creates_a_completed_run_that_show_json_reports(demo: Path) -> None:
    runs = json.loads(wb("runs", "--project", str(demo), "--json").stdout)
    assert len(runs) == 1
    assert {"id", "job", "method", "status", "created"} <= set(runs[0])
    assert runs[0]["status"] == "completed"
    show = json.loads(wb("show", str(runs[0]["id"]), "--project", str(demo), "--json").stdout)
    assert {"id", "status", "config", "seed", "metrics", "artifacts"} <= set(show)
    assert show["metrics"]["test_acc"] > 0.9
    assert show["config"]["epochs"] == 30
    kinds = {a["kind"] for a in show["artifacts"]}
    assert {"curves", "table", "heatmap", "image_grid", "graph", "text"} <= kinds
    for artifact in show["artifacts"]:
        assert not Path(artifact["path"]).is_absolute()
        assert (demo / artifact["path"]).exists()
    assert "python" in show["versions"] and "torch" in show["versions"]


def test_demo_again_reuses_the_completed_run(demo: Path) -> None:
    out = wb("demo", "--project", str(demo), "--quiet")
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout
    assert len(json.loads(wb("runs", "--project", str(demo), "--json").stdout)) == 1


def test_export_then_run_reproduces_the_config(demo: Path, tmp_path: Path) -> None:
    exported = wb("export", "1", "--project", str(demo))
    assert exported.returncode == 0, exported.stderr
    data = yaml.safe_load(exported.stdout)
    assert data["job"] == "classifier.train_mlp" and data["seed"] == 0
    data["config"]["epochs"] = 2  # keep the rerun short; everything else as recorded
    config = tmp_path / "rerun.yaml"
    config.write_text(yaml.safe_dump(data))
    target = tmp_path / "other"
    out = wb("run", str(config), "--project", str(target), "--seed", "5")
    assert out.returncode == 0, out.stderr
    assert "completed" in out.stdout
    show = json.loads(wb("show", "1", "--project", str(target), "--json").stdout)
    original = json.loads(wb("show", "1", "--project", str(demo), "--json").stdout)
    assert show["seed"] == 5
    assert {k: v for k, v in show["config"].items() if k != "epochs"} == {
        k: v for k, v in original["config"].items() if k != "epochs"
    }


def test_json_export_is_accepted_by_run(demo: Path, tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    out = wb("export", "1", "--project", str(demo), "--format", "json", "-o", str(path))
    assert out.returncode == 0
    data = json.loads(path.read_text())
    data["config"]["epochs"] = 1
    path.write_text(json.dumps(data))
    assert wb("run", str(path), "--project", str(tmp_path / "p"), "--quiet").returncode == 0


def test_jobs_json_lists_schemas() -> None:
    out = wb("jobs", "--json")
    assert out.returncode == 0
    jobs = {j["name"]: j for j in json.loads(out.stdout)["jobs"]}
    fields = {f["name"]: f for f in jobs["classifier.train_mlp"]["config"]}
    assert fields["epochs"]["type"] == "int" and fields["epochs"]["range"] == [1, 100_000]
    assert fields["optimizer"]["choices"] == ["adam", "sgd"]
    assert all(f["help"] for f in fields.values())


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"config": {"epochz": 3}}, "unknown field 'epochz'"),
        ({"config": {"epochs": 0}}, "'epochs'"),
        ({"config": {"optimizer": "lbfgs"}}, "one of 'adam', 'sgd'"),
        ({"job": "classifier.nope"}, "unknown job 'classifier.nope'"),
        ({"dataset": "imagenet"}, "unknown dataset 'imagenet'"),
        ({"model": "/no/such/model"}, "/no/such/model"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_configs_fail_with_one_line_that_names_the_problem(
    tmp_path: Path, overrides: dict, expected: str
) -> None:
    config = write_config(tmp_path / "bad.yaml", **overrides)
    out = wb("run", str(config), "--project", str(tmp_path / "p"))
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error:") and expected in lines[0]
    assert "Traceback" not in out.stderr


def test_unknown_key_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("job: classifier.train_mlp\nsteps: 3\n")
    out = wb("run", str(bad), "--project", str(tmp_path / "p"))
    assert out.returncode == 2 and "unknown key 'steps'" in out.stderr
    out = wb("run", str(tmp_path / "missing.yaml"), "--project", str(tmp_path / "p"))
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_a_failing_run_exits_1_with_the_reason_and_is_recorded(tmp_path: Path) -> None:
    # forget class 9 of a 3-class folder is refused at submit (exit 2, nothing recorded); TRW on a
    # random forget set passes the submit checks and fails in the run (it needs a class forget set)
    project = tmp_path / "p"
    assert wb("new", str(project)).returncode == 0
    folder = _image_folder(tmp_path / "pets", per_class=4)
    assert wb("add-dataset", "pets", str(folder), "--project", str(project)).returncode == 0
    config = write_config(
        tmp_path / "c.yaml",
        job="classifier.retrain",
        dataset="pets",
        config={"forget_class": 9, "image_size": 4, "train_epochs": 1, "device": "cpu"},
    )
    out = wb("run", str(config), "--project", str(project))
    assert out.returncode == 2 and "forget class 9 does not exist" in out.stderr, out.stderr
    assert json.loads(wb("runs", "--project", str(project), "--json").stdout) == []
    config = write_config(
        tmp_path / "c.yaml",
        job="classifier.unlearn.trw",
        dataset="pets",
        config={"forget_kind": "random", "image_size": 4, "train_epochs": 1, "device": "cpu"},
    )
    out = wb("run", str(config), "--project", str(project))
    assert out.returncode == 1, out.stderr
    assert "failed" in out.stderr and "class forget set" in out.stderr
    show = json.loads(wb("show", "1", "--project", str(project), "--json").stdout)
    assert show["status"] == "failed" and "Traceback" in show["error"]


def test_project_errors_are_clear_and_leave_files_untouched(demo: Path, tmp_path: Path) -> None:
    out = wb("runs", "--project", str(tmp_path / "nothing"))
    assert out.returncode == 2 and "no project" in out.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "workbench.sqlite").write_bytes(b"this is not sqlite" * 100)
    out = wb("runs", "--project", str(broken))
    assert out.returncode == 2 and "not a readable" in out.stderr
    assert (broken / "workbench.sqlite").read_bytes() == b"this is not sqlite" * 100
    newer = tmp_path / "newer"
    assert wb("new", str(newer)).returncode == 0
    with sqlite3.connect(newer / "workbench.sqlite") as conn:
        conn.execute("update meta set value = '999' where key = 'schema_version'")
    out = wb("runs", "--project", str(newer))
    assert out.returncode == 2 and "newer" in out.stderr
    out = wb("show", "42", "--project", str(demo))
    assert out.returncode == 2 and "no run 42" in out.stderr
    # the demo project's run is intact after all of this
    assert json.loads(wb("runs", "--project", str(demo), "--json").stdout)[0]["status"] == (
        "completed"
    )


def _image_folder(root: Path, classes: int = 3, per_class: int = 12) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            arr = (rng.random((10, 10)) * 255).astype(np.uint8)
            Image.fromarray(arr).save(root / f"class{c}" / f"{i}.png")
    return root


def test_add_an_image_folder_and_train_on_it(tmp_path: Path) -> None:
    project = tmp_path / "p"
    assert wb("new", str(project)).returncode == 0
    folder = _image_folder(tmp_path / "pets")
    out = wb("add-dataset", "pets", str(folder), "--project", str(project))
    assert out.returncode == 0, out.stderr
    config = tmp_path / "retrain.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "job": "classifier.retrain",
                "dataset": "pets",
                "config": {
                    "image_size": 8,
                    "grayscale": True,
                    "train_epochs": 2,
                    "forget_class": 1,
                    "device": "cpu",
                },
            }
        )
    )
    out = wb("run", str(config), "--project", str(project), "--quiet")
    assert out.returncode == 0, out.stderr
    show = json.loads(wb("show", "1", "--project", str(project), "--json").stdout)
    assert show["dataset"] == "pets" and "retrained_test_acc" in show["metrics"]


def test_adding_bad_folders_is_refused_with_the_reason(tmp_path: Path) -> None:
    project = tmp_path / "p"
    wb("new", str(project))
    (tmp_path / "empty").mkdir()
    out = wb("add-dataset", "x", str(tmp_path / "empty"), "--project", str(project))
    assert out.returncode == 2 and "no class sub-folders" in out.stderr
    pickled = tmp_path / "model"
    pickled.mkdir()
    (pickled / "config.json").write_text('{"model_type": "workbench-mlp"}')
    (pickled / "pytorch_model.bin").write_bytes(b"not really a pickle")
    out = wb("add-model", "m", str(pickled), "--project", str(project))
    assert out.returncode == 2 and "only pickle weights" in out.stderr
    # the dataset kind itself is not a dataset
    config = write_config(tmp_path / "c.yaml", dataset="image-folder")
    out = wb("run", str(config), "--project", str(project))
    assert out.returncode == 2 and "kind of dataset" in out.stderr
    assert json.loads(wb("runs", "--project", str(project), "--json").stdout) == []


def test_add_model_registers_the_builtin_kind(tmp_path: Path) -> None:
    project = tmp_path / "p"
    wb("new", str(project))
    out = wb(
        "add-model",
        "mine",
        str(ROOT / "resources" / "models" / "digits-cnn"),
        "--project",
        str(project),
    )
    assert out.returncode == 0 and "classifier.cnn" in out.stdout
