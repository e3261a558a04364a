"""Evaluation of (un)learned causal LMs: greedy QA recall, perplexity, per-text losses, Min-K% Prob
and loss / Min-K membership-inference AUCs.

Spec ``classifier-and-llm-methods.md`` section 6 ("CPU version": exact-match recall on forget /
retain prompts) and section 8 (OpenUnlearning / MUSE: LOSS and Min-K MIAs, PrivLeak).  Every
sequence starts with the BOS token (:func:`backends.llm.methods.common.token_ids`).

Conventions:

- **Recall** (:func:`greedy_recall`): the prompt ``prompt_format.format(question=q)`` is completed
  greedily; an item counts as recalled when the completion, lower-cased with runs of whitespace
  collapsed to one space and leading whitespace stripped, *starts with* the answer normalised the
  same way, and the character after the answer (if any) is not a letter or digit ("Marrowgate"
  matches "Marrowgate.\\nQ: ..." but not "Marrowgates").  Generation stops at EOS.
- **MIA scores**: higher = "more likely a member" (a text the model trained on).  The loss score is
  ``-mean token NLL``; the Min-K% score is the mean of the lowest k fraction of token log-probs.
  :func:`mia_auc` is ``roc_auc_score`` with members labelled 1: 1.0 = members perfectly ranked
  above non-members, 0.5 = no signal, below 0.5 = members look *less* likely than non-members
  (what over-unlearning such as GA tends to give; MUSE's PrivLeak compares to a retrained model's
  AUC for that reason).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from backends.llm.methods.common import (
    collate,
    context_limit,
    model_device,
    pad_id,
    token_ids,
    token_logprobs,
)

DEFAULT_PROMPT = "Q: {question}\nA:"


def normalise(text: str) -> str:
    """Lower-case, collapse whitespace runs to one space, strip leading/trailing whitespace."""
    return re.sub(r"\s+", " ", text).strip().lower()


def answer_matches(completion: str, answer: str) -> bool:
    """Whether the normalised completion starts with the normalised answer at a word boundary."""
    c, a = normalise(completion), normalise(answer)
    if not a or not c.startswith(a):
        return False
    return len(c) == len(a) or not c[len(a)].isalnum()


class _EvalMode:
    """Evaluation mode and no gradients for a block, restoring the previous mode."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was_training = model, model.training
        self.no_grad = torch.no_grad()

    def __enter__(self) -> None:
        self.model.eval()
        self.no_grad.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)


def greedy_complete(
    model: nn.Module, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int = 16
) -> list[str]:
    """Greedy completions (decoded new tokens only) of ``prompts``, each started with BOS.

    Prompts of equal token length are decoded together (no padding) by ``model.generate``."""
    device = model_device(model)
    eos = getattr(tokenizer, "eos_token_id", None)
    ids = [token_ids(tokenizer, p) for p in prompts]
    groups: dict[int, list[int]] = {}
    for i, x in enumerate(ids):
        groups.setdefault(len(x), []).append(i)
    out: list[str] = [""] * len(prompts)
    with _EvalMode(model):
        for members in groups.values():
            x = torch.tensor([ids[i] for i in members], device=device)
            generated = model.generate(
                input_ids=x,
                attention_mask=torch.ones_like(x),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad_id(tokenizer),
                eos_token_id=eos,
            )
            new = generated[:, x.shape[1] :]
            for row, i in enumerate(members):
                tokens = new[row].tolist()
                if eos is not None and eos in tokens:
                    tokens = tokens[: tokens.index(eos)]
                out[i] = tokenizer.decode(tokens, skip_special_tokens=True)
    return out


def greedy_recall(
    model: nn.Module,
    tokenizer: Any,
    qa_pairs: Sequence[tuple[str, str]],
    prompt_format: str = DEFAULT_PROMPT,
    max_new_tokens: int = 16,
    render: Callable[[str], str] | None = None,
) -> tuple[float, list[dict[str, Any]]]:
    """Fraction of QA pairs whose greedy completion starts with the answer (module docstring).

    ``render(question)`` builds the prompt instead of ``prompt_format`` when given (a chat
    model's template: :func:`backends.llm.models.chat_prompt`).
    Returns ``(rate, per_item)``; each item is ``{"question", "answer", "completion",
    "correct"}``.  An empty list gives rate ``nan``."""
    prompts = [
        render(q) if render is not None else prompt_format.format(question=q) for q, _ in qa_pairs
    ]
    completions = greedy_complete(model, tokenizer, prompts, max_new_tokens)
    items = [
        {"question": q, "answer": a, "completion": c, "correct": answer_matches(c, a)}
        for (q, a), c in zip(qa_pairs, completions, strict=True)
    ]
    rate = sum(i["correct"] for i in items) / len(items) if items else math.nan
    return rate, items


def token_logprob_lists(
    model: nn.Module, tokenizer: Any, texts: Sequence[str], batch_size: int = 32
) -> list[torch.Tensor]:
    """Per text, the log-probs of its tokens after BOS (1-D CPU tensors)."""
    device = model_device(model)
    limit = context_limit(model)
    ids = [token_ids(tokenizer, t, limit) for t in texts]
    for t, x in zip(texts, ids, strict=True):
        if len(x) < 2:
            raise ValueError(f"text {t!r} has no token after BOS to score")
    out: list[torch.Tensor] = []
    with _EvalMode(model):
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            batch = collate(chunk, pad_id(tokenizer), device)
            logp, _ = token_logprobs(model, batch)
            out += [logp[row, : len(x) - 1].cpu() for row, x in enumerate(chunk)]
    return out


def sequence_losses(model: nn.Module, tokenizer: Any, texts: Sequence[str]) -> list[float]:
    """Per text, the mean next-token NLL of its tokens after BOS."""
    return [float(-lp.mean()) for lp in token_logprob_lists(model, tokenizer, texts)]


def perplexity(model: nn.Module, tokenizer: Any, texts: Sequence[str]) -> float:
    """exp of the token-weighted mean NLL over all texts (tokens after BOS)."""
    lps = token_logprob_lists(model, tokenizer, texts)
    total = sum(float(-lp.sum()) for lp in lps)
    count = sum(len(lp) for lp in lps)
    return math.exp(total / count)


def min_k_scores(
    model: nn.Module, tokenizer: Any, texts: Sequence[str], k: float = 0.2
) -> list[float]:
    """Min-K% Prob per text: the mean of its lowest ``ceil(k * n)`` token log-probs (at least
    one; k = 1 gives the mean log-prob).  Higher = more member-like."""
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k must be in (0, 1], got {k}")
    scores = []
    for lp in token_logprob_lists(model, tokenizer, texts):
        n = max(1, math.ceil(k * len(lp)))
        scores.append(float(torch.sort(lp.double()).values[:n].mean()))
    return scores


def mia_auc(member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> float:
    """ROC AUC of telling members from non-members by score, higher score = member.

    ``sklearn.metrics.roc_auc_score`` with members labelled 1: 1.0 = perfectly separated (members
    higher), 0.5 = no signal (e.g. identical scores), 0.0 = perfectly reversed."""
    from sklearn.metrics import roc_auc_score

    if not member_scores or not nonmember_scores:
        raise ValueError("mia_auc needs at least one member and one non-member score")
    labels = [1] * len(member_scores) + [0] * len(nonmember_scores)
    return float(roc_auc_score(labels, [*member_scores, *nonmember_scores]))


def loss_mia(
    model: nn.Module, tokenizer: Any, members: Sequence[str], nonmembers: Sequence[str]
) -> float:
    """LOSS attack AUC: score = -mean token NLL; members (e.g. forget texts the model trained on)
    vs non-members (held-out texts)."""
    score = lambda texts: [-x for x in sequence_losses(model, tokenizer, texts)]  # noqa: E731
    return mia_auc(score(members), score(nonmembers))


def min_k_mia(
    model: nn.Module,
    tokenizer: Any,
    members: Sequence[str],
    nonmembers: Sequence[str],
    k: float = 0.2,
) -> float:
    """Min-K% Prob attack AUC (Shi et al. 2024): members vs non-members, score = Min-K%."""
    return mia_auc(
        min_k_scores(model, tokenizer, members, k), min_k_scores(model, tokenizer, nonmembers, k)
    )


def fact_scores(
    model: nn.Module,
    tokenizer: Any,
    texts_per_fact: Sequence[Sequence[str]],
    attack: str = "min_k",
    k: float = 0.2,
) -> list[float]:
    """One membership score per fact: the mean over the fact's texts of the LOSS score
    (``attack="loss"``: -mean token NLL) or the Min-K% score (``"min_k"``).

    Scoring facts, not texts, keeps the units of a bootstrap independent: the sentences of one
    fact share its subject and object, so resampling them one by one would narrow the intervals.
    """
    flat = [t for texts in texts_per_fact for t in texts]
    if any(not texts for texts in texts_per_fact):
        raise ValueError("fact_scores: a fact has no text to score")
    if attack == "min_k":
        scores = min_k_scores(model, tokenizer, flat, k)
    elif attack == "loss":
        scores = [-x for x in sequence_losses(model, tokenizer, flat)]
    else:
        raise ValueError(f"unknown attack {attack!r}; choose loss or min_k")
    out, start = [], 0
    for texts in texts_per_fact:
        out.append(sum(scores[start : start + len(texts)]) / len(texts))
        start += len(texts)
    return out


def privleak(
    unlearned: tuple[Sequence[float], Sequence[float]],
    retrained: tuple[Sequence[float], Sequence[float]],
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Any:
    """MUSE's PrivLeak, ``(AUC(unlearned) - AUC(retrained)) / AUC(retrained)`` (spec section 8;
    Shi et al. 2024, MUSE), with a paired, stratified percentile-bootstrap interval.

    Each argument is ``(member scores, non-member scores)`` of one model on the SAME members and
    non-members (in the same order); a replicate resamples member and non-member indices once and
    applies them to both models. 0 = as private as the retrained model; > 0 = the unlearned model
    still tells the forget set from never-seen data (under-unlearning); < 0 = it marks the forget
    set as less member-like than the retrained model does (over-unlearning). Returns a
    :class:`backends.common.stats.Estimate`.
    """
    import numpy as np
    from scipy.stats import rankdata

    from backends.common.stats import Estimate

    um, un = (np.asarray(x, dtype=float) for x in unlearned)
    rm, rn = (np.asarray(x, dtype=float) for x in retrained)
    if um.shape != rm.shape or un.shape != rn.shape:
        raise ValueError("privleak: both models must be scored on the same members and non-members")
    if um.size == 0 or un.size == 0:
        raise ValueError("privleak: need at least one member and one non-member")

    def auc(members: Any, nonmembers: Any) -> Any:
        """ROC AUC per row (Mann-Whitney U with average ranks for ties: equal to
        ``sklearn.metrics.roc_auc_score`` with members labelled 1)."""
        both = np.concatenate([members, nonmembers], axis=-1)
        ranks = rankdata(both, axis=-1)
        n1, n0 = members.shape[-1], nonmembers.shape[-1]
        return (ranks[..., :n1].sum(-1) - n1 * (n1 + 1) / 2) / (n1 * n0)

    def leak(mi: Any, ni: Any) -> Any:
        a_u, a_r = auc(um[mi], un[ni]), auc(rm[mi], rn[ni])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a_r > 0, (a_u - a_r) / a_r, np.nan)

    value = float(leak(np.arange(um.size), np.arange(un.size)))
    rng = np.random.default_rng(seed)
    mi = rng.integers(0, um.size, (n_bootstrap, um.size))
    ni = rng.integers(0, un.size, (n_bootstrap, un.size))
    reps = leak(mi, ni)
    reps = reps[np.isfinite(reps)]
    alpha = 1.0 - confidence
    low, high = (float(q) for q in np.quantile(reps, [alpha / 2, 1 - alpha / 2]))
    return Estimate(value, low, high, int(um.size + un.size), confidence)


__all__ = [
    "DEFAULT_PROMPT",
    "fact_scores",
    "privleak",
    "answer_matches",
    "greedy_complete",
    "greedy_recall",
    "loss_mia",
    "min_k_mia",
    "min_k_scores",
    "mia_auc",
    "normalise",
    "perplexity",
    "sequence_losses",
]
