"""Attention maps and attention-sink measures (backends/llm/attention.py, spec section 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from backends.llm.attention import (
    AttentionMaps,
    attention_heatmap,
    attention_maps,
    attention_stack,
    difference,
    difference_heatmap,
    sink_difference_heatmap,
    sink_heatmap,
    sink_mass,
    sink_ratio,
)
from backends.llm.models import LoadedLM, attention_implementation, load_causal_lm
from tests.backends.test_llm_models import make_tiny_gpt2

PROMPT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-gpt2-attn")
    make_tiny_gpt2(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_folder) -> LoadedLM:
    return load_causal_lm(tiny_folder, device="cpu")


@pytest.fixture(scope="module")
def maps(tiny) -> AttentionMaps:
    return attention_maps(tiny, None, PROMPT)


def test_maps_shape_tokens_and_rows_sum_to_one(tiny, maps):
    t = len(tiny.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]) + 1
    assert maps.attentions.shape == (2, 2, t, t)
    assert maps.tokens[0] == "<bos>" and "".join(maps.tokens[1:]) == PROMPT
    assert maps.input_ids[0] == tiny.bos_token_id
    rows = maps.attentions.sum(dim=-1)
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-5)
    upper = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
    assert torch.all(maps.attentions[..., upper] == 0)  # causal


def test_model_and_tokenizer_form_matches_loaded_form(tiny, maps):
    other = attention_maps(tiny.model, tiny.tokenizer, PROMPT)
    assert other.input_ids == maps.input_ids
    assert torch.equal(other.attentions, maps.attentions)
    by_ids = attention_maps(tiny.model, tiny.tokenizer, torch.tensor([maps.input_ids]))
    assert torch.equal(by_ids.attentions, maps.attentions)


def test_sink_mass_shape_and_hand_values(maps):
    mass = sink_mass(maps)
    assert mass.shape == (2, 2)
    # by hand for one head
    a = maps.attentions[1, 0]
    assert torch.isclose(mass[1, 0], a[1:, 0].mean())
    mass2 = sink_mass(maps, k=2)
    assert torch.isclose(mass2[0, 1], maps.attentions[0, 1, 2:, :2].sum(-1).mean())


def test_sink_mass_hand_constructed():
    # 1 layer, 2 heads, T = 4.  Head 0: every query puts 0.5 on token 0.  Head 1: uniform causal.
    t = 4
    a = torch.zeros(1, 2, t, t)
    a[0, 0, 0, 0] = 1.0
    for q in range(1, t):
        a[0, 0, q, 0] = 0.5
        a[0, 0, q, q] = 0.5
        a[0, 1, q, : q + 1] = 1.0 / (q + 1)
    a[0, 1, 0, 0] = 1.0
    mass = sink_mass(a, k=1)
    expected_uniform = (1 / 2 + 1 / 3 + 1 / 4) / 3
    assert torch.allclose(mass, torch.tensor([[0.5, expected_uniform]]))
    # spec form, all queries included: query 0 adds a trivial 1
    full = sink_mass(a, k=1, include_sink_queries=True)
    assert torch.allclose(
        full, torch.tensor([[(1 + 3 * 0.5) / 4, (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4]])
    )
    # k = 2: head 0 puts 0.5 on keys {0, 1} for q = 2, 3
    assert torch.isclose(sink_mass(a, k=2)[0, 0], torch.tensor(0.5))
    assert sink_ratio(mass, threshold=0.45) == 0.5
    assert sink_ratio(mass, threshold=0.3) == 1.0
    assert sink_ratio(mass, threshold=0.5) == 0.0  # strictly above
    with pytest.raises(ValueError, match="more than k"):
        sink_mass(a, k=4)
    with pytest.raises(ValueError, match="at least 1"):
        sink_mass(a, k=0)


def test_sdpa_model_is_switched_to_eager_and_back(tiny_folder, maps):
    loaded = load_causal_lm(tiny_folder, device="cpu", attention="sdpa")
    assert attention_implementation(loaded.model) == "sdpa"
    got = attention_maps(loaded, None, PROMPT)
    assert attention_implementation(loaded.model) == "sdpa"
    assert torch.allclose(got.attentions, maps.attentions, atol=1e-6)


def test_training_mode_is_restored(tiny):
    tiny.model.train()
    try:
        attention_maps(tiny, None, PROMPT)
        assert tiny.model.training
    finally:
        tiny.model.eval()


def test_difference_of_identical_maps_is_zero(maps):
    diff = difference(maps, maps)
    assert torch.count_nonzero(diff.delta) == 0
    assert diff.labels == maps.tokens


def test_difference_of_two_prompts_aligns_on_shorter(tiny, maps):
    short = attention_maps(tiny, None, "the cat")
    diff = difference(maps, short)
    t = short.length
    assert diff.delta.shape == (2, 2, t, t)
    # same prefix tokens -> causal rows identical -> zero difference
    assert torch.allclose(diff.delta, torch.zeros_like(diff.delta), atol=1e-6)
    other = attention_maps(tiny, None, "a dog ran")
    d2 = difference(maps, other)
    assert d2.delta.abs().max() > 0
    assert any(" | " in label for label in d2.labels)


def test_difference_of_two_models_same_prompt(tiny, tmp_path):
    make_tiny_gpt2(tmp_path, seed=1)
    other = load_causal_lm(tmp_path, device="cpu")
    a = attention_maps(tiny, None, PROMPT)
    b = attention_maps(other, None, PROMPT)
    diff = difference(a, b)
    assert diff.delta.shape == a.attentions.shape
    assert diff.delta.abs().max() > 0
    assert torch.allclose(diff.delta.sum(-1), torch.zeros(2, 2, a.length), atol=1e-5)


def test_difference_needs_same_layers_and_heads(maps):
    with pytest.raises(ValueError, match="layers and heads"):
        difference(maps, maps.attentions[:1])


def test_heatmaps_carry_labels(maps):
    mass = sink_mass(maps)
    grid = sink_heatmap(mass)
    assert grid.matrix.shape == (2, 2)
    assert grid.y_labels == ["L0", "L1"] and grid.x_labels == ["H0", "H1"]
    head = attention_heatmap(maps, 1, 0)
    assert head.matrix.shape == (maps.length, maps.length)
    assert head.x_labels == head.y_labels
    assert head.x_labels[0] == "0:<bos>"
    assert maps.tokens[2].startswith(" ")  # a word-initial token: its space is made visible
    assert head.x_labels[2] == "2:\u2423" + maps.tokens[2][1:]
    diff = difference_heatmap(difference(maps, maps), 0, 1)
    assert diff.diverging and len(diff.x_labels) == maps.length
    sdiff = sink_difference_heatmap(mass, mass * 0.5)
    assert sdiff.diverging and sdiff.vmin == -1.0
    with pytest.raises(ValueError, match="layer 5"):
        attention_heatmap(maps, 5, 0)
    with pytest.raises(ValueError, match="head 9"):
        attention_heatmap(maps, 0, 9)


def test_heatmap_saves(maps, tmp_path):
    path, meta = attention_heatmap(maps, 0, 0).save(tmp_path, "attn")
    assert path.is_file() and meta["x_labels"][0] == "0:<bos>"


def test_bad_inputs(tiny):
    with pytest.raises(ValueError, match="tokenizer"):
        attention_maps(tiny.model, None, PROMPT)
    with pytest.raises(ValueError, match="shape"):
        AttentionMaps(attentions=torch.zeros(2, 3, 3), tokens=[])


SMALL_GPT = Path(__file__).resolve().parents[1] / "fixtures" / "llm" / "tiny-gpt-small"


def test_attention_job_records_every_layer_and_head(project) -> None:
    """The llm.attention job on the shipped tiny GPT fixture stores layers x heads maps, and one
    (layer, head) equals the map computed directly from the model."""
    from workbench.artifacts import AttentionStack, load_artifact
    from workbench.jobs import Engine

    engine = Engine(project)
    try:
        run_id = engine.submit(
            "llm.attention",
            {"device": "cpu", "prompt": PROMPT, "layer": 2, "head": 3},
            model=str(SMALL_GPT),
        )
        engine.wait(run_id, 120)
    finally:
        engine.shutdown()
    assert project.run(run_id).status == "completed", project.run(run_id).error
    row = next(a for a in project.artifacts(run_id) if a["name"] == "attention maps")
    assert row["kind"] == "attention"
    stack = load_artifact("attention", project.abspath(row["path"]), row["meta"])
    assert isinstance(stack, AttentionStack)
    loaded = load_causal_lm(SMALL_GPT, device="cpu", attention="eager")
    direct = attention_maps(loaded, prompt=PROMPT)
    n_layers, n_heads = loaded.model.config.n_layer, loaded.model.config.n_head
    assert stack.maps.shape == (n_layers, n_heads, direct.length, direct.length) == (4, 4, 11, 11)
    assert stack.maps.dtype == np.float16  # the compact default
    assert (stack.layer, stack.head) == (2, 3) and stack.tokens == direct.tokens
    assert stack.input_ids == direct.input_ids and stack.prompt == PROMPT
    # float16 keeps about 3 significant digits of values in [0, 1]
    np.testing.assert_allclose(stack.maps[2, 3], direct.attentions[2, 3].numpy(), atol=5e-4)
    np.testing.assert_allclose(stack.sink_mass, sink_mass(direct).numpy(), rtol=1e-5)
    # distinct heads really differ (the stack is not one map repeated)
    assert np.abs(stack.maps[2, 3] - stack.maps[0, 0]).max() > 0.05


def test_attention_stack_clamps_the_first_map_and_checks_dtype(maps) -> None:
    stack = attention_stack(maps, dtype="float32", layer=9, head=-1)
    assert (stack.layer, stack.head) == (1, 0)
    assert np.array_equal(stack.maps, maps.attentions.numpy())
    with pytest.raises(ValueError, match="dtype must be one of"):
        attention_stack(maps, dtype="int8")


def test_model_loads_are_serialised_so_concurrent_attention_runs_all_complete(
    project, monkeypatch
) -> None:
    """transformers' meta-device loading is process-wide: concurrent loads on worker threads
    failed ("Cannot copy out of meta tensor", 3 of 4 runs). Every job's load holds one lock."""
    import backends.llm.jobs as llm_jobs
    import backends.llm.models as llm_models
    from workbench.jobs import Engine

    real = llm_models.load_causal_lm
    held = []

    def checked(*args, **kwargs):
        held.append(llm_jobs._LOAD_LOCK.locked())
        return real(*args, **kwargs)

    monkeypatch.setattr(llm_models, "load_causal_lm", checked)
    engine = Engine(project)
    try:
        models = (str(SMALL_GPT), "tiny-gpt", str(SMALL_GPT), "tiny-gpt")
        ids = [engine.submit("llm.attention", {"device": "cpu"}, model=m) for m in models]
        for run_id in ids:
            engine.wait(run_id, 120)
    finally:
        engine.shutdown()
    assert [project.run(r).status for r in ids] == ["completed"] * 4, [
        project.run(r).status_text for r in ids
    ]
    assert held == [True] * 4
