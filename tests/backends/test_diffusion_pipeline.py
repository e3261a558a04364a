"""The tiny text-to-image pipeline: build, save/load, bad folders, sampler and probes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from backends.common.safe_load import UnsafeCheckpointError
from backends.diffusion.checks import NotAPipelineError, check_pipeline_folder
from backends.diffusion.data import make_dataset, parse_prompt, prompt_list
from backends.diffusion.probes import PROBES_DIR, Probes, frechet_distance

PROMPTS = ["a red circle", "a striped blue square", "a framed green triangle"]


def test_world_is_seeded_and_captions_follow_ground_truth() -> None:
    a, b = make_dataset(40, 3), make_dataset(40, 3)
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    for s in a.samples:
        words = s.caption.split()
        assert s.shape in words and s.colour in words
        assert s.striped == ("striped" in words or "zebra" in words)
        assert s.framed == ("framed" in words)
    assert not np.array_equal(make_dataset(40, 4).images, a.images)
    assert {p.kind for p in prompt_list("implicit")} == {"implicit"}
    assert all("striped" not in p.text for p in prompt_list("implicit"))
    assert parse_prompt("a zebra yellow cross").kind == "implicit"


def test_build_report_shows_the_concept_is_learned(tiny_sd_small: Path) -> None:
    report = json.loads((tiny_sd_small / "build_report.json").read_text())
    ev = report["evaluation"]
    # the shipped small model draws stripes far more often when asked for them (its build report:
    # 1.00 explicit and 0.94 implicit against 0.44 plain, 2 images x 16 prompts)
    assert ev["concept_rate/explicit"] >= ev["concept_rate/benign"] + 0.2
    assert ev["concept_rate/implicit"] >= ev["concept_rate/benign"] + 0.2
    assert report["probe_accuracy"]["stripe_accuracy"] > 0.95


def test_save_load_round_trip_gives_identical_images(tiny_sd_small: Path, tmp_path: Path) -> None:
    from backends.diffusion.pipeline import generate, load_pipeline

    first = load_pipeline(tiny_sd_small)
    images = generate(first, PROMPTS, [1, 2, 3], steps=10)
    again = generate(first, PROMPTS[::-1], [3, 2, 1], steps=10, batch=1)[::-1]
    # a prompt and seed give the same image in any batch, up to float rounding of batched matmuls
    assert np.abs(images.astype(int) - again.astype(int)).max() <= 3
    first.pipe.save_pretrained(str(tmp_path / "copy"), safe_serialization=True)
    reloaded = load_pipeline(tmp_path / "copy")
    assert np.array_equal(generate(reloaded, PROMPTS, [1, 2, 3], steps=10), images)
    assert images.shape == (3, first.size, first.size, 3)


def test_folders_that_are_not_pipelines_are_refused_clearly(
    tiny_sd_small: Path, tmp_path: Path
) -> None:
    with pytest.raises(NotAPipelineError, match="does not exist"):
        check_pipeline_folder(tmp_path / "nowhere")
    single = tmp_path / "unet-only"
    shutil.copytree(tiny_sd_small / "unet", single)
    with pytest.raises(NotAPipelineError, match="model_index.json is missing.*single model"):
        check_pipeline_folder(single)
    broken = tmp_path / "no-vae"
    shutil.copytree(tiny_sd_small, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(NotAPipelineError, match="missing the pipeline components vae"):
        check_pipeline_folder(broken)
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_sd_small, pickled)
    for f in (pickled / "unet").glob("*.safetensors"):
        f.unlink()
    (pickled / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(UnsafeCheckpointError, match="only pickle weights"):
        check_pipeline_folder(pickled)
    from backends.diffusion.pipeline import load_pipeline

    with pytest.raises(UnsafeCheckpointError):
        load_pipeline(pickled)


def test_ddim_inversion_then_regeneration_reconstructs(tiny_sd_small: Path) -> None:
    import torch

    from backends.diffusion.pipeline import (
        ddim_invert,
        decode,
        encode,
        encode_images,
        generate,
        load_pipeline,
        sample,
    )

    loaded = load_pipeline(tiny_sd_small)
    pipe = loaded.pipe
    images = generate(loaded, PROMPTS, [5, 6, 7], steps=50)
    z0 = encode_images(pipe, images)
    cond = encode(pipe, PROMPTS)
    z_inv, traj = ddim_invert(pipe, z0, cond, steps=50, stop_index=35, guidance=1.0)
    assert len(traj) == 36
    z_back = sample(pipe, cond, z_inv, steps=50, guidance=1.0, start_index=15)
    err = float((z_back - z0).pow(2).mean() / z0.pow(2).mean())
    other = float((z0.roll(1, 0) - z0).pow(2).mean() / z0.pow(2).mean())
    assert err < 0.05 < other  # reconstructs; a different image is far away
    rec = decode(pipe, z_back).astype(float)
    assert np.abs(rec - decode(pipe, z0).astype(float)).mean() < 12  # of 255
    assert torch.isfinite(z_inv).all()


def test_slerp_endpoints_and_norm() -> None:
    import torch

    from backends.diffusion.pipeline import slerp

    a, b = torch.randn(4, 8, 8), torch.randn(4, 8, 8)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-6)
    assert torch.allclose(slerp(a, b, 1.0), b, atol=1e-6)
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert float(slerp(e1, e2, 0.5).norm()) == pytest.approx(1.0, abs=1e-6)
    assert torch.isfinite(slerp(a, 2 * a, 0.3)).all()


def test_probes_round_trip_and_frechet_distance(tiny_sd_small: Path) -> None:
    probes = Probes.load(tiny_sd_small / PROBES_DIR)
    test = make_dataset(64, 99, probes.world)
    s = probes.score(test.images)
    truth = test.labels()
    assert ((s["striped"] > 0.5) == truth["striped"].astype(bool)).mean() > 0.9
    assert (s["colour"] == truth["colour"]).mean() > 0.9
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    mu, sigma = x.mean(0), np.cov(x, rowvar=False)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)
    # two Gaussians with identity covariance: the distance is the squared mean difference
    assert frechet_distance(np.zeros(3), np.eye(3), np.ones(3), np.eye(3)) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="not a probes folder"):
        Probes.load(tiny_sd_small)


# tiny step counts: the build test checks that the script builds, never what the weights do
QUICK_BUILD = {
    "n_train": 48,
    "n_test": 32,
    "vae_steps": 2,
    "unet_steps": 3,
    "warmup": 1,
    "batch": 4,
    "probe_epochs": 1,
    "report_samples": 1,
}


@pytest.mark.slow  # over 10 s on 2 cores: runs in make test-slow
def test_zoo_build_writes_a_loadable_pipeline_and_its_never_learned_control(
    tmp_path: Path,
) -> None:
    """The build script that made the shipped fixtures (``tests/fixtures/diffusion/README.md``)
    builds: files, shapes, weights that load back, and a control that shares the model's VAE,
    tokenizer and probes but never saw a striped image."""
    import torch

    from backends.diffusion.pipeline import load_pipeline
    from backends.diffusion.zoo import BUILD_REPORT, build

    threads = torch.get_num_threads()
    try:
        out = tmp_path / "small"
        report = build(
            out,
            variant="small",
            threads=1,
            log=lambda _m: None,
            overrides={**QUICK_BUILD, "storage_dtype": "float16"},
            neighbours=("dotted", "checkered"),
        )
        control = tmp_path / "control"
        ctl_report = build(
            control,
            variant="small",
            threads=1,
            log=lambda _m: None,
            concept_free_from=out,
            overrides=QUICK_BUILD,
        )
    finally:
        torch.set_num_threads(threads)
    for folder in (out, control):
        for part in ("unet", "vae", "text_encoder"):
            assert list((folder / part).glob("*.safetensors")), (folder, part)
        assert (folder / PROBES_DIR / "probes.json").is_file()
        assert (folder / "model_index.json").is_file() and (folder / BUILD_REPORT).is_file()
    assert report["variant"]["unet_steps"] == 3 and report["concept_free_control_of"] is None
    # the report says how much of each texture survives the VAE (what any UNet can render)
    assert set(report["vae_round_trip"]) == {"striped", "dotted", "checkered"}
    assert report["vae_round_trip"]["dotted"]["n"] == 64
    assert ctl_report["concept_free_control_of"] == str(out)
    loaded = load_pipeline(out)
    assert loaded.size == 16 and loaded.pipe.unet.dtype == torch.float32
    assert loaded.pipe.unet.config.block_out_channels == [32, 64]
    from safetensors import safe_open

    with safe_open(str(next((out / "unet").glob("*.safetensors"))), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}  # noqa: SIM118
    ctl = load_pipeline(control)
    a, b = loaded.pipe.vae.state_dict(), ctl.pipe.vae.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # one latent space
    assert ctl.pipe.tokenizer.get_vocab() == loaded.pipe.tokenizer.get_vocab()
    world = json.loads((control / PROBES_DIR / "world.json").read_text())
    assert world["config"]["stripe_fraction"] == 0.0
    assert world["config"]["neighbours"] == ["dotted", "checkered"]  # the model's world, unstriped
    assert Probes.load(control / PROBES_DIR).world.size == 16
    probes = Probes.load(out / PROBES_DIR)
    assert probes.detector.concepts == ("striped", "framed", "dotted", "checkered")
    assert set(probes.score(np.zeros((2, 16, 16, 3), np.uint8))) >= {"dotted", "checkered"}
    assert {"dotted_accuracy", "checkered_accuracy"} <= set(report["probe_accuracy"])
