"""Running the real digits job from the builder: progress, live curves, cancel, resume, reopen."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from workbench.store import Project

JOB = "classifier.train_mlp"
TIMEOUT = 60_000


def _new_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    Project.create(root).close()
    return root


def test_run_from_builder_shows_progress_and_curves(qtbot, make_window, tmp_path) -> None:
    window = make_window(_new_project(tmp_path))
    builder = window.builder
    builder.select_job(JOB)
    builder.seed_spin.setValue(3)
    # long enough (about 1 s) that throttled progress shows intermediate values
    builder.form.set_values({"epochs": 40})
    progress_seen: list[int] = []
    with qtbot.waitSignal(builder.submitted, timeout=5000) as submitted:
        qtbot.mouseClick(builder.run_button, Qt.MouseButton.LeftButton)
    run_id = submitted.args[0]
    row = window.monitor.rows[run_id]
    row.progress.valueChanged.connect(progress_seen.append)
    assert window.run_view.run_id == run_id

    qtbot.waitUntil(
        lambda: len(window.run_view.plot.curve_data("train_loss")[0]) >= 2, timeout=TIMEOUT
    )
    qtbot.waitUntil(lambda: window.project_pane.run_status(run_id) == "completed", timeout=TIMEOUT)
    # the plot draws exactly the accuracies the job recorded, one per epoch (the stored series is
    # reloaded in a worker when the run ends)
    stored = window.project.metric_series(run_id)["test_acc"]
    qtbot.waitUntil(lambda: window.run_view.plot.curve_data("test_acc") == stored, timeout=10_000)
    xs, ys = stored
    assert xs == list(range(1, 41)) and len(set(ys)) > 1
    assert any(0 < v < 1000 for v in progress_seen), progress_seen
    assert row.progress.value() == 1000 and row.status == "completed"
    assert not row.cancel_button.isVisible()
    # the new model appears in the tree and the run's artifacts in the run view
    models = [
        window.project_pane.models_item.child(i).text(0)
        for i in range(window.project_pane.models_item.childCount())
    ]
    assert f"digits-mlp-run{run_id}" in models
    qtbot.waitUntil(lambda: len(window.run_view.artifact_rows) == 6, timeout=5000)
    record = window.project.run(run_id)
    assert record.seed == 3 and record.config["epochs"] == 40


def test_engine_errors_are_shown_in_the_builder(qtbot, make_window, tmp_path) -> None:
    window = make_window(_new_project(tmp_path))
    builder = window.builder
    builder.select_job(JOB)
    builder.set_dataset("no-such-dataset")
    assert builder.submit() is None
    assert builder.input_error_field == "dataset"
    assert "unknown dataset 'no-such-dataset'" in builder.input_errors["dataset"].text()
    builder.set_dataset("digits")
    builder.form.editors["lr"].input.setText("100")
    assert builder.submit() is None
    assert builder.form.error_field == "lr"
    assert "out of range" in builder.form.field_errors["lr"].text()
    assert window.project.runs() == []


def test_cancel_a_long_run_from_the_monitor(qtbot, make_window, tmp_path) -> None:
    window = make_window(_new_project(tmp_path))
    window.builder.select_job(JOB)
    window.builder.form.set_values({"epochs": 5000})
    run_id = window.builder.submit()
    assert run_id is not None
    row = window.monitor.rows[run_id]
    qtbot.waitUntil(lambda: row.progress.value() > 0, timeout=TIMEOUT)
    assert row.cancel_button.isVisible()
    qtbot.mouseClick(row.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: row.status == "cancelled", timeout=TIMEOUT)
    assert window.project.run(run_id).status == "cancelled"
    assert window.project_pane.run_status(run_id) == "cancelled"
    assert "cancelled" in window.run_view.header.text()
    # it saved a checkpoint and the job supports resuming: Resume is offered and works
    assert row.resume_button.isVisible()
    qtbot.mouseClick(row.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: row.status == "running", timeout=TIMEOUT)
    qtbot.mouseClick(row.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: row.status == "cancelled", timeout=TIMEOUT)


def test_runs_survive_closing_and_reopening(qtbot, make_window, tmp_path) -> None:
    root = _new_project(tmp_path)
    first = make_window(root)
    first.builder.select_job(JOB)
    first.builder.form.set_values({"epochs": 3, "lr": 0.002})
    run_id = first.builder.submit()
    qtbot.waitUntil(lambda: first.project_pane.run_status(run_id) == "completed", timeout=TIMEOUT)
    first.close()
    assert first.project is None

    second = make_window(root)
    assert second.project_pane.run_ids() == [run_id]
    assert second.project_pane.run_status(run_id) == "completed"
    second.select_run(run_id)
    view = second.run_view
    qtbot.waitUntil(lambda: view.loaded_run == run_id, timeout=10_000)
    assert view.run_id == run_id and view.record.config["lr"] == 0.002
    assert view.detail_labels["Status"].text().startswith("completed")
    assert view.config_table.rowCount() == len(view.record.config)
    qtbot.waitUntil(lambda: view.plot.curve_data("train_acc")[0] == [1, 2, 3], timeout=5000)
    assert str(root.resolve()) in second.recent_projects()
