"""Relearning attacks on the tiny text-to-image model (backends.diffusion.attacks; spec
``diffusion-methods.md`` sections 1 "Evaluation protocol", 2 MemoRa and 6.6).

Everything runs on the SHIPPED small tiny model (``tests/fixtures/diffusion/tiny-sd-small``: 16x16
images, a 1 M-parameter UNet, fixed weights) and its shipped never-learned control. For the claims
that need an erased concept, the module erases stripes itself with a quick ESD-x-style step (spec
section 4.1; the anchored form ResAlign's ``esd`` mode uses, section 1): the cross-attention of the
UNet is trained so that ε_θ(x_t, "a striped red circle") matches
ε_0(x_t, "a red circle") − η·(ε_0(x_t, "a striped red circle") − ε_0(x_t, "a red circle")) on noised
striped images of the TRAIN half of the shape x colour combinations. It is not one of the
project's erasure methods, only a cheap way to get a model whose explicit concept rate is much
lower; every rate is measured on the held-out EVAL half (8 prompts x 4 seeds = 32 images; measured
on the shipped weights: 1.00 -> 0.22, while the plain-prompt rate is about 0.4).
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from backends.common.stats import held
from backends.diffusion.attacks.configs import MemoRaConfig, RelearnConfig
from backends.diffusion.attacks.memora import (
    automemora_generate,
    automemora_unets,
    memora,
    memora_dataset,
)
from backends.diffusion.attacks.relearn import (
    denoising_loss,
    has_adapter,
    instance_captions,
    merge_adapter,
    relearn,
    relearn_data,
    remove_adapter,
)
from backends.diffusion.data import caption_for, combination_split, make_dataset
from backends.diffusion.evaluation import evaluate_prompt_sets
from backends.diffusion.pipeline import (
    ddim_invert,
    decode,
    encode,
    encode_images,
    generate,
    load_pipeline,
    sample,
    slerp,
)
from backends.diffusion.probes import PROBES_DIR, Probes

EXPLICIT = "concept_rate/explicit"
# MemoRa on the shipped small model and its shipped control: (label, steps to recover). Measured
# (96 images a step, 3 LoRA seeds pooled): erased + LoRA 0.19 [0.12, 0.28] at step 0 and 0.52
# [0.42, 0.62] at step 50; control + the same erasure + LoRA 0.22 and 0.34 [0.25, 0.45]. The rate
# rises (held) but its interval does not clear half the original's 1.00, nor the control's.
MEMORA_EXPECTED = ("not recovered", None)


def _quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def small(tiny_sd_small: Path) -> Path:
    torch.set_num_threads(1)
    return tiny_sd_small


@pytest.fixture(scope="module")
def probes(small: Path) -> Probes:
    return Probes.load(small / PROBES_DIR)


def _explicit(loaded: Any, probes: Probes, run: int = 0) -> dict[str, float]:
    """Stripe rate (and its counts) on the 8 held-out explicit prompts, 4 fixed seeds each (32
    images); ``run`` shifts the seeds (one stride per MemoRa LoRA seed)."""
    result = evaluate_prompt_sets(
        loaded,
        probes,
        sets=("explicit",),
        samples_per_prompt=4,
        steps=20,
        split="eval",
        seed=1000 + 10_000 * run,
    )
    return result.metrics


def _explicit_rate(loaded: Any, probes: Probes) -> float:
    return _explicit(loaded, probes)[EXPLICIT]


def _erase_stripes(loaded: Any, probes: Probes, steps: int = 80, lr: float = 1e-3) -> None:
    """The module docstring's anchored ESD-x step, in place on ``loaded.pipe.unet``."""
    pipe = loaded.pipe
    unet = pipe.unet
    frozen = copy.deepcopy(unet)
    drawn = make_dataset(128, 21, probes.world, striped=True)
    # train-half shape x colour combinations only: the rates are measured on the other half
    data = drawn.subset(
        [combination_split(s.shape, s.colour, probes.world) == "train" for s in drawn.samples]
    )
    z0 = encode_images(pipe, data.images)
    c_e = encode(pipe, [caption_for(s.shape, s.colour, concept="striped") for s in data.samples])
    c_a = encode(pipe, [caption_for(s.shape, s.colour) for s in data.samples])
    acp = pipe.scheduler.alphas_cumprod
    params = [p for n, p in unet.named_parameters() if ".attn2." in n]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(z0), (8,), generator=gen)
        t = torch.randint(0, 1000, (8,), generator=gen)
        eps = torch.randn(z0[idx].shape, generator=gen)
        a = acp[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * z0[idx] + (1 - a).sqrt() * eps
        with torch.no_grad():
            e_e = frozen(xt, t, encoder_hidden_states=c_e[idx]).sample
            e_a = frozen(xt, t, encoder_hidden_states=c_a[idx]).sample
        target = e_a - 1.0 * (e_e - e_a)
        loss = ((unet(xt, t, encoder_hidden_states=c_e[idx]).sample - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    unet.requires_grad_(False)
    unet.eval()


@pytest.fixture(scope="module")
def erased_state(small: Path, probes: Probes) -> dict[str, Any]:
    """UNet weights of the small model after the quick erasure, and the rates around it."""
    loaded = load_pipeline(small)
    before = _explicit_rate(loaded, probes)
    _erase_stripes(loaded, probes)
    after = _explicit_rate(loaded, probes)
    state = {k: v.clone() for k, v in loaded.pipe.unet.state_dict().items()}
    return {"state": state, "before": before, "after": after}


def _erased(small: Path, erased_state: dict[str, Any]) -> Any:
    loaded = load_pipeline(small)
    loaded.pipe.unet.load_state_dict(erased_state["state"])
    return loaded


def _forward(unet: Any, pipe: Any) -> torch.Tensor:
    """One fixed UNet call (to compare weights by what they compute)."""
    gen = torch.Generator().manual_seed(3)
    size = int(pipe.unet.config.sample_size)
    x = torch.randn(2, 4, size, size, generator=gen)
    cond = encode(pipe, ["a striped red circle", "a blue square"])
    with torch.no_grad():
        return unet(x, torch.tensor([500, 100]), encoder_hidden_states=cond).sample


# -- configs --------------------------------------------------------------------------------------


def test_configs_are_light_and_map_memora_to_a_lora_run() -> None:
    code = (
        "import sys; import backends.diffusion.attacks, backends.diffusion.attacks.configs; "
        "assert 'torch' not in sys.modules, 'configs imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
    from workbench.config import schema_of

    assert {f.name for f in schema_of(RelearnConfig)} >= {"mode", "steps", "lr", "eval_steps"}
    assert {f.name for f in schema_of(MemoRaConfig)} >= {"seeds", "start_step", "curve_steps"}
    cfg = MemoRaConfig()
    assert cfg.seed_pairs() == [(1805, 2821), (1405, 2421), (1705, 2721)]
    run = cfg.relearn_config()
    assert (run.mode, run.lora_rank, run.steps) == ("lora", 4, 200)
    assert run.evaluation_steps() == [0, 5, 10, 20, 50, 100, 200]
    with pytest.raises(ValueError, match="pairs"):
        MemoRaConfig(seeds=[1, 2, 3]).seed_pairs()
    assert RelearnConfig(steps=30, eval_steps=[10, 10]).evaluation_steps() == [0, 10, 30]


# -- pipeline pieces MemoRa relies on -------------------------------------------------------------


def test_slerp_endpoints_unit_midpoint_and_parallel_inputs() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 8, 8, generator=gen), torch.randn(4, 8, 8, generator=gen)
    assert torch.equal(slerp(a, b, 0.0), a)
    assert torch.allclose(slerp(a, b, 1.0), b, atol=1e-6)
    e1, e2 = torch.zeros(2, 3), torch.zeros(2, 3)
    e1[0, 0], e2[1, 2] = 1.0, 1.0  # orthogonal unit vectors
    mid = slerp(e1, e2, 0.5)
    assert float(mid.norm()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(mid.flatten()[[0, 5]], torch.full((2,), 0.5**0.5), atol=1e-6)
    for other in (a, 2.0 * a):  # identical and parallel inputs: no division by sin(0)
        out = slerp(a, other, 0.3)
        assert torch.isfinite(out).all()
        assert torch.allclose(out, 0.7 * a + 0.3 * other, atol=1e-5)


def test_ddim_inversion_then_regeneration_reconstructs(small: Path, probes: Probes) -> None:
    """Invert real striped images 35 of 50 steps and regenerate from step 15 with the same model
    (spec section 2, steps 3 and 5). Measured on the small model: latent RMS error 0.034-0.038 at
    guidance 1 and 0.035-0.039 at guidance 2 (image MAE about 1.2 of 255), against 1.0-1.4
    between different images' latents (image MAE 75-110)."""
    loaded = load_pipeline(small)
    pipe = loaded.pipe
    data = make_dataset(4, 11, probes.world, striped=True)
    z0 = encode_images(pipe, data.images)
    cond = encode(pipe, data.captions)
    unrelated = ((z0.roll(1, 0) - z0) ** 2).mean((1, 2, 3)).sqrt()
    errors = {}
    for guidance in (1.0, 2.0):
        z_t, traj = ddim_invert(pipe, z0, cond, steps=50, stop_index=35, guidance=guidance)
        assert len(traj) == 36 and torch.equal(traj[-1], z_t)
        assert float(((z_t - z0) ** 2).mean().sqrt()) > 0.5  # 35 steps did add noise
        z_rec = sample(pipe, cond, z_t, steps=50, guidance=guidance, start_index=15)
        err = ((z_rec - z0) ** 2).mean((1, 2, 3)).sqrt()
        image_mae = np.abs(decode(pipe, z_rec).astype(float) - decode(pipe, z0).astype(float))
        errors[guidance] = (float(err.max()), float(image_mae.mean()))
    print(
        "inversion reconstruction (latent RMS max, image MAE):",
        errors,
        "unrelated latent RMS min:",
        float(unrelated.min()),
    )
    assert errors[1.0][0] < 0.1 and errors[1.0][1] < 5.0
    assert errors[2.0][0] < 0.15
    assert float(unrelated.min()) > 5 * errors[1.0][0]


# -- MemoRa data ----------------------------------------------------------------------------------


@pytest.mark.slow  # over 10 s on 2 cores: runs in make test-slow
def test_memora_dataset_stages_are_consistent(small: Path, erased_state: dict[str, Any]) -> None:
    original, unlearned = load_pipeline(small), _erased(small, erased_state)
    cfg = MemoRaConfig()
    data = memora_dataset(original, unlearned, cfg, log=_quiet)
    side = original.size
    assert data["seed_images"].shape == (6, side, side, 3)
    assert data["inverted"].shape == (6, side, side, 3)
    assert data["interpolated"].shape == (33, side, side, 3)
    assert data["regenerated"].shape == (33, side, side, 3)
    assert all(data[k].dtype == np.uint8 for k in ("seed_images", "inverted", "regenerated"))
    assert data["pair"].tolist() == [j for j in range(3) for _ in range(11)]
    assert data["u"][:11].tolist() == pytest.approx([i / 10 for i in range(11)])
    # the seed images come from the ORIGINAL model with the first seeds (a batch of 6 and a
    # batch of 1 may round differently in the last bit, hence a 2-level tolerance)
    alone = generate(original, [cfg.prompt], [1805], steps=50, guidance=cfg.guidance)
    assert np.abs(alone[0].astype(int) - data["seed_images"][0].astype(int)).max() <= 2
    # u = 0 and u = 1 of the first pair: the UNLEARNED model's regeneration of the two inverted
    # seed latents, recomputed one at a time
    pu = unlearned.pipe
    cond = encode(pu, [cfg.prompt])
    for k, row in ((0, 0), (1, 10)):
        z0 = encode_images(pu, data["seed_images"][k : k + 1])
        z_t, _ = ddim_invert(pu, z0, cond, steps=50, stop_index=35, guidance=cfg.guidance)
        image = decode(pu, sample(pu, cond, z_t, steps=50, guidance=cfg.guidance, start_index=15))
        diff = np.abs(image[0].astype(int) - data["regenerated"][row].astype(int))
        assert diff.max() <= 2, (k, diff.max())
        inv = np.abs(decode(pu, z_t)[0].astype(int) - data["inverted"][k].astype(int))
        assert inv.max() <= 2
    # regenerating with the original model instead would give other images
    z0 = encode_images(original.pipe, data["seed_images"][:1])
    z_t, _ = ddim_invert(original.pipe, z0, cond, steps=50, stop_index=35, guidance=cfg.guidance)
    other = decode(
        pu, sample(original.pipe, cond, z_t, steps=50, guidance=cfg.guidance, start_index=15)
    )
    assert np.abs(other[0].astype(int) - data["regenerated"][0].astype(int)).mean() > 1.0


# -- downstream fine-tuning -----------------------------------------------------------------------


def test_relearn_data_kinds(probes: Probes) -> None:
    images, captions = relearn_data("benign", probes.world, 24, 7)
    assert images.shape == (24, probes.world.size, probes.world.size, 3)
    assert not any("striped" in c or "zebra" in c for c in captions)
    assert (probes.score(images)["striped"] < 0.5).all()
    images, captions = relearn_data("concept", probes.world, 24, 7)
    assert all(c.startswith("a striped ") for c in captions)
    assert (probes.score(images)["striped"] > 0.5).all()
    with pytest.raises(ValueError, match="unknown"):
        relearn_data("other", probes.world, 4, 7)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_relearn_records_curve_saves_checkpoints_and_lowers_loss(
    small: Path, probes: Probes, mode: str, tmp_path: Path
) -> None:
    loaded = load_pipeline(small)
    pipe = loaded.pipe
    images, captions = relearn_data("benign", probes.world, 32, 7)
    before_weights = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    before_out = _forward(pipe.unet, pipe)
    cfg = RelearnConfig(mode=mode, steps=40, lr=1e-4, lora_lr=1e-2, eval_steps=[20, 40])
    seen: list[int] = []

    def evaluate(step: int) -> dict[str, float]:
        seen.append(step)
        return {"loss": denoising_loss(loaded, images, captions, seed=5, draws=8)}

    result = relearn(
        loaded,
        cfg,
        images,
        captions,
        evaluate=evaluate,
        checkpoint_dir=tmp_path,
        seed=1,
        log=_quiet,
    )
    assert seen == [0, 20, 40] and [s for s, _ in result.curve] == [0, 20, 40]
    assert len(result.losses) == 40 and all(np.isfinite(result.losses))
    first, last = result.curve[0][1]["loss"], result.curve[-1][1]["loss"]
    print(f"{mode}: training-set denoising loss {first:.4f} -> {last:.4f}")
    assert last < 0.95 * first
    assert sorted(result.checkpoints) == [20, 40]
    after_out = _forward(pipe.unet, pipe)
    assert (after_out - before_out).abs().max() > 1e-3  # pipe.unet generates with the update
    if mode == "full":
        assert (result.checkpoints[40] / "diffusion_pytorch_model.safetensors").is_file()
        from diffusers import UNet2DConditionModel

        saved = UNet2DConditionModel.from_pretrained(str(result.checkpoints[40]))
        assert torch.allclose(_forward(saved, pipe), after_out, atol=1e-5)
        assert result.adapter is None
        return
    # LoRA: the base weights are untouched until merged; the saved adapter reproduces the run
    assert (result.checkpoints[40] / "adapter_model.safetensors").is_file()
    assert has_adapter(pipe.unet)
    for name, value in result.adapter.get_base_model().state_dict().items():
        if "lora_" in name:
            continue
        key = name.replace(".base_layer", "")
        assert torch.equal(value, before_weights[key]), name
    from backends.common.lora import load_lora

    fresh = load_pipeline(small)
    with_saved = load_lora(fresh.pipe.unet, result.checkpoints[40])
    assert torch.allclose(_forward(with_saved, pipe), after_out, atol=1e-5)
    with result.adapter.disable_adapter():
        assert torch.equal(_forward(pipe.unet, pipe), before_out)
    merged = merge_adapter(loaded, result)
    assert merged is pipe.unet and not has_adapter(pipe.unet) and result.adapter is None
    assert torch.allclose(_forward(pipe.unet, pipe), after_out, atol=1e-5)
    changed = [
        k for k, v in pipe.unet.state_dict().items() if not torch.equal(v, before_weights[k])
    ]
    assert changed and all(k.rsplit(".", 2)[-2] in ("to_q", "to_k", "to_v", "0") for k in changed)
    # a second LoRA run, removed instead of merged, leaves the merged weights as they were
    again = relearn(
        loaded,
        RelearnConfig(mode="lora", steps=3, lora_lr=1e-2, eval_steps=[]),
        images,
        captions,
        evaluate=lambda s: {},
        log=_quiet,
    )
    remove_adapter(loaded, again)
    assert not has_adapter(pipe.unet)
    assert torch.equal(_forward(pipe.unet, pipe), _forward(merged, pipe))


def test_relearn_dreambooth_uses_instance_prompt_and_prior(small: Path, probes: Probes) -> None:
    assert instance_captions(["a striped red circle", "a blue cross"], "a sks {shape}") == [
        "a sks circle",
        "a sks cross",
    ]
    with pytest.raises(ValueError, match="placeholder"):
        instance_captions(["a red circle"], "a {thing}")
    images, captions = relearn_data("benign", probes.world, 8, 7)
    prior = relearn_data("benign", probes.world, 16, 8)
    runs = {}
    for weight in (0.0, 1.0):
        loaded = load_pipeline(small)
        cfg = RelearnConfig(mode="dreambooth", steps=5, lr=1e-3, eval_steps=[], prior_weight=weight)
        runs[weight] = relearn(
            loaded, cfg, images, captions, evaluate=lambda s: {}, prior=prior, seed=2, log=_quiet
        )
    # same batches and noise; the first step's loss differs by exactly the weighted prior term
    r0, r1 = runs[0.0], runs[1.0]
    assert r0.prior_losses[0] == pytest.approx(r1.prior_losses[0])
    assert r1.losses[0] - r0.losses[0] == pytest.approx(r1.prior_losses[0], rel=1e-4)
    assert r1.prior_losses[0] > 0
    assert r0.losses[1:] != r1.losses[1:]  # the prior term changed the training
    with pytest.raises(ValueError, match="prior"):
        relearn(
            load_pipeline(small),
            RelearnConfig(mode="dreambooth"),
            images,
            captions,
            evaluate=lambda s: {},
            log=_quiet,
        )


@pytest.mark.slow  # over 10 s on 2 cores: runs in make test-slow
def test_concept_relearning_brings_an_erased_concept_back(
    small: Path, probes: Probes, erased_state: dict[str, Any]
) -> None:
    """The claim: after the quick erasure, 50 LoRA steps on 64 real striped images captioned
    "a striped <colour> <shape>" bring the explicit rate back (measured on the shipped weights at
    lr 3e-3: 0.22 -> 0.81 on held-out prompts)."""
    before, erased = erased_state["before"], erased_state["after"]
    print(f"quick erasure: explicit rate {before:.3f} -> {erased:.3f}")
    # the premise: the concept was there and the erasure removed most of it (what is left is near
    # the detector's rate on plain prompts of this small model, 0.1-0.5 depending on the build)
    assert before >= 0.75 and erased <= before - 0.3
    loaded = _erased(small, erased_state)
    images, captions = relearn_data("concept", probes.world, 64, 7)
    cfg = RelearnConfig(mode="lora", steps=50, lora_lr=3e-3, eval_steps=[50])
    result = relearn(
        loaded,
        cfg,
        images,
        captions,
        evaluate=lambda s: {EXPLICIT: _explicit_rate(loaded, probes)},
        log=_quiet,
    )
    start, end = result.curve[0][1][EXPLICIT], result.curve[-1][1][EXPLICIT]
    print(f"concept LoRA relearning: explicit rate {start:.3f} -> {end:.3f}")
    assert start == pytest.approx(erased)  # zero-initialised LoRA: step 0 is the erased model
    assert end >= start + 0.3


@pytest.mark.slow  # about 70 s (3 LoRA seeds x 2 models); `make test-slow`, which CI runs
def test_memora_against_the_matched_never_learned_control(
    small: Path, tiny_sd_small_control: Path, probes: Probes, erased_state: dict[str, Any]
) -> None:
    """Whole MemoRa on the erased small model, 3 LoRA seeds, against its matched control: the
    shipped never-learned model (no striped image in its training) put through the SAME quick
    erasure. The label is decided on the detections pooled over seeds, with exact intervals
    (:func:`backends.diffusion.verdicts.recovery`); :data:`MEMORA_EXPECTED` is what the shipped
    weights give."""
    original, unlearned = load_pipeline(small), _erased(small, erased_state)
    control = load_pipeline(tiny_sd_small_control)
    _erase_stripes(control, probes)  # the same erasure as the attacked model
    cfg = MemoRaConfig(
        lr=3e-3, curve_steps=[0, 50], short_term_max_steps=10, lora_seeds=[2024, 2025, 2026]
    )
    calls: list[tuple[str, int, int]] = []
    names = {id(original): "original", id(unlearned): "unlearned", id(control): "control"}

    def evaluate(loaded: Any, step: int, run: int) -> dict[str, float]:
        calls.append((names[id(loaded)], step, run))
        return _explicit(loaded, probes, run)

    result = memora(original, unlearned, cfg, evaluate=evaluate, control_pipe=control, log=_quiet)
    assert calls[0] == ("original", -1, 0)
    for name in ("unlearned", "control"):
        assert [c for c in calls if c[0] == name] == [
            (name, s, r) for r in range(3) for s in (0, 50)
        ]
    assert result.regenerated.shape[0] == 33 and result.prompt == cfg.prompt
    assert result.reference == pytest.approx(erased_state["before"])
    assert result.threshold == pytest.approx(0.5 * result.reference)
    assert len(result.curves) == len(result.control_curves) == 3
    assert result.adapter is not None and result.control_adapter is not None
    pooled = dict(result.recovery.curve)
    ctl = dict(result.recovery.control_curve)
    assert pooled[0].n == 96 and ctl[50].n == 96
    print(
        "memora pooled:",
        {s: str(e) for s, e in pooled.items()},
        result.label,
        "control:",
        {s: str(e) for s, e in ctl.items()},
        result.control_steps_to_threshold,
    )
    # the zero-initialised LoRA: step 0 of the first seed is the erased model itself
    assert result.curves[0][0][1][EXPLICIT] == pytest.approx(erased_state["after"])
    assert held(pooled[50], pooled[0]) == "held"  # the recovery set does bring stripes back
    assert (result.label, result.steps_to_recover) == MEMORA_EXPECTED
    assert result.control_steps_to_threshold is None
    assert result.summary()["n_recovery_images"] == 33


def test_automemora_interpolates_between_unlearned_and_lora_models(
    small: Path, probes: Probes
) -> None:
    loaded = load_pipeline(small)
    prompts = ["a striped red circle", "a blue square", "a zebra green cross", "a yellow triangle"]
    seeds = [11, 12, 13, 14]
    plain = generate(loaded, prompts, seeds, steps=10)
    images, captions = relearn_data("concept", probes.world, 16, 7)
    run = relearn(
        loaded,
        RelearnConfig(mode="lora", steps=10, lora_lr=2e-2, eval_steps=[]),
        images,
        captions,
        evaluate=lambda s: {},
        log=_quiet,
    )
    with_lora = generate(loaded, prompts, seeds, steps=10)
    assert np.abs(with_lora.astype(int) - plain.astype(int)).mean() > 2.0  # the LoRA matters
    w0 = automemora_generate(loaded, run.adapter, prompts, seeds, 0.0, steps=10)
    w1 = automemora_generate(loaded, run.adapter, prompts, seeds, 1.0, steps=10)
    half = automemora_generate(loaded, run.adapter, prompts, seeds, 0.5, steps=10)
    assert np.array_equal(w0, plain)
    diff = np.abs(w1.astype(int) - with_lora.astype(int))
    print("AutoMemoRa w=1 vs LoRA model: max", diff.max(), "mean", diff.mean())
    assert diff.max() <= 1  # ε_U + (ε_L − ε_U) equals ε_L up to float rounding
    assert np.abs(half.astype(int) - plain.astype(int)).mean() > 0.5
    assert np.abs(half.astype(int) - with_lora.astype(int)).mean() > 0.5
    with pytest.raises(ValueError, match="differ"):
        automemora_unets(loaded, loaded.pipe.unet)
