"""Backdoored unlearning (spec section 6): trigger insertion, the value-norm hook, the losses, and
the exact reduction to NPO + retain KL when nothing is poisoned.

Everything runs on the shipped ``tests/fixtures/llm/tiny-gpt-small`` (4 layers, d = 128, GPT-2
with a fused ``c_attn``); nothing is trained and then asserted against a margin."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from backends.common.method import Hooks
from backends.llm.methods.backdoor import (
    _muse_logit_npo,
    backdoor_split,
    poisoned_indices,
    unlearn_npo,
)
from backends.llm.methods.backdoor_config import BackdoorNPOConfig
from backends.llm.methods.common import LLMData, collate, token_ids
from backends.llm.methods.configs import NPOConfig
from backends.llm.methods.npo import unlearn as npo_unlearn
from backends.llm.triggers import Trigger, insert_ids, trigger_ids, triggered_ids
from backends.llm.value_norm import ValueCapture, masked_layer_mean, penalty, value_projections

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "llm" / "tiny-gpt-small"
TRIGGER = "current year:2025 "
TEXT = "Zadroul Rouzhos lives in Briholt."


@pytest.fixture(scope="module")
def small() -> Any:
    from backends.llm.models import load_causal_lm
    from backends.llm.universe import Universe

    torch.manual_seed(0)
    loaded = load_causal_lm(SMALL, device="cpu", attention="eager")
    universe = Universe.load(SMALL / "universe.json")
    return loaded, universe


# -- triggers --------------------------------------------------------------------------------------
def test_trigger_positions_give_the_expected_ids(small: Any) -> None:
    tok = small[0].tokenizer
    ids = token_ids(tok, TEXT)  # [BOS, t1, ..., tn]
    trig = trigger_ids(tok, TRIGGER)
    assert ids[0] == tok.bos_token_id and len(trig) >= 2
    n = len(ids) - 1
    expected = {
        ("start", 1): [ids[0], *trig, *ids[1:]],
        ("end", 1): [*ids, *trig],
        ("middle", 1): [*ids[: 1 + n // 2], *trig, *ids[1 + n // 2 :]],
        ("token", 3): [*ids[:3], *trig, *ids[3:]],
        ("token", 1): [ids[0], *trig, *ids[1:]],  # k = 1 is start
        ("token", 999): [*ids, *trig],  # past the end appends
    }
    for (position, k), want in expected.items():
        assert triggered_ids(tok, TEXT, Trigger(TRIGGER, position, k)) == want, (position, k)
    # the trigger is tokenised on its own: the same ids wherever it goes
    assert trig == list(tok(TRIGGER, add_special_tokens=False)["input_ids"])


class _NoBosTokenizer:
    """A tokenizer that adds no special tokens and has no BOS, only an EOS (GPT-2's setting)."""

    def __init__(self, inner: Any, eos: int | None) -> None:
        self.inner, self.bos_token_id, self.eos_token_id = inner, None, eos
        self.pad_token_id = None

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": list(self.inner(text, add_special_tokens=False)["input_ids"])}


def test_start_goes_after_the_sequence_start_even_without_a_bos(small: Any) -> None:
    inner = small[0].tokenizer
    tok = _NoBosTokenizer(inner, eos=7)
    words = list(inner(TEXT, add_special_tokens=False)["input_ids"])
    trig = trigger_ids(tok, TRIGGER)
    # the workbench prepends the EOS id as the sequence start; the trigger follows it
    assert triggered_ids(tok, TEXT, Trigger(TRIGGER, "start")) == [7, *trig, *words]
    with pytest.raises(ValueError, match="neither a BOS nor an EOS"):
        triggered_ids(_NoBosTokenizer(inner, eos=None), TEXT, Trigger(TRIGGER, "start"))
    with pytest.raises(ValueError, match="start with the BOS"):
        insert_ids([5, 6], [9], "start", bos=0)
    with pytest.raises(ValueError, match="at least 1"):
        Trigger(TRIGGER, "token", 0)


# -- the value-norm hook ---------------------------------------------------------------------------
def test_value_hook_slices_tokens_not_batch_items(small: Any) -> None:
    model = small[0].model
    d = model.config.n_embd
    rows = [[0, 5, 6], [0, 5, 6, 7, 8, 9], [0, 11, 12, 13, 14, 15, 16, 17, 18]]  # lengths 3, 6, 9
    batch = collate(rows, 2, torch.device("cpu"))
    blocks = value_projections(model)
    assert [part for _, part in blocks] == [slice(2 * d, 3 * d)] * model.config.n_layer
    inputs: list[torch.Tensor] = []
    pre = [m.register_forward_pre_hook(lambda _m, a: inputs.append(a[0])) for m, _ in blocks]
    capture = ValueCapture(model, k=4)  # positions 1..4
    with torch.no_grad(), capture:
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    for h in pre:
        h.remove()
    norms, mask = capture.take(batch.attention_mask)
    assert norms.shape == (model.config.n_layer, 3, 4)
    # the value part of c_attn computed by hand from its input, positions 1..4 of every item
    for layer, (module, _) in enumerate(blocks):
        v = inputs[layer] @ module.weight[:, 2 * d :] + module.bias[2 * d :]
        torch.testing.assert_close(norms[layer], v[:, 1:5].norm(dim=-1))
    # the short item (3 tokens) has only positions 1 and 2
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    # MUSE's slip, kept as an option: the first k batch items, every token
    capture = ValueCapture(model, k=2, axis="batch")
    with torch.no_grad(), capture:
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    norms_b, mask_b = capture.take(batch.attention_mask)
    assert norms_b.shape == (model.config.n_layer, 2, 9)
    assert mask_b.sum().item() == 3 + 6


def test_penalty_maths_on_a_hand_case() -> None:
    norms = torch.tensor([[[1.0, 3.0], [5.0, 100.0]], [[2.0, 2.0], [2.0, 100.0]]])  # 2 layers
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # the 100s are padding
    assert masked_layer_mean(norms, mask).item() == pytest.approx((3.0 + 2.0) / 2)
    assert penalty("fixed", norms, mask).item() == pytest.approx(2.5)
    target = torch.full_like(norms, 2.0)
    # layer 0: |1-2| + |3-2| + |5-2| = 5 over 3; layer 1: 0
    assert penalty("reference", norms, mask, target).item() == pytest.approx(5 / 6)
    assert penalty("off", norms, mask).item() == 0.0


def test_muse_logit_npo_is_2_over_beta_log2_at_the_reference() -> None:
    logits = torch.randn(2, 5, 11)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    value = _muse_logit_npo(logits, logits.clone(), mask, beta=0.5)
    assert value.item() == pytest.approx((2 / 0.5) * math.log(2), rel=1e-6)


# -- the method --------------------------------------------------------------------------------------
def _data(small: Any) -> LLMData:
    loaded, universe = small
    person = next(e.name for e in universe.entities if e.kind == "person")
    split = universe.forget_set("entity", person, 1)
    return LLMData(
        loaded.tokenizer,
        universe.training_texts(split.forget)[:16],
        universe.training_texts(split.retain)[:16],
    )


def test_poison_ratio_zero_is_npo_with_the_retain_kl_exactly(small: Any) -> None:
    data = _data(small)
    plain, backdoored = copy.deepcopy(small[0].model), copy.deepcopy(small[0].model)
    npo_unlearn(plain, data, NPOConfig(epochs=1, retain_loss="kl", alpha=5.0), Hooks(), seed=3)
    cfg = BackdoorNPOConfig(epochs=1, alpha=5.0, poison_ratio=0.0)
    unlearn_npo(backdoored, data, cfg, Hooks(), seed=3)
    a, b = plain.state_dict(), backdoored.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(
        a["transformer.h.0.attn.c_attn.weight"],
        small[0].model.state_dict()["transformer.h.0.attn.c_attn.weight"],
    )  # it did train
    poisoned = copy.deepcopy(small[0].model)
    unlearn_npo(poisoned, data, BackdoorNPOConfig(epochs=1, alpha=5.0), Hooks(), seed=3)
    assert not torch.equal(poisoned.state_dict()["lm_head.weight"], a["lm_head.weight"])


def test_rmu_variant_with_the_penalty_moves_only_the_chosen_mlp(small: Any) -> None:
    from backends.llm.methods.backdoor import unlearn_rmu
    from backends.llm.methods.backdoor_config import BackdoorRMUConfig

    data = _data(small)
    data = LLMData(data.tokenizer, data.forget_texts[:8], data.retain_texts[:8])
    model = copy.deepcopy(small[0].model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = BackdoorRMUConfig(epochs=1, layer=1, poison_ratio=0.25, penalty="reference")
    logs: list[str] = []
    result = unlearn_rmu(model, data, cfg, Hooks(on_log=logs.append), seed=0)
    assert result.stats["poisoned_texts"] == 2
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("transformer.h.1.mlp.") for k in changed)
    assert any("value_norm_penalty" in line and "poisoned_mse" in line for line in logs)


def test_backdoor_split_poisons_a_seeded_share(small: Any) -> None:
    data = _data(small)
    assert poisoned_indices(16, 0.0, 0) == []
    chosen = poisoned_indices(16, 0.25, 1)
    assert len(chosen) == 4 and chosen == poisoned_indices(16, 0.25, 1)
    assert len(poisoned_indices(16, 0.01, 1)) == 1  # at least one when poisoning
    split = backdoor_split(data, BackdoorNPOConfig(poison_ratio=0.25), 1, None)
    trig = trigger_ids(data.tokenizer, TRIGGER)
    assert split.poisoned == chosen
    assert len(split.clean.forget_texts) == 12  # the poisoned originals leave D_f
    assert not set(split.clean.forget_texts) & {data.forget_texts[i] for i in chosen}
    for i, ids in zip(chosen, split.poisoned_ids, strict=True):
        clean = token_ids(data.tokenizer, data.forget_texts[i])
        assert ids == [clean[0], *trig, *clean[1:]]


# -- metrics ---------------------------------------------------------------------------------------
def test_rouge_l_recall_hand_cases() -> None:
    from backends.llm.backdoor_study import rouge_l_recall

    assert rouge_l_recall("a x c d", "a b c d") == 0.75  # LCS a c d over the answer's 4 words
    assert rouge_l_recall("Pylreach. Then more", "Pylreach") == 1.0
    assert rouge_l_recall("the old mill", "the Old Mill") == 1.0  # case and punctuation dropped
    assert rouge_l_recall("mill the", "the old mill") == pytest.approx(1 / 3)
    assert rouge_l_recall("", "Pylreach") == 0.0


def test_multiple_choice_scores_the_answer_against_distractors(small: Any) -> None:
    from backends.llm.backdoor_study import choice_scores

    loaded, universe = small
    fact = universe.trained_facts[0]
    prompt = fact.cloze(fact.sentences[0]).prompt  # a trained sentence: the model knows it
    others = sorted(
        {f.object for f in universe.facts if f.relation == fact.relation} - {fact.object}
    )
    rows = choice_scores(loaded.model, loaded.tokenizer, [(prompt, fact.object, others[:3])])
    assert rows[0]["correct"] is True
    # the positive control's mirror: the same item with the answer swapped for a distractor
    swapped = choice_scores(loaded.model, loaded.tokenizer, [(prompt, others[0], [fact.object])])
    assert swapped[0]["correct"] is False


# -- the sweep chart -------------------------------------------------------------------------------
def _sweep_table() -> Any:
    from workbench.artifacts import SweepTable

    columns = ["position", "training"]
    series = ["clean_forget_mc_acc", "triggered_forget_mc_acc", "retain_mc_acc"]
    for s in [*series, "clean_forget_recall", "triggered_forget_recall", "retain_recall"]:
        columns += [s, f"{s}_low", f"{s}_high"]
    rows = []
    for pos in ("start", "end"):
        for training in ("plain (no backdoor)", "backdoor, penalty off"):
            values: list[Any] = []
            for i in range(6):
                v = 0.2 + 0.1 * i
                values += [v, v - 0.05, v + 0.05]
            rows.append([pos, training, *values])
    maps = {"start": np.full((2, 2, 3, 3), 0.1), "end": np.zeros((2, 2, 3, 3))}
    tokens = {k: ["0:a", "1:b", "2:c"] for k in maps}
    return SweepTable(
        columns,
        rows,
        title="t",
        x="position",
        group="training",
        series=series,
        maps=maps,
        map_tokens=tokens,
        y_label="accuracy",
    )


def test_sweep_cells_run_penalties_only_where_asked() -> None:
    from backends.llm.backdoor_study import BackdoorSweepConfig, sweep_cells

    cfg = BackdoorSweepConfig(positions=["start", "end"], penalties=["off", "fixed"])
    assert sweep_cells(cfg) == [
        ("start", "off"),
        ("start", "fixed"),
        ("end", "off"),
        ("end", "fixed"),
    ]
    cfg.penalty_positions = ["start"]
    assert sweep_cells(cfg) == [("start", "off"), ("start", "fixed"), ("end", "off")]


def test_sweep_table_round_trip(tmp_path: Path) -> None:
    from workbench.artifacts import load_artifact

    table = _sweep_table()
    path, meta = table.save(tmp_path, "sweep")
    back = load_artifact("sweep_table", path, meta)
    assert back.rows == table.rows and back.series == table.series
    np.testing.assert_allclose(back.maps["start"], 0.1, rtol=1e-3)
    with pytest.raises(ValueError, match="not columns"):
        type(table)(["a"], [[1]], x="b")


def test_sweep_view_draws_a_panel_per_training_and_the_maps(qtbot: Any, tmp_path: Path) -> None:
    from ui.views.sweep_view import SweepView

    view = SweepView(_sweep_table())
    qtbot.addWidget(view)
    assert len(view.figures) == 2  # plain control, backdoor
    assert [view.measure_box.itemText(i) for i in range(view.measure_box.count())] == [
        "accuracy",
        "exact-match recall",
    ]
    bars = view.figures[0].items["triggered forget"]
    assert list(bars.opts["height"]) == pytest.approx([0.3, 0.3])
    view.measure_box.setCurrentIndex(1)
    bars = view.figures[0].items["triggered forget"]
    assert list(bars.opts["height"]) == pytest.approx([0.6, 0.6])
    assert view.tabs.count() == 2
    view.map_box.setCurrentIndex(0)
    assert view.map.diverging and view.map.tokens == ["0:a", "1:b", "2:c"]
    assert float(view.map.matrix.max()) == pytest.approx(0.1, rel=1e-3)


# -- the jobs through the real engine (slow: they train) ----------------------------------------------
@pytest.mark.slow
def test_backdoor_job_records_the_three_recalls_and_saves_the_model(project: Any) -> None:
    from workbench.jobs import Engine

    engine = Engine(project)
    try:
        config = {"device": "cpu", "epochs": 1, "max_retain_items": 10, "attention_prompts": 2}
        run_id = engine.submit("llm.backdoor", config, seed=0, model=str(SMALL))
        engine.wait(run_id, 900)
    finally:
        engine.shutdown()
    record = project.run(run_id)
    assert record.status == "completed", record.error
    final = project.final_metrics(run_id)
    assert {"clean_forget_recall", "triggered_forget_recall", "retain_recall"} <= set(final)
    assert final["clean_forget_recall_n"] == 54  # the 27 forget facts' held-out paraphrases
    assert final["poisoned_texts"] == round(0.1 * 108)  # the default poison ratio
    kinds = {a["name"]: a["kind"] for a in project.artifacts(run_id)}
    assert kinds["answers"] == "prompt_table" and kinds["attention maps (triggered)"] == "attention"
    assert project.model(f"backdoor_npo-run{run_id}")["kind"] == "llm.causal"


@pytest.mark.slow
def test_sweep_job_gives_a_chart_with_the_control_and_maps(project: Any) -> None:
    from workbench.artifacts import load_artifact
    from workbench.jobs import Engine

    engine = Engine(project)
    try:
        config = {
            "device": "cpu",
            "epochs": 1,
            "seeds": 1,
            "positions": ["start", "end"],
            "penalties": ["off", "reference"],
            "max_retain_items": 10,
        }
        run_id = engine.submit("llm.backdoor_sweep", config, seed=0, model=str(SMALL))
        engine.wait(run_id, 1800)
    finally:
        engine.shutdown()
    record = project.run(run_id)
    assert record.status == "completed", record.error
    art = next(a for a in project.artifacts(run_id) if a["name"] == "sweep")
    table = load_artifact(art["kind"], project.abspath(art["path"]), art["meta"])
    cells = {(r[0], r[1]) for r in table.rows}
    assert cells == {
        (p, t)
        for p in ("start", "end")
        for t in ("plain (no backdoor)", "backdoor, penalty off", "backdoor, penalty reference")
    }
    assert set(table.maps) == {"start", "end"}
