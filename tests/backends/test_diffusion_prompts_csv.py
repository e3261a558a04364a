"""Prompt lists in the I2P and UnlearnDiffAtk CSV layouts (hand-made fixtures of a few rows)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.diffusion.prompts_csv import PromptCSVError, read_prompt_csv

PROMPTS = Path(__file__).parents[1] / "fixtures" / "diffusion" / "prompts"


def test_i2p_layout_keeps_each_rows_seed_guidance_and_categories() -> None:
    pl = read_prompt_csv(PROMPTS / "i2p-sample.csv")
    assert pl.layout == "i2p" and len(pl.rows) == 4
    first = pl.rows[0]
    assert (first.prompt, first.seed, first.guidance) == ("a striped red circle", 3154, 7.0)
    assert first.categories == ["sexual", "shocking"]
    assert first.extra["nudity_percentage"] == "70.0" and "evaluation_seed" not in first.extra
    sexual = read_prompt_csv(PROMPTS / "i2p-sample.csv", categories=["Sexual"])
    assert [r.prompt for r in sexual.rows] == ["a striped red circle", "a zebra blue square"]
    assert len(read_prompt_csv(PROMPTS / "i2p-sample.csv", limit=3).rows) == 3


def test_original_i2p_release_uses_sd_seed_and_sd_guidance_scale() -> None:
    pl = read_prompt_csv(PROMPTS / "i2p-original-sample.csv", layout="i2p")
    assert [(r.seed, r.guidance) for r in pl.rows] == [(2734971755, 7.0), (12, 9.0)]
    assert pl.rows[1].categories == ["illegal activity"]


def test_unlearndiffatk_layout_and_per_image_seeds() -> None:
    pl = read_prompt_csv(PROMPTS / "unlearndiffatk-sample.csv")
    assert pl.layout == "unlearndiffatk"
    assert [r.case for r in pl.rows] == ["12", "27", "30"]
    plan = pl.seeds_and_guidance(2, default_seed=0, default_guidance=7.5)
    # two images per row from the row's own seed; the row's guidance, not the default
    assert [(r.case, s, g) for r, s, g in plan][:3] == [
        ("12", 2847, 2.0),
        ("12", 2848, 2.0),
        ("27", 71, 2.0),
    ]


def test_rows_without_seed_use_the_jobs_seed(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("prompt,categories\na red circle,\na blue square,sexual\n")
    plan = read_prompt_csv(f).seeds_and_guidance(2, default_seed=100, default_guidance=3.0)
    assert [(s, g) for _, s, g in plan] == [(100, 3.0), (101, 3.0), (102, 3.0), (103, 3.0)]


def test_wrong_columns_give_one_error_naming_the_file_and_the_expected_columns(
    tmp_path: Path,
) -> None:
    bad = PROMPTS / "wrong-columns.csv"
    with pytest.raises(PromptCSVError) as err:
        read_prompt_csv(bad)
    msg = str(err.value)
    assert str(bad) in msg and "lacks the column(s) prompt, categories" in msg
    assert "found: text, seed" in msg and "evaluation_seed" in msg
    with pytest.raises(PromptCSVError, match="UnlearnDiffAtk layout.*case_number"):
        read_prompt_csv(PROMPTS / "i2p-sample.csv", layout="unlearndiffatk")
    with pytest.raises(PromptCSVError, match="does not exist"):
        read_prompt_csv(tmp_path / "missing.csv")
    f = tmp_path / "seed.csv"
    f.write_text("case_number,prompt,evaluation_seed\n1,a red circle,abc\n")
    with pytest.raises(PromptCSVError, match=r"seed.csv, line 2: evaluation_seed='abc'"):
        read_prompt_csv(f)
    with pytest.raises(PromptCSVError, match="no prompts in the categories hate"):
        read_prompt_csv(PROMPTS / "unlearndiffatk-sample.csv", categories=["hate"])
