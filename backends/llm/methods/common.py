"""What the LLM unlearning methods share: the data, tokenising, batching, steps and losses.

Spec ``classifier-and-llm-methods.md`` section 7 (shared baselines) and section 6 (NPO with a
retain KL, RMU); the loss forms follow OpenUnlearning (``src/trainer/utils.py``: sequence NLL,
``compute_dpo_loss``, ``compute_kl_divergence``).

- the method contract (``unlearn(model, data, cfg, hooks, *, seed) -> MethodResult``, editing
  ``model`` in place; ``data`` an :class:`LLMData`) and its preamble (``prepare``, which keeps the
  ``requires_grad`` flags so a LoRA-wrapped model trains its adapters only, ``frozen_copy``,
  ``model_device``) are :mod:`backends.common.method`'s, as for every family;
- :func:`encode` tokenises texts with the BOS token first (added when the tokenizer does not add
  it), right-padded, with a mask of the predicted positions;
- :func:`token_logprobs` / :func:`sequence_nll` give per-token log-probs and per-sequence summed
  NLL; :func:`npo_loss`, :func:`simnpo_loss` and :func:`kl_to_reference` are the pure loss maths;
- :class:`RetainTerm` is the ``retain_loss`` option (none / NLL / KL to the frozen original);
- :class:`Accumulator` and :func:`gradient_checkpointing` are the loop's memory savers (spec
  section 8, "Memory / compute": OOM on real models, LoRA and gradient checkpointing asked for):
  gradient accumulation through accelerate and transformers' activation checkpointing;
- :func:`run_unlearning` is the loop: per step a forget batch (epochs over the forget set) and a
  retain batch (cycled), ``hooks.check()`` first, one optimiser step; with ``hooks.checkpoints``
  it saves the trained parameters and the optimiser every N steps and resumes exactly after the
  saved step.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from backends.common.loop_checkpoints import trainable
from backends.common.method import Hooks, model_device


@dataclass
class LLMData:
    """What an LLM method unlearns from: the tokenizer, the forget texts and the retain texts."""

    tokenizer: Any
    forget_texts: Sequence[str]
    retain_texts: Sequence[str]


# -- models ----------------------------------------------------------------------------------------
def context_limit(model: nn.Module) -> int | None:
    """The model's longest sequence (``n_positions`` / ``max_position_embeddings``), if known."""
    config = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


# -- tokenising ------------------------------------------------------------------------------------
def bos_id(tokenizer: Any) -> int:
    """The id that leads every sequence: the BOS token (the EOS token when there is no BOS)."""
    for name in ("bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    raise ValueError("the tokenizer has neither a BOS nor an EOS token to start sequences with")


def pad_id(tokenizer: Any) -> int:
    """The padding id (pad, else EOS, else BOS); padded positions are masked anyway."""
    for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


def token_ids(tokenizer: Any, text: str, max_length: int | None = None) -> list[int]:
    """``text``'s token ids with the BOS token first (added once), cut to ``max_length``."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bos = bos_id(tokenizer)
    if not ids or ids[0] != bos:
        ids = [bos, *ids]
    return ids[:max_length] if max_length else ids


@dataclass
class TokenBatch:
    """Right-padded ids, their attention mask, and ``target_mask`` [B, T-1]: 1 where position t+1
    is a real token predicted from positions <= t.

    A micro-batch of gradient accumulation (:class:`Accumulator`) also carries the denominators
    its token means must use so that the accumulated gradient is the whole batch's:
    ``target_norm`` (predicted tokens) and ``token_norm`` (real tokens), each the whole batch's
    count times the micro-batch's share of the step's forget texts; ``None`` otherwise."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    target_norm: float | None = None
    token_norm: float | None = None

    @property
    def target_mask(self) -> torch.Tensor:
        return self.attention_mask[:, 1:]

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def collate(ids: Sequence[Sequence[int]], pad: int, device: torch.device) -> TokenBatch:
    """Right-pad a list of id lists into a :class:`TokenBatch` on ``device``."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    attention = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.as_tensor(list(x), dtype=torch.long)
        attention[i, : len(x)] = 1
    return TokenBatch(input_ids.to(device), attention.to(device))


def encode(
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int | None = None,
    device: torch.device | str = "cpu",
) -> TokenBatch:
    """Tokenise ``texts`` (BOS first) into one right-padded :class:`TokenBatch`."""
    if not texts:
        raise ValueError("no texts to encode")
    ids = [token_ids(tokenizer, t, max_length) for t in texts]
    return collate(ids, pad_id(tokenizer), torch.device(device))


# -- log-probs and NLL -----------------------------------------------------------------------------
def logits_of(model: nn.Module, batch: TokenBatch) -> torch.Tensor:
    """The model's logits [B, T, V] for a batch."""
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def next_token_logprobs(logits: torch.Tensor, batch: TokenBatch) -> torch.Tensor:
    """log pi(x_{t+1} | x_<=t) [B, T-1] (padding positions included; mask with target_mask)."""
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    return logp.gather(-1, batch.input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def token_logprobs(model: nn.Module, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs [B, T-1] and the float mask of real target tokens."""
    logits = logits_of(model, batch)
    return next_token_logprobs(logits, batch), batch.target_mask.float()


def sequence_nll(model: nn.Module, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence summed NLL ``-log pi(y)`` [B] and the number of predicted tokens [B]."""
    logp, mask = token_logprobs(model, batch)
    return -(logp * mask).sum(-1), mask.sum(-1)


def mean_nll(model: nn.Module, batch: TokenBatch) -> torch.Tensor:
    """Token-weighted mean NLL of a batch (the usual causal-LM loss); a micro-batch divides by
    its :attr:`TokenBatch.target_norm` instead of its own count."""
    nll, count = sequence_nll(model, batch)
    if batch.target_norm is not None:
        return nll.sum() / max(batch.target_norm, 1e-12)
    return nll.sum() / count.sum().clamp_min(1.0)


# -- loss maths (pure functions of tensors) --------------------------------------------------------
def npo_loss(nll_theta: torch.Tensor, nll_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-sequence NPO loss ``(2/beta) log(1 + (pi_theta/pi_ref)^beta)``.

    With sequence NLLs, ``log(pi_theta/pi_ref) = nll_ref - nll_theta``, so the loss is
    ``(2/beta) softplus(beta (nll_ref - nll_theta)) = -(2/beta) logsigmoid(-beta log-ratio)``;
    it is ``(2/beta) log 2`` where pi_theta = pi_ref."""
    return (2.0 / beta) * F.softplus(beta * (nll_ref - nll_theta))


def simnpo_loss(
    nll_sum: torch.Tensor, n_tokens: torch.Tensor, beta: float, gamma: float
) -> torch.Tensor:
    """Per-sequence SimNPO loss ``-(2/beta) log sigmoid(beta * nll_sum/|y| - gamma)``.

    Reference-free and length-normalised (Fan et al. 2024); OpenUnlearning writes it with
    ``delta = gamma / beta`` inside: ``-(2/beta) log sigmoid(beta (nll/|y| - delta))``."""
    return -(2.0 / beta) * F.logsigmoid(beta * nll_sum / n_tokens.clamp_min(1.0) - gamma)


def kl_to_reference(
    logits: torch.Tensor,
    ref_logits: torch.Tensor,
    mask: torch.Tensor,
    denominator: float | None = None,
) -> torch.Tensor:
    """Mean over masked positions of the token-level ``KL(pi_ref || pi_theta)``.

    ``logits`` / ``ref_logits`` are [B, T, V] (or already cut to [B, T-1, V]); ``mask`` marks the
    positions to average over.  As OpenUnlearning's ``compute_kl_divergence`` (KL with the
    reference as the target distribution), but averaged over real tokens only. ``denominator``
    replaces the mask's count (a micro-batch's :attr:`TokenBatch.token_norm`)."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    log_q = F.log_softmax(ref_logits.float(), dim=-1)
    kl = (log_q.exp() * (log_q - log_p)).sum(-1)
    mask = mask.float()
    if denominator is not None:
        return (kl * mask).sum() / max(denominator, 1e-12)
    return (kl * mask).sum() / mask.sum().clamp_min(1.0)


class RetainTerm:
    """The ``retain_loss`` option: ``"none"`` (0), ``"nll"`` (mean NLL of retain texts) or
    ``"kl"`` (token-level KL(pi_ref || pi_theta) to the frozen original on retain texts)."""

    def __init__(self, kind: str, reference: nn.Module | None = None) -> None:
        if kind not in ("none", "nll", "kl"):
            raise ValueError(f"unknown retain_loss {kind!r}; choose none, nll or kl")
        if kind == "kl" and reference is None:
            raise ValueError("retain_loss='kl' needs the reference model")
        self.kind, self.reference = kind, reference

    @property
    def needs_retain(self) -> bool:
        return self.kind != "none"

    def __call__(self, student: nn.Module, batch: TokenBatch | None) -> torch.Tensor:
        if self.kind == "none" or batch is None:
            return torch.zeros((), device=model_device(student))
        if self.kind == "nll":
            return mean_nll(student, batch)
        assert self.reference is not None
        with torch.no_grad():
            ref_logits = logits_of(self.reference, batch)
        return kl_to_reference(
            logits_of(student, batch), ref_logits, batch.attention_mask, batch.token_norm
        )

    def add(
        self,
        loss: torch.Tensor,
        parts: dict[str, float],
        student: nn.Module,
        batch: TokenBatch | None,
        weight: float,
    ) -> torch.Tensor:
        """``loss + weight * retain term`` (unchanged for ``"none"``), logging it in ``parts``."""
        if not self.needs_retain:
            return loss
        r = self(student, batch)
        parts[f"retain_{self.kind}"] = float(r.detach())
        return loss + weight * r


# -- batching --------------------------------------------------------------------------------------
class TextSet:
    """Texts tokenised once (BOS first); :meth:`batch` collates a subset on the model's device."""

    def __init__(
        self, tokenizer: Any, texts: Sequence[str], max_length: int | None, device: torch.device
    ) -> None:
        self.texts = list(texts)
        self.ids = [token_ids(tokenizer, t, max_length) for t in self.texts]
        self.pad, self.device = pad_id(tokenizer), device

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, indices: Sequence[int] | torch.Tensor) -> TokenBatch:
        return collate([self.ids[int(i)] for i in indices], self.pad, self.device)

    def micro_batch(self, chunk: Sequence[int], whole: Sequence[int], share: float) -> TokenBatch:
        """The batch of ``chunk``, one micro-batch of the batch ``whole`` whose forget share is
        ``share``: its token means divide by the whole batch's counts times ``share``."""
        batch = self.batch(chunk)
        tokens = sum(len(self.ids[int(i)]) for i in whole)
        batch.token_norm = tokens * share
        batch.target_norm = (tokens - len(whole)) * share
        return batch


def forget_retain_indices(
    n_forget: int, n_retain: int, batch_size: int, epochs: int, seed: int
) -> Iterator[tuple[int, list[int], list[int]]]:
    """(epoch, forget indices, retain indices) per step.

    Each epoch covers a (seed, epoch)-shuffled permutation of the forget set once; the retain set
    is drawn in shuffled passes, re-shuffled at each wrap (empty lists when ``n_retain`` is 0)."""
    generator = torch.Generator().manual_seed(seed)
    retain: list[int] = []
    for epoch in range(epochs):
        perm = torch.randperm(n_forget, generator=generator).tolist()
        for start in range(0, n_forget, batch_size):
            f_idx = perm[start : start + batch_size]
            r_idx: list[int] = []
            if n_retain:
                need = min(batch_size, n_retain)
                while len(retain) < need:
                    retain += torch.randperm(n_retain, generator=generator).tolist()
                r_idx, retain = retain[:need], retain[need:]
            yield epoch, f_idx, r_idx


def make_optimizer(params: list[nn.Parameter], name: str, lr: float) -> torch.optim.Optimizer:
    """AdamW without weight decay, or SGD with momentum 0.9."""
    if not params:
        raise ValueError("no trainable parameters to optimise")
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    raise ValueError(f"unknown optimizer {name!r}; choose adamw or sgd")


StepLoss = Callable[
    [TokenBatch, TokenBatch | None, list[int]], tuple[torch.Tensor, dict[str, float]]
]


def micro_batches(indices: Sequence[int], k: int) -> list[list[int]]:
    """``indices`` split into ``k`` consecutive chunks whose sizes differ by at most one (the
    first ones larger); chunks past the end are empty when there are fewer than ``k`` indices."""
    n = len(indices)
    base, extra = divmod(n, k)
    out, start = [], 0
    for c in range(k):
        size = base + (1 if c < extra else 0)
        out.append(list(indices[start : start + size]))
        start += size
    return out


def _launched_world() -> int:
    """The number of processes this one was launched among (``WORLD_SIZE``; 1 outside a
    launch)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


class Accumulator:
    """One optimiser step from ``k`` micro-batches, through accelerate.

    ``Accelerator(gradient_accumulation_steps=k)`` does the accumulation (never hand-written):
    each micro-batch runs inside ``accelerator.accumulate()``, ``accelerator.backward`` divides
    its loss by ``k``, and the prepared optimiser steps and zeroes only on the k-th call. A step
    always makes exactly ``k`` calls (a micro-batch may be empty when the batch holds fewer than
    ``k`` texts), so accelerate's counter stays in phase with the batches. Each micro-batch's
    loss is weighted by ``k * n_c / n`` (``n_c`` of the step's ``n`` forget texts), so the
    accumulated gradient is the gradient of the whole batch's mean loss for every loss that is a
    mean over sequences (NPO, SimNPO): 4 micro-batches of 1 text give the gradient of one batch
    of 4. The means over *tokens* (GA's and GradDiff's forget NLL, the NLL and KL retain terms)
    are made exact too: a micro-batch's :class:`TokenBatch` divides by the whole batch's token
    count times its share (:meth:`TextSet.micro_batch`), so ``k n / n_c`` cancels (as
    transformers' Trainer does with ``num_items_in_batch``). RMU's activation MSE, a token mean
    inside the method, is averaged per micro-batch (exact when they hold equally many tokens).

    The model is not passed to ``accelerator.prepare`` (``device_placement=False``): it stays
    where it was loaded (one device, or spread by ``device_map``).

    Several processes (``accelerate launch``, :mod:`workbench.accelerate_launch`): the
    accelerator finds them (``num_processes`` > 1); :meth:`distributed` wraps the model in DDP
    through ``accelerator.prepare_model`` for the loop, and each rank takes its shard
    ``batch[rank::world]`` of every batch. Its micro-batches are weighted by their share of the
    *whole* batch times ``k * world``: DDP averages the ranks' gradients (dividing by ``world``),
    so the step's gradient is the whole batch's, as in one process (up to float rounding; exact
    when every rank's shard holds at least ``k`` forget texts, always with ``k = 1``, since a
    micro-batch without forget texts drops its retain texts, in one process too). The retain
    texts are shared among the ranks that have forget texts (a retain term needs a forget
    micro-batch to ride on). A rank whose shard is empty (a batch smaller than the world) still
    runs a zero-weighted backward, so that DDP's gradient all-reduce never waits for it. The logged loss and parts are summed over
    the ranks (``gather_object``), so they are the whole batch's."""

    def __init__(self, optimizer: torch.optim.Optimizer, steps: int) -> None:
        from accelerate import Accelerator

        if steps < 1:
            raise ValueError(f"grad_accum_steps must be at least 1, got {steps}")
        self.k = steps
        launched = _launched_world()
        if launched > 1:
            from accelerate import DistributedDataParallelKwargs

            # a method may leave a trainable parameter out of a step's graph: DDP must not wait
            ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
            self.accelerator = Accelerator(
                gradient_accumulation_steps=steps, device_placement=False, kwargs_handlers=[ddp]
            )
        else:
            self.accelerator = Accelerator(
                gradient_accumulation_steps=steps, device_placement=False
            )
        self.world = int(self.accelerator.num_processes)
        self.rank = int(self.accelerator.process_index)
        if self.world != launched:
            raise RuntimeError(
                f"this process was launched as one of {launched} but accelerate set up "
                f"{self.world} process(es); on a machine without CUDA set "
                "ACCELERATE_USE_CPU=true for a multi-process (gloo) launch"
            )
        self.optimizer = self.accelerator.prepare_optimizer(optimizer, device_placement=False)
        self.wrapped: nn.Module | None = None
        self.own_texts = self.all_texts = 0  # forget texts: this process's shards, all

    @contextmanager
    def distributed(self, model: nn.Module) -> Iterator[None]:
        """With several processes: ``model`` wrapped in DDP (``accelerator.prepare_model``) for
        the block, every call of ``model`` going through the wrapper (the methods' losses call
        the model itself), so DDP averages the gradients. One process: nothing changes."""
        if self.world == 1:
            yield
            return
        wrapped = self.accelerator.prepare_model(model, device_placement=False)
        own = model.__dict__.get("forward")  # accelerate's autocast wrapper, if any
        inner = own if own is not None else type(model).forward.__get__(model)
        busy = [False]

        def forward(*args: Any, **kwargs: Any) -> Any:
            if busy[0]:  # DDP calling the module it wraps
                return inner(*args, **kwargs)
            busy[0] = True
            try:
                return wrapped(*args, **kwargs)
            finally:
                busy[0] = False

        model.forward = forward  # type: ignore[method-assign]
        self.wrapped = wrapped
        try:
            yield
        finally:
            if own is not None:
                model.forward = own  # type: ignore[method-assign]
            else:
                del model.forward
            self.wrapped = None
            self.accelerator.free_memory()  # drops the DDP wrapper (and its gradient hooks)

    def step(
        self,
        f_idx: list[int],
        r_idx: list[int],
        loss_of: Callable[[list[int], list[int], float], tuple[torch.Tensor, dict[str, float]]],
    ) -> tuple[float, dict[str, float]]:
        """Accumulate the ``k`` micro-batches of one batch and step; returns the batch's mean
        loss and its parts (each weighted as the gradient is)."""
        n = len(f_idx)
        total, parts_sum = 0.0, {}
        f_own, r_own = f_idx, r_idx
        if self.world > 1:  # this rank's shard of the batch
            active = min(self.world, n)  # the ranks with forget texts also share the retain ones
            f_own = f_idx[self.rank :: self.world]
            r_own = r_idx[self.rank :: active] if self.rank < active else []
        self.own_texts += len(f_own)
        self.all_texts += n
        models = (self.wrapped,) if self.wrapped is not None else ()
        for f_chunk, r_chunk in zip(
            micro_batches(f_own, self.k), micro_batches(r_own, self.k), strict=True
        ):
            with self.accelerator.accumulate(*models):
                if f_chunk:
                    weight = len(f_chunk) / n
                    loss, parts = loss_of(f_chunk, r_chunk, weight)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(float(loss))
                    self.accelerator.backward(loss * (weight * self.k * self.world))
                    total += weight * float(loss.detach())
                    for key, value in parts.items():
                        parts_sum[key] = parts_sum.get(key, 0.0) + weight * value
                elif self.world > 1:  # keep in step with the other ranks' gradient all-reduce
                    loss, _ = loss_of(f_idx[:1], [], 1.0 / n)
                    self.accelerator.backward(loss * 0.0)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        if self.world > 1:  # the whole batch's loss: the sum of the ranks' weighted shares
            from accelerate.utils import gather_object

            shares = gather_object([(total, parts_sum)])
            total, parts_sum = 0.0, {}
            for rank_total, rank_parts in shares:
                total += rank_total
                for key, value in rank_parts.items():
                    parts_sum[key] = parts_sum.get(key, 0.0) + value
        return total, parts_sum


def gradient_checkpointing(model: nn.Module, on: bool) -> None:
    """Turn the transformers model's gradient checkpointing on or off (non-reentrant, so it
    works when only a LoRA adapter or a few blocks train); a model without it is left alone."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    # transformers 5 renamed gradient_checkpointing_* to activation_checkpointing_*
    kwargs = {"use_reentrant": False}
    if on and hasattr(base, "activation_checkpointing_enable"):
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    elif on and hasattr(base, "gradient_checkpointing_enable"):
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    elif not on and hasattr(base, "activation_checkpointing_disable"):
        base.activation_checkpointing_disable()
    elif not on and hasattr(base, "gradient_checkpointing_disable"):
        base.gradient_checkpointing_disable()


def run_unlearning(
    student: nn.Module,
    data: LLMData,
    cfg: Any,
    step_loss: StepLoss,
    hooks: Hooks,
    *,
    seed: int,
    name: str,
    need_retain: bool,
    params: list[nn.Parameter] | None = None,
) -> None:
    """The shared loop: ``cfg.epochs`` passes over the forget texts in batches of
    ``cfg.batch_size``, each paired with a retain batch when ``need_retain``; per step
    ``check()`` (raises to cancel), ``step_loss(forget_batch, retain_batch, forget_indices)``, backward, step.
    Logs the mean loss (and its parts) per epoch; leaves ``student`` in eval mode.

    ``cfg.grad_accum_steps`` (default 1) splits each batch into that many micro-batches whose
    gradients accelerate accumulates into one optimiser step (:class:`Accumulator`): the same
    steps, batches, checkpoints and resume, with a k-th of the activation memory.
    ``cfg.gradient_checkpointing`` (default off) recomputes activations in the backward pass
    (transformers' gradient checkpointing) for the loop and turns it off afterwards.

    With ``hooks.checkpoints`` the trained parameters (``params``: the whole model, a LoRA adapter or
    RMU's MLPs), the optimiser, the torch RNG and the epoch's running loss sums are saved every
    ``hooks.checkpoints.every`` steps and after the last.  A resumed run (a fresh ``student`` from the
    same model and seed) restores them and continues after the saved step: the batch order is
    replayed from the seed up to it, so the run ends as an uninterrupted one."""
    tokenizer, forget_texts, retain_texts = data.tokenizer, data.forget_texts, data.retain_texts
    checkpoints = hooks.checkpoints
    if not forget_texts:
        raise ValueError("the forget set is empty; nothing to unlearn")
    if need_retain and not retain_texts:
        raise ValueError(f"{name} with this retain term needs retain texts; none were given")
    device = model_device(student)
    limit = context_limit(student)
    max_length = min(cfg.max_length, limit) if limit else cfg.max_length
    forget = TextSet(tokenizer, forget_texts, max_length, device)
    retain = TextSet(tokenizer, retain_texts if need_retain else [], max_length, device)
    if params is None:
        params = [p for p in student.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg.optimizer, cfg.lr)
    accumulator = Accumulator(optimizer, int(getattr(cfg, "grad_accum_steps", 1)))
    checkpointing = bool(getattr(cfg, "gradient_checkpointing", False))
    steps_per_epoch = math.ceil(len(forget) / cfg.batch_size)
    totals: dict[str, float] = {}
    batches = forget_retain_indices(len(forget), len(retain), cfg.batch_size, cfg.epochs, seed)
    chosen = {id(p) for p in params}
    state_parts: dict[str, Any] = {
        "modules": {
            "trained": trainable((n, p) for n, p in student.named_parameters() if id(p) in chosen)
        },
        "optimizers": {"opt": optimizer},
    }
    total = cfg.epochs * steps_per_epoch
    start = 0
    state = checkpoints.restore(**state_parts) if checkpoints is not None else None
    if state is not None:
        start = state.step
        totals = {k: float(v) for k, v in state.extra.get("totals", {}).items()}
        hooks.log(f"{name}: resuming after step {start} of {total}")

    whole: dict[str, list[int]] = {}

    def loss_of(
        f_idx: list[int], r_idx: list[int], share: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if accumulator.k == 1 and accumulator.world == 1:
            return step_loss(forget.batch(f_idx), retain.batch(r_idx) if r_idx else None, f_idx)
        f_batch = forget.micro_batch(f_idx, whole["forget"], share)
        r_batch = retain.micro_batch(r_idx, whole["retain"], share) if r_idx else None
        return step_loss(f_batch, r_batch, f_idx)

    if accumulator.world > 1:
        hooks.log(
            f"{name}: {accumulator.world} processes (accelerate, DDP); process r takes texts "
            f"r, r+{accumulator.world}, ... of every batch"
        )
    if checkpointing:
        gradient_checkpointing(student, True)
    try:
        with accumulator.distributed(student):
            for step, (epoch, f_idx, r_idx) in enumerate(batches, start=1):
                if step <= start:  # done before the checkpoint: only the batch order replays
                    continue
                hooks.check()
                optimizer.zero_grad(set_to_none=True)
                whole["forget"], whole["retain"] = f_idx, r_idx
                with torch.enable_grad():
                    try:
                        loss, parts = accumulator.step(f_idx, r_idx, loss_of)
                    except FloatingPointError as exc:
                        raise FloatingPointError(
                            f"the {name} loss became {exc.args[0]} at step {step}; "
                            "lower the learning rate or the number of epochs"
                        ) from None
                for key, value in {"loss": loss, **parts}.items():
                    totals[key] = totals.get(key, 0.0) + value
                if step % steps_per_epoch == 0:
                    text = ", ".join(f"{k} {v / steps_per_epoch:.4f}" for k, v in totals.items())
                    hooks.log(f"{name} epoch {epoch + 1}/{cfg.epochs}: {text}")
                    totals = {}
                if checkpoints is not None:
                    checkpoints.step_done(step, total, **state_parts, extra={"totals": totals})
                hooks.progress(step / total)
    finally:
        if checkpointing:
            gradient_checkpointing(student, False)
    if accumulator.world > 1:
        hooks.log(
            f"{name}: process {accumulator.rank} of {accumulator.world} trained on "
            f"{accumulator.own_texts} of the {accumulator.all_texts} forget texts of the steps"
        )
    student.zero_grad(set_to_none=True)
    student.eval()
