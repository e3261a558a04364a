"""What a causal LM gives the benchmark metrics: answer log-likelihoods, greedy continuations,
choice log-likelihoods and Min-K% scores.

Every sequence starts with BOS (:func:`backends.llm.methods.common.token_ids`). A continuation
``c`` of a prompt ``p`` is scored on the ids of ``p`` followed by the ids of ``sep + c`` tokenised
alone, so the scored tokens are exactly the continuation's (OpenUnlearning masks the question the
same way; lm-eval scores a choice after its context the same way). A prompt longer than the model's
context keeps its BOS and its end (:func:`backends.llm.jobs.fit_context`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from backends.llm.methods.common import collate, context_limit, model_device, pad_id, token_ids

__all__ = ["continuation_nll", "generate", "min_k_scores", "span_nll"]


def _prompt_ids(tokenizer: Any, prompt: str, room: int | None) -> list[int]:
    from backends.llm.jobs import fit_context
    from backends.llm.methods.common import bos_id

    ids = token_ids(tokenizer, prompt)
    return fit_context(ids, room, bos_id(tokenizer))[0] if room else ids


def continuation_nll(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    sep: str = " ",
    batch_size: int = 32,
) -> list[tuple[float, int]]:
    """Per (prompt, continuation): the summed NLL of the continuation's tokens given the prompt,
    and how many tokens it has (mean NLL = sum / count)."""
    limit = context_limit(model)
    seqs: list[list[int]] = []
    spans: list[tuple[int, int]] = []
    for prompt, cont in pairs:
        tail = list(tokenizer(sep + cont, add_special_tokens=False)["input_ids"])
        if not tail:
            raise ValueError(f"the continuation {cont!r} has no tokens to score")
        if limit:
            tail = tail[: max(1, limit - 2)]
        head = _prompt_ids(tokenizer, prompt, (limit - len(tail)) if limit else None)
        seqs.append(head + tail)
        spans.append((len(head), len(head) + len(tail)))
    return span_nll(model, tokenizer, seqs, spans, batch_size)


def span_nll(
    model: Any,
    tokenizer: Any,
    seqs: Sequence[list[int]],
    spans: Sequence[tuple[int, int]],
    batch_size: int = 32,
) -> list[tuple[float, int]]:
    """Per token sequence: the summed NLL of its tokens ``[a, b)`` given those before them, and
    ``b - a`` (eval mode, no gradients; the model's training flag is restored)."""
    out: list[tuple[float, int]] = []
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(seqs), batch_size):
                chunk = seqs[start : start + batch_size]
                batch = collate(chunk, pad_id(tokenizer), model_device(model))
                logits = model(
                    input_ids=batch.input_ids, attention_mask=batch.attention_mask
                ).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
                for row, (a, b) in enumerate(spans[start : start + batch_size]):
                    ids = batch.input_ids[row, a:b]
                    lp = logp[row, a - 1 : b - 1].gather(-1, ids[:, None]).squeeze(-1)
                    out.append((float(-lp.sum()), int(b - a)))
    finally:
        model.train(was)
    return out


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int,
    stop: str = "",
) -> list[str]:
    """Greedy continuations of ``prompts`` (new text only, cut at EOS and at the first ``stop``
    string when one is given)."""
    from backends.llm.backdoor_study import greedy_ids

    limit = context_limit(model)
    room = (limit - max_new_tokens) if limit else None
    if room is not None and room < 2:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's "
            f"{limit}-token context"
        )
    ids = [_prompt_ids(tokenizer, p, room) for p in prompts]
    outs = greedy_ids(model, tokenizer, ids, max_new_tokens)
    if stop:
        outs = [o.split(stop, 1)[0] for o in outs]
    return outs


def min_k_scores(model: Any, tokenizer: Any, texts: Sequence[str], k: float) -> list[float]:
    """Min-K% Prob per text (:func:`backends.llm.evaluation.min_k_scores`; higher = member)."""
    from backends.llm.evaluation import min_k_scores as scores

    return scores(model, tokenizer, list(texts), k)
