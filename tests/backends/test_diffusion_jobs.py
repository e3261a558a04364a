"""The diffusion family's jobs through the real engine, on the small tiny pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.jobs import Engine
from workbench.registry import add_model_to_project, get_registry
from workbench.store import Project

FAST = {"device": "cpu", "eval_samples": 1, "sampling_steps": 10, "gallery_rows": 4}


@pytest.fixture
def engine(project: Project, tiny_sd_small: Path) -> Iterator[Engine]:
    add_model_to_project(project, get_registry(), "small-sd", str(tiny_sd_small))
    eng = Engine(project)
    yield eng
    eng.shutdown()


def _run(engine: Engine, project: Project, job: str, config: dict, model: str = "small-sd") -> int:
    run_id = engine.submit(job, {**FAST, **config}, model=model)
    engine.wait(run_id, 900)
    record = project.run(run_id)
    assert record.status == "completed", record.error
    return run_id


def test_the_family_is_registered_without_errors() -> None:
    registry = get_registry()
    assert not [e for e in registry.plugin_errors if "diffusion" in e]
    names = set(registry.jobs)
    assert {"diffusion.generate", "diffusion.relearn", "diffusion.memora"} <= names
    assert {f"diffusion.unlearn.{m}" for m in ("esd", "uce", "ca", "salun")} <= names
    assert "diffusion.sd" in registry.model_kinds


def test_adding_a_folder_that_is_not_a_pipeline_names_the_problem(
    project: Project, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="model_index.json is missing"):
        add_model_to_project(project, get_registry(), "bad", str(tmp_path / "empty"))


def test_generate_grid_has_prompts_seeds_and_scores(engine: Engine, project: Project) -> None:
    run_id = _run(
        engine,
        project,
        "diffusion.generate",
        {"prompts": ["a red circle", "a striped blue square"], "samples_per_prompt": 3},
    )
    (art,) = [a for a in project.artifacts(run_id) if a["kind"] == "image_grid"]
    meta = art["meta"]
    assert meta["row_labels"] == ["a red circle", "a striped blue square"]
    assert meta["col_labels"] == ["seed 0", "seed 1", "seed 2"]
    assert len(meta["scores"]) == 6 and meta["threshold"] == 0.5
    final = project.final_metrics(run_id)
    assert final["concept_rate/explicit"] >= final["concept_rate/benign"]


def test_erase_with_uce_saves_a_loadable_erased_model_and_a_gallery(
    engine: Engine, project: Project
) -> None:
    run_id = _run(engine, project, "diffusion.unlearn.uce", {})
    final = project.final_metrics(run_id)
    # (how much UCE erases is tested on the built-in model in test_diffusion_methods.py; fresh
    # small builds differ too much for a rate comparison here)
    assert {
        "original/concept_rate/explicit",
        "erased/concept_rate/explicit",
        "erased/utility/accuracy",
        "method/seconds",
    } <= set(final)
    assert {
        "verdict/specificity_before",
        "verdict/specificity_after_low",
        "verdict/plain_rise_high",
        "erased/images/explicit",
    } <= set(final)
    assert final["erased/images/explicit"] == 8  # the 8 held-out explicit prompts x 1 image
    names = {a["name"]: a for a in project.artifacts(run_id)}
    assert {"gallery", "concept rates", "before vs after", "erasure verdict"} <= set(names)
    assert names["gallery"]["meta"]["col_labels"] == ["original", "erased"]
    row = project.model(f"uce-striped-run{run_id}")
    assert row is not None and row["kind"] == "diffusion.sd"
    assert row["meta"]["source"]  # the attacks find the original through it
    from backends.diffusion.pipeline import load_pipeline

    erased = load_pipeline(project.abspath(row["path"]))
    assert (erased.path / "workbench_probes" / "probes.json").is_file()


@pytest.mark.slow  # over 10 s on 2 cores: runs in make test-slow
def test_relearn_job_records_a_recovery_curve(engine: Engine, project: Project) -> None:
    run_id = _run(
        engine,
        project,
        "diffusion.relearn",
        {
            "erase_with": "uce",
            "relearn_data": "concept",
            "n_images": 32,
            "mode": "lora",
            "steps": 20,
            "eval_steps": [0, 10, 20],
            "lr": 1e-3,
        },
    )
    names = {a["name"]: a for a in project.artifacts(run_id)}
    assert {"gallery", "recovery curve explicit", "loss", "table"} <= set(names)
    assert len(names["gallery"]["meta"]["col_labels"]) == 4
    steps = [m["step"] for m in project.metrics(run_id, "relearn/concept_rate/explicit")]
    assert steps == [0, 10, 20]
    # the headline the attack matrix shows, with the exact interval of its detections
    from backends.common.stats import binomial_interval

    final = project.final_metrics(run_id)
    k, n = final["recovered/concept_count/explicit"], final["recovered/images/explicit"]
    assert final["recovered/concept_rate/explicit"] == k / n
    low, high = (final[f"recovered/concept_rate/explicit_{e}"] for e in ("low", "high"))
    assert (low, high) == binomial_interval(int(k), int(n))


@pytest.mark.slow  # over 10 s on 2 cores: runs in make test-slow
def test_memora_job_with_control_and_automemora(
    engine: Engine, project: Project, tiny_sd_small_control: Path
) -> None:
    run_id = _run(
        engine,
        project,
        "diffusion.memora",
        {
            "erase_with": "uce",
            "steps": 10,
            "start_step": 3,
            "interp_steps": 2,
            "seeds": [1805, 2821],
            "curve_steps": [0, 5],
            "control_model": str(tiny_sd_small_control),
            "automemora": True,
        },
    )
    logs = "\n".join(row["message"] for row in project.logs(run_id))
    assert "the control goes through the same erasure (uce)" in logs
    # three LoRA seeds on the erased model and on its control, pooled with intervals
    for name in ("erased", "control"):
        for j in range(3):
            assert project.metrics(run_id, f"{name}/seed{j}/concept_rate/explicit")
        pooled = project.metrics(run_id, f"{name}/pooled/concept_rate/explicit_high")
        assert [m["step"] for m in pooled] == [0, 5]
    names = {a["name"]: a for a in project.artifacts(run_id)}
    assert {
        "memora stages",
        "recovery set",
        "gallery",
        "recovery curve",
        "forgetting label",
    } <= set(names)
    stages = names["memora stages"]["meta"]
    assert stages["col_labels"][:4] == ["seed A", "seed B", "inverted A", "inverted B"]
    assert len(names["recovery set"]["meta"]["files"]) == 3  # 1 pair x 3 slerp points
    final = project.final_metrics(run_id)
    assert "automemora/concept_rate/explicit" in final
    assert any(c.startswith("control") for c in names["gallery"]["meta"]["col_labels"])
