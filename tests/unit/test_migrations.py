"""Opening old, newer, corrupted and foreign catalogues: upgrade with a backup, or refuse untouched."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlite_utils

from workbench.store import (
    APP_ID,
    CATALOGUE,
    MIGRATIONS,
    SCHEMA_VERSION,
    Project,
    ProjectError,
    ProjectVersionError,
)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _columns(path: Path, table: str) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[1] for row in conn.execute(f"pragma table_info({table})")}
    finally:
        conn.close()


def _make_schema1_project(root: Path) -> int:
    """A catalogue as version 1 of the workbench wrote it, holding one completed run."""
    root.mkdir(parents=True)
    db = sqlite_utils.Database(root / CATALOGUE)
    db["meta"].insert_all(
        [{"key": "app", "value": APP_ID}, {"key": "schema_version", "value": "0"}], pk="key"
    )
    MIGRATIONS[0](db)
    db["meta"].upsert({"key": "schema_version", "value": "1"}, pk="key")
    run_id = (
        db["runs"]
        .insert(
            {
                "job": "classifier.train_mlp",
                "kind": "train",
                "family": "classifier",
                "method": "train",
                "config": '{"epochs": 2}',
                "seed": 3,
                "status": "completed",
                "created": 1.0,
                "versions": '{"python": "3.11"}',
            }
        )
        .last_pk
    )
    db["metrics"].insert({"run_id": run_id, "step": 2, "name": "acc", "value": 0.75, "time": 1.0})
    db.conn.close()
    return run_id


@pytest.fixture
def good(tmp_path: Path) -> tuple[Project, int]:
    """A healthy project elsewhere, to show that refusing a bad one touches nothing else."""
    project = Project.create(tmp_path / "good")
    run_id = project.create_run(
        job="j", kind="train", family="f", method="m", config={"a": 1}, seed=0
    )
    project.update_run(run_id, status="completed")
    project.add_metrics([{"run_id": run_id, "step": 1, "name": "acc", "value": 0.5, "time": 0.0}])
    yield project, run_id
    project.close()


def _assert_good_untouched(good: tuple[Project, int]) -> None:
    project, run_id = good
    with Project.open(project.root) as again:
        assert [r.id for r in again.runs()] == [run_id]
        assert again.run(run_id).status == "completed"
        assert again.final_metrics(run_id) == {"acc": 0.5}


def test_schema1_project_is_upgraded_with_a_backup(tmp_path: Path, good) -> None:
    root = tmp_path / "old"
    run_id = _make_schema1_project(root)
    assert "note" not in _columns(root / CATALOGUE, "runs")

    with Project.open(root) as project:
        assert project.schema_version == SCHEMA_VERSION
        record = project.run(run_id)
        assert (record.job, record.status, record.seed) == ("classifier.train_mlp", "completed", 3)
        assert record.config == {"epochs": 2} and record.versions == {"python": "3.11"}
        assert record.note is None and record.tags == []
        assert project.final_metrics(run_id) == {"acc": 0.75}
        project.update_run(run_id, note="from v1", tags=["old"])
        assert project.run(run_id).tags == ["old"]

    assert {"note", "tags"} <= _columns(root / CATALOGUE, "runs")
    backup = root / f"{CATALOGUE}.schema1.bak"
    assert backup.is_file()
    conn = sqlite3.connect(backup)
    try:
        version = conn.execute("select value from meta where key = 'schema_version'").fetchone()
        assert version == ("1",)
        assert conn.execute("select count(*) from runs").fetchone() == (1,)
    finally:
        conn.close()
    assert "note" not in _columns(backup, "runs")

    # opening again neither migrates nor backs up again
    before = _digest(backup)
    with Project.open(root) as project:
        assert project.run(run_id).note == "from v1"
    assert _digest(backup) == before
    assert sorted(p.name for p in root.glob("*.bak")) == [f"{CATALOGUE}.schema1.bak"]
    _assert_good_untouched(good)


def _set_version(root: Path, version: str) -> None:
    conn = sqlite3.connect(root / CATALOGUE)
    try:
        conn.execute("update meta set value = ? where key = 'schema_version'", (version,))
        conn.commit()
    finally:
        conn.close()


def test_newer_schema_is_refused_untouched(tmp_path: Path, good) -> None:
    root = tmp_path / "newer"
    with Project.create(root) as project:
        project.create_run(job="j", kind="train", family="f", method="m", config={}, seed=0)
    _set_version(root, str(SCHEMA_VERSION + 1))
    before = _digest(root / CATALOGUE)

    with pytest.raises(ProjectVersionError) as info:
        Project.open(root)
    message = str(info.value)
    assert "newer" in message
    assert str(SCHEMA_VERSION + 1) in message
    assert _digest(root / CATALOGUE) == before
    assert not list(root.glob("*.bak"))
    with pytest.raises(ProjectVersionError):  # and it stays refused
        Project.open(root, create=True)
    assert _digest(root / CATALOGUE) == before
    _assert_good_untouched(good)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(os.urandom(8192)), id="garbage"),
        pytest.param(
            lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000), id="bad-header"
        ),
    ],
)
def test_corrupted_catalogue_is_refused_untouched(
    tmp_path: Path, good, damage: Callable[[Path], None]
) -> None:
    root = tmp_path / "broken"
    Project.create(root).close()
    damage(root / CATALOGUE)
    before = _digest(root / CATALOGUE)

    with pytest.raises(ProjectError) as info:
        Project.open(root)
    message = str(info.value)
    assert str(root) in message and "untouched" in message
    assert "Traceback" not in message
    assert _digest(root / CATALOGUE) == before
    _assert_good_untouched(good)


def test_foreign_sqlite_file_is_refused(tmp_path: Path, good) -> None:
    root = tmp_path / "foreign"
    root.mkdir()
    for meta_rows in ([], [("app", "someone-else"), ("schema_version", "1")]):
        path = root / CATALOGUE
        path.unlink(missing_ok=True)
        conn = sqlite3.connect(path)
        conn.execute("create table meta (key text primary key, value text)")
        conn.execute("create table customers (id integer primary key, name text)")
        conn.executemany("insert into meta values (?, ?)", meta_rows)
        conn.commit()
        conn.close()
        before = _digest(path)
        with pytest.raises(ProjectError) as info:
            Project.open(root)
        assert "not an Unlearning Workbench" in str(info.value)
        assert _digest(path) == before

    # an SQLite file with no meta table at all is not ours either
    path = root / CATALOGUE
    path.unlink()
    conn = sqlite3.connect(path)
    conn.execute("create table customers (id integer primary key)")
    conn.commit()
    conn.close()
    before = _digest(path)
    with pytest.raises(ProjectError, match="not a readable Unlearning Workbench catalogue"):
        Project.open(root)
    assert _digest(path) == before
    _assert_good_untouched(good)


def test_folder_without_catalogue(tmp_path: Path, good) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ProjectError, match="has no workbench.sqlite"):
        Project.open(empty)
    assert list(empty.iterdir()) == []
    with pytest.raises(ProjectError, match="no project at"):
        Project.open(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ProjectError, match="is a file"):
        Project.open(a_file)
    # create=True makes one
    with Project.open(empty, create=True) as project:
        assert project.schema_version == SCHEMA_VERSION
    _assert_good_untouched(good)


def test_a_failing_migration_leaves_no_half_applied_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that breaks halfway must roll back, so that a fixed release can migrate again.

    A future migration (schema 3) is simulated: it adds a column and then fails.
    """
    import workbench.store as store

    root = tmp_path / "old"
    run_id = _make_schema1_project(root)

    def broken(db: sqlite_utils.Database) -> None:
        db["runs"].add_column("priority", int)
        raise RuntimeError("bug in migration 3")

    def fixed(db: sqlite_utils.Database) -> None:
        db["runs"].add_column("priority", int)

    monkeypatch.setattr(store, "MIGRATIONS", [*MIGRATIONS, broken])
    monkeypatch.setattr(store, "SCHEMA_VERSION", len(MIGRATIONS) + 1)
    with pytest.raises(ProjectError) as info:
        Project.open(root)
    message = str(info.value)
    assert "bug in migration 3" in message
    assert f"{CATALOGUE}.schema1.bak" in message  # says where the untouched copy is
    assert "priority" not in _columns(root / CATALOGUE, "runs")

    monkeypatch.setattr(store, "MIGRATIONS", [*MIGRATIONS, fixed])
    with Project.open(root) as project:
        assert project.schema_version == len(MIGRATIONS) + 1
        assert project.run(run_id).status == "completed"
    assert {"note", "tags", "priority"} <= _columns(root / CATALOGUE, "runs")
