"""Exact resume of the LLM unlearning methods (issue 11).

A run stopped after a checkpoint and resumed from it ends with weights ``torch.equal`` to an
uninterrupted run: GA through the real engine on the shipped small tiny GPT (cancelled on its
first checkpoint event, then ``Engine.resume``), RMU (another loop: a trained subset, activation
losses, a steering vector) at function level on the shipped people GPT.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from backends.common.checkpoint import load_state
from backends.common.loop_checkpoints import LoopCheckpoints
from backends.llm.methods import get_method
from tests.backends.resume_support import Stop, plain_and_resumed, stop_after
from tests.backends.test_llm_methods import apply_method, build_world
from workbench.jobs import Engine
from workbench.registry import add_model_to_project, get_registry
from workbench.store import Project

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "llm" / "tiny-gpt-small"


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    assert a.keys() == b.keys() and a
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_rmu_stopped_and_resumed_ends_bit_identical(tmp_path: Path) -> None:
    world = build_world()
    info = get_method("rmu")
    cfg = dataclasses.replace(info.config(), epochs=2, batch_size=8)

    def run(checkpoints: LoopCheckpoints | None = None, check: object = None) -> torch.nn.Module:
        return apply_method(
            info,
            world.model,
            world.tokenizer,
            world.forget_texts,
            world.retain_texts,
            cfg,
            seed=4,
            check=check,
            checkpoints=checkpoints,
        )

    expected = run().state_dict()  # no checkpoints: the method as it was
    path = tmp_path / "state.safetensors"
    saved: list[int] = []
    with pytest.raises(Stop):
        run(LoopCheckpoints(path, every=2, record=lambda p, s: saved.append(s)), stop_after(3))
    assert saved == [2]
    state = load_state(path, torch_rng=False)
    # only RMU's trained MLP is in the checkpoint, not the frozen rest of the model
    trained = [k for k in load_file(str(path)) if k.startswith("module.trained.")]
    assert trained and all(".mlp." in k.replace(":", ".") for k in trained)
    assert state.step == 2
    got = run(LoopCheckpoints(path, every=2, resume=path)).state_dict()
    assert not _equal(got, expected)


@pytest.fixture
def engine(project: Project) -> Iterator[Engine]:
    torch.set_num_threads(1)
    # a project model (a run submitted with a bare folder path records only the folder's name,
    # which Engine.resume cannot resolve again)
    add_model_to_project(project, get_registry(), "small-gpt", str(SMALL))
    eng = Engine(project)
    yield eng
    eng.shutdown()


GA = {
    "device": "cpu",
    "epochs": 1,
    "batch_size": 16,
    "lr": 1e-3,
    "max_eval_items": 10,
    "privleak": False,
    "n_bootstrap": 100,
    "checkpoint_every": 2,
}


def _weights(project: Project, run_id: int) -> dict[str, torch.Tensor]:
    row = project.model(f"ga-run{run_id}")
    assert row is not None
    return load_file(str(project.abspath(row["path"]) / "model.safetensors"))


@pytest.mark.slow  # about 5-10 s on 2 cores: run by make test-slow and CI
def test_ga_cancelled_on_its_first_checkpoint_resumes_exactly(
    engine: Engine, project: Project
) -> None:
    plain, run_id, stopped = plain_and_resumed(
        engine, project, "llm.unlearn.ga", GA, model="small-gpt", seed=2
    )
    assert stopped == 2
    total = project.run(plain).checkpoint_step
    assert total is not None and total > 2 and project.run(run_id).checkpoint_step == total
    assert not _equal(_weights(project, run_id), _weights(project, plain))
    final, expected = project.final_metrics(run_id), project.final_metrics(plain)
    assert final["forget_recall"] == expected["forget_recall"]
    logs = [row["message"] for row in project.logs(run_id)]
    assert any(f"GA: resuming after step 2 of {total}" in m for m in logs)
