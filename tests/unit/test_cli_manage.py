"""Issue 11, CLI: ``gui PATH``, ``run`` KEY=VALUE overrides, help for every argument, and run
management (``runs`` filters, ``note``, ``tag``, ``archive``, ``delete``).

In-process through :func:`workbench.cli.main`; runs use a private registry (the fixture jobs and
``test.lists``, a job with list, float, text and choice fields) so no model trains here.
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.unit import fixture_jobs as fj
from workbench import cli
from workbench.config import param
from workbench.jobs import Engine
from workbench.paths import CONFIGS
from workbench.registry import JobSpec, Registry
from workbench.store import Project

# -- a private registry ------------------------------------------------------------------------


@dataclass
class ListsConfig:
    """A config with the field types an override has to parse."""

    hidden: list[int] = param([128, 64], "Layer widths.", range=(1, 4096), length=(1, 8))
    methods: list[str] = param(["ga"], "Methods.", choices=("ga", "rl", "scrub"))
    lr: float = param(0.01, "Learning rate.", range=(0.0, 1.0))
    epochs: int = param(3, "Epochs.", range=(1, 100))
    label: str = param("", "Free text.")
    optimizer: str = param("adam", "Optimizer.", choices=("adam", "sgd"))


def lists_job(ctx: Any) -> dict[str, float]:
    return {"hidden_sum": float(sum(ctx.config.hidden))}


def make_registry() -> Registry:
    reg = fj.make_registry()
    reg.add_job(
        JobSpec(
            name="test.lists",
            kind="experiment",
            family="test",
            title="lists",
            description="fixture job with list fields",
            config=ListsConfig,
            entry="tests.unit.test_cli_manage:lists_job",
            model_heavy=False,
        )
    )
    return reg


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    reg = make_registry()
    monkeypatch.setattr(cli, "_registry", lambda: reg)
    monkeypatch.setattr(cli, "_engine", lambda p: Engine(p, registry=reg))
    monkeypatch.delenv("WORKBENCH_PROJECT", raising=False)
    return reg


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    return lines[0]


def write_run(path: Path, **data: Any) -> Path:
    base: dict[str, Any] = {"job": "test.lists", "seed": 0, "config": {"hidden": [8, 4, 2]}}
    base.update(data)
    path.write_text(json.dumps(base))
    return path


# -- 1. gui PATH -------------------------------------------------------------------------------


def _gui(monkeypatch: pytest.MonkeyPatch, *argv: str) -> list[str | None]:
    """``workbench gui ...`` with the frontend replaced by a recorder (no window, no Qt)."""
    opened: list[str | None] = []
    monkeypatch.setattr(cli, "_frontend", lambda name: lambda project: opened.append(project))
    monkeypatch.delenv("WORKBENCH_PROJECT", raising=False)
    assert cli.main(["gui", *argv]) == 0
    return opened


def test_gui_opens_the_positional_project_folder_or_its_catalogue(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(project.root)
    assert _gui(monkeypatch, root) == [root]
    assert _gui(monkeypatch, str(project.root / "workbench.sqlite")) == [root]  # what %f hands
    assert _gui(monkeypatch, "--project", root) == [root]
    assert _gui(monkeypatch) == [None]  # the desktop entry with no file: the app picks
    monkeypatch.setenv("WORKBENCH_PROJECT", "/elsewhere")
    args = cli.parse_args(["gui", root])
    assert cli.gui_project(args) == root  # PATH wins over the environment


def test_gui_path_and_project_together_or_a_missing_path_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    opened: list[Any] = []
    monkeypatch.setattr(cli, "_frontend", lambda name: lambda project: opened.append(project))
    code, _, err = run_cli(capsys, "gui", str(tmp_path), "--project", str(tmp_path))
    assert code == 2 and "not both" in error_line(err)
    code, _, err = run_cli(capsys, "gui", str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in error_line(err)
    (tmp_path / "run.yaml").write_text("job: x\n")
    code, _, err = run_cli(capsys, "gui", str(tmp_path / "run.yaml"))
    assert code == 2 and "a project is a folder" in error_line(err)
    assert opened == []


def test_desktop_entry_calls_gui_with_a_path() -> None:
    entry = Path(__file__).resolve().parents[2] / "packaging" / "unlearning-workbench.desktop"
    exec_line = next(x for x in entry.read_text().splitlines() if x.startswith("Exec="))
    argv = exec_line.removeprefix("Exec=").split()
    assert argv[:2] == ["workbench", "gui"] and argv[2] in ("%f", "%F", "%u")
    assert cli.parse_args(["gui", "/some/project"]).path == "/some/project"


# -- 2. run overrides --------------------------------------------------------------------------


def test_overrides_change_the_recorded_config_and_replace_lists(
    tmp_path: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_run(tmp_path / "run.json")
    target = str(tmp_path / "p")
    code, out, err = run_cli(
        capsys,
        "run",
        str(config),
        "hidden=[5]",
        "lr=1e-3",
        "seed=3",
        "label=yes",
        "--project",
        target,
        "config.methods=[rl,scrub]",
        "epochs=7",
        "--quiet",
    )
    assert code == 0, err
    assert "hidden_sum=5" in out  # the list was replaced, not merged with [8, 4, 2]
    with Project.open(target) as project:
        record = project.run(1)
    assert record.seed == 3
    assert record.config["hidden"] == [5]
    assert record.config["lr"] == pytest.approx(1e-3)
    assert record.config["methods"] == ["rl", "scrub"]
    assert record.config["epochs"] == 7
    assert record.config["label"] == "yes"  # a text field keeps the text (not YAML's True)
    assert record.config["optimizer"] == "adam"  # untouched fields keep the file's/defaults


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("hiddn=[4]", "unknown field 'hiddn'"),
        ("config.epochz=2", "unknown field 'epochz'"),
        ("epochs=0", "field 'epochs': 0 is out of range"),
        ("epochs=many", "field 'epochs': expected an integer"),
        ("lr=fast", "field 'lr': expected a number"),
        ("optimizer=lbfgs", "field 'optimizer'"),
        ("hidden=[4,0]", "field 'hidden'[1]: 0 is out of range"),
        ("hidden=[4,", "override hidden: '[4,' is not a valid value"),
        ("seed=-1", "override seed must be an integer"),
        ("job=test.steps", "the job cannot be overridden"),
        ("config={epochs: 2}", "config.FIELD=VALUE"),
        ("epochs", "expected KEY=VALUE"),
    ],
)
def test_a_bad_override_exits_2_naming_the_field_and_records_nothing(
    tmp_path: Path,
    registry: Registry,
    capsys: pytest.CaptureFixture[str],
    override: str,
    expected: str,
) -> None:
    config = write_run(tmp_path / "run.json")
    target = tmp_path / "p"
    code, _, err = run_cli(capsys, "run", str(config), override, "--project", str(target))
    assert code == 2
    assert expected in error_line(err)
    if (target / "workbench.sqlite").exists():
        with Project.open(target) as project:
            assert project.runs() == []


def test_a_bad_override_gives_the_same_message_as_the_same_value_in_the_file(
    tmp_path: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    target = str(tmp_path / "p")
    in_file = write_run(tmp_path / "bad.json", config={"epochs": 0})
    _, _, from_file = run_cli(capsys, "run", str(in_file), "--project", target)
    good = write_run(tmp_path / "good.json")
    _, _, from_override = run_cli(capsys, "run", str(good), "epochs=0", "--project", target)
    assert error_line(from_override) == error_line(from_file)


def test_overrides_on_a_real_job_use_its_schema() -> None:
    """No run: the real registry's classifier.train_mlp, validated as the engine validates."""
    request = cli.read_run_file(CONFIGS / "classifier" / "train-mlp.yaml")
    out = cli.apply_overrides(request, ["hidden=[64,32]", "model_name=007", "dataset=mine"])
    assert out["config"]["hidden"] == [64, 32] and out["config"]["model_name"] == "007"
    assert out["dataset"] == "mine" and out["job"] == request["job"]
    typed = cli._registry().job(out["job"]).validate(out["config"])
    assert typed.hidden == [64, 32]
    assert request["config"].get("hidden") != [64, 32]  # the request read from disk is unchanged


def test_seed_given_twice_differently_is_refused(
    tmp_path: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_run(tmp_path / "run.json")
    code, _, err = run_cli(
        capsys, "run", str(config), "seed=4", "--seed", "3", "--project", str(tmp_path / "p")
    )
    assert code == 2 and "disagree" in error_line(err)


# -- 3. help text for every argument ---------------------------------------------------------


def _actions(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        found.append((path, action))
        if isinstance(action, argparse._SubParsersAction):
            found += [(f"{path} {c.dest}", c) for c in action._get_subactions()]
            for name, sub in action.choices.items():
                found += _actions(sub, f"{path} {name}")
    return found


def test_every_argument_of_every_command_has_help() -> None:
    actions = _actions(cli.build_parser(), "workbench")
    commands = {path for path, _ in actions}
    assert {"workbench run", "workbench gui", "workbench delete", "workbench tag"} <= commands
    missing = [
        f"{path}: {'/'.join(a.option_strings) or a.dest}"
        for path, a in actions
        if not (a.help and a.help.strip() and a.help != argparse.SUPPRESS)
    ]
    assert missing == []


# -- 4. run management -------------------------------------------------------------------------


@pytest.fixture
def runs(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """Runs 1-3 completed (with folders and metrics), 4 running in this (live) process."""
    monkeypatch.delenv("WORKBENCH_PROJECT", raising=False)
    for i in range(1, 5):
        run_id = project.create_run(
            job="test.steps",
            kind="experiment",
            family="test",
            method="steps",
            config={},
            seed=i,
            status="completed" if i < 4 else "running",
        )
        project.add_metrics([{"run_id": run_id, "step": 0, "name": "m", "value": 1.0, "time": 0}])
        (project.run_dir(run_id) / "out.txt").write_text("x")
    return project


def _listing(capsys: pytest.CaptureFixture[str], root: Path, *flags: str) -> list[dict[str, Any]]:
    code, out, err = run_cli(capsys, "runs", "--project", str(root), "--json", *flags)
    assert code == 0, err
    return json.loads(out)


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    return [r["id"] for r in rows]


def test_tags_notes_and_archive_filter_the_listing(
    runs: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(runs.root)
    assert run_cli(capsys, "tag", "1", "baseline", "mnist", "--project", root)[0] == 0
    assert run_cli(capsys, "tag", "2", "baseline", "--project", root)[0] == 0
    assert run_cli(capsys, "note", "2", "lr too high\nsecond line", "--project", root)[0] == 0
    assert run_cli(capsys, "archive", "3", "--project", root)[0] == 0

    assert _ids(_listing(capsys, runs.root)) == [1, 2, 4]
    assert _ids(_listing(capsys, runs.root, "--archived")) == [1, 2, 3, 4]
    assert _ids(_listing(capsys, runs.root, "--tag", "baseline")) == [1, 2]
    assert _ids(_listing(capsys, runs.root, "--tag", "baseline", "--tag", "mnist")) == [1]
    assert _ids(_listing(capsys, runs.root, "--status", "running")) == [4]
    assert _ids(_listing(capsys, runs.root, "--status", "completed", "--archived")) == [1, 2, 3]

    code, out, _ = run_cli(capsys, "runs", "--project", root, "--archived")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "#baseline #mnist" in rows["1"]
    assert '"lr too high second line"' in rows["2"]
    assert "[archived]" in rows["3"] and "[archived]" not in rows["1"]
    code, out, _ = run_cli(capsys, "runs", "--project", root)
    assert "1 archived run hidden" in out and "\n   3 " not in out

    code, out, _ = run_cli(capsys, "show", "2", "--project", root, "--json")
    shown = json.loads(out)
    assert shown["note"] == "lr too high\nsecond line" and shown["tags"] == ["baseline"]
    assert shown["archived"] is False
    assert json.loads(run_cli(capsys, "show", "3", "--project", root, "--json")[1])["archived"]

    # removing, clearing and unarchiving
    code, out, _ = run_cli(capsys, "tag", "1", "mnist", "--remove", "--project", root)
    assert code == 0 and "baseline" in out
    assert run_cli(capsys, "note", "2", "", "--project", root)[0] == 0
    assert run_cli(capsys, "archive", "3", "--undo", "--project", root)[0] == 0
    assert runs.run(1).tags == ["baseline"]
    assert runs.run(2).note is None
    assert not runs.run(3).archived


def test_delete_removes_the_runs_rows_and_folders(
    runs: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "delete", "1", "2", "--yes", "--project", str(runs.root))
    assert code == 0, err
    assert "deleted runs 1, 2" in out
    assert [r.id for r in runs.runs()] == [3, 4]
    assert runs.final_metrics(1) == {} and runs.final_metrics(3) == {"m": 1.0}
    assert not (runs.root / "runs" / "1").exists() and (runs.root / "runs" / "3").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_delete_asks_on_a_terminal_and_refuses_without_yes_otherwise(
    runs: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(runs.root)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    code, _, err = run_cli(capsys, "delete", "1", "--project", root)
    assert code == 2 and "pass --yes" in error_line(err)
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    code, _, err = run_cli(capsys, "delete", "1", "--project", root)
    assert code == 1 and "delete run 1" in err and "not deleted" in err
    assert [r.id for r in runs.runs()] == [1, 2, 3, 4]
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    code, out, _ = run_cli(capsys, "delete", "1", "--project", root)
    assert code == 0 and [r.id for r in runs.runs()] == [2, 3, 4]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["delete", "1", "4", "--yes"], "run 4 is running"),
        (["delete", "1", "99", "--yes"], "no run 99"),
        (["archive", "1", "4"], "run 4 is running"),
        (["archive", "1", "99"], "no run 99"),
        (["tag", "1", "ok", "bad,tag"], "without commas"),
        (["tag", "99", "ok"], "no run 99"),
        (["tag", "1", ""], "cannot be empty"),
        (["note", "99", "text"], "no run 99"),
        (["note", "0", "text"], "run ids are positive numbers"),
        (["note", "1", "x" * 10_001], "at most 10000 characters"),
    ],
)
def test_a_refused_change_exits_2_with_one_line_and_changes_nothing(
    runs: Project, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    def state() -> list[tuple[Any, ...]]:
        return [(r.id, r.status, r.archived, r.tags, r.note) for r in runs.runs()]

    before = state()
    code, out, err = run_cli(capsys, *argv, "--project", str(runs.root))
    assert code == 2 and out == ""
    assert expected in error_line(err)
    assert state() == before
    assert all((runs.root / "runs" / str(i) / "out.txt").exists() for i in range(1, 5))
