"""The project store: round trips, relative paths, WAL, sharing between two openers, metrics."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from workbench.artifacts import Heatmap, Text, load_artifact
from workbench.store import CATALOGUE, SCHEMA_VERSION, Project, ProjectError


def _new_run(project: Project, **extra: object) -> int:
    fields: dict = {
        "job": "test.job",
        "kind": "train",
        "family": "test",
        "method": "m",
        "config": {"epochs": 3, "hidden": [4, 2]},
        "seed": 7,
    }
    fields.update(extra)
    return project.create_run(**fields)


def test_create_then_open_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "p"
    with Project.create(root) as project:
        assert project.schema_version == SCHEMA_VERSION
        run_id = _new_run(project, model="m1", dataset="d1", versions={"python": "3.x"})
        project.update_run(run_id, status="completed", note="baseline", tags=["a", "b"])
        project.add_model("m1", "test", "kind", str(root / "models" / "m1"), meta={"acc": 0.9})
        project.add_dataset("d1", "test", "kind", str(root / "data" / "d1"))
    with Project.open(root) as again:
        record = again.run(run_id)
        assert record.job == "test.job"
        assert record.config == {"epochs": 3, "hidden": [4, 2]}
        assert record.seed == 7
        assert (record.model, record.dataset) == ("m1", "d1")
        assert record.status == "completed"
        assert record.versions == {"python": "3.x"}
        assert record.note == "baseline" and record.tags == ["a", "b"]
        model = again.model("m1")
        assert model is not None and model["meta"] == {"acc": 0.9}
        assert model["path"] == "models/m1"
        assert [d["path"] for d in again.datasets()] == ["data/d1"]
        assert again.interrupted_on_open == []


def test_create_refuses_existing_project(project: Project) -> None:
    with pytest.raises(ProjectError, match="already holds a project"):
        Project.create(project.root)


def test_unknown_run_and_bad_status(project: Project) -> None:
    with pytest.raises(ProjectError, match="no run 999"):
        project.run(999)
    run_id = _new_run(project)
    with pytest.raises(ValueError, match="unknown run status 'bogus'"):
        project.update_run(run_id, status="bogus")
    assert project.run(run_id).status == "queued"


def test_paths_are_relative_so_a_moved_project_still_loads(tmp_path: Path) -> None:
    root = tmp_path / "before"
    project = Project.create(root)
    run_id = _new_run(project)
    folder = project.run_dir(run_id) / "artifacts"
    folder.mkdir()
    heat = Heatmap(np.arange(6.0).reshape(2, 3), x_labels=["a", "b", "c"], y_labels=["r", "s"])
    for name, art in (("heat", heat), ("note", Text("hello"))):
        path, meta = art.save(folder, name)
        project.add_artifact(run_id, art.kind, name, str(path), meta)
    model_dir = root / "models" / "m"
    model_dir.mkdir(parents=True)
    project.add_model("m", "test", "kind", str(model_dir))
    project.update_run(run_id, checkpoint=project.relpath(folder / "x.ckpt"))
    project.close()

    stored = [a["path"] for a in Project.open(root).artifacts(run_id)]
    assert all(not Path(p).is_absolute() for p in stored), stored

    moved = tmp_path / "elsewhere" / "after"
    moved.parent.mkdir()
    shutil.move(str(root), str(moved))
    with Project.open(moved) as reopened:
        arts = reopened.artifacts(run_id)
        loaded = {
            a["name"]: load_artifact(a["kind"], reopened.abspath(a["path"]), a["meta"])
            for a in arts
        }
        assert isinstance(loaded["heat"], Heatmap)
        assert np.array_equal(loaded["heat"].matrix, heat.matrix)
        assert loaded["heat"].x_labels == ["a", "b", "c"]
        assert loaded["note"] == Text("hello")
        model = reopened.model("m")
        assert (
            model is not None
            and reopened.abspath(model["path"]) == moved.resolve() / "models" / "m"
        )
        ckpt = reopened.run(run_id).checkpoint
        assert ckpt is not None and reopened.abspath(
            ckpt
        ).parent.parent == moved.resolve() / "runs" / str(run_id)


def test_wal_mode_and_busy_timeout(project: Project) -> None:
    assert project.db.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert project.db.execute("pragma busy_timeout").fetchone()[0] >= 1000
    raw = sqlite3.connect(project.catalogue)
    try:  # WAL is persistent: a connection that sets nothing sees it too
        assert raw.execute("pragma journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_two_openers_of_one_folder_both_write(project: Project) -> None:
    """As the GUI and a CLI run would: two Project objects, interleaved writes, both visible."""
    other = Project.open(project.root)
    try:
        ids = []
        for i in range(10):
            writer = project if i % 2 == 0 else other
            ids.append(_new_run(writer, seed=i))
            writer.add_metrics(
                [{"run_id": ids[-1], "step": 0, "name": "x", "value": i, "time": 0.0}]
            )
        assert [r.id for r in project.runs()] == ids
        assert [r.seed for r in other.runs()] == list(range(10))
        assert other.final_metrics(ids[3]) == {"x": 3.0}
        assert project.final_metrics(ids[4]) == {"x": 4.0}
    finally:
        other.close()


def test_connections_are_per_thread(project: Project) -> None:
    """Writers on several threads (each gets its own connection) all land in the catalogue."""
    run_id = _new_run(project)
    errors: list[BaseException] = []

    def write(offset: int) -> None:
        try:
            for step in range(20):
                project.add_metrics(
                    [
                        {
                            "run_id": run_id,
                            "step": step,
                            "name": f"t{offset}",
                            "value": step,
                            "time": 0.0,
                        }
                    ]
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(project.metrics(run_id)) == 80
    assert project.final_metrics(run_id) == {f"t{i}": 19.0 for i in range(4)}


def test_metrics_batch_insert_series_and_final(project: Project) -> None:
    run_id = _new_run(project)
    other_run = _new_run(project)
    rows = []
    for step in range(100):
        rows.append(
            {"run_id": run_id, "step": step, "name": "loss", "value": 1 / (step + 1), "time": 0.0}
        )
        if step % 10 == 0:
            rows.append(
                {"run_id": run_id, "step": step, "name": "acc", "value": step / 100, "time": 0.0}
            )
    # written out of order: "last" means the highest step, not the last row inserted
    rows.append({"run_id": run_id, "step": 5, "name": "late", "value": 99.0, "time": 0.0})
    rows.append({"run_id": run_id, "step": 3, "name": "late", "value": 1.0, "time": 0.0})
    rows.append({"run_id": other_run, "step": 1000, "name": "loss", "value": -1.0, "time": 0.0})
    project.add_metrics(rows)
    project.add_metrics([])  # a no-op

    assert len(project.metrics(run_id, "loss")) == 100
    xs, ys = project.metric_series(run_id)["acc"]
    assert xs == list(range(0, 100, 10))
    assert ys[-1] == pytest.approx(0.9)
    assert project.final_metrics(run_id) == {"acc": 0.9, "late": 99.0, "loss": 1 / 100}
    assert project.final_metrics(other_run) == {"loss": -1.0}

    # the same step written twice (e.g. a summary after the last epoch): the later row wins
    project.add_metrics([{"run_id": run_id, "step": 99, "name": "loss", "value": 0.0, "time": 1.0}])
    assert project.final_metrics(run_id)["loss"] == 0.0

    project.delete_metrics_after(run_id, 49)
    assert max(r["step"] for r in project.metrics(run_id)) == 49
    assert project.final_metrics(other_run) == {"loss": -1.0}


def test_delete_run_removes_rows_and_folder_only_of_that_run(project: Project) -> None:
    keep, drop = _new_run(project), _new_run(project)
    for run_id in (keep, drop):
        project.add_metrics([{"run_id": run_id, "step": 0, "name": "x", "value": 1.0, "time": 0.0}])
        project.add_logs([{"run_id": run_id, "time": 0.0, "level": "info", "message": "hi"}])
        path, meta = Text("t").save(project.run_dir(run_id), "t")
        project.add_artifact(run_id, "text", "t", str(path), meta)
    model_dir = project.root / "models" / "made-by-drop"
    model_dir.mkdir(parents=True)
    project.add_model("made-by-drop", "test", "kind", str(model_dir), source_run=drop)

    project.update_run(drop, status="completed")
    project.delete_run(drop)

    assert [r.id for r in project.runs()] == [keep]
    with pytest.raises(ProjectError):
        project.run(drop)
    assert (
        project.metrics(drop) == [] and project.artifacts(drop) == [] and project.logs(drop) == []
    )
    assert not (project.root / "runs" / str(drop)).exists()
    assert len(project.metrics(keep)) == 1 and len(project.artifacts(keep)) == 1
    assert project.logs(keep)[0]["message"] == "hi"
    assert (project.root / "runs" / str(keep)).is_dir()
    assert project.model("made-by-drop") is not None and model_dir.is_dir()


def test_runs_filter_by_status(project: Project) -> None:
    a, b, c = _new_run(project), _new_run(project), _new_run(project)
    project.update_run(a, status="completed")
    project.update_run(c, status="failed")
    assert [r.id for r in project.runs(status=["completed", "failed"])] == [a, c]
    assert [r.id for r in project.runs(status=("queued",))] == [b]


def test_catalogue_name(project: Project) -> None:
    assert project.catalogue == project.root / CATALOGUE and project.catalogue.is_file()


def test_nan_metrics_read_back_as_nan(project: Project) -> None:
    """A diverged loss is NaN; SQLite stores NaN as NULL, which must not come back as None."""
    import math

    run_id = _new_run(project)
    project.add_metrics(
        [
            {"run_id": run_id, "step": 0, "name": "loss", "value": 1.0, "time": 0.0},
            {"run_id": run_id, "step": 1, "name": "loss", "value": float("nan"), "time": 0.0},
            {"run_id": run_id, "step": 1, "name": "grad", "value": float("inf"), "time": 0.0},
        ]
    )
    values = [row["value"] for row in project.metrics(run_id, "loss")]
    assert values[0] == 1.0 and isinstance(values[1], float) and math.isnan(values[1])
    xs, ys = project.metric_series(run_id)["loss"]
    assert xs == [0, 1] and math.isnan(ys[1])
    final = project.final_metrics(run_id)
    assert isinstance(final["loss"], float) and math.isnan(final["loss"])
    assert final["grad"] == math.inf


def test_note_tags_archive_and_delete_guard(tmp_path):
    """Run management: notes and tags round-trip clean, archive hides nothing on disk, and a
    running run cannot be deleted or archived (its worker would write into a missing folder)."""
    from workbench.store import MAX_TAG_CHARS

    project = Project.create(tmp_path / "p")
    run_id = project.create_run(
        job="classifier.train_mlp", kind="train", family="classifier", method="", config={}, seed=0
    )
    project.set_note(run_id, "  baseline for the ablation  ")
    assert project.run(run_id).note == "baseline for the ablation"
    assert project.set_tags(run_id, [" a ", "b", "a", ""]) == ["a", "b"]
    assert project.add_tags(run_id, ["c", "b"]) == ["a", "b", "c"]
    assert project.remove_tags(run_id, ["a"]) == ["b", "c"]
    with pytest.raises(ValueError, match="without commas"):
        project.set_tags(run_id, ["x,y"])
    with pytest.raises(ValueError, match=str(MAX_TAG_CHARS)):
        project.set_tags(run_id, ["x" * (MAX_TAG_CHARS + 1)])
    assert project.run(run_id).tags == ["b", "c"]  # a refused change keeps the old tags
    project.update_run(run_id, status="running")
    with pytest.raises(ProjectError, match="cancel it before deleting"):
        project.delete_run(run_id)
    with pytest.raises(ProjectError, match="cancel it before archiving"):
        project.archive_run(run_id)
    project.update_run(run_id, status="failed")
    project.archive_run(run_id)
    reopened = Project.open(tmp_path / "p")
    assert reopened.run(run_id).archived and reopened.run_dir(run_id).parent.exists()
    reopened.archive_run(run_id, archived=False)
    assert not reopened.run(run_id).archived
    reopened.delete_run(run_id)
    assert [r.id for r in reopened.runs()] == []
