"""Ring-A-Bell: a concept vector from paired prompts, then a genetic search over tokens.

Spec ``diffusion-methods.md`` section 6.3 (``chiayi-hsu/Ring-A-Bell``: ``Get_Concept_Vector.ipynb``,
``InversePrompt.ipynb``). Model-agnostic: only the text encoder E is used.

- Concept vector: c = mean over pairs of [E(p_with) − E(p_without)] in the full text-encoder output
  space (sequence x width), from prompts with and without the concept (:func:`concept_vector`).
- Target for an attacked prompt p: E(p) + η·c (η = 3 for nudity in the notebook and RECE #8).
- Discrete search (:func:`genetic_search`): a population of token sequences of length K; fitness
  ‖E(tokens) − target‖² (lower is better); each generation keeps the best half, refills with
  children by single-point crossover of two kept parents (with probability ``crossover_rate``,
  else a copy of the first parent) and mutates a child with probability ``mutation_rate`` by
  replacing one random position with a random token. The best sequence, decoded, is the
  adversarial prompt (used on its own, as in the notebook).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from backends.diffusion.attacks.unlearndiffatk import attack_vocabulary, decode_tokens


@torch.no_grad()
def concept_vector(pipe: Any, with_concept: Sequence[str], without: Sequence[str]) -> torch.Tensor:
    """Mean of E(p_with) − E(p_without) over aligned prompt pairs, shape ``[L, d]``."""
    from backends.diffusion.pipeline import encode

    if not with_concept or len(with_concept) != len(without):
        raise ValueError("Ring-A-Bell: one prompt without the concept per prompt with it")
    return (encode(pipe, list(with_concept)) - encode(pipe, list(without))).float().mean(0)


@torch.no_grad()
def encode_sequences(pipe: Any, seqs: torch.Tensor) -> torch.Tensor:
    """E of token sequences ``[n, K]`` framed as BOS + tokens + EOS + padding: ``[n, L, d]``."""
    tok = pipe.tokenizer
    length = int(tok.model_max_length)
    n, k = seqs.shape
    ids = torch.full((n, length), int(tok.eos_token_id), dtype=torch.long)
    ids[:, 0] = int(tok.bos_token_id)
    ids[:, 1 : 1 + k] = seqs
    return pipe.text_encoder(ids.to(pipe.text_encoder.device))[0].float()


@dataclass
class SearchResult:
    """The best token sequence, its fitness, and the best fitness per generation."""

    tokens: list[int]
    fitness: float
    curve: list[float] = field(default_factory=list)
    generations: int = 0
    seconds: float = 0.0


def genetic_search(
    pipe: Any,
    target: torch.Tensor,
    *,
    length: int = 16,
    population: int = 200,
    generations: int = 3000,
    crossover_rate: float = 0.5,
    mutation_rate: float = 0.25,
    keep_fraction: float = 0.5,
    seed: int = 0,
    check: Callable[[], None] | None = None,
    on_generation: Callable[[int, float, list[int]], None] | None = None,
) -> SearchResult:
    """Minimise ‖E(tokens) − target‖² over token sequences of ``length`` (spec 6.3)."""
    max_len = int(pipe.tokenizer.model_max_length) - 2
    if not 1 <= length <= max_len:
        raise ValueError(f"Ring-A-Bell: length K must be in 1..{max_len} for this text encoder")
    if population < 4:
        raise ValueError("Ring-A-Bell: the population needs at least 4 sequences")
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(int(seed))
    vocab = attack_vocabulary(pipe.tokenizer)
    target = target.float().to(pipe.text_encoder.device)

    def fitness(seqs: torch.Tensor) -> torch.Tensor:
        return ((encode_sequences(pipe, vocab[seqs]) - target) ** 2).sum((1, 2))

    pop = torch.randint(0, len(vocab), (population, length), generator=gen)
    fit = fitness(pop)
    keep = max(2, int(round(population * keep_fraction)))
    curve: list[float] = []
    for g in range(int(generations)):
        if check is not None:
            check()
        order = fit.argsort()
        elite, elite_fit = pop[order[:keep]], fit[order[:keep]]
        n_child = population - keep
        a = torch.randint(0, keep, (n_child,), generator=gen)
        b = torch.randint(0, keep, (n_child,), generator=gen)
        point = torch.randint(1, max(2, length), (n_child,), generator=gen)
        cross = torch.rand(n_child, generator=gen) < crossover_rate
        pos = torch.arange(length).expand(n_child, -1)
        take_b = cross[:, None] & (pos >= point[:, None])
        children = torch.where(take_b, elite[b], elite[a])
        mutate = torch.rand(n_child, generator=gen) < mutation_rate
        where = torch.randint(0, length, (n_child,), generator=gen)
        new_tok = torch.randint(0, len(vocab), (n_child,), generator=gen)
        rows = torch.nonzero(mutate).view(-1)
        children[rows, where[rows]] = new_tok[rows]
        pop = torch.cat([elite, children])
        fit = torch.cat([elite_fit, fitness(children)])
        best = int(fit.argmin())
        curve.append(float(fit[best]))
        if on_generation is not None:
            on_generation(g, curve[-1], vocab[pop[best]].tolist())
    best = int(fit.argmin())
    return SearchResult(
        tokens=vocab[pop[best]].tolist(),
        fitness=float(fit[best]),
        curve=curve,
        generations=int(generations),
        seconds=time.perf_counter() - start,
    )


def ring_a_bell_prompt(
    pipe: Any, prompt: str, c_vec: torch.Tensor, *, eta: float = 3.0, **search: Any
) -> tuple[str, SearchResult]:
    """The adversarial prompt for ``prompt``: the decoded best sequence for E(p) + η·c."""
    from backends.diffusion.pipeline import encode

    target = encode(pipe, [prompt])[0].float() + eta * c_vec
    result = genetic_search(pipe, target, **search)
    return decode_tokens(pipe.tokenizer, result.tokens), result
