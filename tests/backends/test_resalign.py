"""ResAlign on the shipped tiny text-to-image model (spec ``diffusion-methods.md`` section 1):
the adapter's merge, the inner Adam's official quirk, memory that does not grow with the inner
steps, and the method end to end (runs, merges, saves a pipeline that loads back)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from backends.common.loop_checkpoints import LoopCheckpoints
from backends.common.lora import merge_lora
from backends.common.method import Hooks
from backends.diffusion.concepts import shapes_concept
from backends.diffusion.methods.common import DiffusionData
from backends.diffusion.methods.configs import ResAlignConfig
from backends.diffusion.methods.hypergrad import SavedTensorMeter
from backends.diffusion.methods.resalign import (
    AdamState,
    Adapter,
    Scenario,
    Trainer,
    adam_update,
    alpha_at,
    scenario_grid,
    unlearn,
)
from backends.diffusion.pipeline import load_pipeline

ATTENTION = ("to_q.", "to_k.", "to_v.", "to_out.0.")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _small(**kw: object) -> ResAlignConfig:
    base = dict(
        iterations=2,
        harm_images=4,
        retain_images=4,
        finetune_images=4,
        batch_size=2,
        retain_batch=2,
        inner_sample_k=2,
        ft_steps=[2],
        sample_steps=4,
    )
    return ResAlignConfig(**(base | kw))  # type: ignore[arg-type]


def test_writing_theta_into_a_unet_is_peft_s_merge(tiny_sd_small: Path) -> None:
    pipe = load_pipeline(tiny_sd_small).pipe
    gen = torch.Generator().manual_seed(0)
    adapter = Adapter(pipe.unet, ResAlignConfig(lora_up_std=0.05, lora_down_std=0.05), gen)
    assert {n.rsplit(".", 1)[-1] for n in adapter.layers} == {"to_q", "to_k", "to_v", "0"}
    assert len(adapter.layers) == 4 * sum(
        1 for n, _ in pipe.unet.named_modules() if n.endswith("to_q")
    )
    adapter.write(adapter.theta(), pipe.unet)
    merged = merge_lora(adapter.peft)
    ours, peft_ = dict(pipe.unet.named_parameters()), dict(merged.named_parameters())
    for name in (f"{layer}.weight" for layer in adapter.layers):
        assert torch.allclose(ours[name], peft_[name], atol=1e-6), name
    assert any(torch.equal(ours[n], peft_[n]) is not False for n in ours)


def test_the_official_inner_adam_corrects_the_bias_twice() -> None:
    g = [torch.tensor([2.0, -3.0])]
    plain = adam_update(
        [torch.zeros(2)], g, AdamState(0, [torch.zeros(2)], [torch.zeros(2)]), 1.0, False
    )
    quirk = adam_update(
        [torch.zeros(2)], g, AdamState(0, [torch.zeros(2)], [torch.zeros(2)]), 1.0, True
    )
    # step 1: m̂/√v̂ = sign(g); the quirk multiplies the step by √(1−β2)/(1−β1) ≈ 0.316
    assert torch.allclose(plain[0], torch.tensor([-1.0, 1.0]), atol=1e-6)
    assert torch.allclose(quirk[0], torch.tensor([-1.0, 1.0]) * math.sqrt(0.001) / 0.1, atol=1e-6)


def test_the_scenario_grid_and_the_alpha_ramp() -> None:
    cfg = ResAlignConfig(ft_lrs=[1e-3, 1e-2], ft_steps=[5, 10], datasets=["benign1", "concept"])
    assert len(scenario_grid(cfg)) == 2 * 2 * 2 * 3 * 2
    fixed = scenario_grid(ResAlignConfig(**{**cfg.__dict__, "meta_config": False}))
    assert {(s.lr, s.steps, s.optimizer, s.mode) for s in fixed} == {(1e-3, 5, "gd", "lora")}
    assert {s.dataset for s in fixed} == {"benign1", "concept"}
    no_meta = ResAlignConfig(**{**cfg.__dict__, "meta_config": False, "meta_data": False})
    assert scenario_grid(no_meta) == [Scenario(1e-3, 5, "gd", "lora", "benign1")]
    ramp = ResAlignConfig(iterations=100, alpha=1.6, alpha_end=2.0)
    assert alpha_at(ramp, 10) == 1.6 and alpha_at(ramp, 50) == 1.6
    assert math.isclose(alpha_at(ramp, 75), 1.8)  # the sigmoid's midpoint


def test_hypergradient_memory_does_not_grow_with_the_inner_steps(tiny_sd_small: Path) -> None:
    pipe = load_pipeline(tiny_sd_small).pipe
    cfg = _small()
    trainer = Trainer(
        pipe, shapes_concept("stripes"), cfg, Hooks(), torch.Generator().manual_seed(0), 0
    )
    peaks, norms = {}, {}
    for steps in (5, 30):
        tracker = SavedTensorMeter()
        with tracker.hooks():
            report = trainer.scenario_gradient(
                Scenario(1e-2, steps, "gd", "lora", "benign1"), 0.8, 1.6
            )
        peaks[steps], norms[steps] = tracker.peak, report.hyper.norm
        assert report.hyper is not None and not report.hyper.fallback
    assert peaks[5] > 0
    assert peaks[30] <= peaks[5] * 1.02, peaks


@pytest.mark.slow
def test_resalign_runs_merges_and_saves_a_pipeline_that_loads_back(
    tiny_sd_small: Path, tmp_path: Path
) -> None:
    loaded = load_pipeline(tiny_sd_small)
    unet = loaded.pipe.unet
    before = {n: p.detach().clone() for n, p in unet.named_parameters()}
    metrics: dict[str, float] = {}
    cfg = _small(ft_modes=["lora", "full", "dreambooth"], ft_optimizers=["gd", "adam"])
    result = unlearn(
        loaded,
        DiffusionData(shapes_concept("stripes")),
        cfg,
        Hooks(on_metric=lambda n, v, s: metrics.__setitem__(n, v)),
        seed=0,
    )
    changed = {n for n, p in unet.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(any(a in n for a in ATTENTION) for n in changed)
    assert result.stats["parameters_changed"] > 0 and result.stats["scenarios"] == 4
    assert {"hypergrad/fallbacks", "hypergrad/eta_halvings", "resalign/loss_h_star"} <= set(metrics)
    assert not any(p.requires_grad for p in unet.parameters())
    loaded.pipe.save_pretrained(str(tmp_path / "out"), safe_serialization=True)
    back = load_pipeline(tmp_path / "out")
    for n, p in back.pipe.unet.named_parameters():
        assert torch.equal(p, dict(unet.named_parameters())[n]), n


class Stop(Exception):
    pass


@pytest.mark.slow
def test_a_stopped_and_resumed_run_ends_bit_identical(tiny_sd_small: Path, tmp_path: Path) -> None:
    """Stopped after its second checkpoint, resumed: the same weights and counters as a plain
    run, including the official inner Adam's state carried across outer steps (one scenario, so
    every outer step continues it)."""
    cfg = _small(
        iterations=3, ft_optimizers=["adam"], ft_modes=["lora"], ft_lrs=[1e-2], inner_sample_k=1
    )
    concept = DiffusionData(shapes_concept("stripes"))

    def run(checkpoints: LoopCheckpoints | None = None, check: object = None) -> tuple:
        loaded = load_pipeline(tiny_sd_small)
        hooks = Hooks(on_check=check, checkpoints=checkpoints)  # type: ignore[arg-type]
        stats = unlearn(loaded, concept, cfg, hooks, seed=1).stats
        return {k: v.clone() for k, v in loaded.pipe.unet.state_dict().items()}, stats

    expected, plain_stats = run()
    saved: list[int] = []
    path = tmp_path / "state.safetensors"

    def stop_after_two() -> None:
        if len(saved) >= 2:
            raise Stop

    with pytest.raises(Stop):
        run(LoopCheckpoints(path, every=1, record=lambda p, s: saved.append(s)), stop_after_two)
    assert saved == [1, 2]
    resumed, stats = run(LoopCheckpoints(path, every=1, resume=path))
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)
    assert stats["scenarios"] == plain_stats["scenarios"] == 3
    assert stats["loss"] == plain_stats["loss"]
