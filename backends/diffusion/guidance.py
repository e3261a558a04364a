"""Training-free safety guidance stacked on an (unlearned) text-to-image model.

Spec ``diffusion-methods.md`` section 3 ("How the embedding is plugged into the guidance") and
section 5. With c_p the prompt's encoding, ∅ the empty prompt's and c_n the negative concept's:

- **negative-prompt CFG**: ε̂ = ε(x_t, c_n) + s·(ε(x_t, c_p) − ε(x_t, c_n)), i.e. the
  unconditional branch replaced by the negative one (an empty negative is plain CFG);
- **SLD** (safe latent diffusion, ``ml-research/safe-latent-diffusion``; the formulas as in
  diffusers' ``StableDiffusionPipelineSafe`` and ``Diffusion-MU-Attack:src/tasks/classifier_.py``)
  with c_n as the safety concept c_S:
  ε̂ = ε_∅ + s·[(ε_p − ε_∅) − γ_t], γ_t = μ ⊙ (ε_S − ε_∅) + s_m·ν_t,
  μ = 0 where ε_p − ε_S ≥ λ_th, else min(1, s_S·|ε_p − ε_S|) (elementwise),
  ν_{t+1} = β_m·ν_t + (1 − β_m)·γ_t (the momentum builds up from the first step), and γ_t is
  subtracted only once the step index reaches the warm-up δ. The official Diffusion-MU-Attack
  code compares the *timestep value* with δ instead (:attr:`SLDParams.warmup_quirk`), so there
  SLD acts from the first step (t ≈ 980 ≥ δ) and stops on the last few timesteps below δ.

The negative concept is pluggable (:func:`negative_encoding`): explicit words, or a prompt
holding a learned token (the implicit negative embedding c_* of section 3, learned by concept
inversion on the unlearned model, :mod:`backends.diffusion.inversion`).

Light at import (no torch): the configs are read by the plugin; the math imports torch lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.config import ConfigError, param

if TYPE_CHECKING:
    import torch

SLD_PRESET_NAMES = ("weak", "medium", "strong", "max")


@dataclass(frozen=True)
class SLDParams:
    """SLD's constants: warm-up δ, safety scale s_S, threshold λ_th, momentum scale s_m and
    momentum β_m (spec section 3), and whether the warm-up compares the timestep value (the
    official Diffusion-MU-Attack quirk) rather than the step index."""

    warmup_steps: int
    guidance_scale: float
    threshold: float
    momentum_scale: float
    momentum_beta: float
    warmup_quirk: bool = False


#: The four presets as (δ, s_S, λ_th, s_m, β_m), from ``Diffusion-MU-Attack:src/tasks/
#: classifier_.py`` (spec section 3; the same values as the SLD paper's hyper-parameter table).
SLD_PRESETS: dict[str, SLDParams] = {
    "weak": SLDParams(15, 200.0, 0.0, 0.0, 0.0),
    "medium": SLDParams(10, 1000.0, 0.01, 0.3, 0.4),
    "strong": SLDParams(7, 2000.0, 0.025, 0.5, 0.7),
    "max": SLDParams(0, 5000.0, 1.0, 0.5, 0.7),
}


@dataclass
class SLDConfig:
    """Safe latent diffusion's constants (spec sections 3 and 5)."""

    sld_preset: str = param(
        "medium",
        "SLD preset (δ, s_S, λ_th, s_m, β_m): weak (15, 200, 0, 0, 0), medium (10, 1000, 0.01, "
        "0.3, 0.4; diffusers' default), strong (7, 2000, 0.025, 0.5, 0.7), max (0, 5000, 1, 0.5, "
        "0.7); custom takes the five values below.",
        choices=(*SLD_PRESET_NAMES, "custom"),
    )
    sld_warmup_steps: int = param(
        10, "Custom preset: warm-up δ (steps before the safety term applies).", range=(0, 10_000)
    )
    sld_guidance_scale: float = param(
        1000.0, "Custom preset: safety scale s_S (0: no safety term at all).", range=(0.0, 1e7)
    )
    sld_threshold: float = param(
        0.01,
        "Custom preset: threshold λ_th (elements with ε_p − ε_S ≥ λ_th are left alone).",
        range=(-1e3, 1e3),
    )
    sld_momentum_scale: float = param(0.3, "Custom preset: momentum scale s_m.", range=(0.0, 1e3))
    sld_momentum_beta: float = param(
        0.4,
        "Custom preset: momentum β_m (how much of the previous momentum is kept).",
        range=(0.0, 1.0),
    )
    sld_warmup_quirk: bool = param(
        False,
        "Reproduce the official Diffusion-MU-Attack quirk: the warm-up test compares the "
        "timestep value (about 980 down to 1) with δ instead of the step index, so SLD acts from "
        "the first step. Off: the step index, as diffusers and the SLD paper.",
        advanced=True,
    )

    def __post_init__(self) -> None:
        if self.sld_preset not in (*SLD_PRESET_NAMES, "custom"):
            raise ConfigError(
                f"unknown SLD preset {self.sld_preset!r}; known: "
                f"{', '.join((*SLD_PRESET_NAMES, 'custom'))}",
                field="sld_preset",
            )

    def params(self, preset: str | None = None) -> SLDParams:
        """The constants of ``preset`` (default: the configured one) with this config's quirk."""
        name = preset or self.sld_preset
        if name == "custom":
            base = SLDParams(
                int(self.sld_warmup_steps),
                float(self.sld_guidance_scale),
                float(self.sld_threshold),
                float(self.sld_momentum_scale),
                float(self.sld_momentum_beta),
            )
        elif name in SLD_PRESETS:
            base = SLD_PRESETS[name]
        else:
            raise ValueError(f"unknown SLD preset {name!r}; known: {', '.join(SLD_PRESETS)}")
        return SLDParams(
            base.warmup_steps,
            base.guidance_scale,
            base.threshold,
            base.momentum_scale,
            base.momentum_beta,
            bool(self.sld_warmup_quirk),
        )


# -- the math -------------------------------------------------------------------------------------


def sld_guidance(
    e_u: torch.Tensor,
    e_p: torch.Tensor,
    e_s: torch.Tensor,
    momentum: torch.Tensor | None,
    p: SLDParams,
    index: int,
    timestep: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SLD step: the guidance direction (ε_p − ε_∅) − [γ_t once warmed up] and ν_{t+1}.

    ``e_u``, ``e_p``, ``e_s``: noise estimates for ∅, the prompt and the safety concept;
    ``momentum``: ν_t (``None`` at the first step: zeros); ``index``: the step index (0 first),
    ``timestep``: the scheduler's t (used instead of the index with ``p.warmup_quirk``).
    With s_S = 0 and ν = 0 the safety term is exactly zero, so the result is plain CFG's.
    """
    import torch

    direction = e_p - e_u
    if momentum is None:
        momentum = torch.zeros_like(direction)
    diff = e_p - e_s
    scale = torch.clamp(diff.abs() * p.guidance_scale, max=1.0)
    mu = torch.where(diff >= p.threshold, torch.zeros_like(scale), scale)
    gamma = (e_s - e_u) * mu + p.momentum_scale * momentum
    momentum = p.momentum_beta * momentum + (1.0 - p.momentum_beta) * gamma
    clock = float(timestep) if p.warmup_quirk else float(index)
    if clock >= p.warmup_steps:
        direction = direction - gamma
    return direction, momentum


class SLDGuide:
    """SLD as a :func:`backends.diffusion.pipeline.sample` guide, with ``concept`` (``[1, L, d]``
    or ``[n, L, d]``) as the safety concept c_S.

    The ∅ and prompt estimates come from one batched UNet call, exactly as plain CFG's
    (:func:`~backends.diffusion.pipeline.cfg_eps`), and ε_S from a second call, so with
    s_S = 0 the result equals plain CFG bit for bit.
    """

    def __init__(self, params: SLDParams, concept: torch.Tensor) -> None:
        self.params = params
        self.concept = concept
        self.momentum: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the momentum (a new batch of images starts)."""
        self.momentum = None

    def __call__(
        self,
        unet: Any,
        x: torch.Tensor,
        t: Any,
        index: int,
        cond: torch.Tensor,
        uncond: torch.Tensor,
        scale: float,
    ) -> torch.Tensor:
        import torch

        eps = unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
        e_u, e_p = eps.chunk(2)
        concept = self.concept.to(x.device, cond.dtype).expand(len(x), -1, -1)
        e_s = unet(x, t, encoder_hidden_states=concept).sample
        direction, self.momentum = sld_guidance(
            e_u, e_p, e_s, self.momentum, self.params, index, float(t)
        )
        return e_u + scale * direction


# -- the negative concept -------------------------------------------------------------------------


def prompt_encoder(pipe: Any, learned: Any = None) -> Callable[[list[str]], torch.Tensor]:
    """Prompts -> text-encoder states; a prompt that holds ``learned.token`` (a
    :class:`backends.diffusion.inversion.LearnedToken`) is encoded with the learned row at the
    token's place, any other prompt as usual."""
    from backends.diffusion.pipeline import encode

    if learned is None:
        return lambda texts: encode(pipe, texts)

    def enc(texts: list[str]) -> torch.Tensor:
        import torch

        from backends.diffusion.inversion import encode_with_token

        out = [
            encode_with_token(pipe, [t], learned) if learned.token in t else encode(pipe, [t])
            for t in texts
        ]
        return torch.cat(out)

    return enc


def negative_text(kind: str, words: str, template: str, learned: Any = None) -> str:
    """The negative concept's prompt: the explicit ``words``, or ``template`` with the learned
    token put in (``"{token}"``: c_* = enc("<v*>"), spec section 3's pseudo-code)."""
    if kind == "words":
        return words
    if kind == "embedding":
        if learned is None:
            raise ValueError("an embedding negative needs a learned token (none was given)")
        if "{token}" not in template:
            raise ValueError(f"the embedding template {template!r} has no {{token}} slot")
        return template.replace("{token}", learned.token)
    raise ValueError(f"unknown negative concept {kind!r}; known: words, embedding")


def negative_encoding(pipe: Any, text: str, learned: Any = None) -> torch.Tensor:
    """c_n ``[1, L, d]`` of a negative concept's prompt (see :func:`negative_text`)."""
    return prompt_encoder(pipe, learned)([text])


def guided_generate(
    loaded: Any,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    kind: str,
    negative: str = "",
    learned: Any = None,
    sld: SLDParams | None = None,
    **kwargs: Any,
) -> Any:
    """:func:`backends.diffusion.pipeline.generate` with one guidance ``kind``: ``"none"`` (plain CFG),
    ``"negative"`` (``negative`` replaces ∅) or ``"sld"`` (``negative`` is the safety concept,
    ``sld`` its constants). ``learned`` encodes any prompt that holds its token."""
    from backends.diffusion.pipeline import LoadedPipeline, generate

    pipe = loaded.pipe if isinstance(loaded, LoadedPipeline) else loaded
    encoder = prompt_encoder(pipe, learned) if learned is not None else None
    if kind == "none":
        return generate(loaded, prompts, seeds, encoder=encoder, **kwargs)
    if kind == "negative":
        return generate(loaded, prompts, seeds, negative_prompt=negative, encoder=encoder, **kwargs)
    if kind == "sld":
        if sld is None:
            raise ValueError("SLD guidance needs its constants (an SLDParams)")
        concept = prompt_encoder(pipe, learned)([negative])
        guide = SLDGuide(sld, concept)
        return generate(loaded, prompts, seeds, guide=guide, encoder=encoder, **kwargs)
    raise ValueError(f"unknown guidance {kind!r}; known: none, negative, sld")
