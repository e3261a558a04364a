"""Exact resume of the diffusion family's training loops, and the relearning attack's evaluation
steps (issue 11).

A run stopped after a checkpoint and resumed from it ends with weights ``torch.equal`` to an
uninterrupted run: ESD at function level, the relearning attack through the real engine (cancelled
on its first checkpoint event, then ``Engine.resume``), with its recovery curve complete.  All on
the SHIPPED small tiny pipeline (``tests/fixtures/diffusion/tiny-sd-small``), a few steps each.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from backends.common.checkpoint import load_state
from backends.common.loop_checkpoints import LoopCheckpoints
from backends.common.method import Hooks
from backends.diffusion.attacks.configs import MemoRaConfig, RelearnConfig
from backends.diffusion.attacks.relearn import relearn, relearn_data
from backends.diffusion.concepts import shapes_concept
from backends.diffusion.methods.common import DiffusionData
from backends.diffusion.methods.configs import ESDConfig
from backends.diffusion.methods.esd import unlearn as esd
from backends.diffusion.pipeline import load_pipeline
from backends.diffusion.probes import PROBES_DIR, Probes
from tests.backends.resume_support import Stop, plain_and_resumed, stop_after
from workbench.artifacts import Curves
from workbench.config import ConfigError
from workbench.jobs import Engine
from workbench.registry import add_model_to_project, get_registry
from workbench.store import Project


def _quiet(_msg: str) -> None:
    pass


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


# -- ESD ------------------------------------------------------------------------------------------


@pytest.mark.slow  # about 5-10 s on 2 cores: run by make test-slow and CI
def test_esd_stopped_and_resumed_ends_bit_identical(tiny_sd_small: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    world = Probes.load(tiny_sd_small / PROBES_DIR).world
    concept = shapes_concept("stripes", world, split="train")
    cfg = ESDConfig(iterations=4, rollout_batch=1, ddim_steps=2)

    def run(checkpoints: LoopCheckpoints | None = None, check: object = None) -> object:
        loaded = load_pipeline(tiny_sd_small)
        hooks = Hooks(on_check=check, on_log=_quiet, checkpoints=checkpoints)  # type: ignore[arg-type]
        result = esd(loaded, DiffusionData(concept), cfg, hooks, seed=3)
        return loaded.pipe.unet, result.stats

    plain, plain_stats = run()  # no checkpoints: the method as it was
    expected = _state(plain)
    saved: list[int] = []
    path = tmp_path / "state.safetensors"
    with pytest.raises(Stop):
        run(LoopCheckpoints(path, every=2, record=lambda p, s: saved.append(s)), stop_after(3))
    assert saved == [2]  # stopped before step 4, after the checkpoint of step 2 (step 3 is lost)
    assert load_state(path, torch_rng=False).step == 2
    resumed, stats = run(LoopCheckpoints(path, every=2, resume=path))
    _assert_equal(_state(resumed), expected)
    assert stats["loss"] == plain_stats["loss"]  # the last losses travel with the checkpoint
    assert stats["parameters_changed"] == plain_stats["parameters_changed"] > 0


# -- relearning attack: evaluation steps ----------------------------------------------------------


def test_relearn_evaluates_the_final_step(tiny_sd_small: Path) -> None:
    """The curve used to stop at the last configured evaluation step before ``steps``."""
    torch.set_num_threads(1)
    loaded = load_pipeline(tiny_sd_small)
    images, captions = relearn_data("benign", None, 4, 7)
    seen: list[int] = []
    cfg = RelearnConfig(mode="lora", steps=3, lora_lr=1e-2, batch=2, eval_steps=[1])
    result = relearn(
        loaded, cfg, images, captions, evaluate=lambda s: seen.append(s) or {}, log=_quiet
    )
    assert seen == [0, 1, 3] and [s for s, _ in result.curve] == [0, 1, 3]


@pytest.mark.parametrize(
    ("values", "bad"),
    [
        ({"steps": 100, "eval_steps": [0, 50, 150, 300]}, "150, 300"),
        ({"steps": 100, "eval_steps": [-10, 50]}, "-10"),
    ],
)
def test_evaluation_steps_beyond_the_budget_are_refused_at_submit(
    project: Project, tiny_sd_small: Path, values: dict, bad: str
) -> None:
    engine = Engine(project)
    try:
        with pytest.raises(ConfigError) as info:
            engine.submit("diffusion.relearn", values, model=str(tiny_sd_small))
    finally:
        engine.shutdown()
    assert info.value.field == "eval_steps"
    assert bad in str(info.value) and "steps=100" in str(info.value)
    assert project.runs() == []  # nothing was recorded


@pytest.mark.parametrize(
    ("curve", "bad"), [([0, -5, 10], "-5"), ([0], "no step above 0"), ([], "no step above 0")]
)
def test_memora_curve_steps_outside_the_budget_are_refused(curve: list[int], bad: str) -> None:
    """Negative curve steps used to be dropped silently; a curve without a positive step (no
    LoRA budget) failed at run time."""
    with pytest.raises(ConfigError) as info:
        get_registry().job("diffusion.memora").validate({"curve_steps": curve})
    assert info.value.field == "curve_steps" and bad in str(info.value)
    assert MemoRaConfig(curve_steps=[0, 5, 10]).relearn_config().evaluation_steps() == [0, 5, 10]


# -- relearning attack through the engine ----------------------------------------------------------

RELEARN = {
    "device": "cpu",
    "eval_samples": 1,
    "sampling_steps": 2,
    "gallery_rows": 1,
    "relearn_data": "concept",
    "n_images": 8,
    "mode": "lora",
    "batch": 2,
    "steps": 4,
    "eval_steps": [2],
    "lora_lr": 1e-2,
    "lr_schedule": "cosine",
    "checkpoint_every": 2,
}


@pytest.fixture
def engine(project: Project, tiny_sd_small: Path) -> Iterator[Engine]:
    torch.set_num_threads(1)
    add_model_to_project(project, get_registry(), "small-sd", str(tiny_sd_small))
    eng = Engine(project)
    yield eng
    eng.shutdown()


def _trained(project: Project, run_id: int) -> dict[str, torch.Tensor]:
    """The trained adapter in a run's last checkpoint."""
    saved = load_file(str(project.abspath(project.run(run_id).checkpoint)))
    return {k: v for k, v in saved.items() if k.startswith("module.trained.")}


@pytest.mark.slow  # about 5-10 s on 2 cores: run by make test-slow and CI
def test_relearn_cancelled_on_its_first_checkpoint_resumes_exactly(
    engine: Engine, project: Project, tiny_sd_small: Path
) -> None:
    config = {**RELEARN, "original_model": str(tiny_sd_small)}
    plain, run_id, stopped = plain_and_resumed(
        engine, project, "diffusion.relearn", config, model="small-sd", seed=5
    )
    assert stopped == 2
    assert project.run(run_id).checkpoint_step == project.run(plain).checkpoint_step == 4
    expected, got = _trained(project, plain), _trained(project, run_id)
    assert expected and expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    # the recovery curve is complete: steps 0 and 2 (before the cancel) and the final step 4, once
    name = "relearn/concept_rate/explicit"
    assert [m["step"] for m in project.metrics(run_id, name)] == [0, 2, 4]
    values = [m["value"] for m in project.metrics(run_id, name)]
    assert values == [m["value"] for m in project.metrics(plain, name)]
    assert len(project.metrics(run_id, "original/concept_rate/explicit")) == 1
    art = {a["name"]: a for a in project.artifacts(run_id)}["recovery curve explicit"]
    curve = Curves.load(project.abspath(art["path"]), art["meta"])
    assert curve.series["tiny-sd-small"][0] == [0.0, 2.0, 4.0]
    logs = [row["message"] for row in project.logs(run_id)]
    assert any("relearn: resuming after step 2 (2 curve points kept)" in m for m in logs)


# -- MemoRa ---------------------------------------------------------------------------------------


@pytest.mark.slow  # about 5-10 s on 2 cores: run by make test-slow and CI
def test_memora_stopped_in_the_controls_runs_resumes_exactly(
    tiny_sd_small: Path, tiny_sd_small_control: Path, tmp_path: Path
) -> None:
    """Stopped right after a checkpoint of the control's first LoRA run (the erased model's runs
    done): the resumed attack brings back the finished runs' curves and the erased model's last
    adapter (AutoMemoRa's) and ends with the same adapters and curves."""
    from backends.diffusion.attacks.memora import memora

    torch.set_num_threads(1)
    cfg = MemoRaConfig(
        seeds=[1805, 2821],
        steps=3,
        start_step=1,
        interp_steps=1,
        curve_steps=[0, 2],
        lora_seeds=[1],
        original_rate=1.0,
        batch=2,
    )
    counts = {"concept_rate/explicit": 0.5, "concept_count/explicit": 2.0, "images/explicit": 4.0}

    def attack(checkpoints: LoopCheckpoints | None = None) -> object:
        loaded, control = load_pipeline(tiny_sd_small), load_pipeline(tiny_sd_small_control)
        return memora(
            loaded,
            loaded,
            cfg,
            evaluate=lambda pipe, step, run: counts,
            control_pipe=control,
            log=_quiet,
            checkpoints=checkpoints,
        )

    def lora(adapter: object) -> dict[str, torch.Tensor]:
        return {n: q.detach().clone() for n, q in adapter.named_parameters() if "lora_" in n}

    plain = attack()
    path = tmp_path / "state.safetensors"
    recorded: list[int] = []

    def stop_in_the_controls_run(_path: Path, step: int) -> None:
        recorded.append(step)
        if step > 2:  # run 0 (erased) is done; this is run 1 (the control's)
            raise Stop()

    with pytest.raises(Stop):
        attack(LoopCheckpoints(path, every=1, record=stop_in_the_controls_run))
    assert recorded == [1, 2, 3]  # one growing step over the LoRA runs
    resumed = attack(LoopCheckpoints(path, every=1, resume=path))
    _assert_equal(lora(resumed.adapter), lora(plain.adapter))
    _assert_equal(lora(resumed.control_adapter), lora(plain.control_adapter))
    assert resumed.losses == plain.losses and resumed.control_losses == plain.control_losses
    assert resumed.curves == plain.curves and [s for s, _ in resumed.curves[0]] == [0, 2]
