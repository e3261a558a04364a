"""RMU: representation misdirection for unlearning (spec ``classifier-and-llm-methods.md``
section 7; section 6 for the WMDP / MUSE settings).

With ``h_l`` the output of decoder block ``layer`` (a forward hook), u a seeded random unit vector
(uniform in [0, 1)^d, normalised, as WMDP) and c the steering coefficient, per step:

``forget_weight * MSE(h_l^theta(x_f), c u) + alpha * MSE(h_l^theta(x_r), h_l^ref(x_r))``

where MSE is the per-token mean over hidden units, averaged over the real tokens of each text
and then over the batch (OpenUnlearning's ``compute_activation_loss``).  The BOS position is left
out of both terms: its activation is the same for every text, so steering it on forget texts
would fight the retain term.  ``retain_loss`` may swap the activation term for NLL / KL or drop
it.  Only the MLP parameters of ``update_layers`` (default: ``layer`` itself; WMDP updates
layer-2..layer) are updated, and of those only the ones the caller left trainable (so a
LoRA-wrapped model trains the MLP adapters only).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from backends.common.method import Hooks, MethodResult, frozen_copy, model_device, prepare
from backends.llm.methods.common import (
    LLMData,
    RetainTerm,
    TokenBatch,
    run_unlearning,
)
from backends.llm.methods.configs import RMUConfig

# ModuleList names of the decoder blocks in common families (GPT-2, Llama/Mistral/Qwen, OPT,
# GPT-NeoX, GPT-J ...), matched as name suffixes; peft wrappers only add prefixes.
_BLOCK_LISTS = ("transformer.h", "model.layers", "decoder.layers", "gpt_neox.layers", "layers")
# Output projections of an MLP: GPT-2 / GPT-J, Llama, GPT-NeoX, OPT (no ``mlp`` module).
_MLP_OUT = ("c_proj", "down_proj", "dense_4h_to_h", "fc_out", "fc2")
_OPT_MLP = ("fc1", "fc2")


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder blocks (clear error for an unknown architecture)."""
    lists = {n: m for n, m in model.named_modules() if isinstance(m, nn.ModuleList)}
    for suffix in _BLOCK_LISTS:
        for name, module in lists.items():
            if name == suffix or name.endswith("." + suffix):
                return module
    raise ValueError(
        "RMU cannot find the decoder blocks of this model (looked for a ModuleList named "
        f"{', '.join(_BLOCK_LISTS)})"
    )


def _index(n: int, i: int) -> int:
    j = i + n if i < 0 else i
    if not 0 <= j < n:
        raise ValueError(f"layer {i} is out of range for a model with {n} decoder blocks")
    return j


def mlp_parameters(block: nn.Module, update: str) -> list[tuple[str, nn.Parameter]]:
    """A block's MLP parameters (``"mlp"``) or its MLP output projection's (``"mlp_out"``)."""
    if hasattr(block, "mlp"):
        named = [(f"mlp.{n}", p) for n, p in block.mlp.named_parameters()]
    else:  # OPT keeps fc1 / fc2 on the block itself
        named = [(n, p) for n, p in block.named_parameters() if n.split(".")[0] in _OPT_MLP]
    if update == "mlp_out":
        named = [(n, p) for n, p in named if any(part in _MLP_OUT for part in n.split("."))]
    elif update != "mlp":
        raise ValueError(f"unknown update {update!r}; choose mlp or mlp_out")
    return named


def layer_output(model: nn.Module, block: nn.Module, batch: TokenBatch) -> torch.Tensor:
    """The output hidden states [B, T, d] of ``block`` in a forward pass of ``model``."""
    cache: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        cache.append(output[0] if isinstance(output, tuple) else output)

    handle = block.register_forward_hook(hook)
    try:
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    finally:
        handle.remove()
    return cache[0]


def activation_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token mean squared difference over hidden units, averaged over masked tokens of each
    row, then over rows ([B, T, d] activations, [B, T] mask)."""
    per_token = (a.float() - b.float()).pow(2).mean(-1)
    mask = mask.float()
    per_row = (per_token * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)
    return per_row.mean()


def _content_mask(batch: TokenBatch) -> torch.Tensor:
    mask = batch.attention_mask.clone()
    mask[:, 0] = 0  # the BOS position
    return mask


def unlearn(
    model: nn.Module,
    data: LLMData,
    cfg: RMUConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with RMU (spec sections 7 and 6)."""
    flags = [p.requires_grad for p in model.parameters()]
    student = prepare(model, seed)
    reference = frozen_copy(model)
    blocks, ref_blocks = decoder_blocks(student), decoder_blocks(reference)
    layer = _index(len(blocks), cfg.layer)
    update = [_index(len(blocks), i) for i in cfg.update_layers] or [layer]
    params = [
        p
        for i in sorted(set(update))
        for _, p in mlp_parameters(blocks[i], cfg.update)
        if p.requires_grad
    ]
    if not params:
        raise ValueError(
            f"RMU found no trainable {cfg.update} parameters in blocks {sorted(set(update))}"
        )
    chosen = {id(p) for p in params}
    for p in student.parameters():  # no gradients for the rest: faster, and nothing else moves
        if id(p) not in chosen:
            p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    hidden = int(getattr(student.config, "hidden_size", 0) or student.config.n_embd)
    u = torch.rand(hidden, generator=generator)
    control = (cfg.steering_coeff * u / u.norm()).to(model_device(student))
    retain_kind = cfg.retain_loss
    other = None
    if retain_kind in ("none", "nll", "kl"):
        other = RetainTerm(retain_kind, reference if retain_kind == "kl" else None)

    def step_loss(
        forget: TokenBatch, retain_batch: TokenBatch | None, _: list[int]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        h = layer_output(student, blocks[layer], forget)
        f = activation_mse(h, control.to(h.dtype).expand_as(h), _content_mask(forget))
        loss = cfg.forget_weight * f
        parts = {"forget_mse": float(f.detach())}
        if retain_batch is not None:
            if other is None:
                h_r = layer_output(student, blocks[layer], retain_batch)
                with torch.no_grad():
                    h_ref = layer_output(reference, ref_blocks[layer], retain_batch)
                r = activation_mse(h_r, h_ref, _content_mask(retain_batch))
            else:
                r = other(student, retain_batch)
            loss = loss + cfg.alpha * r
            parts[f"retain_{retain_kind}"] = float(r.detach())
        return loss, parts

    need_retain = other is None or other.needs_retain
    run_unlearning(
        student,
        data,
        cfg,
        step_loss,
        hooks,
        seed=seed,
        name="RMU",
        need_retain=need_retain,
        params=params,
    )
    for p, flag in zip(student.parameters(), flags, strict=True):  # the caller's flags again
        p.requires_grad_(flag)
    return MethodResult()
