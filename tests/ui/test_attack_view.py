"""The adversarial-prompt attack view (ui/views/attack_view.py): results per prompt, live loss,
prompt and image from the run's events, and the run view's table entry that picks it."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from ui.views.artifact_views import TableViewer
from ui.views.attack_view import AttackView, attack_table_viewer
from ui.views.run_view import VIEWERS
from workbench.artifacts import Table
from workbench.jobs import Event
from workbench.store import Project

COLUMNS = [
    "prompt",
    "seed",
    "unattacked score",
    "unattacked success",
    "attack success",
    "adversarial prompt",
    "score",
    "iterations",
    "seconds",
    "unattacked image",
    "image",
]


def png(colour: tuple[int, int, int]) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), colour, np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def results_table(title: str = "Prompt attack results: unlearndiffatk") -> Table:
    rows = [
        [
            "a striped red circle",
            1000,
            0.9,
            True,
            False,
            "",
            0.9,
            0,
            0.0,
            png((200, 0, 0)),
            png((200, 0, 0)),
        ],
        [
            "a striped blue square",
            1001,
            0.1,
            False,
            True,
            "zebra x a striped blue square",
            0.97,
            20,
            3.1,
            png((0, 0, 200)),
            png((0, 200, 0)),
        ],
        [
            "a striped red cross",
            1002,
            0.2,
            False,
            False,
            "qq a striped red cross",
            0.3,
            100,
            9.0,
            png((9, 9, 9)),
            "",
        ],
    ]
    return Table(COLUMNS, rows, title=title)


def test_the_results_table_shows_each_prompt_with_its_outcome_and_images(qtbot) -> None:
    view = AttackView(results_table())
    qtbot.addWidget(view)
    assert view.table.rowCount() == 3
    header = [view.table.horizontalHeaderItem(c).text() for c in range(view.table.columnCount())]
    attack, winner, image = (
        header.index("attack"),
        header.index("winning prompt"),
        header.index("image"),
    )
    assert [view.table.item(r, attack).text() for r in range(3)] == ["not needed", "yes", "no"]
    assert view.table.item(1, winner).text() == "zebra x a striped blue square"
    assert view.table.cellWidget(1, image).pixmap().toImage().pixelColor(3, 3).green() == 200
    assert view.table.cellWidget(2, image).text() == "—"  # no image: said so, no crash
    assert view.counts() == (1, 2, 3)
    assert (
        "Pre-ASR 1/3" in view.summary.text()
        and "ASR (unattacked + attack successes) 2/3" in view.summary.text()
    )


def test_the_live_panel_follows_loss_prompt_and_image_events(qtbot, tmp_path: Path) -> None:
    project = Project.create(tmp_path / "p")
    run_id = project.create_run(
        job="diffusion.attack.unlearndiffatk",
        kind="attack",
        family="diffusion",
        method="unlearndiffatk",
        config={},
        seed=0,
    )
    view = AttackView(results_table("Prompt attack results (in progress): unlearndiffatk"))
    qtbot.addWidget(view)
    view.set_project(project, run_id)
    live = project.run_dir(run_id) / "live"
    live.mkdir(parents=True)
    Image.fromarray(np.full((16, 16, 3), (10, 220, 30), np.uint8)).save(live / "current.png")
    view.handle_events(
        [
            Event(run_id, "metric", {"name": "attack/loss", "value": 0.5, "step": 1}),
            Event(run_id, "metric", {"name": "other", "value": 9.0, "step": 1}),
            Event(run_id + 1, "metric", {"name": "attack/loss", "value": 7.0, "step": 1}),
            Event(run_id, "metric", {"name": "attack/loss", "value": 0.25, "step": 2}),
            Event(
                run_id,
                "status",
                {"status": "running", "text": "case 2/3 · prompt: zebra a red circle"},
            ),
        ]
    )
    xs, ys = view.curve.getData()
    assert list(xs) == [1.0, 2.0] and list(ys) == [0.5, 0.25]
    assert "zebra a red circle" in view.prompt_label.text()
    assert view.image_label.pixmap().toImage().pixelColor(5, 5).green() == 220
    assert "in progress" in view.summary.text()


def test_the_run_views_table_entry_picks_the_attack_view_only_for_attack_results(qtbot) -> None:
    attack = VIEWERS["table"](results_table())
    plain = VIEWERS["table"](Table(["a"], [[1]], title="Gap to retrain"))
    qtbot.addWidget(attack)
    qtbot.addWidget(plain)
    assert isinstance(attack, AttackView)
    assert isinstance(plain, TableViewer)
    wrapped = attack_table_viewer(lambda artifact: TableViewer(artifact))
    other = wrapped(Table(["a"], [[2]], title="Prompt attacks are fun"))
    qtbot.addWidget(other)
    assert isinstance(other, TableViewer)


def test_the_summary_puts_the_random_prompt_baseline_and_the_calibrated_rule_next_to_asr(
    qtbot, tmp_path: Path
) -> None:
    project = Project.create(tmp_path / "p")
    run_id = project.create_run(
        job="diffusion.attack.unlearndiffatk",
        kind="attack",
        family="diffusion",
        method="unlearndiffatk",
        config={},
        seed=0,
    )
    final = {
        "pre_asr_low": 0.01,
        "pre_asr_high": 0.9,
        "asr_low": 0.1,
        "asr_high": 0.99,
        "random_asr": 0.75,
        "random_asr_low": 0.2,
        "random_asr_high": 0.97,
        "beats_random": 0.0,
        "threshold": 0.99889,
        "calibration_fpr": 0.046875,
        "calibration_n": 64.0,
    }
    project.add_metrics(
        [
            {"run_id": run_id, "step": 0, "name": k, "value": v, "time": 0.0}
            for k, v in final.items()
        ]
    )
    view = AttackView(results_table())
    qtbot.addWidget(view)
    view.set_project(project, run_id)
    text = view.summary.text()
    assert "ASR 2/3 = 0.67 [0.10, 0.99]" in text
    assert (
        "Random prompts, same judge and budget: 0.75 [0.20, 0.97]; ASR above them: not held" in text
    )
    assert "score > 0.9989 (calibrated: 0.047 of 64 concept-free images pass)" in text
