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
from tests.backends.test_llm_methods import build_world
from workbench.jobs import Engine, Event
from workbench.registry import add_model_to_project, get_registry
from workbench.store import Project

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "llm" / "tiny-gpt-small"
WAIT = 300


class Stop(Exception):
    pass


def _stop_after(calls: int) -> object:
    """A ``check`` that raises on its ``calls + 1``-th call (a cancel before that step)."""
    seen = [0]

    def check() -> None:
        seen[0] += 1
        if seen[0] > calls:
            raise Stop()

    return check


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    assert a.keys() == b.keys() and a
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_rmu_stopped_and_resumed_ends_bit_identical(tmp_path: Path) -> None:
    world = build_world()
    info = get_method("rmu")
    cfg = dataclasses.replace(info.config(), epochs=2, batch_size=8)

    def run(checkpoints: LoopCheckpoints | None = None, check: object = None) -> torch.nn.Module:
        return info.load()(world.model, world.tokenizer, world.forget_texts, world.retain_texts,
                           cfg, seed=4, check=check, checkpoints=checkpoints)  # fmt: skip

    expected = run().state_dict()  # no checkpoints: the method as it was
    path = tmp_path / "state.safetensors"
    saved: list[int] = []
    with pytest.raises(Stop):
        run(LoopCheckpoints(path, every=2, record=lambda p, s: saved.append(s)), _stop_after(3))
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


GA = {"device": "cpu", "epochs": 1, "batch_size": 16, "lr": 1e-3, "max_eval_items": 10,
      "privleak": False, "n_bootstrap": 100, "checkpoint_every": 2}  # fmt: skip


def _weights(project: Project, run_id: int) -> dict[str, torch.Tensor]:
    row = project.model(f"ga-run{run_id}")
    assert row is not None
    return load_file(str(project.abspath(row["path"]) / "model.safetensors"))


def test_ga_cancelled_on_its_first_checkpoint_resumes_exactly(
    engine: Engine, project: Project
) -> None:
    plain = engine.submit("llm.unlearn.ga", GA, model="small-gpt", seed=2)
    assert engine.wait(plain, WAIT) == "completed", project.run(plain).error
    fired: list[int] = []

    def cancel_on_first_checkpoint(event: Event) -> None:
        if event.type == "checkpoint" and not fired:
            fired.append(event.data["step"])
            engine.cancel(event.run_id)

    engine.add_listener(cancel_on_first_checkpoint)
    run_id = engine.submit("llm.unlearn.ga", GA, model="small-gpt", seed=2)
    assert engine.wait(run_id, WAIT) == "cancelled"
    assert fired == [2] and project.run(run_id).checkpoint_step == 2
    assert engine.resume(run_id) == run_id
    assert engine.wait(run_id, WAIT) == "completed", project.run(run_id).error
    total = project.run(plain).checkpoint_step
    assert total is not None and total > 2 and project.run(run_id).checkpoint_step == total
    assert not _equal(_weights(project, run_id), _weights(project, plain))
    final, expected = project.final_metrics(run_id), project.final_metrics(plain)
    assert final["forget_recall"] == expected["forget_recall"]
    logs = [row["message"] for row in project.logs(run_id)]
    assert any(f"GA: resuming after step 2 of {total}" in m for m in logs)
