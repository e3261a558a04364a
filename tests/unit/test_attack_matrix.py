"""The attack matrix's rules on a toy family (fast): which attacks apply to which model kinds,
what it plans, the child runs it records and what the parent records from them.

The toy attacks are jobs of this module; their "score" is a known function of the model's name
and the seed, so a child's headline can be compared with the same attack run alone."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from workbench.artifacts import load_artifact
from workbench.attack_matrix import (
    AttackMatrixConfig,
    applicable,
    attack_jobs,
    declare_attack,
    headline_of,
    plan,
)
from workbench.attack_matrix import register as register_matrix
from workbench.config import ConfigError, param, validate
from workbench.jobs import Engine
from workbench.leakage_matrix import LeakageMatrix, leakage_distance
from workbench.registry import Headline, JobSpec, ModelKindSpec, Registry
from workbench.store import Project


@dataclass
class ToyAttackConfig:
    """A toy attack's one setting."""

    scale: float = param(1.0, "Multiplies the score.", range=(0.0, 10.0))


def toy_score(model: str, seed: int, scale: float) -> float:
    """The toy attack's headline: a fixed function of model name and seed in [0, scale)."""
    return scale * (zlib.crc32(f"{model}:{seed}".encode()) % 1000) / 1000.0


def toy_attack(ctx: Any) -> dict[str, float]:
    """Records ``score`` with an interval and the reference, as real attacks do."""
    ctx.check()  # a step: a cancelled run stops here
    s = toy_score(ctx.model.name, ctx.seed, ctx.config.scale)
    ctx.metrics({"score": s, "score_low": s - 0.1, "score_high": s + 0.1, "reference/score": 0.5})
    return {}


def toy_templated(ctx: Any) -> dict[str, float]:
    """Records its headline under a name that depends on its config (as MemoRa's
    ``erased/pooled/{metric}``)."""
    s = toy_score(ctx.model.name, ctx.seed, ctx.config.scale)
    name = f"erased/{ctx.config.scale}"
    ctx.metrics({name: s, f"{name}_low": s - 0.1, f"{name}_high": s + 0.1, "control": 0.25})
    return {}


def toy_fails(ctx: Any) -> dict[str, float]:
    raise RuntimeError("this attack always fails")


def _attack(name: str, entry: str = "toy_attack") -> JobSpec:
    return JobSpec(
        name=name,
        kind="attack",
        family="toy",
        title=name,
        description="a toy attack",
        config=ToyAttackConfig,
        entry=f"tests.unit.test_attack_matrix:{entry}",
        needs_model="toy",
        model_heavy=False,
    )


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.device_probe = None
    for kind in ("toy.small", "toy.big", "other.thing"):
        reg.add_model_kind(ModelKindSpec(kind, kind.split(".")[0], kind, "a toy model kind"))
    for name in ("toy.attack.small_only", "toy.attack.any_toy", "toy.attack.other"):
        reg.add_job(_attack(name))
    reg.add_job(_attack("toy.attack.broken", "toy_fails"))
    reg.add_job(_attack("toy.attack.undeclared"))
    head = Headline("score", True, reference="reference/score")
    declare_attack(reg, "toy.attack.small_only", ("toy.small",), head)
    declare_attack(reg, "toy.attack.any_toy", ("toy",), head)
    declare_attack(reg, "toy.attack.other", ("other.thing",), head)
    declare_attack(reg, "toy.attack.broken", ("toy",), head)
    register_matrix(reg)
    return reg


def _unlearned(project: Project, kind: str, status: str = "completed") -> int:
    """A finished toy unlearning run that registered a model of ``kind``."""
    run = project.create_run(
        job="toy.unlearn.x", kind="unlearn", family="toy", method="x", config={}, seed=0
    )
    project.update_run(run, status=status)
    folder = project.root / "models" / f"toy-run{run}"
    folder.mkdir(parents=True)
    project.add_model(f"toy-run{run}", "toy", kind, str(folder), source_run=run)
    return run


def _cfg(**values: Any) -> AttackMatrixConfig:
    return validate(AttackMatrixConfig, values)


def test_an_attack_is_offered_only_for_the_model_kinds_it_names(registry: Registry) -> None:
    small = [s.name for s in attack_jobs(registry, "toy.small")]
    big = [s.name for s in attack_jobs(registry, "toy.big")]
    assert small == ["toy.attack.any_toy", "toy.attack.broken", "toy.attack.small_only"]
    assert big == ["toy.attack.any_toy", "toy.attack.broken"]
    assert [s.name for s in attack_jobs(registry, "other.thing")] == ["toy.attack.other"]
    # an attack without a headline (undeclared) is never offered, whatever the kind
    assert not applicable(registry.job("toy.attack.undeclared"), "toy.small")


def test_the_plan_skips_cells_that_cannot_run_and_refuses_an_attack_for_no_run(
    project: Project, registry: Registry
) -> None:
    a, b = _unlearned(project, "toy.small"), _unlearned(project, "toy.big")
    cfg = _cfg(runs=[a, b], attacks=["toy.attack.small_only", "toy.attack.any_toy"])
    cells, notes = plan(project, registry, cfg, seed=4)
    assert [(c.run, c.attack) for c in cells] == [
        (a, "toy.attack.any_toy"),
        (a, "toy.attack.small_only"),
        (b, "toy.attack.any_toy"),
    ]
    assert notes == [f"toy.attack.small_only does not apply to run {b}'s toy.big model"]
    assert {c.request.seed for c in cells} == {4}
    assert cells[0].request.model == f"toy-run{a}"
    with pytest.raises(ConfigError, match="applies to other.thing, not to the runs' models"):
        plan(project, registry, _cfg(runs=[a, b], attacks=["toy.attack.other"]), seed=0)
    with pytest.raises(ConfigError, match="not an attack the matrix can run"):
        plan(project, registry, _cfg(runs=[a], attacks=["toy.attack.undeclared"]), seed=0)


def test_the_plan_refuses_runs_without_a_finished_model(
    project: Project, registry: Registry
) -> None:
    failed = _unlearned(project, "toy.small", status="failed")
    with pytest.raises(ConfigError, match=f"run {failed} is failed") as err:
        plan(project, registry, _cfg(runs=[failed]), seed=0)
    assert err.value.field == "runs"
    with pytest.raises(ConfigError, match="run 999 is not in this project"):
        plan(project, registry, _cfg(runs=[999]), seed=0)


def test_empty_attacks_means_every_attack_that_applies(
    project: Project, registry: Registry
) -> None:
    a = _unlearned(project, "toy.big")
    cells, _ = plan(project, registry, _cfg(runs=[a]), seed=0)
    assert [c.attack for c in cells] == ["toy.attack.any_toy", "toy.attack.broken"]


def test_overrides_reach_the_child_config_and_name_a_chosen_attack(
    project: Project, registry: Registry
) -> None:
    a = _unlearned(project, "toy.small")
    cfg = _cfg(runs=[a], attacks=["toy.attack.any_toy"], overrides=["toy.attack.any_toy:scale=2"])
    (cell,), _ = plan(project, registry, cfg, seed=0)
    assert cell.request.config == {"scale": 2.0}
    bad = _cfg(runs=[a], attacks=["toy.attack.any_toy"], overrides=["toy.attack.other:scale=2"])
    with pytest.raises(ConfigError, match="not among the matrix's attacks"):
        plan(project, registry, bad, seed=0)


def test_headline_names_are_filled_from_the_child_config() -> None:
    spec = JobSpec(
        name="t.attack",
        kind="attack",
        family="toy",
        title="t",
        description="t",
        config=ToyAttackConfig,
        entry="x:y",
        headline=Headline("erased/{scale}", reference="control/{scale}"),
    )
    metrics = {"erased/2": 0.7, "erased/2_low": 0.6, "erased/2_high": 0.8, "control/2": 0.1}
    assert headline_of(spec, {"scale": 2}, metrics) == {
        "value": 0.7,
        "low": 0.6,
        "high": 0.8,
        "reference": 0.1,
    }
    assert math.isnan(headline_of(spec, {"scale": 3}, metrics)["value"])


def test_leakage_distance_is_signed_so_that_positive_leaks_more() -> None:
    assert leakage_distance(0.8, 0.5, higher_leaks=True) == pytest.approx(0.3)
    assert leakage_distance(0.8, 0.5, higher_leaks=False) == pytest.approx(-0.3)
    assert math.isnan(leakage_distance(0.8, math.nan, higher_leaks=True))


def test_the_matrix_runs_each_cell_as_the_child_a_user_would_run_alone(
    project: Project, registry: Registry, tmp_path: Path
) -> None:
    a, b = _unlearned(project, "toy.small"), _unlearned(project, "toy.big")
    engine = Engine(project, registry=registry)
    try:
        cfg = {"runs": [a, b], "attacks": ["toy.attack.small_only", "toy.attack.any_toy"]}
        parent = engine.submit("attack_matrix", cfg, seed=7)
        assert engine.wait(parent, 30) == "completed"
        children = [r for r in project.runs() if r.parent_id == parent]
        assert len(children) == 3
        metrics = project.final_metrics(parent)
        for child in children:
            assert child.seed == 7 and child.status == "completed"
            alone = engine.submit(child.job, child.config, seed=7, model=child.model)
            assert engine.wait(alone, 30) == "completed"
            src = int(child.model.removeprefix("toy-run"))
            key = f"run{src}/{child.job}/score"
            assert metrics[key] == project.final_metrics(alone)["score"]
            assert metrics[key] == toy_score(child.model, 7, 1.0)
            assert metrics[key + "_low"] == pytest.approx(metrics[key] - 0.1)
            assert metrics[key + "_reference"] == 0.5
        (row,) = [r for r in project.artifacts(parent) if r["kind"] == "leakage_matrix"]
        m = load_artifact(row["kind"], project.artifact_path(row), row["meta"])
        assert isinstance(m, LeakageMatrix)
        assert m.row_runs == [a, b]
        assert m.columns == ["toy.attack.any_toy", "toy.attack.small_only"]
        by_cell = {(c.model, c.job): c.id for c in children}
        assert m.child_run(0, 1) == by_cell[(f"toy-run{a}", "toy.attack.small_only")]
        assert m.child_run(1, 1) is None  # small_only does not apply to the big model
        assert m.cell_text(1, 1) == "n/a"
    finally:
        engine.shutdown()


def test_a_failed_child_leaves_its_cell_empty_and_the_others_recorded(
    project: Project, registry: Registry
) -> None:
    a = _unlearned(project, "toy.small")
    engine = Engine(project, registry=registry)
    try:
        cfg = {"runs": [a], "attacks": ["toy.attack.broken", "toy.attack.any_toy"]}
        parent = engine.submit("attack_matrix", cfg, seed=1)
        assert engine.wait(parent, 30) == "completed"
        statuses = {r.job: r.status for r in project.runs() if r.parent_id == parent}
        assert statuses == {"toy.attack.broken": "failed", "toy.attack.any_toy": "completed"}
        names = set(project.final_metrics(parent))
        assert f"run{a}/toy.attack.any_toy/score" in names
        assert not any("broken" in n for n in names)
    finally:
        engine.shutdown()


def test_cancelling_the_matrix_cancels_its_running_child(
    project: Project, registry: Registry
) -> None:
    a = _unlearned(project, "toy.small")
    engine = Engine(project, registry=registry)
    try:
        started = []

        def cancel_when_a_child_runs(event: Any) -> None:
            if event.type == "status" and event.data.get("status") == "running":
                started.append(event.run_id)
                if len(started) == 2:  # the parent, then its first child
                    engine.cancel(started[0])

        engine.add_listener(cancel_when_a_child_runs)
        parent = engine.submit(
            "attack_matrix", {"runs": [a], "attacks": ["toy.attack.any_toy"]}, seed=0
        )
        assert engine.wait(parent, 30) == "cancelled"
        (child,) = [r for r in project.runs() if r.parent_id == parent]
        assert child.status == "cancelled"
    finally:
        engine.shutdown()


def test_a_child_refused_at_submit_is_named_and_fails_the_matrix_when_none_ran(
    project: Project, registry: Registry
) -> None:
    import shutil

    a = _unlearned(project, "toy.small")
    shutil.rmtree(project.root / "models" / f"toy-run{a}")  # its model was deleted since
    engine = Engine(project, registry=registry)
    try:
        parent = engine.submit(
            "attack_matrix", {"runs": [a], "attacks": ["toy.attack.any_toy"]}, seed=0
        )
        assert engine.wait(parent, 30) == "failed"
        text = project.run(parent).status_text
        assert f"run {a} x toy.attack.any_toy: refused" in text and "does not exist" in text
        assert [r for r in project.runs() if r.parent_id == parent] == []
    finally:
        engine.shutdown()


def test_a_templated_headline_is_recorded_under_its_filled_name(
    project: Project, registry: Registry
) -> None:
    """The parent records ``run<id>/<attack>/<metric>`` with the headline's ``{field}`` filled
    from the child's config, and the matrix's column names that metric (not the template)."""
    registry.add_job(_attack("toy.attack.templated", "toy_templated"))
    templated = Headline("erased/{scale}", reference="control")
    declare_attack(registry, "toy.attack.templated", ("toy",), templated)
    a = _unlearned(project, "toy.small")
    engine = Engine(project, registry=registry)
    try:
        cfg = {
            "runs": [a],
            "attacks": ["toy.attack.templated"],
            "overrides": ["toy.attack.templated:scale=2"],
        }
        parent = engine.submit("attack_matrix", cfg, seed=1)
        assert engine.wait(parent, 30) == "completed"
        metrics = project.final_metrics(parent)
        key = f"run{a}/toy.attack.templated/erased/2.0"
        assert metrics[key] == toy_score(f"toy-run{a}", 1, 2.0)
        assert metrics[key + "_high"] == pytest.approx(metrics[key] + 0.1)
        assert metrics[key + "_reference"] == 0.25
        assert not [k for k in metrics if "{" in k]
        (row,) = [r for r in project.artifacts(parent) if r["kind"] == "leakage_matrix"]
        m = load_artifact(row["kind"], project.artifact_path(row), row["meta"])
        assert m.metrics == ["erased/2.0"]
    finally:
        engine.shutdown()
