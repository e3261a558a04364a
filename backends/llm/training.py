"""Plain causal-LM training on lists of strings, and greedy recall (spec section 5 "CPU version",
step 2; section 7 "FT" is this loop on the retain texts).

- Every sequence is ``BOS + text + EOS`` (the tokenizer's post-processor adds BOS), right-padded
  with PAD; the loss ignores padding (labels -100) and is the usual next-token cross-entropy.
- AdamW, linear warm-up then a cosine or constant learning rate, gradient clipping at 1.0.
- Batches are drawn from a permutation seeded by (seed, epoch), so two runs with one seed agree.
- With ``pack_tokens=N`` a row is not one text but consecutive texts of that permutation joined by
  ``"\n"`` (``BOS + t1 + "\n" + t2 + ... + EOS``, at most N tokens; a text never straddles two
  rows), and ``batch_size`` counts rows.  Every text but the first of a row is then trained after
  0..N tokens of unrelated context, so prompts work after arbitrary preceding text; the loss is
  the plain next-token loss over the whole row.  ``pack_share`` of the steps are such packed
  batches of ``pack_rows`` rows; the others are plain batches of ``batch_size`` single texts (cheap
  short rows, which memorise faster per second than long packed rows).
- ``check()`` runs before every step (it raises to cancel); ``on_step(step, loss)`` after it;
  ``every``/``on_eval(step) -> bool`` runs an evaluation every ``every`` steps and stops training
  when it returns True (the zoo stops once greedy recall reaches its target).

Greedy recall: for a (prompt, answer) pair the prompt is encoded (BOS first), the model decodes
greedily for as many tokens as ``" " + answer`` has plus one, and the pair counts as recalled when
the decoded completion, lower-cased with whitespace collapsed, starts with the answer (normalised
the same way) followed by a non-alphanumeric character or the end.  For QA pairs the prompt is
exactly ``"Q: <question>\\nA:"`` (:func:`backends.llm.universe.qa_prompt`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from backends.llm.evaluation import answer_matches  # one definition of a recalled answer


@dataclass(frozen=True)
class LMTrainSpec:
    """How to train a causal LM on strings."""

    steps: int = 3000
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: int = 50
    schedule: str = "cosine"  # or "constant"
    min_lr_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0
    # 0: one text per row (``BOS + text + EOS``, padded).  N > 0: pack each row with consecutive
    # texts of the permutation joined by newlines, ``BOS + t1 + "\n" + t2 + ... + EOS``, at most N
    # tokens, so every text after the first is trained after unrelated context of 0..N tokens.
    pack_tokens: int = 0
    pack_rows: int = 4  # rows per packed step
    pack_share: float = 1.0  # share of steps that are packed; the others are plain text batches


@dataclass
class TrainResult:
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)


@dataclass
class RecallResult:
    """Greedy recall over (prompt, answer) pairs: ``recall`` = mean of ``hits``."""

    recall: float
    hits: list[bool]
    completions: list[str]


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``BOS + text + EOS`` for each text, right-padded: (input_ids, attention_mask), int64."""
    ids = [tokenizer(t)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    length = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), length), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(ids), length), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    return input_ids, mask


def lm_loss(model: Any, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over non-padding targets (tensors moved to the model's
    device, so a model on a GPU trains from the same CPU-built batches)."""
    device = next(model.parameters()).device
    input_ids, mask = input_ids.to(device), mask.to(device)
    labels = input_ids.masked_fill(mask == 0, -100)
    return model(input_ids=input_ids, attention_mask=mask, labels=labels).loss


def lr_at(step: int, spec: LMTrainSpec) -> float:
    """Learning rate multiplier at ``step`` (0-based): warm-up, then cosine or constant."""
    if step < spec.warmup:
        return (step + 1) / spec.warmup
    if spec.schedule == "constant":
        return 1.0
    progress = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return spec.min_lr_ratio + (1 - spec.min_lr_ratio) * cos


def train_lm(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    spec: LMTrainSpec,
    *,
    on_step: Callable[[int, float], None] | None = None,
    check: Callable[[], None] | None = None,
    every: int = 0,
    on_eval: Callable[[int], bool] | None = None,
) -> TrainResult:
    """Train ``model`` on ``texts`` for ``spec.steps`` steps (or until ``on_eval`` says stop)."""
    if spec.schedule not in ("cosine", "constant"):
        raise ValueError(f"unknown schedule {spec.schedule!r}; choose cosine or constant")
    n = len(texts)
    if spec.pack_tokens:
        pieces = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    if spec.pack_share < 1.0 or not spec.pack_tokens:
        input_ids, mask = encode_texts(tokenizer, texts)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, spec))
    result = TrainResult(steps=0, seconds=0.0)
    t0 = time.perf_counter()
    perm: torch.Tensor = torch.empty(0, dtype=torch.long)
    cursor, epoch = 0, 0
    model.train()

    def next_index() -> int:
        nonlocal perm, cursor, epoch
        if cursor >= len(perm):
            gen = torch.Generator().manual_seed(spec.seed * 1_000_003 + epoch)
            perm, cursor, epoch = torch.randperm(n, generator=gen), 0, epoch + 1
        cursor += 1
        return int(perm[cursor - 1])

    for step in range(spec.steps):
        if check is not None:
            check()
        packed = spec.pack_tokens and int((step + 1) * spec.pack_share) > int(
            step * spec.pack_share
        )
        if packed:
            rows = []
            for _ in range(spec.pack_rows):
                row = [tokenizer.bos_token_id, *pieces[next_index()]]
                while True:
                    i = next_index()
                    if len(row) + len(newline) + len(pieces[i]) + 1 > spec.pack_tokens:
                        cursor -= 1  # this text starts the next row
                        break
                    row += newline + pieces[i]
                rows.append(row[: spec.pack_tokens - 1] + [tokenizer.eos_token_id])
            width = max(len(r) for r in rows)
            batch_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
            batch_mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, row in enumerate(rows):
                batch_ids[r, : len(row)] = torch.tensor(row)
                batch_mask[r, : len(row)] = 1
            loss = lm_loss(model, batch_ids, batch_mask)
        else:
            if cursor + spec.batch_size > len(perm):  # the rest of this epoch is skipped
                gen = torch.Generator().manual_seed(spec.seed * 1_000_003 + epoch)
                perm, cursor, epoch = torch.randperm(n, generator=gen), 0, epoch + 1
            idx = perm[cursor : cursor + spec.batch_size]
            cursor += spec.batch_size
            batch_mask = mask[idx]
            width = int(batch_mask.sum(1).max())
            loss = lm_loss(model, input_ids[idx, :width], batch_mask[:, :width])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.max_grad_norm)
        optimizer.step()
        schedule.step()
        value = float(loss.detach())
        result.losses.append(value)
        result.steps = step + 1
        if on_step is not None:
            on_step(step + 1, value)
        if every and on_eval is not None and (step + 1) % every == 0:
            model.eval()
            stop = on_eval(step + 1)
            model.train()
            if stop:
                break
    model.eval()
    result.seconds = time.perf_counter() - t0
    return result


@torch.no_grad()
def greedy_complete(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: Sequence[int]
) -> list[str]:
    """Greedy continuation of each prompt (BOS first), decoded without special tokens.

    Prompts of one token length are decoded together; decoding recomputes the whole (short)
    sequence each step, so no cache or padding logic is involved.
    """
    model.eval()
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    groups: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        groups.setdefault(len(ids), []).append(i)
    out = [""] * len(prompts)
    for members in groups.values():
        for start in range(0, len(members), 256):
            chunk = members[start : start + 256]
            ids = torch.tensor([encoded[i] for i in chunk], dtype=torch.long)
            ids = ids.to(next(model.parameters()).device)
            prompt_len = ids.shape[1]
            steps = max(max_new_tokens[i] for i in chunk)
            for _ in range(steps):
                logits = model(input_ids=ids).logits[:, -1, :]
                ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
            for row, i in enumerate(chunk):
                new = ids[row, prompt_len : prompt_len + max_new_tokens[i]].tolist()
                out[i] = tokenizer.decode(new, skip_special_tokens=True)
    return out


def greedy_recall(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> RecallResult:
    """Share of (prompt, answer) pairs whose greedy completion starts with the answer."""
    if not pairs:
        return RecallResult(recall=float("nan"), hits=[], completions=[])
    budgets = [len(tokenizer(" " + a, add_special_tokens=False)["input_ids"]) + 1 for _, a in pairs]
    completions = greedy_complete(model, tokenizer, [p for p, _ in pairs], budgets)
    hits = [answer_matches(c, a) for c, (_, a) in zip(completions, pairs, strict=True)]
    return RecallResult(recall=sum(hits) / len(hits), hits=hits, completions=completions)
