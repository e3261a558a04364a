"""Typed configs for SKeB jobs (spec section 5): metric M9, the framing bank, probing generation.

Light on purpose: imports only the standard library and :mod:`workbench.config` (no torch), so
the GUI and CLI can list the fields without loading a model stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.config import param

__all__ = ["SkebMetricsConfig", "SkebGenerationConfig", "m9_kwargs"]


@dataclass
class SkebMetricsConfig:
    """How prompts are framed and scored: M9's spreading-activation parameters and the bank."""

    s_max: float | None = param(
        None,
        "M9: ACT-R maximum associative strength S_max in S_j = S_max - ln(fan_j). "
        "Empty = ln(number of graph nodes), so strengths are never negative.",
        range=(0.0, 100.0),
    )
    source_activation: float = param(
        1.0,
        "M9: total source activation W, split equally over the prompt's entities (W_j = W / n).",
        range=(0.0, 1000.0),
    )
    framing_bank: str = param(
        "",
        "Framing template bank (JSON). Empty = the shipped resources/skeb/framings.json.",
        path=True,
    )
    n_related: int = param(
        3,
        "Related graph entities put in a template's {related} slot (raises entanglement).",
        range=(0, 50),
    )
    framing_seed: int = param(0, "Seed for drawing a template per prompt.", range=(0, None))
    layout_seed: int = param(
        0, "Seed of the spring layout of the domain-graph view.", range=(0, None), advanced=True
    )


@dataclass
class SkebGenerationConfig:
    """Sampling settings for probing a model with the framed prompts (paper: sampling, 300 tokens)."""

    max_new_tokens: int = param(300, "Tokens generated per response.", range=(1, 4096))
    do_sample: bool = param(True, "Sample (True, as in the paper) or decode greedily (False).")
    temperature: float = param(1.0, "Sampling temperature.", range=(0.0, 10.0))
    top_p: float = param(
        1.0, "Nucleus sampling: keep the smallest token set of this mass.", range=(0.0, 1.0)
    )
    seed: int = param(0, "Random seed for sampling.", range=(0, None))
    samples_per_prompt: int = param(
        1, "Responses drawn per framed prompt (each judged separately).", range=(1, 100)
    )


def m9_kwargs(config: SkebMetricsConfig) -> dict[str, Any]:
    """Keyword arguments for :func:`backends.llm.skeb.metrics.m9` / ``all_metrics``."""
    return {"s_max": config.s_max, "source_activation": config.source_activation}
