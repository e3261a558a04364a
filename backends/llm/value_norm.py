"""The sink value-norm regulariser of backdoored unlearning (spec
``classifier-and-llm-methods.md`` section 6, "Sink value-norm regulariser"; OPTML-Group/
Unlearn-Backdoor ``MUSE/baselines/baselines/iterative.py`` and ``WMDP/RMU/unlearn.py``).

Forward hooks on every decoder block's value projection capture the value vectors ``v`` of the
first ``k`` tokens (positions ``1..k``, or ``0..k-1`` with ``include_first``: BOS is position 0):

- a Llama / Mistral / Qwen / OPT block has ``self_attn.v_proj``: its output is ``v`` [B, T, d_v];
- a GPT-2 block has one fused ``attn.c_attn`` whose output is ``[q | k | v]`` [B, T, 3d]: its last
  third is ``v``;
- a LoRA (peft) wrapper of either is hooked at the wrapper, so the adapted values are seen.

**Token axis.** The slice is ``v[:, start:k]`` (the WMDP code), one norm per (item, token), padding
masked. The MUSE code slices ``v[:k]`` on the [batch, seq, hidden] tensor, which selects the first
k *batch items* (all their tokens) instead; ``axis="batch"`` reproduces it and exists only for
that (``penalty_slice: batch`` in the configs).

Penalties (lambda_v times):

- ``fixed``: ``mean_layers mean_tokens ||v||``;
- ``reference``: ``mean_layers mean_tokens | ||v_theta|| - ||v_target|| |`` with the target's
  norms on the same batch (baseline-unlearned model on D_f, original model on D_p and D_r).

``mean_tokens`` is over the real (unpadded) sliced tokens of the whole batch, per layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from backends.llm.methods.rmu import decoder_blocks

AXES = ("tokens", "batch")
MODES = ("off", "fixed", "reference")


def _v_part(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def value_projections(
    model: nn.Module, layers: Sequence[int] = ()
) -> list[tuple[nn.Module, slice | None]]:
    """Per chosen decoder block, the module producing its values and the slice of its output's
    last axis that holds them (``None``: the whole output, a separate ``v_proj``)."""
    blocks = decoder_blocks(model)
    n = len(blocks)
    chosen = sorted({(i + n) if i < 0 else i for i in layers}) if layers else list(range(n))
    for i in chosen:
        if not 0 <= i < n:
            raise ValueError(f"penalty layer {i} is out of range for a model with {n} blocks")
    out: list[tuple[nn.Module, slice | None]] = []
    for i in chosen:
        named = list(blocks[i].named_modules())
        # the outermost module of that name (a peft wrapper before its base_layer)
        v = [(m_name, m) for m_name, m in named if _v_part(m_name) == "v_proj"]
        fused = [(m_name, m) for m_name, m in named if _v_part(m_name) == "c_attn"]
        if v:
            out.append((min(v, key=lambda x: x[0].count("."))[1], None))
        elif fused:
            module = min(fused, key=lambda x: x[0].count("."))[1]
            width = _out_features(module)
            if width % 3:
                raise ValueError(f"fused c_attn of width {width} is not [q | k | v]")
            out.append((module, slice(2 * width // 3, width)))
        else:
            raise ValueError(
                f"block {i} has neither a v_proj nor a fused c_attn; the value-norm penalty "
                "supports GPT-2 and Llama-style attention"
            )
    return out


def _out_features(module: nn.Module) -> int:
    base = getattr(module, "base_layer", module)
    for name in ("nf", "out_features"):
        value = getattr(base, name, None)
        if isinstance(value, int):
            return value
    weight = getattr(base, "weight", None)
    if weight is None:
        raise ValueError(f"cannot tell the output width of {type(module).__name__}")
    return int(weight.shape[-1] if type(base).__name__ == "Conv1D" else weight.shape[0])


def token_window(k: int, include_first: bool) -> tuple[int, int]:
    """``(start, stop)`` of the penalised positions: ``1..k`` or, with BOS, ``0..k-1``."""
    if k < 1:
        raise ValueError(f"shallow token count k must be at least 1, got {k}")
    return (0, k) if include_first else (1, k + 1)


class ValueCapture:
    """A context manager that records, per hooked block, the norms of the sliced value vectors of
    every forward pass made inside it; :meth:`take` returns and clears them.

    ``axis="tokens"``: norms ``[B, K]`` of ``v[:, start:stop]``; ``axis="batch"`` (the MUSE slip):
    norms ``[min(k, B), T]`` of ``v[:k]``."""

    def __init__(
        self,
        model: nn.Module,
        k: int,
        *,
        include_first: bool = False,
        axis: str = "tokens",
        layers: Sequence[int] = (),
    ) -> None:
        if axis not in AXES:
            raise ValueError(f"unknown slice axis {axis!r}; choose tokens or batch")
        self.k, self.axis = k, axis
        self.start, self.stop = token_window(k, include_first)
        self.targets = value_projections(model, layers)
        self.records: list[list[torch.Tensor]] = [[] for _ in self.targets]
        self.handles: list[Any] = []

    def _hook(self, index: int, part: slice | None) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            v = output[0] if isinstance(output, tuple) else output
            if part is not None:
                v = v[..., part]
            sliced = v[:, self.start : self.stop] if self.axis == "tokens" else v[: self.k]
            self.records[index].append(sliced.float().norm(dim=-1))

        return hook

    def __enter__(self) -> ValueCapture:
        for i, (module, part) in enumerate(self.targets):
            self.handles.append(module.register_forward_hook(self._hook(i, part)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def take(self, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The norms of the last forward pass, ``[layers, rows, positions]``, and their float mask
        of real tokens ``[rows, positions]``, from that pass's attention mask [B, T]."""
        if any(not r for r in self.records):
            raise RuntimeError("no forward pass was captured")
        norms = torch.stack([r[-1] for r in self.records])
        self.records = [[] for _ in self.targets]
        if self.axis == "tokens":
            mask = attention_mask[:, self.start : self.stop]
        else:
            mask = attention_mask[: self.k]
        return norms, mask.to(norms.dtype)


def masked_layer_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mean_layers mean_tokens``: per layer the mean over masked entries, then over layers."""
    per_layer = (values * mask).flatten(1).sum(-1) / mask.sum().clamp_min(1.0)
    return per_layer.mean()


def penalty(
    mode: str,
    norms: torch.Tensor,
    mask: torch.Tensor,
    target: torch.Tensor | None = None,
) -> torch.Tensor:
    """The unweighted penalty: ``fixed`` mean norm or ``reference`` mean absolute difference to
    ``target`` norms (same shape); ``off`` is 0."""
    if mode == "off":
        return norms.new_zeros(())
    if mode == "fixed":
        return masked_layer_mean(norms, mask)
    if mode == "reference":
        if target is None or target.shape != norms.shape:
            raise ValueError("the reference penalty needs the target's norms on the same batch")
        return masked_layer_mean((norms - target.detach()).abs(), mask)
    raise ValueError(f"unknown penalty mode {mode!r}; choose {', '.join(MODES)}")


@torch.no_grad()
def target_norms(
    model: nn.Module, capture: ValueCapture, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """The norms a frozen target model gives the same batch (``capture`` built on that model)."""
    with capture:
        model(input_ids=input_ids, attention_mask=attention_mask)
    return capture.take(attention_mask)[0]


__all__ = [
    "AXES",
    "MODES",
    "ValueCapture",
    "masked_layer_mean",
    "penalty",
    "target_norms",
    "token_window",
    "value_projections",
]
