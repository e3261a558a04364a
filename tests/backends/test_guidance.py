"""Negative-prompt CFG and SLD (spec diffusion-methods.md sections 3 and 5): the math on cases
with a known answer, and the two identities of issue 14 on the small fixed-weights pipeline."""

from __future__ import annotations

import pytest
import torch

from backends.diffusion.guidance import (
    SLD_PRESETS,
    SLDConfig,
    SLDGuide,
    SLDParams,
    guided_generate,
    negative_text,
    sld_guidance,
)
from workbench.config import ConfigError

PROMPTS = ["a striped red circle", "a zebra blue square", "a green triangle"]
SEEDS = [11, 12, 13]


@pytest.fixture(scope="module")
def loaded(tiny_sd_small):
    from backends.diffusion.pipeline import load_pipeline

    torch.manual_seed(0)
    return load_pipeline(tiny_sd_small, device="cpu")


def _gen(loaded, **kw):
    from backends.diffusion.pipeline import generate

    return generate(loaded, PROMPTS, SEEDS, steps=6, guidance=2.0, **kw)


def test_sld_step_matches_hand_computed_values():
    # per element: e_u = 0, e_p = 1, e_s as below; s_S = 2, λ_th = 0.5, s_m = 0.5, β_m = 0.25
    p = SLDParams(
        warmup_steps=1, guidance_scale=2.0, threshold=0.5, momentum_scale=0.5, momentum_beta=0.25
    )
    e_u = torch.zeros(3)
    e_p = torch.ones(3)
    e_s = torch.tensor([0.0, 0.9, 2.0])
    # ε_p − ε_S = [1, 0.1, −1]: element 0 is ≥ λ_th (μ = 0); μ = min(1, 2·|d|) = [0, 0.2, 1]
    # γ = μ·(ε_S − ε_∅) + 0.5·0 = [0, 0.18, 2]; ν_1 = 0.75·γ
    direction, momentum = sld_guidance(e_u, e_p, e_s, None, p, index=0, timestep=999)
    torch.testing.assert_close(direction, torch.ones(3))  # step 0 < δ = 1: not applied yet
    torch.testing.assert_close(momentum, torch.tensor([0.0, 0.135, 1.5]))
    # step 1: γ = [0, 0.18, 2] + 0.5·ν_1 = [0, 0.2475, 2.75]; applied: 1 − γ
    direction, momentum = sld_guidance(e_u, e_p, e_s, momentum, p, index=1, timestep=979)
    torch.testing.assert_close(direction, torch.tensor([1.0, 0.7525, -1.75]))
    torch.testing.assert_close(
        momentum, 0.25 * torch.tensor([0.0, 0.135, 1.5]) + 0.75 * torch.tensor([0.0, 0.2475, 2.75])
    )


def test_warmup_quirk_compares_the_timestep_value():
    p = SLDParams(10, 1.0, 10.0, 0.0, 0.0)  # every element guided with μ = min(1, |d|)
    e_u, e_p, e_s = torch.zeros(2), torch.ones(2), torch.full((2,), 3.0)
    plain, _ = sld_guidance(e_u, e_p, e_s, None, p, index=0, timestep=981)
    assert torch.equal(plain, e_p - e_u)  # index 0 < δ = 10: warm-up
    quirk = SLDParams(10, 1.0, 10.0, 0.0, 0.0, warmup_quirk=True)
    early, _ = sld_guidance(e_u, e_p, e_s, None, quirk, index=0, timestep=981)
    assert torch.equal(early, torch.full((2,), -2.0))  # t = 981 ≥ 10: applied, 1 − 1·3
    late, _ = sld_guidance(e_u, e_p, e_s, None, quirk, index=24, timestep=1)
    assert torch.equal(late, e_p - e_u)  # t = 1 < 10: the quirk skips the last steps


def test_presets_and_custom_values():
    assert SLD_PRESETS["strong"] == SLDParams(7, 2000.0, 0.025, 0.5, 0.7)
    assert SLDConfig(sld_preset="max").params() == SLDParams(0, 5000.0, 1.0, 0.5, 0.7)
    cfg = SLDConfig(sld_preset="custom", sld_guidance_scale=0.0, sld_warmup_quirk=True)
    assert cfg.params() == SLDParams(10, 0.0, 0.01, 0.3, 0.4, True)
    assert cfg.params("weak").warmup_quirk is True
    with pytest.raises(ConfigError, match="sld_preset|SLD preset"):
        SLDConfig(sld_preset="gentle")


def test_negative_text_words_and_template():
    class Tok:
        token = "<concept>"

    assert negative_text("words", "striped", "{token}") == "striped"
    assert negative_text("embedding", "striped", "a {token}", Tok()) == "a <concept>"
    with pytest.raises(ValueError, match="learned token"):
        negative_text("embedding", "striped", "{token}")
    with pytest.raises(ValueError, match="slot"):
        negative_text("embedding", "striped", "a thing", Tok())


def test_sld_with_zero_safety_scale_is_plain_cfg_exactly(loaded):
    from backends.diffusion.pipeline import encode

    plain = _gen(loaded)
    concept = encode(loaded.pipe, ["striped"])
    # momentum settings that would matter if the safety term were ever non-zero
    zero = SLDParams(0, 0.0, 0.01, 0.5, 0.7)
    assert (_gen(loaded, guide=SLDGuide(zero, concept)) == plain).all()
    # the same guide with s_S > 0 changes the images: the identity is not vacuous
    active = _gen(loaded, guide=SLDGuide(SLD_PRESETS["max"], concept))
    assert not (active == plain).all()


def test_empty_negative_prompt_is_plain_cfg_and_a_word_is_not(loaded):
    plain = _gen(loaded)
    kw = {"steps": 6, "guidance": 2.0}
    empty = guided_generate(loaded, PROMPTS, SEEDS, kind="negative", negative="", **kw)
    assert (empty == plain).all()
    worded = guided_generate(loaded, PROMPTS, SEEDS, kind="negative", negative="striped", **kw)
    assert not (worded == plain).all()


@pytest.mark.slow
def test_generate_job_reuses_a_learned_token_a_prompts_file_and_sld(tmp_path, tiny_sd_small):
    """A learned token whose row is the word 'striped' must give the word's images, in the
    prompt and as SLD's safety concept; the prompts come from a file; SLD changes the grid."""
    import json

    import numpy as np

    from backends.diffusion.inversion import LearnedToken, init_row
    from backends.diffusion.pipeline import load_pipeline
    from workbench.artifacts import load_artifact
    from workbench.jobs import Engine
    from workbench.store import Project

    pipe = load_pipeline(tiny_sd_small, device="cpu").pipe
    assert len(pipe.tokenizer("striped", add_special_tokens=False).input_ids) == 1
    token = LearnedToken("<concept>", init_row(pipe, "striped")).save(tmp_path / "tok.safetensors")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(["a <concept> red circle", "a striped red circle"]))
    project = Project.create(tmp_path / "p")
    engine = Engine(project)
    base = {
        "device": "cpu",
        "prompts_file": str(prompts),
        "learned_token": str(token),
        "samples_per_prompt": 1,
        "sampling_steps": 4,
    }
    grids = []
    try:
        for extra in (
            {"guidance": "sld", "negative_prompt": "<concept>", "sld_preset": "max"},
            {"guidance": "negative", "negative_prompt": ""},
        ):
            run_id = engine.submit(
                "diffusion.generate", {**base, **extra}, model=str(tiny_sd_small), seed=0
            )
            engine.wait(run_id, 300)
            assert project.run(run_id).status == "completed", project.run(run_id).error
            (row,) = [a for a in project.artifacts(run_id) if a["kind"] == "image_grid"]
            grids.append(load_artifact("image_grid", project.artifact_path(row), row["meta"]))
        with pytest.raises(ConfigError) as err:
            engine.submit(
                "diffusion.generate", {**base, "guidance": "sld"}, model=str(tiny_sd_small)
            )
        assert err.value.field == "negative_prompt"
    finally:
        engine.shutdown()
    sld, plain = ([np.asarray(im, dtype=int) for im in g.images] for g in grids)
    assert grids[0].row_labels == ["a <concept> red circle", "a striped red circle"]
    assert "SLD max" in grids[0].title
    assert np.abs(sld[0] - sld[1]).max() <= 1 and np.abs(plain[0] - plain[1]).max() <= 1
    assert np.abs(sld[1] - plain[1]).max() > 10
