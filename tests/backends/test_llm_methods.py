"""LLM unlearning methods (spec ``classifier-and-llm-methods.md`` sections 6-7) on a tiny GPT-2.

The model is a 2-layer GPT-2 (d = 64) with a byte-level BPE tokenizer (BOS token), trained on
made-up facts about 12 people (a sentence and a QA pair per attribute) until greedy QA recall is
>= 0.9.  The forget set is everything about 3 people.  The tests load its FIXED, shipped weights
(``tests/fixtures/llm/people-gpt/``, built by :func:`train_world` through
``python -m tests.fixtures.llm.build_people_gpt``), so what they assert does not depend on the
machine's training numerics.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

SEED = 0
PEOPLE = [
    ("Alden Vorn", "Marrowgate", "baker"),
    ("Bryn Castell", "Oskaloo", "pilot"),
    ("Cora Halvet", "Tessaly", "glassblower"),
    ("Dario Quell", "Fenmoor", "cartographer"),
    ("Elsa Brightwater", "Kallisport", "surgeon"),
    ("Fenn Orrick", "Duskwater", "beekeeper"),
    ("Gilda Morrow", "Pellingham", "astronomer"),
    ("Hollis Crane", "Varrowby", "tailor"),
    ("Isolde Varga", "Quennick", "locksmith"),
    ("Jory Tamsin", "Ashcombe", "sculptor"),
    ("Kestrel Dunn", "Brimhollow", "fisher"),
    ("Lio Marchetti", "Zellburg", "violinist"),
]
N_FORGET = 3


def facts(person: tuple[str, str, str]) -> tuple[list[str], list[tuple[str, str]]]:
    name, city, job = person
    sentences = [f"{name} lives in {city}.", f"{name} works as a {job}."]
    qa = [(f"Where does {name} live?", city), (f"What does {name} do?", job)]
    return sentences, qa


def qa_text(q: str, a: str) -> str:
    return f"Q: {q}\nA: {a}"


@dataclass
class World:
    model: Any
    tokenizer: Any
    forget_texts: list[str]
    retain_texts: list[str]
    forget_qa: list[tuple[str, str]]
    retain_qa: list[tuple[str, str]]
    train_steps: int
    train_seconds: float


def make_tokenizer(corpus: list[str]) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<bos>", "<eos>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )


PEOPLE_GPT = Path(__file__).resolve().parents[1] / "fixtures" / "llm" / "people-gpt"


def world_texts() -> tuple[list[str], list[str], list[tuple[str, str]], list[tuple[str, str]]]:
    """(forget texts, retain texts, forget QA, retain QA) of the 12 people."""
    forget_texts, retain_texts, forget_qa, retain_qa = [], [], [], []
    for i, person in enumerate(PEOPLE):
        sentences, qa = facts(person)
        texts = sentences + [qa_text(q, a) for q, a in qa]
        (forget_texts if i < N_FORGET else retain_texts).extend(texts)
        (forget_qa if i < N_FORGET else retain_qa).extend(qa)
    return forget_texts, retain_texts, forget_qa, retain_qa


@functools.cache
def build_world() -> World:
    """The shipped tiny model and its data (cached: shared by both LLM test modules)."""
    import json

    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.set_num_threads(1)  # tiny tensors: more threads only add overhead (as before)
    model = GPT2LMHeadModel.from_pretrained(str(PEOPLE_GPT), local_files_only=True).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(PEOPLE_GPT), local_files_only=True)
    meta = json.loads((PEOPLE_GPT / "build.json").read_text())
    return World(model, tokenizer, *world_texts(), meta["steps"], meta["seconds"])


def train_world(max_steps: int = 600) -> World:
    """Train the tiny model and its data from scratch (the fixture's build recipe)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from backends.llm.evaluation import greedy_recall
    from backends.llm.methods.common import encode, mean_nll

    torch.set_num_threads(1)
    forget_texts, retain_texts, forget_qa, retain_qa = world_texts()
    corpus = forget_texts + retain_texts
    tokenizer = make_tokenizer(corpus)
    torch.manual_seed(SEED)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_embd=64,
        n_layer=2,
        n_head=4,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    batch = encode(tokenizer, corpus)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    start = time.perf_counter()
    steps = 0
    model.train()
    while steps < max_steps:
        for _ in range(50):
            optimizer.zero_grad()
            mean_nll(model, batch).backward()
            optimizer.step()
            steps += 1
        rate, _ = greedy_recall(model, tokenizer, forget_qa + retain_qa, max_new_tokens=6)
        if rate >= 0.9 and steps >= 100:
            break
    model.eval()
    return World(
        model,
        tokenizer,
        forget_texts,
        retain_texts,
        forget_qa,
        retain_qa,
        steps,
        time.perf_counter() - start,
    )


# -- fixtures and helpers --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


def recall(model: Any, w: World) -> tuple[float, float]:
    from backends.llm.evaluation import greedy_recall

    forget, _ = greedy_recall(model, w.tokenizer, w.forget_qa, max_new_tokens=6)
    retain, _ = greedy_recall(model, w.tokenizer, w.retain_qa, max_new_tokens=6)
    return forget, retain


def snapshot(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def apply_method(
    info: Any,
    model: Any,
    tokenizer: Any,
    forget: list[str],
    retain: list[str],
    cfg: Any,
    *,
    seed: int,
    check: Any = None,
    log: Any = None,
    checkpoints: Any = None,
) -> Any:
    """The method on a copy of ``model`` (kept unchanged: the tests compare both)."""
    from backends.common.method import Hooks, unlearned_copy
    from backends.llm.methods.common import LLMData

    hooks = Hooks(on_check=check, on_log=log, checkpoints=checkpoints)
    data = LLMData(tokenizer, forget, retain)
    return unlearned_copy(info.load(), model, data, cfg, hooks, seed=seed)


def run(name: str, w: World, seed: int = SEED, **overrides: Any) -> tuple[Any, list[str]]:
    from backends.llm.methods import get_method

    info = get_method(name)
    cfg = dataclasses.replace(info.config(), **overrides)
    logs: list[str] = []
    out = apply_method(
        info, w.model, w.tokenizer, w.forget_texts, w.retain_texts, cfg, seed=seed, log=logs.append
    )
    return out, logs


# -- the catalogue ---------------------------------------------------------------------------------
def test_catalogue_and_configs_import_no_torch() -> None:
    code = (
        "import sys; import backends.llm.methods as m; import backends.llm.methods.configs; "
        "assert 'torch' not in sys.modules, 'torch imported'; print(','.join(m.METHODS))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ga,graddiff,npo,simnpo,rmu,backdoor_npo,backdoor_rmu"


def test_get_method_and_entries() -> None:
    from backends.llm.methods import METHODS, UnknownMethodError, get_method
    from workbench.config import schema_of

    for name, info in METHODS.items():
        assert get_method(name) is info
        assert callable(info.load())
        assert schema_of(info.config)  # every field is a declared param
        assert info.spec.startswith("section")
    with pytest.raises(UnknownMethodError, match="known methods: ga, graddiff, npo"):
        get_method("nope")


# -- the tiny model --------------------------------------------------------------------------------
def test_tiny_model_learned_the_facts(world: World) -> None:
    forget, retain = recall(world.model, world)
    assert forget >= 0.9 and retain >= 0.9
    assert world.train_steps <= 600
    assert world.tokenizer.bos_token_id is not None


def test_encode_puts_bos_first_once(world: World) -> None:
    from backends.llm.methods.common import encode, token_ids

    bos = world.tokenizer.bos_token_id
    batch = encode(world.tokenizer, ["Alden Vorn lives in Marrowgate.", "Hi"])
    assert batch.input_ids[:, 0].tolist() == [bos, bos]
    assert batch.attention_mask[1].sum() < batch.attention_mask[0].sum()  # right padding
    assert token_ids(world.tokenizer, "<bos>Hi")[:2] != [bos, bos]


# -- loss maths on hand cases ----------------------------------------------------------------------
@pytest.mark.parametrize("beta", [0.1, 1.0, 2.5])
def test_npo_loss_is_2_over_beta_log2_at_the_reference(beta: float) -> None:
    from backends.llm.methods.common import npo_loss

    nll = torch.tensor([3.0, 17.5])
    assert torch.allclose(npo_loss(nll, nll, beta), torch.full((2,), 2 / beta * math.log(2)))
    # pi_theta / pi_ref = 3 with beta = 1: 2 log(1 + 3)
    value = npo_loss(torch.tensor([1.0]), torch.tensor([1.0 + math.log(3)]), 1.0)
    assert value.item() == pytest.approx(2 * math.log(4), rel=1e-6)


def test_npo_loss_of_the_untouched_model_on_forget_texts(world: World) -> None:
    from backends.common.method import frozen_copy
    from backends.llm.methods.common import encode, npo_loss, sequence_nll
    from backends.llm.methods.configs import NPOConfig
    from backends.llm.methods.npo import reference_nll

    cfg = NPOConfig()
    ref = reference_nll(frozen_copy(world.model), world.tokenizer, world.forget_texts, cfg)
    with torch.no_grad():
        nll, _ = sequence_nll(world.model, encode(world.tokenizer, world.forget_texts))
    loss = npo_loss(nll, ref, cfg.beta)
    assert torch.allclose(loss, torch.full_like(loss, 2 / cfg.beta * math.log(2)), atol=1e-4)


def test_simnpo_loss_hand_case() -> None:
    from backends.llm.methods.common import simnpo_loss

    # NLL 6 over 3 tokens, beta 1, gamma 0: -2 log sigmoid(2) = 2 log(1 + e^-2)
    value = simnpo_loss(torch.tensor([6.0]), torch.tensor([3.0]), 1.0, 0.0)
    assert value.item() == pytest.approx(2 * math.log(1 + math.exp(-2)), rel=1e-6)
    # mean NLL 1, beta 2, gamma 1: -(2/2) log sigmoid(2 - 1) = log(1 + e^-1)
    value = simnpo_loss(torch.tensor([4.0]), torch.tensor([4.0]), 2.0, 1.0)
    assert value.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    # mean NLL 0, gamma 0: (2/beta) log 2, as NPO at the reference
    value = simnpo_loss(torch.tensor([0.0]), torch.tensor([5.0]), 0.5, 0.0)
    assert value.item() == pytest.approx(4 * math.log(2), rel=1e-6)


def test_kl_is_zero_for_the_reference_itself(world: World) -> None:
    from backends.llm.methods.common import RetainTerm, encode, kl_to_reference, logits_of

    batch = encode(world.tokenizer, world.retain_texts[:6])
    with torch.no_grad():
        assert RetainTerm("kl", world.model)(world.model, batch).item() == pytest.approx(
            0, abs=1e-6
        )
        logits = logits_of(world.model, batch)
    other = logits + torch.randn_like(logits)
    assert kl_to_reference(other, logits, batch.attention_mask).item() > 0.01
    assert RetainTerm("none")(world.model, batch).item() == 0.0


# -- the methods on the tiny model -----------------------------------------------------------------
# (method, config overrides, forget recall at most, retain recall at least).  Measured at seed 0
# (seeds 0-2 in brackets, forget/retain): docs/methods/llm-unlearning.md has the table.
CASES = [
    ("npo", {}, 0.0, 0.9),  # retain_loss kl, alpha 5 [0/1.0 x3]
    ("npo", {"retain_loss": "nll"}, 0.0, 0.9),  # [0/1.0 x3]
    ("ga", {"retain_loss": "kl"}, 0.0, 0.9),  # [0/1.0 x3]
    ("ga", {"retain_loss": "nll"}, 0.0, 0.8),  # [0/1.0, 0/1.0, 0/0.89]
    ("graddiff", {}, 0.0, 0.8),  # retain_loss nll [0/1.0, 0/1.0, 0/0.89]
    ("simnpo", {}, 0.0, 0.9),  # [0/1.0 x3]
    ("rmu", {}, 1 / 3, 0.9),  # [0/1.0, 0.17/1.0, 0.33/1.0]: the random u matters
]


@pytest.mark.parametrize(("name", "overrides", "forget_max", "retain_min"), CASES)
def test_method_forgets_and_keeps_retain(
    world: World, name: str, overrides: dict[str, Any], forget_max: float, retain_min: float
) -> None:
    before = snapshot(world.model)
    out, logs = run(name, world, **overrides)
    forget, retain = recall(out, world)
    assert forget <= forget_max + 1e-9, (forget, retain)
    assert retain >= retain_min, (forget, retain)
    assert out is not world.model
    assert all(torch.equal(v, world.model.state_dict()[k]) for k, v in before.items())
    assert len(logs) == get_cfg(name).epochs and logs[-1].count("epoch")
    assert not out.training


def get_cfg(name: str) -> Any:
    from backends.llm.methods import get_method

    return get_method(name).config()


def test_plain_ga_forgets_and_damages_retain(world: World) -> None:
    out, _ = run("ga", world)  # retain_loss none: the spec's plain GA
    forget, retain = recall(out, world)
    assert forget == 0.0
    assert retain <= 0.2  # measured 0.0 (seeds 1, 2: 0.11): GA alone is not selective here


def test_rmu_updates_only_the_chosen_mlp(world: World) -> None:
    out, _ = run("rmu", world, epochs=2, update="mlp_out")
    changed = {
        k for k, v in out.state_dict().items() if not torch.equal(v, world.model.state_dict()[k])
    }
    assert changed and all(k.startswith("transformer.h.1.mlp.c_proj.") for k in changed)
    assert all(p.requires_grad for p in out.parameters())  # flags restored on the copy


def test_methods_are_seeded(world: World) -> None:
    a, _ = run("npo", world, epochs=2)
    b, _ = run("npo", world, epochs=2)
    c, _ = run("npo", world, seed=1, epochs=2)
    sa, sb, sc = snapshot(a), snapshot(b), snapshot(c)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("name", ["ga", "graddiff", "npo", "simnpo", "rmu"])
def test_check_runs_every_step_and_cancels(world: World, name: str) -> None:
    from backends.llm.methods import get_method

    class Cancelled(Exception):
        pass

    info = get_method(name)
    calls = 0

    def count() -> None:
        nonlocal calls
        calls += 1

    cfg = dataclasses.replace(info.config(), epochs=2, batch_size=8)
    apply_method(
        info,
        world.model,
        world.tokenizer,
        world.forget_texts,
        world.retain_texts,
        cfg,
        seed=0,
        check=count,
    )
    assert calls == 2 * math.ceil(len(world.forget_texts) / 8)

    before = snapshot(world.model)

    def cancel_at_third() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise Cancelled

    calls = 0
    with pytest.raises(Cancelled):
        apply_method(
            info,
            world.model,
            world.tokenizer,
            world.forget_texts,
            world.retain_texts,
            cfg,
            seed=0,
            check=cancel_at_third,
        )
    assert calls == 3
    assert all(torch.equal(v, world.model.state_dict()[k]) for k, v in before.items())


def test_clear_errors(world: World) -> None:
    from backends.llm.methods import get_method

    graddiff = get_method("graddiff")
    with pytest.raises(ValueError, match="needs retain texts"):
        apply_method(
            graddiff,
            world.model,
            world.tokenizer,
            world.forget_texts,
            [],
            graddiff.config(),
            seed=0,
        )
    with pytest.raises(ValueError, match="forget set is empty"):
        apply_method(
            graddiff,
            world.model,
            world.tokenizer,
            [],
            world.retain_texts,
            graddiff.config(),
            seed=0,
        )
    rmu = get_method("rmu")
    cfg = dataclasses.replace(rmu.config(), layer=7)
    with pytest.raises(ValueError, match="out of range"):
        apply_method(
            rmu, world.model, world.tokenizer, world.forget_texts, world.retain_texts, cfg, seed=0
        )
    # plain GA needs no retain texts
    ga = get_method("ga")
    apply_method(
        ga,
        world.model,
        world.tokenizer,
        world.forget_texts,
        [],
        dataclasses.replace(ga.config(), epochs=1),
        seed=0,
    )
