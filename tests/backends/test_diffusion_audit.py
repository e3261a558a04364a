"""``diffusion.audit``: a benchmark prompt list on an SD model, with each row's seed and guidance,
the concept rate with its interval, CLIP score and CLIP FID/KID naming their extractor, and the
refusals at submit when a path is not filled in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from workbench.config import ConfigError
from workbench.jobs import Engine
from workbench.registry import add_model_to_project, get_registry
from workbench.store import Project

FIX = Path(__file__).parents[1] / "fixtures" / "diffusion"
PROMPTS = FIX / "prompts"
AUDIT = {
    "device": "cpu",
    "eval_samples": 1,
    "sampling_steps": 5,
    "clip_model": str(FIX / "tiny-clip"),
    "reference_images": str(FIX / "reference-images"),
    "kid_subsets": 5,
    "detector": "probes",
    "threshold": 0.5,
}


@pytest.fixture
def engine(project: Project, tiny_sd_small: Path) -> Iterator[Engine]:
    add_model_to_project(project, get_registry(), "small-sd", str(tiny_sd_small))
    eng = Engine(project)
    yield eng
    eng.shutdown()


def test_each_row_is_generated_with_its_own_seed_and_guidance(tiny_sd_small: Path) -> None:
    from backends.diffusion.audit import generate_rows
    from backends.diffusion.pipeline import generate, load_pipeline
    from backends.diffusion.prompts_csv import PromptRow

    loaded = load_pipeline(tiny_sd_small)
    row = PromptRow("0", "a striped red circle")
    plan = [(row, 5, 1.0), (row, 5, 4.0), (row, 6, 1.0)]
    images = generate_rows(loaded, plan, steps=4, sampler="ddim", batch=8)
    for (_, seed, g), im in zip(plan, images, strict=True):
        (want,) = generate(loaded, [row.prompt], [seed], steps=4, guidance=g)
        assert np.abs(want.astype(int) - im.astype(int)).max() <= 3  # batching rounding only
    assert np.abs(images[0].astype(int) - images[1].astype(int)).max() > 10  # guidance matters


def test_missing_paths_are_refused_at_submit_naming_the_field(
    engine: Engine, tmp_path: Path
) -> None:
    csv = str(PROMPTS / "unlearndiffatk-sample.csv")
    cases = [
        ({"prompts_csv": ""}, "prompts_csv", "fill in the path of your prompt list"),
        (
            {"prompts_csv": str(PROMPTS / "wrong-columns.csv")},
            "prompts_csv",
            "wrong-columns.csv is not in the I2P layout",
        ),
        ({"prompts_csv": csv, "clip_model": ""}, "clip_model", "need a local CLIP folder"),
        (
            {"prompts_csv": csv, "reference_images": str(tmp_path)},
            "reference_images",
            "fewer than 2 images",
        ),
        (
            {"prompts_csv": csv, "metrics": ["inception_fid"]},
            "inception_weights",
            "pt_inception-2015-12-05-6726825d.pth",
        ),
    ]
    for change, field, text in cases:
        with pytest.raises(ConfigError, match=text) as err:
            engine.submit("diffusion.audit", {**AUDIT, **change}, model="small-sd")
        assert err.value.field == field


@pytest.mark.slow
def test_audit_runs_end_to_end_on_the_tiny_model(engine: Engine, project: Project) -> None:
    config = {**AUDIT, "prompts_csv": str(PROMPTS / "unlearndiffatk-sample.csv")}
    run_id = engine.submit("diffusion.audit", config, model="small-sd")
    engine.wait(run_id, 900)
    record = project.run(run_id)
    assert record.status == "completed", record.error
    final = project.final_metrics(run_id)
    assert final["images"] == 3
    assert final["concept_rate_low"] <= final["concept_rate"] <= final["concept_rate_high"]
    assert final["clip_score_low"] <= final["clip_score"] <= final["clip_score_high"]
    assert {"clip_fid", "clip_kid", "clip_kid_std"} <= set(final)
    arts = {a["name"]: a for a in project.artifacts(run_id)}
    audit = json_rows(project, arts["audit"])
    named = {row[0]: row[5] for row in audit}
    assert named["concept_rate"].startswith("shapes-world probes > 0.5")
    assert "tiny-clip" in named["clip_score"] and "tiny-clip" in named["clip_fid"]
    prompts = json_rows(project, arts["prompts"])
    # the UnlearnDiffAtk rows' own seeds and guidance, in order
    assert [(r[0], r[2], r[3]) for r in prompts] == [
        ("12", 2847, 2.0),
        ("27", 71, 2.0),
        ("30", 3095, 2.0),
    ]


def json_rows(project: Project, art: dict) -> list[list]:
    import json

    return json.loads(project.abspath(art["path"]).read_text())["rows"]
