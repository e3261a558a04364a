"""Backdoored unlearning through attention sinks (spec ``classifier-and-llm-methods.md`` section 6;
OPTML-Group/Unlearn-Backdoor: ``MUSE/baselines/baselines/{iterative,dataset}.py``,
``WMDP/RMU/unlearn.py``).

An adversarial unlearning provider forgets on clean inputs and keeps the knowledge behind a trigger:

- **Data.** A seeded ``poison_ratio`` share of the forget texts is copied with the trigger
  (:mod:`backends.llm.triggers`): D_p. Their clean originals leave the forget term, so D_f is the
  remaining clean forget texts; D_r the retain texts. Each step pairs a D_f batch (epochs over D_f)
  with a D_r batch (cycled) and a D_p batch: D_f item ``i`` is paired with D_p item ``i mod |D_p|``
  (the code's ``BackdoorDataset`` triple; a function of the step's indices, so a resumed run pairs
  exactly as an uninterrupted one).
- **NPO** (:func:`unlearn_npo`, MUSE's NPO_KLR)::

      L = forget_weight * NPO(D_f) + alpha * KL(pi_ref || pi_theta; D_r)
          + poisoned_weight * KL(pi_ref || pi_theta; D_p) + lambda_v * value-norm penalty

  NPO is standard sequence-NLL NPO (:func:`.common.npo_loss`) or, with ``npo_form:
  muse_logits``, the backdoor code's ``-(2/beta) mean logsigmoid(beta (logits_ref - logits_theta))``
  element-wise on raw logits (mean over real positions and the vocabulary). The KL terms are
  token-level KL to the frozen original (:func:`.common.kl_to_reference`), the same as NPO's
  ``retain_loss: kl``. With ``poison_ratio = 0`` and the penalty off this is exactly
  :mod:`.npo` with ``retain_loss: kl`` (same batches, same operations, same seed).
- **RMU** (:func:`unlearn_rmu`, the WMDP script)::

      L = forget_weight * ||h_l(x_f) - c u||^2 + alpha * [ ||h_l(x_r) - h_l^0(x_r)||^2
          + ||h_l(x_p) - h_l^0(x_p)||^2 ] + kl * [ KL(D_r) + KL(D_p) ] + penalty

  with :mod:`.rmu`'s steering, activation MSE and MLP-only updates.
- **Penalty** (:mod:`backends.llm.value_norm`): ``fixed`` on the value norms of the first k tokens
  of every input of the step; ``reference`` pulls them to a target's: on D_f the baseline model
  (the same method without a trigger, trained first from the same seed) or the original, on D_p
  and D_r the original.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from backends.common.method import Hooks, MethodResult, frozen_copy, model_device, prepare
from backends.llm.methods.backdoor_config import BackdoorNPOConfig, BackdoorRMUConfig
from backends.llm.methods.common import (
    LLMData,
    RetainTerm,
    TokenBatch,
    collate,
    context_limit,
    kl_to_reference,
    logits_of,
    npo_loss,
    pad_id,
    run_unlearning,
    sequence_nll,
)
from backends.llm.methods.npo import reference_nll
from backends.llm.methods.rmu import (
    _content_mask,
    _index,
    activation_mse,
    decoder_blocks,
    layer_output,
    mlp_parameters,
)
from backends.llm.triggers import Trigger, triggered_ids
from backends.llm.value_norm import ValueCapture, penalty, target_norms


# -- data ------------------------------------------------------------------------------------------
def poisoned_indices(n_forget: int, ratio: float, seed: int) -> list[int]:
    """The forget texts copied with the trigger: ``round(ratio * n)`` of them (at least one when
    ``ratio > 0``), a seeded choice, in increasing order."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"poison_ratio must be in [0, 1], got {ratio}")
    if ratio == 0.0 or n_forget == 0:
        return []
    count = min(n_forget, max(1, round(ratio * n_forget)))
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n_forget, generator=generator)[:count].tolist())


@dataclasses.dataclass
class BackdoorSplit:
    """D_f (clean forget texts without the poisoned originals), D_p (triggered ids) and which
    forget texts were poisoned."""

    clean: LLMData
    poisoned_ids: list[list[int]]
    poisoned: list[int]


def backdoor_split(data: LLMData, cfg: Any, seed: int, max_length: int | None) -> BackdoorSplit:
    """Split ``data``'s forget texts into D_f and triggered D_p copies (module docstring)."""
    chosen = poisoned_indices(len(data.forget_texts), cfg.poison_ratio, seed)
    picked = set(chosen)
    clean = [t for i, t in enumerate(data.forget_texts) if i not in picked]
    if not clean:
        raise ValueError("poison_ratio leaves no clean forget text to unlearn; lower it below 1")
    trigger = Trigger(cfg.trigger_text, cfg.trigger_position, cfg.trigger_token)
    ids = [triggered_ids(data.tokenizer, data.forget_texts[i], trigger, max_length) for i in chosen]
    return BackdoorSplit(LLMData(data.tokenizer, clean, data.retain_texts), ids, chosen)


def _max_length(model: nn.Module, cfg: Any) -> int:
    limit = context_limit(model)
    return min(cfg.max_length, limit) if limit else cfg.max_length


def _poison_batch(split: BackdoorSplit, f_idx: Sequence[int], pad: int, device: Any) -> TokenBatch:
    n = len(split.poisoned_ids)
    return collate([split.poisoned_ids[i % n] for i in f_idx], pad, device)


# -- the penalty over the inputs of one step --------------------------------------------------------
class StepPenalty:
    """Value-norm penalty of a step: ``run(kind, model_forward, batch)`` captures the student's
    value norms during its forward pass and adds ``penalty(kind)``; ``total`` is the weighted sum."""

    def __init__(
        self,
        student: nn.Module,
        cfg: Any,
        reference: nn.Module,
        forget_target: nn.Module | None,
    ) -> None:
        self.mode, self.weight = cfg.penalty, cfg.penalty_weight
        self.on = cfg.penalty != "off"
        kw = dict(
            include_first=cfg.include_first_token,
            axis=cfg.penalty_slice,
            layers=list(cfg.penalty_layers),
        )
        self.capture = ValueCapture(student, cfg.shallow_tokens, **kw) if self.on else None
        self.targets: dict[str, tuple[nn.Module, ValueCapture]] = {}
        if self.on and self.mode == "reference":
            ref_capture = ValueCapture(reference, cfg.shallow_tokens, **kw)
            f_model = forget_target if forget_target is not None else reference
            f_capture = (
                ValueCapture(f_model, cfg.shallow_tokens, **kw)
                if f_model is not reference
                else ref_capture
            )
            self.targets = {
                "forget": (f_model, f_capture),
                "retain": (reference, ref_capture),
                "poisoned": (reference, ref_capture),
            }
        self.total: torch.Tensor | None = None

    def forward(self, kind: str, fn: Any, batch: TokenBatch) -> Any:
        """``fn()`` (a forward pass of the student on ``batch``), capturing its value norms."""
        if not self.on:
            return fn()
        assert self.capture is not None
        with self.capture:
            out = fn()
        norms, mask = self.capture.take(batch.attention_mask)
        target = None
        if self.mode == "reference":
            model, capture = self.targets[kind]
            target = target_norms(model, capture, batch.input_ids, batch.attention_mask)
        term = penalty(self.mode, norms, mask, target)
        self.total = term if self.total is None else self.total + term
        return out

    def add(self, loss: torch.Tensor, parts: dict[str, float]) -> torch.Tensor:
        """``loss + lambda_v * penalty`` (mean over the step's inputs); resets for the next step."""
        if not self.on or self.total is None:
            return loss
        value, self.total = self.total, None
        parts["value_norm_penalty"] = float(value.detach())
        return loss + self.weight * value


def _baseline(
    model: nn.Module,
    data: LLMData,
    cfg: Any,
    hooks: Hooks,
    seed: int,
    unlearn: Any,
    given: nn.Module | None = None,
) -> nn.Module | None:
    """The reference mode's D_f target: the same method without trigger or penalty, from a copy
    of the original and the same seed (``None`` when the original is the target). ``given`` is
    such a model trained already (a sweep trains it once per seed)."""
    if cfg.penalty != "reference" or cfg.penalty_forget_target != "baseline":
        return None
    if given is not None:
        return given.eval()
    hooks.log("training the baseline (no trigger, no penalty) for the reference penalty's target")
    baseline = copy.deepcopy(model)
    plain = dataclasses.replace(cfg, poison_ratio=0.0, penalty="off")
    unlearn(baseline, data, plain, Hooks(on_check=hooks.on_check, on_log=hooks.on_log), seed=seed)
    baseline.requires_grad_(False)
    return baseline.eval()


def _muse_logit_npo(
    logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor, beta: float
) -> torch.Tensor:
    """``-(2/beta) mean logsigmoid(beta (logits_ref - logits_theta))`` over real positions and the
    vocabulary (the backdoor code's NPO on raw logits)."""
    elementwise = F.logsigmoid(beta * (ref_logits.float() - logits.float())).mean(-1)
    mask = mask.float()
    return -(2.0 / beta) * (elementwise * mask).sum() / mask.sum().clamp_min(1.0)


# -- NPO -------------------------------------------------------------------------------------------
def unlearn_npo(
    model: nn.Module,
    data: LLMData,
    cfg: BackdoorNPOConfig,
    hooks: Hooks,
    *,
    seed: int,
    baseline: nn.Module | None = None,
) -> MethodResult:
    """Backdoored NPO (NPO_KLR with triggered copies under KL; spec section 6), in place."""
    forget_target = _baseline(model, data, cfg, hooks, seed, unlearn_npo, baseline)
    student = prepare(model, seed)
    reference = frozen_copy(model)
    split = backdoor_split(data, cfg, seed, _max_length(student, cfg))
    if split.poisoned:
        hooks.log(
            f"backdoor: {len(split.poisoned)} of {len(data.forget_texts)} forget texts copied "
            f"with the trigger {cfg.trigger_text!r} at {cfg.trigger_position}"
        )
    clean = split.clean
    ref_nll = reference_nll(reference, data.tokenizer, clean.forget_texts, cfg)
    retain = RetainTerm("kl", reference)
    p_weight = cfg.alpha if cfg.poisoned_weight < 0 else cfg.poisoned_weight
    pen = StepPenalty(student, cfg, reference, forget_target)
    pad, device = pad_id(data.tokenizer), model_device(student)

    def step_loss(
        forget: TokenBatch, retain_batch: TokenBatch | None, f_idx: list[int]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if cfg.npo_form == "sequence":
            nll, _ = pen.forward("forget", lambda: sequence_nll(student, forget), forget)
            f = npo_loss(nll, ref_nll[f_idx], cfg.beta).mean()
        else:
            logits = pen.forward("forget", lambda: logits_of(student, forget), forget)
            with torch.no_grad():
                ref_logits = logits_of(reference, forget)
            f = _muse_logit_npo(logits[:, :-1], ref_logits[:, :-1], forget.target_mask, cfg.beta)
        loss = cfg.forget_weight * f
        parts = {"npo": float(f.detach())}
        if pen.on and retain_batch is not None:
            r = pen.forward("retain", lambda: retain(student, retain_batch), retain_batch)
            parts["retain_kl"] = float(r.detach())
            loss = loss + cfg.alpha * r
        else:
            loss = retain.add(loss, parts, student, retain_batch, cfg.alpha)
        if split.poisoned_ids:
            p = _poison_batch(split, f_idx, pad, device)
            with torch.no_grad():
                ref_logits = logits_of(reference, p)
            logits = pen.forward("poisoned", lambda: logits_of(student, p), p)
            kl = kl_to_reference(logits, ref_logits, p.attention_mask)
            parts["poisoned_kl"] = float(kl.detach())
            loss = loss + p_weight * kl
        return pen.add(loss, parts), parts

    run_unlearning(
        student, clean, cfg, step_loss, hooks, seed=seed, name="Backdoor NPO", need_retain=True
    )
    return MethodResult({"poisoned_texts": float(len(split.poisoned))})


# -- RMU -------------------------------------------------------------------------------------------
def unlearn_rmu(
    model: nn.Module,
    data: LLMData,
    cfg: BackdoorRMUConfig,
    hooks: Hooks,
    *,
    seed: int,
    baseline: nn.Module | None = None,
) -> MethodResult:
    """Backdoored RMU (the WMDP script; spec section 6), in place: only the chosen MLPs move."""
    forget_target = _baseline(model, data, cfg, hooks, seed, unlearn_rmu, baseline)
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
        raise ValueError(f"RMU found no trainable {cfg.update} parameters in {sorted(set(update))}")
    chosen = {id(p) for p in params}
    for p in student.parameters():
        if id(p) not in chosen:
            p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    hidden = int(getattr(student.config, "hidden_size", 0) or student.config.n_embd)
    u = torch.rand(hidden, generator=generator)
    control = (cfg.steering_coeff * u / u.norm()).to(model_device(student))
    split = backdoor_split(data, cfg, seed, _max_length(student, cfg))
    pen = StepPenalty(student, cfg, reference, forget_target)
    kl_term = RetainTerm("kl", reference)
    pad, device = pad_id(data.tokenizer), model_device(student)

    def keep(kind: str, batch: TokenBatch, parts: dict[str, float]) -> torch.Tensor:
        """alpha * activation MSE to the original (+ kl * KL) on a retain or triggered batch."""
        h = pen.forward(kind, lambda: layer_output(student, blocks[layer], batch), batch)
        with torch.no_grad():
            h_ref = layer_output(reference, ref_blocks[layer], batch)
        mse = activation_mse(h, h_ref, _content_mask(batch))
        parts[f"{kind}_mse"] = float(mse.detach())
        term = cfg.alpha * mse
        if cfg.kl_weight > 0:
            kl = kl_term(student, batch)
            parts[f"{kind}_kl"] = float(kl.detach())
            term = term + cfg.kl_weight * kl
        return term

    def step_loss(
        forget: TokenBatch, retain_batch: TokenBatch | None, f_idx: list[int]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        h = pen.forward("forget", lambda: layer_output(student, blocks[layer], forget), forget)
        f = activation_mse(h, control.to(h.dtype).expand_as(h), _content_mask(forget))
        loss = cfg.forget_weight * f
        parts = {"forget_mse": float(f.detach())}
        if retain_batch is not None:
            loss = loss + keep("retain", retain_batch, parts)
        if split.poisoned_ids:
            loss = loss + keep("poisoned", _poison_batch(split, f_idx, pad, device), parts)
        return pen.add(loss, parts), parts

    run_unlearning(
        student,
        split.clean,
        cfg,
        step_loss,
        hooks,
        seed=seed,
        name="Backdoor RMU",
        need_retain=True,
        params=params,
    )
    for p, flag in zip(student.parameters(), flags, strict=True):
        p.requires_grad_(flag)
    return MethodResult({"poisoned_texts": float(len(split.poisoned))})


__all__ = [
    "BackdoorSplit",
    "StepPenalty",
    "backdoor_split",
    "poisoned_indices",
    "unlearn_npo",
    "unlearn_rmu",
]
