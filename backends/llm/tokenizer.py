"""Byte-level BPE tokenizer for the synthetic universe (spec section 5, "CPU version").

A byte-level BPE (``tokenizers``, about 1024 tokens) trained on every string the universe renders,
with three special tokens: ``<|bos|>`` (prepended to every encoding by the post-processor, so an
attention sink can form on it), ``<|eos|>`` and ``<|pad|>``.  It is wrapped as a transformers
``PreTrainedTokenizerFast`` and saved next to the model, so
``AutoTokenizer.from_pretrained(folder, local_files_only=True)`` loads it like any HF folder.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

BOS = "<|bos|>"
EOS = "<|eos|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = (BOS, EOS, PAD)

# A neutral list of common English words, written for this module (not taken from any prompt
# template): the tokenizer sees them so ordinary English context does not fall apart into single
# bytes, and :func:`neutral_sentences` strings them into filler text the model trains on as context.
NEUTRAL_WORDS = tuple(
    """the a an and or but if then so because when while after before about above across again
    all also always am any are as at be been being both by can could did do does done down each
    even ever every few for from get give go going good great had has have he her here him his how
    i in into is it its just know last like little long look made make many may me might more most
    much must my never new no not now of off often old on once one only other our out over own
    people place put quite rather right said same say see she should show since small some
    something still such take tell than that their them there these they thing think this those
    though through time to today too under until up us very want was way we well were what where
    which who why will with without would year yes yet you your man woman boy girl house home
    school water food money car road city country room door window table chair hand head eye face
    word name number line water tree river sea sun moon star sky rain snow wind fire stone green
    blue red white black big large high low early young open close begin end keep leave move turn
    run walk sit stand live bring write learn play work call try ask feel seem become hold hear
    watch carry buy pay send build stay fall cut reach kill remain suggest raise pass sell decide
    return explain hope develop drive break receive agree support hit produce eat cover catch draw
    choose cause point week month hour minute government company group problem system program
    service area state family student teacher doctor market music game party power war land air
    paper letter story idea fact case question answer friend child parent life world week
    """.split()  # noqa: SIM905
)


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


def neutral_sentences(n: int, seed: int = 0, words: tuple[int, int] = (6, 24)) -> list[str]:
    """``n`` word-salad sentences of :data:`NEUTRAL_WORDS` (seeded): filler context for training
    and extra corpus for the tokenizer."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        chosen = [rng.choice(NEUTRAL_WORDS) for _ in range(rng.randint(*words))]
        text = " ".join(chosen)
        out.append(text[0].upper() + text[1:] + rng.choice(".?!,:"))
    return out
