"""The monitor offers Resume for a stopped run recorded under a job's former name."""

from __future__ import annotations

from pathlib import Path

from ui.panes.monitor import JobMonitor
from workbench.registry import get_registry
from workbench.store import Project


def test_resume_is_offered_for_a_run_recorded_under_a_former_job_name(
    qtbot, tmp_path: Path
) -> None:
    registry = get_registry()
    project = Project.create(tmp_path / "old")
    try:
        run_id = project.create_run(
            job="diffusion.erase.esd",  # recorded before the job became diffusion.unlearn.esd
            kind="unlearn",
            family="diffusion",
            method="esd",
            config={},
            seed=0,
            status="cancelled",
        )
        project.update_run(run_id, checkpoint=f"runs/{run_id}/state.safetensors", checkpoint_step=3)
        monitor = JobMonitor(registry)
        qtbot.addWidget(monitor)
        monitor.set_engine(None, project)
        row = monitor.track(project.run(run_id))
        assert not row.resume_button.isHidden()  # shown once the monitor is
    finally:
        project.close()
