"""Byte-level BPE tokenizer for the synthetic universe (spec section 5, "CPU version").

A byte-level BPE (``tokenizers``, about 1024 tokens) trained on every string the universe renders,
with three special tokens: ``<|bos|>`` (prepended to every encoding by the post-processor, so an
attention sink can form on it), ``<|eos|>`` and ``<|pad|>``.  It is wrapped as a transformers
``PreTrainedTokenizerFast`` and saved next to the model, so
``AutoTokenizer.from_pretrained(folder, local_files_only=True)`` loads it like any HF folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

BOS = "<|bos|>"
EOS = "<|eos|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = (BOS, EOS, PAD)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> Any:
    """Train the BPE on ``texts``; returns a ``PreTrainedTokenizerFast`` that prepends BOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="right",
        model_max_length=1024,
    )
