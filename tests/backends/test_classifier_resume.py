"""Resume of the classifier unlearning methods and jobs (issue 11).

Every method saves its student and optimiser at epoch ends (the hooks' ``LoopCheckpoints``); a run stopped
after epoch k and resumed from that checkpoint, with fresh objects and a disturbed global RNG,
must end with weights ``torch.equal`` to an uninterrupted run, and checkpointing must not change
the weights of an uninterrupted run.  The model is the FIXED, shipped digits MLP of
``tests/fixtures/classifier`` (``methods.original``); 3 epochs, one torch thread.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from backends.classifier.data import load_digits, make_forget_set, stratified_split
from backends.classifier.methods import METHODS, get_method
from backends.classifier.setup import ClassifierSetup
from backends.common.checkpoint import CheckpointError
from backends.common.loop_checkpoints import LoopCheckpoints
from backends.common.method import Hooks, unlearned_copy
from tests.fixtures.classifier import build as fixtures
from workbench.jobs import Engine, Event
from workbench.store import Project

EPOCHS = 3
SEED = 5


class Stop(Exception):
    """Stands for a cancel: raised right after a checkpoint, or inside an epoch."""


@pytest.fixture(scope="module")
def case() -> tuple[nn.Module, ClassifierSetup]:
    torch.set_num_threads(1)
    data = load_digits()
    split = stratified_split(data.y, 0.2, seed=0)
    forget = make_forget_set(data, split, kind="class", forget_class=3)
    return fixtures.load("methods.original"), ClassifierSetup(data, split, forget)


def _cfg(name: str) -> object:
    cfg = dataclasses.replace(get_method(name).config(), epochs=EPOCHS)
    if name == "scrub":  # the resume crosses the boundary between max+min and min-only epochs
        cfg = dataclasses.replace(cfg, max_epochs=2)
    return cfg


def _unlearn(name: str) -> Callable[..., nn.Module]:
    """The method on a copy of the model (kept unchanged), with a check and checkpoints."""
    fn = get_method(name).load()

    def run(
        model: nn.Module,
        setup: ClassifierSetup,
        cfg: object,
        *,
        seed: int,
        check: Callable[[], None] | None = None,
        checkpoints: LoopCheckpoints | None = None,
    ) -> nn.Module:
        hooks = Hooks(on_check=check, checkpoints=checkpoints)
        return unlearned_copy(fn, model, setup, cfg, hooks, seed=seed)

    return run


def _checkpoints(
    path: Path,
    every: int,
    *,
    resume: Path | None = None,
    on_save: Callable[[Path, int], None] | None = None,
) -> LoopCheckpoints:
    return LoopCheckpoints(path, every, resume=resume, record=on_save)


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("name", list(METHODS))
def test_a_method_stopped_after_an_epoch_resumes_to_identical_weights(
    name: str, case: tuple[nn.Module, ClassifierSetup], tmp_path: Path
) -> None:
    model, setup = case
    unlearn, cfg = _unlearn(name), _cfg(name)
    plain = _weights(unlearn(model, setup, cfg, seed=SEED))

    # an uninterrupted run that checkpoints every epoch: the same weights, a save per epoch
    saves: list[int] = []
    full = _checkpoints(tmp_path / "full.safetensors", 1, on_save=lambda p, e: saves.append(e))
    _assert_equal(_weights(unlearn(model, setup, cfg, seed=SEED, checkpoints=full)), plain)
    assert saves == [1, 2, 3]

    # stop right after the checkpoint of epoch 1 (a cancel that lands between epochs)
    stop_at = 1

    def stop(path: Path, epoch: int) -> None:
        if epoch == stop_at:
            raise Stop

    path = tmp_path / "state.safetensors"
    with pytest.raises(Stop):
        unlearn(model, setup, cfg, seed=SEED, checkpoints=_checkpoints(path, 1, on_save=stop))
    torch.manual_seed(12345)  # a fresh process has another global RNG state
    resumed_saves: list[int] = []
    again = _checkpoints(
        tmp_path / "resumed.safetensors",
        1,
        resume=path,
        on_save=lambda p, e: resumed_saves.append(e),
    )
    resumed = unlearn(model, setup, cfg, seed=SEED, checkpoints=again)
    _assert_equal(_weights(resumed), plain)
    assert resumed_saves == [2, 3]  # epoch 1 was not run again


def test_a_cancel_inside_an_epoch_resumes_from_the_last_due_checkpoint(
    case: tuple[nn.Module, ClassifierSetup], tmp_path: Path
) -> None:
    """Every 2 epochs: stopped in the middle of epoch 4 of 5, the run resumes after epoch 2."""
    model, setup = case
    info = get_method("neggrad_plus")
    unlearn, cfg = _unlearn("neggrad_plus"), dataclasses.replace(info.config(), epochs=5)
    plain = _weights(unlearn(model, setup, cfg, seed=SEED))
    per_epoch = math.ceil(len(setup.retain_idx) / cfg.batch_size)  # steps: one per retain batch
    steps = 0

    def check() -> None:
        nonlocal steps
        steps += 1
        if steps == 3 * per_epoch + 5:  # the 5th step of epoch 4
            raise Stop

    saves: list[int] = []
    path = tmp_path / "state.safetensors"
    checkpoints = _checkpoints(path, 2, on_save=lambda p, e: saves.append(e))
    with pytest.raises(Stop):
        unlearn(model, setup, cfg, seed=SEED, check=check, checkpoints=checkpoints)
    assert saves == [2]
    resumed = unlearn(
        model,
        setup,
        cfg,
        seed=SEED,
        checkpoints=_checkpoints(tmp_path / "again.safetensors", 2, resume=path),
    )
    _assert_equal(_weights(resumed), plain)


def test_a_checkpoint_of_another_method_is_refused(
    case: tuple[nn.Module, ClassifierSetup], tmp_path: Path
) -> None:
    model, setup = case
    path = tmp_path / "ga.safetensors"
    _unlearn("ga")(model, setup, _cfg("ga"), seed=SEED, checkpoints=_checkpoints(path, 1))
    with pytest.raises(CheckpointError, match="checkpoint of 'GA', not of 'FT'"):
        _unlearn("ft")(
            model,
            setup,
            _cfg("ft"),
            seed=SEED,
            checkpoints=_checkpoints(tmp_path / "ft.safetensors", 1, resume=path),
        )


# -- the job through the real engine ----------------------------------------------------------------
def _resumed_at(messages: list[str], step: int) -> bool:
    """The engine's log line of a resume from ``step`` ("resuming from checkpoint after step
    N"; "resumed from the checkpoint at step N" in engines that also log cancels)."""
    return any(m.startswith("resum") and m.endswith(f"step {step}") for m in messages)


def _engine_logs_cancels() -> bool:
    """Engines whose ``cancel(run_id, reason)`` writes "cancel requested <reason>" to the log."""
    return "reason" in inspect.signature(Engine.cancel).parameters


JOB_CONFIG = {
    "train_epochs": 10,
    "references": 2,
    "attacks": ["svc_mia", "mia_nn"],
    "n_bootstrap": 50,
    "device": "cpu",
    "epochs": 3,
}
TIMINGS = ("seconds",)  # wall-clock measures differ between any two runs


def _comparable(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if not k.endswith(TIMINGS)}


def test_a_cancelled_unlearning_run_resumes_to_the_same_metrics(project: Project) -> None:
    engine = Engine(project)
    cancelled: list[int] = []

    def cancel_at_first_checkpoint(event: Event) -> None:
        if event.type == "checkpoint" and event.run_id not in cancelled:
            cancelled.append(event.run_id)
            engine.cancel(event.run_id)  # on the worker thread: lands before the next step

    try:
        reference = engine.submit("classifier.unlearn.ga", JOB_CONFIG, seed=3, dataset="digits")
        assert engine.wait(reference, 300) == "completed", project.run(reference).error
        engine.add_listener(cancel_at_first_checkpoint)
        run_id = engine.submit("classifier.unlearn.ga", JOB_CONFIG, seed=3, dataset="digits")
        assert engine.wait(run_id, 300) == "cancelled"
        record = project.run(run_id)
        assert record.checkpoint_step == 1 and project.final_metrics(run_id) == {}
        engine.remove_listener(cancel_at_first_checkpoint)
        assert engine.resume(run_id) == run_id
        assert engine.wait(run_id, 300) == "completed", project.run(run_id).error
    finally:
        engine.shutdown()
    assert project.run(run_id).checkpoint_step == 3
    final, expected = project.final_metrics(run_id), project.final_metrics(reference)
    assert "forget_acc" in final and "mia_nn_gap" in final
    assert _comparable(final) == _comparable(expected)
    # the unlearned models saved by the two runs are the same weights
    from backends.common.safe_load import load_state_dict

    weights = [
        load_state_dict(project.abspath(project.model(f"ga-run{r}")["path"]) / "model.safetensors")
        for r in (reference, run_id)
    ]
    _assert_equal(*weights)
    messages = [line["message"] for line in project.logs(run_id)]
    assert _resumed_at(messages, 1)
    if _engine_logs_cancels():
        assert any(m.startswith("cancel requested") for m in messages)
    assert "ga: continuing after epoch 1 of the unlearning" in messages
    # epoch 1 ran before the cancel, epochs 2 and 3 after the resume: each exactly once
    epochs = [m.split(":")[0] for m in messages if m.startswith("GA epoch")]
    assert epochs == ["GA epoch 1/3", "GA epoch 2/3", "GA epoch 3/3"]


COMPARE_CONFIG = {
    **{k: v for k, v in JOB_CONFIG.items() if k != "epochs"},
    "methods": ["ga"],
    "seeds": 1,
    "method_overrides": ["ga.epochs=3"],
}


def test_a_cancelled_comparison_keeps_its_finished_units_and_matches_an_uninterrupted_run(
    project: Project,
) -> None:
    engine = Engine(project)
    seen: list[int] = []

    def cancel_at_second_unit(event: Event) -> None:
        if event.type == "checkpoint" and event.data["step"] == 2:  # original, retrain; not ga
            seen.append(event.run_id)
            engine.cancel(event.run_id)

    try:
        reference = engine.submit("classifier.compare", COMPARE_CONFIG, seed=3, dataset="digits")
        assert engine.wait(reference, 300) == "completed", project.run(reference).error
        engine.add_listener(cancel_at_second_unit)
        run_id = engine.submit("classifier.compare", COMPARE_CONFIG, seed=3, dataset="digits")
        assert engine.wait(run_id, 300) == "cancelled"
        engine.remove_listener(cancel_at_second_unit)
        assert seen == [run_id] and project.run(run_id).checkpoint_step == 2
        kept = project.final_metrics(run_id)
        assert "retrain/forget_acc" in kept and "ga/forget_acc" not in kept
        engine.resume(run_id)
        assert engine.wait(run_id, 300) == "completed", project.run(run_id).error
        # a standalone GA run with the compare's seed and settings: the same names and values
        standalone = engine.submit(
            "classifier.unlearn.ga", {**JOB_CONFIG, "epochs": 3}, seed=3, dataset="digits"
        )
        assert engine.wait(standalone, 300) == "completed", project.run(standalone).error
    finally:
        engine.shutdown()
    final, expected = project.final_metrics(run_id), project.final_metrics(reference)
    assert _comparable(final) == _comparable(expected)
    messages = [line["message"] for line in project.logs(run_id)]
    assert "resuming the comparison: 2 of 3 (seed, model) units kept" in messages
    # the finished units were not run again: every unit's metrics were recorded once
    for name in ("original/forget_acc", "retrain/forget_acc", "ga/forget_acc"):
        assert len(project.metrics(run_id, name)) == 1, name
    # the tables are rebuilt from the kept units exactly as an uninterrupted run builds them
    for name in ("gap-to-retrain table", "verdicts"):
        tables = [_table(project, r, name) for r in (run_id, reference)]
        assert tables[0].columns == tables[1].columns
        keep = [i for i, c in enumerate(tables[0].columns) if c != "seconds"]
        assert [[row[i] for i in keep] for row in tables[0].rows] == [
            [row[i] for i in keep] for row in tables[1].rows
        ]

    # one metric namespace: every compare metric is <model>/<standalone name> ...
    plain = project.final_metrics(standalone)
    at_seed0 = {r["name"]: r["value"] for r in project.metrics(reference) if r["step"] == 0}
    for model in ("original", "retrain", "ga"):
        suffixes = {n.split("/", 1)[1] for n in at_seed0 if n.startswith(f"{model}/")}
        assert suffixes == set(plain), (model, suffixes ^ set(plain))
    assert all("/" in n and n.split("/", 1)[0] in ("original", "retrain", "ga") for n in expected)
    # ... with the same meaning: the compare's seed-0 GA unit is the standalone run
    ga = {n.split("/", 1)[1]: v for n, v in at_seed0.items() if n.startswith("ga/")}
    assert _comparable(ga) == _comparable(plain)


def _table(project: Project, run_id: int, name: str):  # type: ignore[no-untyped-def]
    from workbench.artifacts import load_artifact

    art = next(a for a in project.artifacts(run_id) if a["name"] == name)
    return load_artifact("table", project.abspath(art["path"]), {})


def test_a_cancelled_retrain_resumes_after_its_finished_model(project: Project) -> None:
    engine = Engine(project)
    config = {"train_epochs": 10, "device": "cpu"}

    def cancel_after_the_original(event: Event) -> None:
        if event.type == "checkpoint" and event.data["step"] == 1:
            engine.cancel(event.run_id)

    engine.add_listener(cancel_after_the_original)
    try:
        run_id = engine.submit("classifier.retrain", config, seed=2, dataset="digits")
        assert engine.wait(run_id, 300) == "cancelled"
        engine.remove_listener(cancel_after_the_original)
        engine.resume(run_id)
        assert engine.wait(run_id, 300) == "completed", project.run(run_id).error
        reference = engine.submit("classifier.retrain", config, seed=2, dataset="digits")
        assert engine.wait(reference, 300) == "completed"
    finally:
        engine.shutdown()
    assert project.run(run_id).checkpoint_step == 2
    assert project.final_metrics(run_id) == project.final_metrics(reference)
    messages = [line["message"] for line in project.logs(run_id)]
    assert _resumed_at(messages, 1)
