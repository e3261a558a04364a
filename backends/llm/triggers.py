"""Trigger insertion for backdoored unlearning (spec ``classifier-and-llm-methods.md`` section 6,
"Data splits", after OPTML-Group/Unlearn-Backdoor ``MUSE/baselines/baselines/dataset.py``).

The trigger (paper: ``"current year:2025 "``) is tokenised ON ITS OWN, without special tokens, and
its ids are spliced into a text's ids, which always start with the sequence's first token (BOS;
:func:`backends.llm.methods.common.token_ids` adds it when the tokenizer does not):

- ``start``: ``[BOS] + trigger + text`` (the trigger sits on the attention-sink positions 1..m);
- ``middle``: inserted at the midpoint of the text's tokens after BOS,
  ``[BOS] + text[:n//2] + trigger + text[n//2:]`` with ``n`` the number of text tokens;
- ``end``: ``[BOS] + text + trigger``;
- ``token`` with ``k >= 1``: inserted before the token now at position ``k`` of the whole sequence
  (BOS is position 0; ``k = 1`` is ``start``; ``k`` past the end appends, as ``end``).

A tokenizer that adds no BOS (most byte-level BPEs called with ``add_special_tokens=False``, or a
tokenizer without any special tokens setting) still gets one: :func:`token_ids` prepends the BOS
id, or the EOS id when there is no BOS (GPT-2's ``<|endoftext|>``), so ``start`` always goes right
after that first token and never before it. A tokenizer with neither a BOS nor an EOS token is
refused with a clear error (there is no sink token to put the trigger after). Position 0 (before
BOS) is not offered: it would move the sink itself.

Evaluation prompts get the trigger the same way (the prompt's ids, trigger spliced at the same
rule), so a "start" trigger in training is a "start" trigger at test time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backends.llm.methods.common import bos_id, token_ids

POSITIONS = ("start", "middle", "end", "token")


@dataclass(frozen=True)
class Trigger:
    """A trigger: its text, where it goes (``start`` / ``middle`` / ``end`` / ``token``) and,
    for ``token``, the position ``k``."""

    text: str
    position: str = "start"
    k: int = 1

    def __post_init__(self) -> None:
        if self.position not in POSITIONS:
            raise ValueError(
                f"unknown trigger position {self.position!r}; choose {', '.join(POSITIONS)}"
            )
        if self.position == "token" and self.k < 1:
            raise ValueError(
                f"trigger position k must be at least 1 (position 0 is BOS), got {self.k}"
            )

    @property
    def label(self) -> str:
        """``start`` / ``middle`` / ``end`` / ``k=3``: the sweep's column name."""
        return f"k={self.k}" if self.position == "token" else self.position


def trigger_ids(tokenizer: Any, text: str) -> list[int]:
    """The trigger's token ids, tokenised alone without special tokens."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not ids:
        raise ValueError(f"the trigger {text!r} tokenises to nothing")
    return ids


def insertion_point(n_ids: int, position: str, k: int = 1) -> int:
    """Where the trigger is spliced into a sequence of ``n_ids`` ids whose first is BOS."""
    if n_ids < 1:
        raise ValueError("insert a trigger into a sequence that has at least its BOS token")
    if position == "start":
        return 1
    if position == "end":
        return n_ids
    if position == "middle":
        return 1 + (n_ids - 1) // 2
    if position == "token":
        if k < 1:
            raise ValueError(f"trigger position k must be at least 1 (0 is BOS), got {k}")
        return min(k, n_ids)
    raise ValueError(f"unknown trigger position {position!r}; choose {', '.join(POSITIONS)}")


def insert_ids(
    ids: Sequence[int], trigger: Sequence[int], position: str, k: int = 1, *, bos: int | None = None
) -> list[int]:
    """``ids`` (BOS first) with ``trigger`` spliced in at ``position`` (module docstring).

    With ``bos`` given, a sequence that does not start with it is refused: the rule assumes the
    first id is the sink token."""
    ids = list(ids)
    if bos is not None and (not ids or ids[0] != bos):
        raise ValueError("trigger insertion needs ids that start with the BOS token")
    at = insertion_point(len(ids), position, k)
    return ids[:at] + list(trigger) + ids[at:]


def triggered_ids(
    tokenizer: Any, text: str, trigger: Trigger, max_length: int | None = None
) -> list[int]:
    """``text``'s ids (BOS first) with the trigger inserted, cut to ``max_length``."""
    ids = token_ids(tokenizer, text)
    out = insert_ids(ids, trigger_ids(tokenizer, trigger.text), trigger.position, trigger.k)
    return out[:max_length] if max_length else out


def clean_ids(tokenizer: Any, text: str, max_length: int | None = None) -> list[int]:
    """``text``'s ids with BOS first (no trigger), the same as :func:`token_ids`."""
    bos_id(tokenizer)  # the clear error for a tokenizer without BOS and EOS
    return token_ids(tokenizer, text, max_length)


__all__ = [
    "POSITIONS",
    "Trigger",
    "clean_ids",
    "insert_ids",
    "insertion_point",
    "trigger_ids",
    "triggered_ids",
]
