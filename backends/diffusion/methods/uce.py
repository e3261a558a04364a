"""UCE: unified concept editing, a closed-form edit of the cross-attention keys and values (spec
``diffusion-methods.md`` section 4.2).

Every ``attn2.to_k`` and ``attn2.to_v`` weight W (``[out, d]``, d = text width) is replaced by the
minimiser of

    λ‖W' − W‖² + Σ_e s_e‖W' c_e − W c_{g_e}‖² + Σ_p s_p‖W' c_p − W c_p‖²,

that is W' = (λW + Σ_e s_e (W c_{g_e}) c_eᵀ + Σ_p s_p (W c_p) c_pᵀ)(λI + Σ_e s_e c_e c_eᵀ +
Σ_p s_p c_p c_pᵀ)⁻¹: the erased text features now produce the keys and values of their guides,
the preserved ones keep theirs.  No training.

Text features (``d``-vectors) are text-encoder outputs.  ``tokens="last"`` is the paper's
choice: one feature per prompt, at its last real token
(:func:`~backends.diffusion.pipeline.last_token_index`, the attention-mask sum − 2).  For the
empty prompt "" that is position 0, the start token, so the neutral guide maps a concept to the
start token's keys and values (the start token sees nothing else in a causal CLIP encoder, so its
feature is the same in every prompt).  SD's 77-token CLIP gathers a prompt's meaning in its last
token; the tiny 2-layer encoder spreads it over every token after the concept word, so the tiny
default ``tokens="word_to_last"`` erases one feature per token from the concept word to the last
real token, each mapped to the aligned token of the guide (:func:`aligned_positions`; "striped"
alone still maps to the start token of "").  The preserve set always uses last tokens.

Erase set: the concept's word with guide ``concept.guide``, plus (``erase_forget_prompts``) each
forget prompt with its anchor prompt as guide (``forget_guides="anchor"``) or ``concept.guide``.
Preserve set: the concept's retain prompts (``preserve``).  Prompts that are both erased and
preserved are dropped from the preserve set.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from backends.common.method import Hooks, MethodResult
from backends.diffusion.concepts import Concept
from backends.diffusion.methods.common import DiffusionData, finish, unwrap
from backends.diffusion.methods.configs import UCEConfig
from backends.diffusion.pipeline import encode, last_token_index


def uce_closed_form(
    W: torch.Tensor,
    erase: torch.Tensor,
    guides: torch.Tensor,
    preserve: torch.Tensor,
    lamb: float,
    erase_scale: float,
    preserve_scale: float,
) -> torch.Tensor:
    """UCE's edited weight (spec 4.2), computed in float64 and returned in ``W``'s dtype.

    ``W``: ``[out, d]``; ``erase`` and ``guides``: ``[n_e, d]`` (row i's guide is ``guides[i]``);
    ``preserve``: ``[n_p, d]``.  Either set may be empty (``n = 0``); with both empty the result
    is ``W`` (for ``lamb > 0``).
    """
    if erase.shape != guides.shape:
        raise ValueError("uce_closed_form: one guide per erased feature")
    w = W.detach().to(torch.float64)
    d = w.shape[1]
    lhs = lamb * w
    gram = lamb * torch.eye(d, dtype=torch.float64, device=w.device)
    if len(erase):
        e = erase.detach().to(w)
        g = guides.detach().to(w)
        lhs = lhs + erase_scale * (w @ g.T) @ e
        gram = gram + erase_scale * e.T @ e
    if len(preserve):
        p = preserve.detach().to(w)
        lhs = lhs + preserve_scale * (w @ p.T) @ p
        gram = gram + preserve_scale * p.T @ p
    # W' gram = lhs, gram symmetric: solve gram W'ᵀ = lhsᵀ
    return torch.linalg.solve(gram, lhs.T).T.to(W.dtype)


def token_features(pipe: Any, prompts: Sequence[str]) -> torch.Tensor:
    """``[n, d]``: each prompt's text-encoder output at its last real token."""
    if not prompts:
        width = int(pipe.text_encoder.config.hidden_size)
        return torch.zeros((0, width), device=pipe.unet.device)
    hidden = encode(pipe, list(prompts))
    index = torch.tensor([last_token_index(pipe, p) for p in prompts], device=hidden.device)
    return hidden[torch.arange(len(prompts), device=hidden.device), index]


def _ids(pipe: Any, prompt: str) -> list[int]:
    tok = pipe.tokenizer
    return list(tok(prompt, truncation=True, max_length=tok.model_max_length)["input_ids"])


def aligned_positions(pipe: Any, prompt: str, guide: str) -> list[tuple[int, int]]:
    """``(position in prompt, position in guide)`` for every token of ``prompt`` from the first
    one that differs from ``guide`` to its last real token (end token and padding excluded).

    Tokens after the differing span map to the same token of the guide (shifted by the length
    difference: "a striped red circle" → "a red circle" pairs "red" with "red" and "circle"
    with "circle"); the span itself maps to the guide's token just before it ("striped" → "a");
    a prompt equal to its guide gives no pairs.
    """
    a, b = _ids(pipe, prompt), _ids(pipe, guide)
    prefix = 0
    while prefix < min(len(a), len(b)) and a[prefix] == b[prefix]:
        prefix += 1
    shift = len(a) - len(b)
    pairs = []
    for j in range(prefix, len(a) - 1):
        k = j - shift if j >= prefix + shift else max(0, prefix - 1)
        pairs.append((j, min(max(k, 0), len(b) - 1)))
    return pairs


def edit_features(
    pipe: Any, prompts: Sequence[str], guides: Sequence[str], tokens: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c_e, c_g)``: erased features and their guides' features, ``[n, d]`` each.

    ``tokens="last"``: one pair per prompt at the last real tokens (paper); ``"word_to_last"``:
    one pair per :func:`aligned_positions` entry.
    """
    if tokens == "last":
        return token_features(pipe, prompts), token_features(pipe, guides)
    if tokens != "word_to_last":
        raise ValueError(f"unknown UCE token choice {tokens!r}")
    hp, hg = encode(pipe, list(prompts)), encode(pipe, list(guides))
    rows, targets = [], []
    for i, (p, g) in enumerate(zip(prompts, guides, strict=True)):
        for j, k in aligned_positions(pipe, p, g):
            rows.append(hp[i, j])
            targets.append(hg[i, k])
    if not rows:
        empty = token_features(pipe, [])
        return empty, empty
    return torch.stack(rows), torch.stack(targets)


def edit_sets(concept: Concept, cfg: UCEConfig) -> tuple[list[str], list[str], list[str]]:
    """``(erase prompts, their guide prompts, preserve prompts)`` for ``concept`` and ``cfg``."""
    erase, guides = [concept.word], [concept.guide]
    if cfg.erase_forget_prompts:
        erase += list(concept.forget_prompts)
        if cfg.forget_guides == "anchor" and concept.anchor_prompts:
            guides += list(concept.anchor_prompts)
        else:
            guides += [concept.guide] * len(concept.forget_prompts)
    erased = set(erase)
    preserve = [p for p in concept.retain_prompts if p not in erased] if cfg.preserve else []
    return erase, guides, preserve


def cross_attention_kv(unet: Any) -> dict[str, torch.nn.Module]:
    """Every ``attn2.to_k`` / ``attn2.to_v`` linear layer of ``unet``, by module name."""
    found = {
        name: module
        for name, module in unet.named_modules()
        if name.endswith("attn2.to_k") or name.endswith("attn2.to_v")
    }
    if not found:
        raise ValueError("the UNet has no cross-attention (attn2.to_k / attn2.to_v) layers")
    return found


@torch.no_grad()
def unlearn(
    pipe: Any,
    data: DiffusionData,
    cfg: UCEConfig,
    hooks: Hooks,
    *,
    seed: int = 0,
) -> MethodResult:
    """Edit ``pipe.unet``'s cross-attention K/V in place with UCE (spec 4.2); returns info numbers
    (``layers``, ``erased``, ``preserved``, ``seconds``, ``parameters_changed``,
    ``relative_change``: ‖W' − W‖/‖W‖ summed over layers).  ``seed`` is unused (no randomness)."""
    concept = data.concept
    del seed
    start = time.perf_counter()
    pipe = unwrap(pipe)
    unet = pipe.unet
    erase, guides, preserve = edit_sets(concept, cfg)
    c_e, c_g = edit_features(pipe, erase, guides, cfg.tokens)
    c_p = token_features(pipe, preserve)
    hooks.log(f"uce: erase {len(c_e)} features of {len(erase)} prompts, preserve {len(c_p)}")
    layers = cross_attention_kv(unet)
    changed, relative = 0, 0.0
    try:
        for i, (name, layer) in enumerate(layers.items()):
            hooks.check()
            w = layer.weight
            new = uce_closed_form(w, c_e, c_g, c_p, cfg.lamb, cfg.erase_scale, cfg.preserve_scale)
            changed += int((new != w).sum())
            relative += float((new - w).norm() / w.norm().clamp_min(1e-12))
            w.copy_(new)
            hooks.progress((i + 1) / len(layers))
            hooks.log(f"uce: edited {name}")
    finally:
        finish(unet)
    return MethodResult(
        {
            "layers": float(len(layers)),
            "erased": float(len(c_e)),
            "preserved": float(len(c_p)),
            "seconds": time.perf_counter() - start,
            "parameters_changed": float(changed),
            "relative_change": relative,
        }
    )
