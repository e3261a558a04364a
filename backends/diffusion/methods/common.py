"""What the diffusion erasure methods share (spec ``diffusion-methods.md`` sections 0 and 4).

- :func:`unwrap` accepts a :class:`~backends.diffusion.pipeline.LoadedPipeline` or a diffusers
  ``StableDiffusionPipeline`` and returns the latter;
- :func:`select_parameters` names the UNet parameter subsets the papers train (ESD-u / ESD-x /
  ESD-x-strict / all, CA's cross-attention K/V);
- the method contract (``unlearn(pipe, data, cfg, hooks, *, seed) -> MethodResult``, editing
  ``pipe.unet`` in place; ``data`` a :class:`DiffusionData`) and ``frozen_copy`` (the frozen
  original ε_0) are :mod:`backends.common.method`'s, as for every family;
- :func:`finish` leaves a UNet frozen and in eval mode, whatever happened;
- :func:`generate_latents` samples latents with the pretrained model (CA's anchor images,
  SalUn's D_f and D_r); they are the "images" in latent space, no VAE round trip;
- :func:`pick` draws batch indices from a seeded generator;
- :class:`Steps` runs a loop's bookkeeping through the hooks: ``check()``, progress and a log
  line every so often;
- :class:`LoopState` checkpoints a loop (trained parameters, optimiser, generator, last losses)
  through :class:`~backends.common.loop_checkpoints.LoopCheckpoints` and restores it on resume.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from backends.common.loop_checkpoints import LoopCheckpoints, trainable
from backends.common.method import Hooks, MethodResult
from backends.diffusion.concepts import Concept
from backends.diffusion.pipeline import encode, initial_latents, sample

PARAMETER_SETS = ("u", "x", "x-strict", "all", "xattn-kv", "full")


@dataclass
class DiffusionData:
    """What an erasure method works from: the concept (its word, prompts, anchors, guide)."""

    concept: Concept


def unwrap(pipe: Any) -> Any:
    """The diffusers pipeline inside a ``LoadedPipeline`` (or ``pipe`` itself)."""
    inner = getattr(pipe, "pipe", None)
    return inner if inner is not None else pipe


def _is_xattn_kv(name: str) -> bool:
    return "attn2.to_k." in name or "attn2.to_v." in name


def select_parameters(unet: nn.Module, which: str) -> dict[str, nn.Parameter]:
    """The UNet parameters a method trains, by name (spec 4.1 for ESD, 4.3 for CA):

    - ``u``: everything except cross-attention (no ``attn2`` in the name), ESD-u;
    - ``x``: cross-attention only (``attn2``), ESD-x;
    - ``x-strict`` / ``xattn-kv``: ``attn2.to_k`` and ``attn2.to_v`` only (ESD-x-strict, CA's
      default);
    - ``all`` / ``full``: every parameter.
    """
    tests: dict[str, Callable[[str], bool]] = {
        "u": lambda n: "attn2" not in n,
        "x": lambda n: "attn2" in n,
        "x-strict": _is_xattn_kv,
        "xattn-kv": _is_xattn_kv,
        "all": lambda n: True,
        "full": lambda n: True,
    }
    if which not in tests:
        raise ValueError(f"unknown parameter set {which!r}; known: {', '.join(PARAMETER_SETS)}")
    chosen = {n: p for n, p in unet.named_parameters() if tests[which](n)}
    if not chosen:
        raise ValueError(f"the UNet has no parameters in the set {which!r}")
    return chosen


def finish(unet: nn.Module) -> None:
    """Leave ``unet`` as the pipeline expects it: every parameter frozen, eval mode."""
    unet.requires_grad_(False)
    unet.eval()


def changed_parameters(before: dict[str, torch.Tensor], unet: nn.Module) -> int:
    """How many scalar entries of ``unet`` differ from the snapshot ``before``."""
    params = dict(unet.named_parameters())
    return int(sum(int((params[n].detach() != v).sum()) for n, v in before.items()))


def snapshot(params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    """Detached copies of ``params`` (to count changed entries at the end)."""
    return {n: p.detach().clone() for n, p in params.items()}


@torch.no_grad()
def generate_latents(
    pipe: Any,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    steps: int,
    guidance: float,
    batch: int = 64,
    check: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Clean latents ``[n, C, h, w]`` sampled by the pipeline's current UNet (one per prompt and
    seed, DDIM with CFG)."""
    out = []
    for i in range(0, len(prompts), batch):
        p, s = list(prompts[i : i + batch]), list(seeds[i : i + batch])
        cond = encode(pipe, p)
        z = initial_latents(pipe, s)
        out.append(sample(pipe, cond, z, steps=steps, guidance=guidance, check=check))
    return torch.cat(out)


def pick(n: int, k: int, generator: torch.Generator) -> list[int]:
    """``k`` indices into ``range(n)``: a random permutation, repeated when ``k > n``."""
    out: list[int] = []
    while len(out) < k:
        out += torch.randperm(n, generator=generator).tolist()
    return out[:k]


class Steps:
    """Loop bookkeeping: ``check()`` before each step, progress after it, a log line every
    ``every`` steps and at the end."""

    def __init__(self, name: str, total: int, hooks: Hooks, every: int = 0) -> None:
        self.name, self.total = name, max(1, total)
        self.check, self.log, self.progress = hooks.check, hooks.log, hooks.progress
        self.every = every or max(1, self.total // 10)
        self.start = time.perf_counter()

    def begin(self) -> None:
        self.check()

    def end(self, i: int, values: dict[str, float]) -> None:
        self.progress((i + 1) / self.total)
        if (i + 1) % self.every == 0 or i + 1 == self.total:
            shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
            self.log(f"{self.name} step {i + 1}/{self.total} {shown}")

    def seconds(self) -> float:
        return time.perf_counter() - self.start


def loop_result(
    losses: list[float],
    steps: Steps,
    before: dict[str, torch.Tensor],
    unet: nn.Module,
    trained: dict[str, nn.Parameter] | None = None,
    **counts: float,
) -> MethodResult:
    """What an erasure loop returns: ``loss`` (mean of the last 10 steps), ``seconds``,
    ``parameters_trained`` (the entries of ``trained``, when given), the given ``counts`` and
    ``parameters_changed`` (entries of ``unet`` that differ from ``before``)."""
    last = losses[-10:]
    if trained is not None:
        counts = {"parameters_trained": float(sum(p.numel() for p in trained.values())), **counts}
    return MethodResult(
        {
            "loss": sum(last) / max(1, len(last)),
            "seconds": steps.seconds(),
            **counts,
            "parameters_changed": float(changed_parameters(before, unet)),
        }
    )


class LoopState:
    """What an erasure loop saves every ``checkpoints.every`` steps and restores on resume: the
    parameters it trains, its optimiser, its batch/noise generator and its last ``keep`` losses
    (the mean the method reports).  Without ``checkpoints`` it does nothing.

    Call :meth:`restore` after the set-up (which draws from ``gen`` as in a fresh run: the restored
    generator state then replaces it) and before the loop; :meth:`step_done` after each step."""

    def __init__(
        self,
        checkpoints: LoopCheckpoints | None,
        params: dict[str, nn.Parameter],
        optimizer: torch.optim.Optimizer | None,
        gen: torch.Generator,
        keep: int = 10,
    ) -> None:
        self.checkpoints, self.keep = checkpoints, keep
        self.parts: dict[str, Any] = {
            "modules": {"trained": trainable(params.items())} if params else {},
            "optimizers": {"opt": optimizer} if optimizer is not None else {},
            "generators": {"gen": gen},
        }

    def restore(self) -> tuple[int, list[float]]:
        """``(steps already done, their last losses)``; ``(0, [])`` for a fresh run."""
        state = self.checkpoints.restore(**self.parts) if self.checkpoints else None
        if state is None:
            return 0, []
        return state.step, [float(x) for x in state.extra.get("losses", [])]

    def step_done(self, step: int, total: int, losses: list[float]) -> None:
        if self.checkpoints is not None:
            self.checkpoints.step_done(
                step, total, **self.parts, extra={"losses": losses[-self.keep :]}
            )
