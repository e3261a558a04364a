"""P4D (Prompting4Debugging): projected soft prompts that make the erased model mimic the original.

Spec ``diffusion-methods.md`` section 6.2 (``Diffusion-MU-Attack:src/tasks/P4D_.py`` with
``src/attackers/hard_prompt_.py``, a PEZ-style hard prompt):

- k soft embeddings (initialised from random vocabulary tokens) are prefixed to the prompt;
- every iteration they are projected onto the nearest vocabulary embeddings (cosine similarity);
  the loss is computed with the PROJECTED rows and its gradient is applied to the soft ones
  (straight-through);
- loss: ‖ε_θu(x_t, c_adv, t) − ε_0(x_t, c_orig, t)‖², the erased model with the adversarial prompt
  against the ORIGINAL model with the original (concept) prompt on the same x_t (x_t from x_tgt,
  the original model's image, with fresh noise);
- the same sequential schedule as UnlearnDiffAtk (50 timesteps x 40 iterations, Adam lr 0.01,
  weight decay 0.1, k = 5), judging the projected prompt after each block and stopping at the
  first success. Unlike UnlearnDiffAtk it needs the original model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from backends.diffusion.attacks.unlearndiffatk import (
    ADV,
    AttackCase,
    CaseResult,
    Judge,
    OnStep,
    attack_vocabulary,
    judge_block,
    noised,
    timestep_schedule,
)
from backends.diffusion.inversion import encode_embeddings, prompt_embeddings


def nearest_tokens(soft: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Index (into ``table``) of the row of highest cosine similarity for each row of ``soft``."""
    a = torch.nn.functional.normalize(soft.detach(), dim=-1)
    b = torch.nn.functional.normalize(table, dim=-1)
    return (a @ b.T).argmax(-1)


def p4d(
    pipe: Any,
    original_unet: Any,
    z_target: torch.Tensor,
    case: AttackCase,
    judge: Judge,
    result: CaseResult,
    *,
    k: int = 5,
    n_timesteps: int = 50,
    iterations: int = 40,
    lr: float = 0.01,
    weight_decay: float = 0.1,
    span: int = 1000,
    seed: int = 0,
    check: Callable[[], None] | None = None,
    on_step: OnStep | None = None,
) -> CaseResult:
    """Attack one case on ``pipe`` (the erased model) against ``original_unet`` (spec 6.2)."""
    from backends.diffusion.pipeline import encode

    start = time.perf_counter()
    gen = torch.Generator().manual_seed(int(seed))
    vocab = attack_vocabulary(pipe.tokenizer)
    table = pipe.text_encoder.get_input_embeddings().weight[vocab].detach()
    init = torch.randint(0, len(vocab), (k,), generator=gen)
    soft = table[init].clone().requires_grad_(True)
    opt = torch.optim.Adam([soft], lr=lr, weight_decay=weight_decay)
    text = f"{ADV} {case.prompt}"
    c_orig = encode(pipe, [case.target_prompt])
    for block, t in enumerate(timestep_schedule(n_timesteps, span)):
        total = 0.0
        for _ in range(iterations):
            if check is not None:
                check()
            rows = table[nearest_tokens(soft, table)].clone().requires_grad_(True)
            emb = prompt_embeddings(pipe, [text], ADV, rows)
            cond = encode_embeddings(pipe.text_encoder, emb).to(pipe.unet.dtype)
            x_t, tt, _ = noised(pipe, z_target, t, gen)
            with torch.no_grad():
                eps_0 = original_unet(x_t, tt, encoder_hidden_states=c_orig).sample
            eps_u = pipe.unet(x_t, tt, encoder_hidden_states=cond).sample
            loss = torch.nn.functional.mse_loss(eps_u.float(), eps_0.float())
            opt.zero_grad()
            soft.grad = torch.autograd.grad(loss, [rows])[0]
            opt.step()
            total += float(loss.detach())
            result.iterations += 1
        ids = vocab[nearest_tokens(soft, table)].tolist()
        if judge_block(
            pipe, judge, case, ids, block, total / max(1, iterations), result, on_step, start
        ):
            break
    result.seconds = time.perf_counter() - start
    return result
