"""Influence pruning for LLM unlearning (issue 15 part 4, spec section 4): the scores on a known
answer, the validation draw, quantile 0 as the unpruned run bit for bit, and the job end to end
on the shipped small GPT (slow)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from backends.common.method import Hooks
from backends.common.pruning import StepCounter, prune
from backends.llm import pruning_job as pj
from backends.llm.jobconfigs import LLMSetupConfig
from backends.llm.methods import get_method
from backends.llm.methods.common import LLMData
from backends.llm.universe import Universe
from workbench.jobs import Engine
from workbench.store import Project

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "llm" / "tiny-gpt-small"


def test_scores_on_a_known_answer() -> None:
    """grad_norm is the gradient's norm; LESS's |cosine| survives any projection for a gradient
    parallel (or anti-parallel) to the validation gradient (1) and is 0 for a zero gradient."""
    v = torch.zeros(1, 300)
    v[0, :3] = torch.tensor([1.0, 2.0, 2.0])  # norm 3
    forget = torch.cat([2 * v, torch.zeros(1, 300), -0.5 * v])
    norms = pj.score_facts("grad_norm", forget, v, less_dim=16, seed=0)
    np.testing.assert_allclose(norms, [6.0, 0.0, 1.5], rtol=1e-6)
    less = pj.score_facts("less", forget, v, less_dim=16, seed=0)
    np.testing.assert_allclose(less, [1.0, 0.0, 1.0], atol=1e-6)
    # two validation points, one parallel and one orthogonal to the point: the mean |cos| is 1/2
    # only where the projection keeps them orthogonal, so check against the projected cosine
    w = torch.zeros(1, 300)
    w[0, 3] = 1.0
    both = pj.score_facts("less", v, torch.cat([v, w]), less_dim=300, seed=1)
    assert both[0] == pytest.approx(0.5, abs=0.1)  # 300-dim Gaussian projection: |cos| ~ 0.06
    with pytest.raises(ValueError, match="grad_norm, less"):
        pj.score_facts("exact", forget, v, less_dim=16, seed=0)
    # the lowest-gradient fact goes first
    assert prune(norms, "quantile", 0.34).keep.tolist() == [True, False, True]


def test_validation_facts_and_the_mias_non_members_are_disjoint() -> None:
    universe = Universe.load(SMALL / "universe.json")
    from backends.llm.jobs import _split

    split = _split(universe, "entity", "", 1)
    val, eval_split = pj.validation_split(split, 5, seed=0)
    ids = {f.id for f in val}
    rest = {f.id for f in eval_split.never_trained}
    assert len(ids) == 5 and not ids & rest
    assert ids | rest == {f.id for f in split.never_trained}
    assert eval_split.forget == split.forget and eval_split.retain == split.retain
    assert [f.id for f in pj.validation_split(split, 5, seed=0)[0]] == [f.id for f in val]
    with pytest.raises(ValueError, match="lower validation_facts"):
        pj.validation_split(split, len(split.never_trained), seed=0)


def test_quantile_zero_is_the_unpruned_run_bit_for_bit() -> None:
    """At quantile 0 the reduced forget texts are the forget set's and the unlearned weights equal
    a direct ``llm.unlearn.ga`` run's exactly; at 0.5 half the facts (a subset) go."""
    from backends.llm.jobs import _split
    from backends.llm.models import load_causal_lm

    torch.manual_seed(0)
    loaded = load_causal_lm(SMALL, device="cpu", attention="eager")
    universe = Universe.load(SMALL / "universe.json")
    split = _split(universe, "entity", "", 1)
    split = dataclasses.replace(split, forget=split.forget[:6])  # 6 facts keep the test short
    full = universe.training_texts(split.forget)
    retain = universe.training_texts(split.retain)[:16]
    scores = np.arange(len(split.forget), dtype=float)[::-1].copy()
    keep0 = prune(scores, "quantile", 0.0).keep
    assert pj.kept_texts(universe, split, keep0) == full
    cfg = get_method("ga").config(epochs=1, batch_size=8)
    counter = StepCounter()
    got = pj.unlearn_reduced(
        "ga", loaded.model, loaded.tokenizer, pj.kept_texts(universe, split, keep0), retain,
        cfg, seed=3, setup=LLMSetupConfig(), check=counter,
    )  # fmt: skip
    import copy

    want = copy.deepcopy(loaded.model)
    get_method("ga").load()(want, LLMData(loaded.tokenizer, full, retain), cfg, Hooks(), seed=3)
    for (name, a), (_, b) in zip(got.state_dict().items(), want.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    pairs = zip(got.parameters(), loaded.model.parameters(), strict=True)
    moved = [not torch.equal(a, b) for a, b in pairs]
    assert any(moved)  # GA did change the weights: the equality is not two untouched copies
    half = pj.kept_texts(universe, split, prune(scores, "quantile", 0.5).keep)
    assert len(half) < len(full) and set(half) <= set(full)
    assert counter.calls == math.ceil(len(full) / 8)
    assert math.ceil(len(half) / 8) < counter.calls  # what the pruned run would take


@pytest.fixture
def engine(project: Project) -> Iterator[Engine]:
    eng = Engine(project)
    yield eng
    eng.shutdown()


@pytest.mark.slow
def test_llm_pruning_job_through_the_engine(engine: Engine, project: Project) -> None:
    run_id = engine.submit(
        "llm.influence_pruning",
        {
            "device": "cpu",
            "methods": ["ga"],
            "method_overrides": ["ga.epochs=2"],
            "thresholds": [0.0, 0.5],
            "seeds": 2,
            "validation_facts": 5,
            "max_eval_items": 10,
            "n_bootstrap": 100,
        },
        model=str(SMALL),
    )
    engine.wait(run_id, 600)
    record = project.run(run_id)
    assert record.status == "completed", record.error
    final = project.final_metrics(run_id)
    # half the forget facts dropped: about half the gradient steps saved, on both seeds
    assert final["ga/q50/saved_fraction"] > 0.3
    assert final["ga/q00/saved_fraction"] == 0.0
    assert "ga/q00/gap_forget_recall" in final and "spearman_less" in final
    kinds = {a["name"]: a["kind"] for a in project.artifacts(run_id)}
    assert kinds["compute vs quality (ga)"] == "pruning_curve"
    assert kinds["influence scores"] == "influence"
