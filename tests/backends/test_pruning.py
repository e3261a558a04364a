"""Influence pruning of the forget set (spec section 4): the threshold rules, the reduced set-up,
quantile 0 equal to the unpruned run bit for bit, the compute a pruned GA saves, the refusal of a
class forget set, the artifacts, and the job through the real engine (slow)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from backends.classifier.data import load_digits, make_forget_set, stratified_split
from backends.classifier.experiment import method_runner
from backends.classifier.pruning_config import InfluencePruningConfig
from backends.classifier.pruning_job import StepCounter, level_label, reduced_setup
from backends.classifier.setup import ClassifierSetup
from backends.common.pruning import CLASS_FORGET_NOTE, prune, saved_fraction
from tests.fixtures.classifier import build as fixtures
from workbench.artifacts import load_artifact
from workbench.config import ConfigError, validate
from workbench.influence_artifacts import InfluenceScores, PruningCurve
from workbench.jobs import Engine
from workbench.store import Project


def test_threshold_rules_drop_exactly_the_low_scores() -> None:
    s = np.array([5.0, 1.0, 3.0, 1.0, 4.0, 2.0, 9.0, 7.0, 6.0, 8.0])
    assert prune(s, "quantile", 0.0).keep.all()
    p = prune(s, "quantile", 0.3)  # the 3 lowest: both 1s (ties by position) and the 2
    assert np.flatnonzero(~p.keep).tolist() == [1, 3, 5] and p.threshold == 2.0
    assert prune(s, "quantile", 0.35).n_dropped == 3  # floor(0.35 * 10)
    f = prune(s, "fraction_of_max", 0.5)  # keep s >= 4.5
    assert np.flatnonzero(f.keep).tolist() == [0, 6, 7, 8, 9] and f.threshold == 4.5
    assert prune(s, "fraction_of_max", 0.0).keep.all()
    assert saved_fraction(18, 9) == 0.5 and saved_fraction(0, 0) == 0.0
    with pytest.raises(ValueError, match="quantile 1.0 must be in"):
        prune(s, "quantile", 1.0)
    with pytest.raises(ValueError, match="unknown pruning rule 'top'"):
        prune(s, "top", 0.1)
    with pytest.raises(ValueError, match="must be finite"):
        prune(np.array([1.0, np.nan]), "quantile", 0.5)
    # metric prefixes of the levels stay distinct
    labels = [level_label("quantile", v) for v in (0.0, 0.1, 0.999)]
    assert labels == ["q00", "q10", "q99p9"]
    assert level_label("fraction_of_max", 0.005) != level_label("fraction_of_max", 0.0)


@pytest.fixture(scope="module")
def random_case() -> dict[str, object]:
    """Random forgetting of 30% of the training split (FIXED, shipped original weights)."""
    torch.set_num_threads(1)
    data = load_digits()
    split = stratified_split(data.y, 0.3, 0, shadow_fraction=0.4)
    setup = ClassifierSetup(data, split, make_forget_set(data, split, kind="random", fraction=0.3))
    return {"setup": setup, "original": fixtures.load("random.original")}


def test_quantile_zero_is_the_unpruned_run_exactly_and_pruning_halves_ga(
    random_case: dict,
) -> None:
    setup, original = random_case["setup"], random_case["original"]
    assert len(setup.forget_idx) == 161
    scores = np.random.default_rng(0).random(161)  # any scores: the job's are tested below
    run, cfg = method_runner("ga")  # through the method catalogue
    full_steps, pruned_steps = StepCounter(), StepCounter()
    full = run(original, setup, cfg, seed=3, check=full_steps)
    same = reduced_setup(setup, prune(scores, "quantile", 0.0))
    for name in ("forget_idx", "retain_idx", "train_idx", "test_idx", "shadow_idx"):
        assert np.array_equal(getattr(same, name), getattr(setup, name)), name
    again = run(original, same, cfg, seed=3, check=StepCounter())
    for (k, a), (_, b) in zip(full.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    half = prune(scores, "quantile", 0.5)
    reduced = reduced_setup(setup, half)
    # the kept points are the high-score half; the retain set is unchanged
    assert np.array_equal(reduced.forget_idx, setup.forget_idx[half.keep])
    assert scores[half.keep].min() >= scores[~half.keep].max()
    assert np.array_equal(reduced.retain_idx, setup.retain_idx)
    pruned = run(original, reduced, cfg, seed=3, check=pruned_steps)
    # GA: epochs * ceil(n / batch) steps: 3 * ceil(161 / 32) = 18 against 3 * ceil(81 / 32) = 9
    assert (full_steps.calls, pruned_steps.calls) == (18, 9)
    assert saved_fraction(full_steps.calls, pruned_steps.calls) == 0.5
    assert not torch.equal(pruned.state_dict()["net.2.weight"], full.state_dict()["net.2.weight"])


def test_a_class_forget_set_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError) as err:
        validate(InfluencePruningConfig, {"forget_kind": "class"})
    assert err.value.field == "forget_kind"
    assert str(err.value).startswith(CLASS_FORGET_NOTE[:60])
    assert "no low-influence points to drop" in CLASS_FORGET_NOTE
    assert validate(InfluencePruningConfig, {}).forget_kind == "random"


def test_influence_artifacts_round_trip(tmp_path: Path) -> None:
    art = InfluenceScores([0.5, 0.1, 0.3], {"q00": -math.inf, "q30": 0.1}, "exact", "t", "n")
    path, meta = art.save(tmp_path, "scores")
    back = load_artifact("influence", path, meta)
    assert back == art and back.thresholds["q00"] == -math.inf
    curve = PruningCurve(
        [0.0, 0.5],
        {"test_acc": {"mean": [0.9, math.nan], "low": [0.8, math.nan], "high": [1.0, math.nan]}},
        {"saved_fraction": {"mean": [0.0, 0.5], "low": [0.0, 0.4], "high": [0.0, 0.6]}},
    )
    path, meta = curve.save(tmp_path, "curve")
    again = load_artifact("pruning_curve", path, meta)
    assert again.compute == curve.compute and math.isnan(again.quality["test_acc"]["mean"][1])
    with pytest.raises(ValueError, match="one value per level"):
        PruningCurve([0.0], {"a": {"mean": [1, 2], "low": [1, 2], "high": [1, 2]}}, {})


@pytest.fixture
def engine(project: Project) -> Iterator[Engine]:
    eng = Engine(project)
    yield eng
    eng.shutdown()


@pytest.mark.slow
def test_pruning_job_through_the_engine(engine: Engine, project: Project) -> None:
    config = {
        "train_epochs": 10,
        "estimator": "grad_norm",
        "cross_check": False,
        "thresholds": [0.5],
        "seeds": 2,
        "n_bootstrap": 100,
        "device": "cpu",
    }
    run_id = engine.submit("classifier.influence_pruning", config, dataset="digits")
    engine.wait(run_id, 600)
    record = project.run(run_id)
    assert record.status == "completed", record.error
    final = project.final_metrics(run_id)
    assert final["q00/saved_fraction"] == 0.0 and final["q00/delta_test_acc"] == 0.0
    # GA on 72 forget points: 3 * ceil(72 / 32) = 9 steps, on the kept 36: 3 * 2 = 6
    assert (final["q00/steps"], final["q50/steps"]) == (9.0, 6.0)
    assert final["q50/saved_fraction"] == pytest.approx(1 / 3)
    arts = {a["name"]: a for a in project.artifacts(run_id)}
    assert {"influence scores", "compute vs quality", "pruning table"} <= set(arts)
    hist = load_artifact("influence", project.abspath(arts["influence scores"]["path"]), {})
    assert len(hist.scores) == 72 and set(hist.thresholds) == {"q00", "q50"}
    # the scores are the gradient norms: the threshold at q50 is the 36th smallest
    assert hist.thresholds["q50"] == sorted(hist.scores)[35]
    with pytest.raises(ConfigError, match="no low-influence points"):
        engine.submit("classifier.influence_pruning", {"forget_kind": "class"}, dataset="digits")
