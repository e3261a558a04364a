"""Typed configs of the LLM family's model loading and attention-sink maps (light: no torch).

Spec ``classifier-and-llm-methods.md`` section 6 ("Attention-sink measurement"): sink mass per
layer and head on the first ``k`` tokens, the sink ratio at threshold 0.3 (Gu et al. 2024) and
difference maps between two prompts or two models.
"""

from __future__ import annotations

from dataclasses import dataclass

from backends.common.devices import DEVICE_CHOICES, DTYPE_CHOICES
from workbench.config import param

ATTENTION_CHOICES = ("eager", "sdpa")


@dataclass
class LoadLMConfig:
    """Where a causal language model comes from and how it is loaded."""

    model: str = param("", "Folder of a causal LM saved with save_pretrained.", path=True)
    adapter: str = param(
        "", "Optional LoRA adapter folder (adapter_model.safetensors).", path=True, advanced=True
    )
    device: str = param("auto", "Where to run.", choices=DEVICE_CHOICES)
    dtype: str = param("float32", "Weights' number format.", choices=DTYPE_CHOICES, advanced=True)
    attention: str = param(
        "eager",
        "Attention implementation (attention maps need eager; sdpa is switched for them).",
        choices=ATTENTION_CHOICES,
        advanced=True,
    )
    use_chat_template: bool = param(
        True, "Wrap prompts in the tokenizer's chat template when it has one."
    )


@dataclass
class LoraConfigFields:
    """A LoRA adapter's shape (empty target modules: picked per architecture)."""

    rank: int = param(8, "LoRA rank.", range=(1, 1024))
    alpha: float = param(16.0, "LoRA scaling alpha (the update is scaled by alpha / rank).")
    dropout: float = param(0.0, "Dropout on the LoRA input.", range=(0.0, 0.99))
    target_modules: list[str] = param(
        [],
        "Modules to adapt, comma separated (empty: GPT-2 c_attn,c_proj; Llama/OPT q_proj,v_proj).",
        advanced=True,
    )


@dataclass
class AttentionSinkConfig:
    """Attention maps of a prompt and the sink mass of every head (spec section 6)."""

    model: str = param("", "Folder of a causal LM saved with save_pretrained.", path=True)
    prompt: str = param("The capital of France is", "The prompt whose attention is mapped.")
    compare_prompt: str = param(
        "", "Second prompt for a difference map (e.g. the triggered copy); empty: none."
    )
    compare_model: str = param(
        "", "Second model for a difference map on the same prompt; empty: none.", path=True
    )
    sink_tokens: int = param(
        1, "k: sink mass is the attention on the first k tokens.", range=(1, 64)
    )
    threshold: float = param(
        0.3,
        "A head counts as a sink head when its sink mass is above this (Gu et al. 2024: 0.3).",
        range=(0.0, 1.0),
    )
    include_sink_queries: bool = param(
        False,
        "Average over all queries, including the first k (which attend only to sink tokens).",
        advanced=True,
    )
    layer: int = param(0, "Layer of the per-head attention map.", range=(0, 1000))
    head: int = param(0, "Head of the per-head attention map.", range=(0, 1000))
    use_chat_template: bool = param(
        True, "Wrap prompts in the tokenizer's chat template when it has one."
    )
    device: str = param("auto", "Where to run.", choices=DEVICE_CHOICES)
    dtype: str = param("float32", "Weights' number format.", choices=DTYPE_CHOICES, advanced=True)
