"""LLM evaluation (``backends/llm/evaluation.py``): greedy recall, perplexity, per-text losses,
Min-K% Prob and the LOSS / Min-K membership-inference AUCs, on the tiny GPT-2 of
``test_llm_methods`` (built once per process and shared)."""

from __future__ import annotations

import os
import random

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from tests.backends.test_llm_methods import PEOPLE, World, apply_method, build_world

# Made-up facts the model never saw: non-members for the MIAs.
HELD_OUT = [
    "Mara Ellison lives in Dovecote.",
    "Mara Ellison works as a potter.",
    "Orin Sallow lives in Greywick.",
    "Orin Sallow works as a miner.",
    "Pell Aranda lives in Hollowmere.",
    "Pell Aranda works as a weaver.",
    "Q: Where does Mara Ellison live?\nA: Dovecote",
    "Q: What does Orin Sallow do?\nA: miner",
]


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


def random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz     "
    return ["".join(rng.choice(letters) for _ in range(40)).strip() or "x" for _ in range(n)]


def test_answer_matching_is_normalised_at_a_word_boundary() -> None:
    from backends.llm.evaluation import answer_matches

    assert answer_matches(" Marrowgate.\nQ: next", "marrowgate")
    assert answer_matches("\n  MARROWGATE", "Marrowgate ")
    assert answer_matches("new   york city", "New York")
    assert not answer_matches(" Marrowgates", "Marrowgate")
    assert not answer_matches(" the Marrowgate", "Marrowgate")
    assert not answer_matches("anything", "")


def test_greedy_recall_on_known_completions(world: World) -> None:
    from backends.llm.evaluation import greedy_complete, greedy_recall

    name, city, job = PEOPLE[0]
    pairs = [(f"Where does {name} live?", city), (f"Where does {name} live?", PEOPLE[1][1])]
    rate, items = greedy_recall(world.model, world.tokenizer, pairs, max_new_tokens=6)
    assert rate == 0.5
    assert [i["correct"] for i in items] == [True, False]
    assert items[0]["completion"].strip().startswith(city)
    assert set(items[0]) == {"question", "answer", "completion", "correct"}
    # a custom prompt format; the BOS is added by the evaluator
    rate, _ = greedy_recall(
        world.model,
        world.tokenizer,
        [(name, job)],
        prompt_format="{question} works as a",
        max_new_tokens=4,
    )
    assert rate == 1.0
    # prompts of different lengths in one call keep their order
    outs = greedy_complete(world.model, world.tokenizer, [f"{name} lives in", "Q:"], 3)
    assert outs[0].strip().startswith(city) and len(outs) == 2


def test_perplexity_of_training_text_is_lower_than_of_random_text(world: World) -> None:
    from backends.llm.evaluation import perplexity

    train = perplexity(world.model, world.tokenizer, world.retain_texts)
    noise = perplexity(world.model, world.tokenizer, random_texts(12))
    assert train < 2.0 < 50.0 < noise


def test_min_k_with_k_1_is_the_mean_log_prob(world: World) -> None:
    from backends.llm.evaluation import min_k_scores, sequence_losses

    texts = world.forget_texts[:4] + HELD_OUT[:2]
    full = min_k_scores(world.model, world.tokenizer, texts, k=1.0)
    losses = sequence_losses(world.model, world.tokenizer, texts)
    assert full == pytest.approx([-x for x in losses], rel=1e-5)
    low = min_k_scores(world.model, world.tokenizer, texts, k=0.2)
    assert all(a <= b + 1e-9 for a, b in zip(low, full, strict=True))
    with pytest.raises(ValueError):
        min_k_scores(world.model, world.tokenizer, texts, k=0.0)


def test_mia_auc_sign_convention() -> None:
    from backends.llm.evaluation import mia_auc

    assert mia_auc([3.0, 4.0, 5.0], [0.0, 1.0]) == 1.0
    assert mia_auc([1.0, 1.0], [1.0, 1.0, 1.0]) == 0.5
    assert mia_auc([0.0, 1.0], [3.0, 4.0]) == 0.0
    with pytest.raises(ValueError):
        mia_auc([], [1.0])


def test_loss_and_min_k_mia_separate_trained_from_held_out(world: World) -> None:
    from backends.llm.evaluation import loss_mia, min_k_mia

    members = world.forget_texts
    assert loss_mia(world.model, world.tokenizer, members, HELD_OUT) == 1.0
    assert min_k_mia(world.model, world.tokenizer, members, HELD_OUT) == 1.0


def test_what_unlearning_does_to_the_forget_mia(world: World) -> None:
    """Measured (seed 0): forget recall falls to 0 under both, yet after NPO the forget texts stay
    far more likely than never-seen facts (loss AUC 1.0, forget loss 0.5 -> 3.0 vs ~7 held out:
    the names are still familiar, only the answers are pushed down); GA over-unlearns (forget loss
    ~9.4, above the held-out ~7.4: AUC 0.0), the signal MUSE's PrivLeak measures."""
    from backends.llm.evaluation import loss_mia, sequence_losses
    from backends.llm.methods import get_method

    def unlearned(name: str) -> object:
        info = get_method(name)
        return apply_method(
            info,
            world.model,
            world.tokenizer,
            world.forget_texts,
            world.retain_texts,
            info.config(),
            seed=0,
        )

    def mean_loss(model: object) -> float:
        losses = sequence_losses(model, world.tokenizer, world.forget_texts)
        return sum(losses) / len(losses)

    npo, ga = unlearned("npo"), unlearned("ga")
    assert mean_loss(npo) > 3 * mean_loss(world.model)
    assert loss_mia(npo, world.tokenizer, world.forget_texts, HELD_OUT) >= 0.9
    assert loss_mia(ga, world.tokenizer, world.forget_texts, HELD_OUT) <= 0.2


def test_evaluation_leaves_the_model_mode_and_weights(world: World) -> None:
    from backends.llm.evaluation import greedy_recall, perplexity

    world.model.train()
    try:
        before = {k: v.clone() for k, v in world.model.state_dict().items()}
        perplexity(world.model, world.tokenizer, world.retain_texts[:3])
        greedy_recall(world.model, world.tokenizer, [("Where does Alden Vorn live?", "x")])
        assert world.model.training
        assert all(torch.equal(v, world.model.state_dict()[k]) for k, v in before.items())
    finally:
        world.model.eval()


def test_privleak_is_muses_relative_auc_difference_with_a_paired_interval() -> None:
    """PrivLeak = (AUC_unlearned - AUC_retrained) / AUC_retrained (MUSE), by hand."""
    from backends.llm.evaluation import privleak

    members, non = [3.0, 4.0, 5.0, 6.0], [0.0, 1.0, 2.0, 3.5]
    # retrained: members and non-members interleave -> AUC 0.5 exactly
    r_members, r_non = [0.0, 2.0, 4.0, 6.0], [1.0, 3.0, 5.0, 7.0]
    from sklearn.metrics import roc_auc_score

    auc_u = roc_auc_score([1] * 4 + [0] * 4, members + non)
    auc_r = roc_auc_score([1] * 4 + [0] * 4, r_members + r_non)
    assert auc_r == pytest.approx(0.375) and auc_u == pytest.approx(0.9375)
    est = privleak((members, non), (r_members, r_non), n_bootstrap=200)
    assert est.value == pytest.approx((auc_u - auc_r) / auc_r)
    assert est.low < est.value < est.high
    # with ties (integer scores) the rank AUC still equals sklearn's
    rng = random.Random(3)
    tied = [[float(rng.randint(0, 4)) for _ in range(n)] for n in (9, 7, 9, 7)]
    a = roc_auc_score([1] * 9 + [0] * 7, tied[0] + tied[1])
    b = roc_auc_score([1] * 9 + [0] * 7, tied[2] + tied[3])
    got = privleak((tied[0], tied[1]), (tied[2], tied[3]), n_bootstrap=100).value
    assert got == pytest.approx((a - b) / b)
    same = privleak((members, non), (members, non), n_bootstrap=200)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)  # paired: identical models
    with pytest.raises(ValueError, match="same members and non-members"):
        privleak((members, non), (r_members[:3], r_non))


def test_fact_scores_average_each_facts_texts(world: World) -> None:
    from backends.llm.evaluation import fact_scores, min_k_scores, sequence_losses

    groups = [world.forget_texts[:2], world.forget_texts[2:5]]
    flat = min_k_scores(world.model, world.tokenizer, world.forget_texts[:5], 0.2)
    got = fact_scores(world.model, world.tokenizer, groups, "min_k", 0.2)
    assert got == pytest.approx([sum(flat[:2]) / 2, sum(flat[2:5]) / 3])
    losses = sequence_losses(world.model, world.tokenizer, world.forget_texts[:2])
    assert fact_scores(world.model, world.tokenizer, groups[:1], "loss") == pytest.approx(
        [-(losses[0] + losses[1]) / 2]
    )
    with pytest.raises(ValueError, match="unknown attack"):
        fact_scores(world.model, world.tokenizer, groups, "zlib")
