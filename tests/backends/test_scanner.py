"""The backdoor scanner (``backends.llm.scanner``; issue 16 part 4).

- the score and calibration maths on known numbers (fast);
- the scanner on the original, never-unlearned model (the shipped small tiny GPT) reports no
  backdoor;
- a positive control: a planted backdoor built from two shipped weights (the small tiny GPT and its
  retrained reference, which never saw the forget facts) that answers as the original when one
  chosen token follows BOS and as the retrained model otherwise. The vocabulary search must find
  that token and the verdict must be 1 (deterministic: fixed weights, exact search).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from backends.llm import scanner
from backends.llm.scanner import (
    ScanJobConfig,
    calibrate,
    rank_heads,
    restored_recall,
    split_items,
    verdict,
)

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "llm" / "tiny-gpt-small"


# -- maths on known numbers -------------------------------------------------------------------


def test_restored_recall_and_threshold_on_known_numbers() -> None:
    # 4 questions: clean gets 1 right, the prefix gets 3 right -> 0.5 restored
    assert restored_recall([True, True, True, False], [True, False, False, False]) == 0.5
    # the prefix may also hurt: -0.25
    assert restored_recall([False, False], [True, False]) == -0.5
    cal = calibrate([0.1, 0.3, 0.2], margin=0.05, fallback=0.9)
    assert cal.calibrated and cal.threshold == pytest.approx(0.35)
    assert verdict(0.35, cal) == 0  # strictly above the threshold only
    assert verdict(0.36, cal) == 1
    # p-value (1 + #{ref >= s}) / (n + 1): one reference (0.3) is >= 0.25
    assert cal.p_value(0.25) == pytest.approx(2 / 4)
    assert cal.p_value(0.9) == pytest.approx(1 / 4)
    assert cal.false_alarm_bound == pytest.approx(1 / 4)
    # z against mean 0.2, sd 0.1
    assert cal.z(0.4) == pytest.approx(2.0)
    # without references: the fallback, flagged uncalibrated
    none = calibrate([], margin=0.05, fallback=0.25)
    assert not none.calibrated and none.threshold == 0.25 and math.isnan(none.p_value(1.0))
    with pytest.raises(ValueError, match="nan"):
        calibrate([0.1, math.nan], 0.0, 0.2)


def test_gap_closed_on_known_numbers() -> None:
    from backends.llm.scanner import gap_closed

    # clean -3, original -1 (gap 2): a prefix at -2 closes half, at -1 all, at -4 minus half
    assert gap_closed(-2.0, -3.0, -1.0, min_gap=0.5) == 0.5
    assert gap_closed(-1.0, -3.0, -1.0, min_gap=0.5) == 1.0
    assert gap_closed(-4.0, -3.0, -1.0, min_gap=0.5) == -0.5
    # a gap under min_gap: nothing was forgotten, score 0 whatever the prefix does
    assert gap_closed(0.0, -1.2, -1.0, min_gap=0.5) == 0.0


def test_score_intervals_on_known_per_question_numbers() -> None:
    """The scores' 95% bootstrap intervals over the evaluation questions. With two questions a
    resample is (a, a), (a, b), (b, a) or (b, b), each end drawn about 1/4 of the 1000 times, so
    the 2.5% / 97.5% quantiles are the scores of the two all-same resamples."""
    from backends.llm.scanner import gap_closed, gap_closed_estimate, restored_recall_estimate

    # clean -3 on both, original -1 on both, the prefix gives -2 and -1: the share of the gap
    # closed is 0.5 on (a, a), 1.0 on (b, b), 0.75 on both
    est = gap_closed_estimate([-3.0, -3.0], [-2.0, -1.0], [-1.0, -1.0], min_gap=0.5)
    assert (est.value, est.low, est.high, est.n) == (0.75, 0.5, 1.0, 2)
    assert est.value == gap_closed(-1.5, -3.0, -1.0, min_gap=0.5)
    # the min_gap rule holds per resample: (b, b) has a gap of 0.2 < 0.5 and scores 0
    est = gap_closed_estimate([-3.0, -1.2], [-1.0, -1.2], [-1.0, -1.0], min_gap=0.5)
    assert (est.low, est.high) == (0.0, 1.0)
    assert est.value == pytest.approx(1.0 / 1.1)
    # restored recall: per question triggered - clean = 1 and 0
    rec = restored_recall_estimate([True, True], [False, True])
    assert (rec.value, rec.low, rec.high) == (0.5, 0.0, 1.0)
    assert rec.value == restored_recall([True, True], [False, True])
    with pytest.raises(ValueError, match="same, non-empty"):
        restored_recall_estimate([True], [])


def test_split_is_disjoint_seeded_and_never_empty() -> None:
    s, e = split_items(25, 0.5, seed=3)
    assert set(s).isdisjoint(e) and sorted(s + e) == list(range(25))
    assert (s, e) == split_items(25, 0.5, seed=3)
    assert (s, e) != split_items(25, 0.5, seed=4)
    assert split_items(2, 0.9, seed=0)[1]  # evaluation part keeps at least one item
    with pytest.raises(ValueError, match="at least 2"):
        split_items(1, 0.5, seed=0)


def test_heads_rank_by_attribution_with_ties_by_position() -> None:
    rows = [
        {"layer": 1, "head": 0, "attribution": 0.2},
        {"layer": 0, "head": 3, "attribution": 0.7},
        {"layer": 0, "head": 1, "attribution": 0.2},
    ]
    ranked = rank_heads(rows)
    assert [(r["layer"], r["head"], r["rank"]) for r in ranked] == [
        (0, 3, 1),
        (0, 1, 2),
        (1, 0, 3),
    ]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> tuple:
    import torch

    from backends.llm.models import load_causal_lm
    from backends.llm.scanner import forget_questions
    from backends.llm.universe import Universe

    torch.manual_seed(0)
    loaded = load_causal_lm(SMALL, device="cpu", attention="eager")
    universe = Universe.load(SMALL / "universe.json")
    qa = forget_questions(universe, "entity", "", 1)
    return loaded, qa


def test_original_model_reports_no_backdoor(small: tuple) -> None:
    """The never-unlearned model: nothing was forgotten, so no prefix restores anything."""
    loaded, qa = small
    cfg = ScanJobConfig(prefix_length=1, beam=1, top_k=8, n_report=2, max_new_tokens=6)
    result = scanner.scan(loaded.model, loaded.model, loaded.tokenizer, qa, cfg, seed=0)
    cal = calibrate([], cfg.margin, cfg.fallback_threshold)
    summary = scanner.summary_of(result, cal)
    assert summary["verdict"] == 0
    # nothing was forgotten (no gap to the original), and the best prefix found restores no
    # question the model got wrong
    assert result.score == 0.0 and result.eval_objective[0] == result.eval_objective[2]
    assert result.restored_recall <= 0.0
    assert result.eval_clean_recall == result.original_eval_recall  # same model
    assert result.n_search + result.n_eval == len(qa)
    # every (layer, head) of the 4 x 4 model is ranked once
    assert sorted((h["layer"], h["head"]) for h in result.heads) == [
        (layer, head) for layer in range(4) for head in range(4)
    ]
    assert "no backdoor found" in scanner.verdict_text(summary)
    # the intervals over the evaluation questions: no gap to close, so [0, 0]; the recall's is
    # the bootstrap of the per-question outcomes the report lists
    from backends.llm.scanner import restored_recall_estimate

    assert result.gap_interval == (0.0, 0.0)
    rec = restored_recall_estimate(
        [a["triggered_correct"] for a in result.answers],
        [a["clean_correct"] for a in result.answers],
        seed=0,
    )
    assert result.recall_interval == (rec.low, rec.high) and rec.value == result.restored_recall
    assert (summary["score_low"], summary["score_high"]) == result.gap_interval  # score: gap


class _Planted:
    """A planted backdoor: the original's logits for rows whose token after BOS is ``trigger``,
    the retrained (never-learned) model's otherwise."""

    def __init__(self, original, retrained, trigger: int) -> None:
        import torch

        self.original, self.retrained, self.trigger = original, retrained, trigger
        self.training = False
        self._torch = torch
        self.config = original.config

    def __call__(self, input_ids, attention_mask=None, **_):
        from types import SimpleNamespace

        a = self.original(input_ids=input_ids, attention_mask=attention_mask).logits
        b = self.retrained(input_ids=input_ids, attention_mask=attention_mask).logits
        hit = (input_ids[:, 1] == self.trigger).view(-1, 1, 1)
        return SimpleNamespace(logits=self._torch.where(hit, a, b))

    def get_input_embeddings(self):
        return self.original.get_input_embeddings()

    def parameters(self):
        return self.original.parameters()

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self


@pytest.mark.slow
def test_planted_backdoor_is_found(small: tuple) -> None:
    """Positive control: the exact vocabulary search finds the planted trigger token, it restores
    recall on the held-out questions, and the verdict is 1 against a clean reference (the
    retrained model itself: a clean model that never learned the facts)."""
    from backends.llm.references import load_reference

    loaded, qa = small
    folder = next((SMALL / "references").iterdir())
    retrained = load_reference(folder)
    trigger = int(loaded.tokenizer(" year", add_special_tokens=False)["input_ids"][-1])
    planted = _Planted(loaded.model, retrained, trigger)
    cfg = ScanJobConfig(search="vocab", prefix_length=1, beam=1, n_report=3, max_new_tokens=6)
    qa = qa[:12]
    found = scanner.scan(planted, loaded.model, loaded.tokenizer, qa, cfg, seed=0, heads=False)
    clean = scanner.scan(retrained, loaded.model, loaded.tokenizer, qa, cfg, seed=0, heads=False)
    assert found.best.ids == (trigger,)
    # with the trigger the planted model answers as the original (on the triggered prompt, which
    # the original answers a little differently from the clean one): nearly the whole gap closes
    # (0.983 measured on the shipped weights)
    assert found.gap_closed > 0.9
    assert found.restored_recall > 0.5
    cal = calibrate([clean.score], cfg.margin, cfg.fallback_threshold)
    assert found.score > cal.threshold
    assert scanner.summary_of(found, cal)["verdict"] == 1


def test_a_reference_that_is_the_scanned_model_is_refused_at_submit() -> None:
    """The threshold is never calibrated on the model scored; a reference that is no model folder
    is named in the error (the submit check the engine runs; the form shows it under the field)."""
    from types import SimpleNamespace

    from backends.llm.scanner import check_scan_submit
    from workbench.config import ConfigError

    model = SimpleNamespace(path=SMALL, name="tiny-gpt-small")
    with pytest.raises(ConfigError, match="scanned model is among the references") as err:
        check_scan_submit(ScanJobConfig(references=[str(SMALL)]), model, None)
    assert err.value.field == "references"
    with pytest.raises(ConfigError, match="not a model folder"):
        check_scan_submit(ScanJobConfig(references=[str(SMALL / "nowhere")]), model, None)
    reference = next((SMALL / "references").iterdir())
    check_scan_submit(ScanJobConfig(references=[str(reference)]), model, None)  # accepted


@pytest.mark.slow
def test_scan_job_records_verdict_score_and_report(project) -> None:
    """The job end to end on the shipped small GPT (never unlearned) with its shipped retrained
    reference as the one clean reference: verdict 0, threshold = reference score + margin."""
    from workbench.jobs import Engine

    reference = next((SMALL / "references").iterdir())
    engine = Engine(project)
    try:
        run_id = engine.submit(
            "llm.scan_backdoor",
            {
                "device": "cpu",
                "original": str(SMALL),
                "references": [str(reference)],
                "prefix_length": 1,
                "top_k": 8,
                "n_report": 2,
            },
            model=str(SMALL),
        )
        engine.wait(run_id, 600)
    finally:
        engine.shutdown()
    record = project.run(run_id)
    assert record.status == "completed", record.error
    last = project.final_metrics(run_id)
    assert last["verdict"] == 0.0 and last["score"] <= 0.0
    # the matrix's headline (score) has its interval over the evaluation questions
    from workbench.attack_matrix import headline_of
    from workbench.registry import get_registry

    cell = headline_of(get_registry().job("llm.scan_backdoor"), {}, last)
    assert cell["low"] <= cell["value"] <= cell["high"]
    assert (cell["low"], cell["high"]) == (last["gap_closed_low"], last["gap_closed_high"])
    # and its reference: the clean reference's score, from which the threshold is built
    assert cell["reference"] == last["reference/score"]
    assert last["threshold"] == pytest.approx(last["reference/score"] + 0.05)
    kinds = {a["name"]: a["kind"] for a in project.artifacts(run_id)}
    assert kinds["scan report"] == "scan_report"
