"""Concept inversion: textual inversion of ONE new token on a given (erased) pipeline.

Spec ``diffusion-methods.md`` section 6.4 (Pham et al., ``circumventing-concept-erasure``) and
section 3 ("Inversion procedure", the implicit negative embedding):

    v* = argmin_v E_{x ~ D_concept, t, ε} ‖ε − ε_θu(x_t, c("… <v*> …"), t)‖²

A new placeholder token v* is added; every weight (UNet, text encoder, VAE) stays frozen and only
the embedding row of v* is optimised (Adam, lr 5e-3 in both papers; batch 1 in section 3, 4 x 4
accumulation in Pham et al.'s ``esd/train.sh``). v* starts from a related word's embedding.

The token is never added to the pipeline's tokenizer or embedding table, so the pipeline is left
exactly as it was: :func:`prompt_embeddings` tokenises a prompt around the placeholder string and
puts the learned row at its position, and :func:`encode_embeddings` runs the CLIP text encoder
from those input embeddings (the same computation as ``text_encoder(input_ids)``, checked by the
tests). The prompt attacks (UnlearnDiffAtk, P4D) reuse the same two functions for their soft
token slots.

The result is a :class:`LearnedToken`; :meth:`LearnedToken.save` writes the project artifact, a
safetensors file with the embedding row (``embedding``, shape ``[1, d]``) whose metadata holds
the token string, the initial word and the training settings; :meth:`LearnedToken.load` reads it.
:func:`encode_with_token` gives the text-encoder states of prompts that contain the token, e.g.
the implicit negative concept c_* = enc("<v*>") of section 3.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

DEFAULT_TOKEN = "<concept>"
EMBEDDING_KEY = "embedding"
FORMAT = "workbench.learned-token/1"


# -- text encoder from input embeddings ---------------------------------------------------------


def token_embedding_table(pipe: Any) -> torch.Tensor:
    """The text encoder's token-embedding matrix ``[vocab, d]`` (a view, frozen)."""
    return pipe.text_encoder.get_input_embeddings().weight


def encode_embeddings(text_encoder: Any, inputs_embeds: torch.Tensor) -> torch.Tensor:
    """CLIP text-encoder hidden states ``[n, L, d]`` from token embeddings ``[n, L, d]``.

    The same steps as ``CLIPTextModel.forward`` (position embeddings, causal self-attention
    layers, final layer norm) but from embeddings instead of ids, so gradients reach the
    embeddings (a learned token row, or the soft / one-hot slots of the prompt attacks).
    """
    from transformers.masking_utils import create_causal_mask

    hidden = text_encoder.embeddings(inputs_embeds=inputs_embeds)
    mask = create_causal_mask(
        config=text_encoder.config, inputs_embeds=hidden, attention_mask=None, cache=None
    )
    out = text_encoder.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True)
    return text_encoder.final_layer_norm(out.last_hidden_state)


def ids_with_slots(
    tokenizer: Any, text: str, placeholder: str, n_slots: int = 1
) -> tuple[list[int], list[int]]:
    """Token ids of ``text`` padded to the tokenizer's length, with the placeholder's positions.

    Each occurrence of ``placeholder`` in ``text`` becomes ``n_slots`` positions (whose id is the
    end-of-text id, a stand-in that :func:`prompt_embeddings` overwrites); the rest is tokenised
    as the pipeline would. Returns ``(ids, slot_positions)``; a prompt too long for the encoder
    is truncated, and a slot that would be cut off is an error.
    """
    length = int(tokenizer.model_max_length)
    bos, eos = int(tokenizer.bos_token_id), int(tokenizer.eos_token_id)
    parts = text.split(placeholder) if placeholder else [text]
    ids: list[int] = [bos]
    slots: list[int] = []
    for i, part in enumerate(parts):
        if part.strip():
            ids += list(tokenizer(part.strip(), add_special_tokens=False).input_ids)
        if i < len(parts) - 1:
            slots += list(range(len(ids), len(ids) + n_slots))
            ids += [eos] * n_slots
    ids = ids[: length - 1] + [eos]
    if any(s >= length - 1 for s in slots):
        raise ValueError(
            f"the prompt {text!r} is too long for the text encoder ({length} tokens): the "
            f"placeholder {placeholder!r} would be cut off"
        )
    ids += [eos] * (length - len(ids))
    return ids, slots


def prompt_embeddings(
    pipe: Any, prompts: Sequence[str], placeholder: str, rows: torch.Tensor
) -> torch.Tensor:
    """Token embeddings ``[n, L, d]`` of ``prompts`` with ``rows`` (``[k, d]``) at the
    placeholder's ``k`` positions (every occurrence); differentiable with respect to ``rows``."""
    table = token_embedding_table(pipe)
    rows = rows.to(table.device, table.dtype)
    out = []
    for text in prompts:
        ids, slots = ids_with_slots(pipe.tokenizer, text, placeholder, n_slots=len(rows))
        emb = table[torch.tensor(ids, device=table.device)]
        if slots:
            pos = torch.tensor(slots, device=table.device)
            reps = rows.repeat(len(slots) // len(rows), 1)
            emb = emb.index_put((pos,), reps)
        out.append(emb)
    return torch.stack(out)


# -- the artifact --------------------------------------------------------------------------------


@dataclass
class LearnedToken:
    """A learned token embedding: its string, the row and how it was made."""

    token: str
    vector: torch.Tensor  # [d]
    init_word: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """Write the artifact: safetensors ``{"embedding": [1, d] float32}`` with the token
        string, initial word and settings in its metadata."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "token": self.token,
            "init_word": self.init_word,
            "meta": json.dumps(self.meta),
        }
        row = self.vector.detach().float().reshape(1, -1).cpu().contiguous()
        save_file({EMBEDDING_KEY: row}, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LearnedToken:
        """What :meth:`save` wrote; a clear error for any other file."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path} is not a file (a learned token is a .safetensors file)")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != FORMAT or EMBEDDING_KEY not in set(f.keys()):
                    raise ValueError(
                        f"{path} is not a learned token (no {FORMAT!r} metadata or "
                        f"{EMBEDDING_KEY!r} tensor)"
                    )
                row = f.get_tensor(EMBEDDING_KEY)
        except ValueError:
            raise
        except Exception as exc:  # a corrupt or non-safetensors file
            raise ValueError(f"{path} is not a safetensors file: {exc}") from exc
        return cls(
            token=meta["token"],
            vector=row.reshape(-1),
            init_word=meta.get("init_word", ""),
            meta=json.loads(meta.get("meta", "{}")),
        )

    def check_fits(self, pipe: Any) -> None:
        """Raise ``ValueError`` when the row's width is not the pipeline's embedding width."""
        d = int(token_embedding_table(pipe).shape[1])
        if self.vector.numel() != d:
            raise ValueError(
                f"the learned token {self.token!r} has width {self.vector.numel()}, the "
                f"pipeline's text encoder {d}: it was learned on another kind of model"
            )


def encode_with_token(pipe: Any, prompts: Sequence[str], learned: LearnedToken) -> torch.Tensor:
    """Text-encoder states ``[n, L, d]`` of prompts containing ``learned.token`` (no graph),
    e.g. the implicit negative concept c_* = enc("<v*>") (spec section 3)."""
    learned.check_fits(pipe)
    with torch.no_grad():
        emb = prompt_embeddings(pipe, prompts, learned.token, learned.vector.reshape(1, -1))
        return encode_embeddings(pipe.text_encoder, emb).to(pipe.unet.dtype)


def init_row(pipe: Any, word: str) -> torch.Tensor:
    """The embedding row of ``word``'s first token (the initialisation of v*)."""
    ids = pipe.tokenizer(word.strip(), add_special_tokens=False).input_ids
    if not word.strip() or not ids:
        raise ValueError(f"init_word {word!r} has no tokens")
    return token_embedding_table(pipe)[int(ids[0])].detach().clone()


# -- the optimisation ----------------------------------------------------------------------------


@dataclass
class InversionResult:
    """The learned token and the loss per step."""

    learned: LearnedToken
    losses: list[float]


def denoising_loss(
    pipe: Any,
    latents: torch.Tensor,
    captions: Sequence[str],
    placeholder: str,
    row: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """L_DM = mean ‖ε − ε_θ(x_t, c(caption with the row), t)‖² for given ``t`` and ``noise``."""
    acp = pipe.scheduler.alphas_cumprod.to(latents.device)[t].to(latents.dtype).view(-1, 1, 1, 1)
    x_t = acp.sqrt() * latents + (1 - acp).sqrt() * noise
    emb = prompt_embeddings(pipe, captions, placeholder, row.reshape(1, -1))
    cond = encode_embeddings(pipe.text_encoder, emb).to(pipe.unet.dtype)
    eps = pipe.unet(x_t, t, encoder_hidden_states=cond).sample
    return torch.nn.functional.mse_loss(eps.float(), noise.float())


def invert_concept(
    pipe: Any,
    images: np.ndarray,
    captions: Sequence[str],
    *,
    token: str = DEFAULT_TOKEN,
    init_word: str = "a",
    steps: int = 300,
    lr: float = 5e-3,
    batch_size: int = 4,
    grad_accum: int = 1,
    t_min: int = 0,
    t_max: int = 1000,
    seed: int = 0,
    check: Callable[[], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> InversionResult:
    """Learn one token's embedding row on ``pipe`` (frozen) from concept ``images``.

    ``captions`` are the training captions, one per image, each containing ``token`` (e.g.
    "a <concept> red circle"; Pham et al.'s "{v*} {prompt}"). Adam(``lr``) on the row only; each
    step averages ``grad_accum`` batches of ``batch_size`` images with t ~ U{t_min..t_max−1}.
    ``on_step(step, loss)`` is called after every step (live progress); ``check`` may raise to
    cancel.
    """
    from backends.diffusion.pipeline import encode_images

    if len(images) == 0:
        raise ValueError("concept inversion needs at least one concept image")
    if len(captions) != len(images):
        raise ValueError("concept inversion: one caption per image")
    missing = [c for c in captions if token not in c]
    if missing:
        raise ValueError(f"caption {missing[0]!r} does not contain the token {token!r}")
    if not 0 <= t_min < t_max <= int(pipe.scheduler.config.num_train_timesteps):
        raise ValueError(f"timestep range [{t_min}, {t_max}) is empty or outside the schedule")
    latents = encode_images(pipe, images)
    gen = torch.Generator().manual_seed(int(seed))
    row = init_row(pipe, init_word).float().requires_grad_(True)
    opt = torch.optim.Adam([row], lr=lr)
    losses: list[float] = []
    n = len(latents)
    for step in range(int(steps)):
        if check is not None:
            check()
        opt.zero_grad()
        total = 0.0
        for _ in range(int(grad_accum)):
            idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
            t = torch.randint(t_min, t_max, (len(idx),), generator=gen)
            noise = torch.randn(latents[idx].shape, generator=gen).to(latents.dtype)
            loss = denoising_loss(
                pipe, latents[idx], [captions[int(i)] for i in idx], token, row, t, noise
            )
            (loss / grad_accum).backward()
            total += float(loss.detach()) / grad_accum
        opt.step()
        losses.append(total)
        if on_step is not None:
            on_step(step, total)
    learned = LearnedToken(
        token=token,
        vector=row.detach().clone(),
        init_word=init_word,
        meta={
            "steps": int(steps),
            "lr": lr,
            "batch_size": batch_size,
            "grad_accum": grad_accum,
            "timesteps": [t_min, t_max],
            "seed": int(seed),
            "images": int(n),
            "final_loss": losses[-1] if losses else None,
        },
    )
    return InversionResult(learned, losses)


def concept_images(
    world: Any, n: int, seed: int, shapes_colours: Sequence[tuple[str, str]] | None = None
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """``n`` drawn striped images of the shapes world (the concept set D_concept), restricted to
    the given (shape, colour) combinations when given, and their (shape, colour)."""
    from backends.diffusion.data import make_dataset

    keep: list[int] = []
    drawn = make_dataset(max(4 * n, 16), seed, world, striped=True, framed=False)
    allowed = set(shapes_colours) if shapes_colours is not None else None
    for i, s in enumerate(drawn.samples):
        if allowed is None or (s.shape, s.colour) in allowed:
            keep.append(i)
        if len(keep) == n:
            break
    if len(keep) < n:
        raise ValueError(f"could not draw {n} concept images of the allowed combinations")
    sub = drawn.subset(keep)
    return sub.images, [(s.shape, s.colour) for s in sub.samples]
