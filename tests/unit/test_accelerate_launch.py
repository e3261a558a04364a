"""Multi-GPU runs through ``accelerate launch``: the command, its checks, the ranks' roles."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workbench.accelerate_launch import (
    CHILD_ENV,
    check_gpus,
    is_launched_child,
    job_command,
    launch,
    launch_rank,
    scratch_project,
    without_gpus_flag,
)
from workbench.store import Project

INNER = ["workbench.cli", "run", "cfg.yaml", "--project", "P"]


def test_one_gpu_runs_the_module_in_this_python() -> None:
    assert job_command(INNER, 1, python="/py") == ["/py", "-m", *INNER]


def test_several_gpus_go_through_accelerate_launch_in_module_form() -> None:
    assert job_command(INNER, 4, python="/py", available=4) == [
        "/py", "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "4",
        "--num_machines", "1", "-m", *INNER,
    ]  # fmt: skip
    cmd = job_command(INNER, 2, python="/py", main_port=29555, mixed_precision="bf16", available=8)
    assert cmd == [
        "/py", "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--main_process_port", "29555", "--mixed_precision", "bf16",
        "-m", *INNER,
    ]  # fmt: skip


def test_the_launch_flags_are_the_installed_accelerates() -> None:
    """accelerate's own ``launch`` parser reads the command as meant (not just our spelling)."""
    from accelerate.commands.launch import launch_command_parser

    cmd = job_command(INNER, 4, python="/py", main_port=29555, mixed_precision="fp16", available=4)
    args = launch_command_parser().parse_args(cmd[3:])
    assert args.multi_gpu and not args.cpu
    assert (args.num_processes, args.num_machines) == (4, 1)
    assert (args.main_process_port, args.mixed_precision) == (29555, "fp16")
    assert args.module and args.training_script == "workbench.cli"
    assert args.training_script_args == INNER[1:]


@pytest.mark.parametrize(
    ("gpus", "available", "message"),
    [
        (0, 4, "'gpus': must be a whole number >= 1, got 0"),
        (-2, 4, "'gpus': must be a whole number >= 1"),
        (8, 4, "'gpus': 8 GPUs were asked for but this machine has 4; set gpus to at most 4"),
        (2, 0, "'gpus': 2 GPUs were asked for but this machine has no usable CUDA GPU"),
    ],
)
def test_impossible_gpu_counts_are_refused_naming_the_field(
    gpus: int, available: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        job_command(INNER, gpus, available=available)
    with pytest.raises(ValueError, match=message):
        check_gpus(gpus, available)


def test_bad_launch_options_are_refused() -> None:
    with pytest.raises(ValueError, match="TCP port"):
        job_command(INNER, 2, main_port=70000, available=2)
    with pytest.raises(ValueError, match="mixed_precision must be one of no, fp16, bf16, fp8"):
        job_command(INNER, 2, mixed_precision="fp32", available=2)
    with pytest.raises(ValueError, match="inner is empty"):
        job_command([], 1)


def test_one_gpu_needs_no_gpu_probe() -> None:
    check_gpus(1, available=0)  # one process on whatever `device` says, CPU included


def test_the_gpus_flag_is_taken_out_of_the_relaunched_command() -> None:
    argv = ["run", "c.yaml", "--gpus", "2", "--project", "P", "--gpus=3", "lr=1e-3"]
    assert without_gpus_flag(argv) == ["run", "c.yaml", "--project", "P", "lr=1e-3"]


def test_rank_and_world_come_from_the_launchers_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("RANK", "WORLD_SIZE", "PMI_RANK", "PMI_SIZE", CHILD_ENV):
        monkeypatch.delenv(name, raising=False)
    assert launch_rank() == (0, 1) and not is_launched_child()
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launch_rank() == (3, 4) and is_launched_child()
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv(CHILD_ENV, "1")
    assert is_launched_child()


def test_a_scratch_project_knows_the_real_models_by_name_and_leaves_the_real_one_alone(
    project: Project, tmp_path: Path
) -> None:
    folder = project.root / "models" / "m"
    folder.mkdir(parents=True)
    project.add_model("m", "llm", "llm.causal", str(folder), meta={"note": "x"})  # kept relative
    project.add_dataset("d", "llm", "fact-universe", str(tmp_path))
    run_id = project.create_run(
        job="llm.unlearn.ga", kind="unlearn", family="llm", method="ga", config={}, seed=0
    )
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # a run "queued" by a process that is gone: opening the project would mark it
    project.db.execute("update runs set pid = ?, host = null where id = ?", [ended.pid, run_id])
    project.close()
    catalogue = project.catalogue
    before = hashlib.sha256(catalogue.read_bytes()).hexdigest()
    with scratch_project(project.root, "m", "d") as scratch:
        where = scratch.root
        row = scratch.model("m")
        assert row is not None and Path(row["path"]) == folder
        assert (row["family"], row["kind"], row["meta"]) == ("llm", "llm.causal", {"note": "x"})
        assert [d["name"] for d in scratch.datasets()] == ["d"]
        assert scratch.runs() == []
    assert not where.exists()  # the throw-away project is gone
    assert hashlib.sha256(catalogue.read_bytes()).hexdigest() == before
    with sqlite3.connect(f"file:{catalogue}?mode=ro", uri=True) as conn:
        status = conn.execute("select status from runs where id = ?", [run_id]).fetchone()[0]
    assert status == "queued"  # only read: Project.open (a writer) would have marked it
    with Project.open(project.root) as again:  # the control: a writer's open does mark it
        assert again.run(run_id).status == "interrupted"


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.skipif(_cuda(), reason="checks the refusal on a machine without CUDA")
def test_asking_for_gpus_without_cuda_fails_at_submit_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.cli import main

    for name in ("RANK", "WORLD_SIZE", CHILD_ENV):
        monkeypatch.delenv(name, raising=False)
    cfg = tmp_path / "ga.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"job": "llm.unlearn.ga", "seed": 0, "model": "tiny-gpt", "config": {"epochs": 1}}
        )
    )
    project = tmp_path / "p"
    for how in (["gpus=2"], ["--gpus", "2"]):
        code = main(["run", str(cfg), *how, "--project", str(project), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "config field 'gpus'" in err and "no usable CUDA GPU" in err
        assert "launching" not in err and "Traceback" not in err
    with Project.open(project) as opened:
        assert opened.runs() == []  # refused before any run was recorded


def test_launch_runs_the_command_as_a_marked_child_and_returns_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The launched process sees the marker (so it runs the job instead of launching again)."""
    (tmp_path / "marker_probe.py").write_text(
        f"import os, sys\nsys.exit(7 if os.environ.get({CHILD_ENV!r}) == '1' else 3)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.delenv(CHILD_ENV, raising=False)
    assert launch(["marker_probe"], 1) == 7
    assert f"launching: {sys.executable} -m marker_probe" in capfd.readouterr().err


def test_the_desktop_bundle_refuses_several_gpus_but_runs_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # in the PyInstaller bundle sys.executable is the app itself, which cannot run
    # `python -m accelerate.commands.launch`: say so instead of starting a broken command
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(ValueError, match="gpus: runs on several GPUs need a Python install"):
        job_command(["workbench.cli", "run", "c.yaml"], 2, available=2)
    assert job_command(["workbench.cli"], 1, python="/app/workbench", available=0) == [
        "/app/workbench",
        "-m",
        "workbench.cli",
    ]
