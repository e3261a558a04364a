"""A CLIP tokenizer trained from scratch on the shapes world's captions.

Recipe (``shared/design/tiny-t2i-recipe.md``, "Tokenizer: what works"): a byte-level BPE from
``tokenizers`` with ``end_of_word_suffix="</w>"`` and the specials ``<|startoftext|>`` (id 0) and
``<|endoftext|>`` (id 1, also the pad), whose vocab and merges are handed to
``transformers.CLIPTokenizer(vocab=..., merges=[tuple, ...])``. In transformers 5 the
``vocab_file=``/``merges_file=`` constructor silently ignores the files, hence the in-memory form.
Every byte-level character is also added with the ``</w>`` suffix so unseen words never map to unk.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


def train_clip_tokenizer(corpus: Iterable[str], *, max_length: int = 16) -> Any:
    """A ``CLIPTokenizer`` whose BPE was trained on ``corpus`` (lower-cased)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    texts = [t.lower() for t in corpus]
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>", unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=[BOS, EOS],
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    model = bpe.to_str()
    import json

    data = json.loads(model)["model"]
    vocab: dict[str, int] = dict(data["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["merges"]]
    for ch in sorted(alphabet):
        key = ch + "</w>"
        if key not in vocab:
            vocab[key] = len(vocab)
        if ch not in vocab:
            vocab[ch] = len(vocab)
    tok = CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        model_max_length=max_length,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=EOS,
    )
    ids = tok("a zebra striped red circle")["input_ids"]
    if len(ids) < 3 or ids[0] != vocab[BOS]:  # the silent-ignore pitfall would give 2 tokens
        raise RuntimeError(f"CLIP tokenizer construction failed (ids {ids})")
    return tok
