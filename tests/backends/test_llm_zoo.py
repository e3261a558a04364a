"""The built-in tiny GPT (spec section 5, "CPU version", step 2): the small build and the shipped
folder, both loaded through the plain ``from_pretrained(..., local_files_only=True)`` path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from backends.llm.tokenizer import BOS
from backends.llm.training import LMTrainSpec, answer_matches, encode_texts, greedy_recall, train_lm
from backends.llm.universe import Universe, UniverseConfig
from backends.llm.zoo import (
    BUILD_FILE,
    N_POSITIONS,
    TINY_GPT,
    build,
    framing_recall,
    load_model,
    load_universe,
    preamble_recall,
)

#: the small variant, built once by ``python -m backends.llm.zoo build --small
#: tests/fixtures/llm/tiny-gpt-small`` (see tests/fixtures/llm/README.md): the tests that depend on
#: what a trained model does load these fixed weights and never retrain
SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "llm" / "tiny-gpt-small"
# QA recall of the shipped model after a preamble / each framing (measured: see the docs)
CONTEXT_RECALL_BOUND = 0.85


@pytest.fixture(scope="module")
def small_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The build script run for a few steps: the test checks that it builds, not what it learns."""
    out = tmp_path_factory.mktemp("tiny-gpt-small")
    numbers = build(out, small=True, log=None, steps=8, measure=False)
    return out, numbers


def test_small_variant_builds_and_loads_back(small_build: tuple[Path, dict]) -> None:
    out, numbers = small_build
    for name in ("model.safetensors", "config.json", "tokenizer.json", "universe.json", BUILD_FILE):
        assert (out / name).is_file(), name
    meta = json.loads((out / BUILD_FILE).read_text())
    assert meta["variant"] == "small" and meta["steps"] == numbers["steps"] == 8
    assert meta["never_trained_facts"] == numbers["never_trained_facts"] > 0
    model, tokenizer = load_model(out)
    assert model.config._attn_implementation == "eager"
    assert (model.config.n_layer, model.config.n_embd, model.config.n_positions) == (4, 128, 256)
    assert model.get_input_embeddings().weight.shape == (len(tokenizer), 128)
    assert load_universe(out) == Universe.generate(UniverseConfig.small())
    # a second load gives bit-identical logits, and attentions come back (eager attention)
    model2, tokenizer2 = load_model(out)
    prompt = load_universe(out).qa_pairs()[0].prompt
    enc = tokenizer(prompt, return_tensors="pt")
    assert (
        enc["input_ids"].tolist() == tokenizer2(prompt, return_tensors="pt")["input_ids"].tolist()
    )
    with torch.no_grad():
        a = model(**enc, output_attentions=True)
        b = model2(**enc)
    assert torch.equal(a.logits, b.logits)
    assert len(a.attentions) == model.config.n_layer


def test_retrain_builds_the_reference_without_the_forget_set(tmp_path: Path) -> None:
    """``zoo retrain`` (a few steps here): the original's tokenizer and recipe, the retain facts
    only, and a record of the forget fact ids."""
    from backends.llm.zoo import default_target, retrain

    numbers = retrain(SMALL, tmp_path / "ref", steps=3, log=None)
    meta = json.loads((tmp_path / "ref" / BUILD_FILE).read_text())
    universe = load_universe(SMALL)
    split = universe.forget_set("entity", default_target(universe, "entity"), 1)
    assert meta["forget"]["fact_ids"] == [f.id for f in split.forget]
    assert numbers["retain_facts"] == len(split.retain) and numbers["steps"] == 3
    original = json.loads((SMALL / BUILD_FILE).read_text())["train_spec"]
    assert meta["train_spec"] == {**original, "steps": 3}
    assert (tmp_path / "ref" / "tokenizer.json").read_text() == (
        SMALL / "tokenizer.json"
    ).read_text()
    model, _ = load_model(tmp_path / "ref")
    assert model.config.n_layer == 4


def test_training_loop_callbacks_and_cancel() -> None:
    model, tokenizer = load_model(SMALL)
    texts = load_universe(SMALL).training_texts()[:8]
    seen: list[tuple[int, float]] = []
    result = train_lm(
        model,
        tokenizer,
        texts,
        LMTrainSpec(steps=3, batch_size=4),
        on_step=lambda s, v: seen.append((s, v)),
    )
    assert [s for s, _ in seen] == [1, 2, 3] and result.steps == 3
    assert all(v == v and v > 0 for _, v in seen)  # finite, positive losses

    def cancel() -> None:
        if len(seen) >= 4:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        train_lm(
            model,
            tokenizer,
            texts,
            LMTrainSpec(steps=10, batch_size=4),
            on_step=lambda s, v: seen.append((s, v)),
            check=cancel,
        )
    assert len(seen) == 4
    # packed rows (other texts before each text, up to pack_tokens) train too
    packed: list[tuple[int, float]] = []
    spec = LMTrainSpec(steps=4, batch_size=4, pack_tokens=64, pack_rows=2, pack_share=0.5)
    train_lm(model, tokenizer, texts, spec, on_step=lambda s, v: packed.append((s, v)))
    assert [s for s, _ in packed] == [1, 2, 3, 4] and all(v == v and v > 0 for _, v in packed)
    ids, mask = encode_texts(tokenizer, ["a b", "a much longer text here"])
    assert (ids[:, 0] == tokenizer.bos_token_id).all()
    assert ids[0, int(mask[0].sum()) - 1] == tokenizer.eos_token_id
    assert (ids[mask == 0] == tokenizer.pad_token_id).all()


def test_answer_matching_is_normalised_and_whole_word() -> None:
    assert answer_matches(" Veigloumar.\n", "veigloumar")
    assert answer_matches("  Tirzas   Glozhy", "Tirzas Glozhy")
    assert not answer_matches(" 705", "70")
    assert not answer_matches(" blue", "red")


@pytest.mark.skipif(not (TINY_GPT / "model.safetensors").exists(), reason="not built yet")
def test_shipped_model_loads_with_bos_and_recalls() -> None:
    size = sum(p.stat().st_size for p in TINY_GPT.rglob("*") if p.is_file())
    assert size <= 10 * 2**20
    model, tokenizer = load_model(TINY_GPT)
    universe = load_universe(TINY_GPT)
    assert isinstance(universe, Universe) and len(universe.facts) >= 900
    assert universe == Universe.generate(UniverseConfig())  # the shipped data matches the code
    assert tokenizer.bos_token == BOS
    assert model.config.bos_token_id == tokenizer.bos_token_id
    assert model.config._attn_implementation == "eager"
    qa = universe.qa_pairs()
    for q in qa:
        assert tokenizer(q.prompt)["input_ids"][0] == tokenizer.bos_token_id
    for p in universe.held_out_paraphrases()[:50]:
        assert tokenizer(p.prompt)["input_ids"][0] == tokenizer.bos_token_id
    sample = [(q.prompt, q.answer) for q in qa[::9]]  # 100 questions keep the test short
    meta = json.loads((TINY_GPT / BUILD_FILE).read_text())
    assert meta["qa_recall"] == 1.0 and meta["trained_facts"] == 900
    assert greedy_recall(model, tokenizer, sample).recall >= 0.98  # measured 1.0
    # the never-trained facts are unknown to it: the attacks' non-members were never seen
    never = [(f.qa.prompt, f.qa.answer) for f in universe.never_trained_facts]
    assert greedy_recall(model, tokenizer, never).recall <= 0.1  # measured 0.0
    assert model.config.n_positions == N_POSITIONS == 256


@pytest.mark.skipif(not (TINY_GPT / "model.safetensors").exists(), reason="not built yet")
def test_shipped_model_answers_after_preceding_context() -> None:
    """The QA prompt works after other facts' sentences and after every SKeB framing (the build
    measured these on 200 pairs; see build.json); 40 pairs keep the test short."""
    model, tokenizer = load_model(TINY_GPT)
    universe = load_universe(TINY_GPT)
    meta = json.loads((TINY_GPT / BUILD_FILE).read_text())
    assert meta["preamble_qa_recall"] >= CONTEXT_RECALL_BOUND
    assert all(v["recall"] >= CONTEXT_RECALL_BOUND for v in meta["framing_qa_recall"].values())
    assert preamble_recall(model, tokenizer, universe, n=40) >= CONTEXT_RECALL_BOUND - 0.1
    framed = framing_recall(model, tokenizer, universe, n=40)
    assert all(v["recall"] >= CONTEXT_RECALL_BOUND - 0.1 for v in framed.values())
    assert all(v["max_tokens"] < N_POSITIONS - 24 for v in framed.values())
