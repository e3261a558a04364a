"""Attention maps and attention-sink measures (spec ``classifier-and-llm-methods.md`` section 6,
"Attention-sink measurement"; measurement only, backdoored unlearning is elsewhere).

- :func:`attention_maps`: ``A[l, h, q, k]`` of one prompt, shape ``(layers, heads, T, T)``, from
  ``output_attentions=True`` under **eager** attention (transformers 5's default ``sdpa`` returns
  no maps; the model is switched to eager for the forward pass and switched back).
- :func:`sink_mass`: per (layer, head), the attention mass on the first ``k`` key positions,
  averaged over query positions ``q >= k``::

      a_k[l, h] = 1 / (T - k) * sum_{q=k}^{T-1} sum_{j<k} A[l, h, q, j]

  The first ``k`` queries are excluded by default: under the causal mask query ``q < k`` can only
  attend to keys ``<= q < k``, so its mass is 1 by construction and would add ``k / T`` of
  trivial mass (a large bias on short prompts). ``include_sink_queries=True`` gives the spec's
  ``(1/T) sum_t A[t, 0]`` form.
- :func:`sink_ratio`: the fraction of heads whose sink mass is above a threshold (0.3 after
  Gu et al. 2024, as in the spec).
- :func:`difference`: ``delta = A_a - A_b`` for two prompts through one model (aligned on the
  shorter prompt's positions) or two models on the same prompt (the spec's ``Delta A`` maps).
- :func:`attention_stack`: every layer's and head's map of one prompt with its tokens and sink
  mass as one :class:`workbench.artifacts.AttentionStack` (one compressed ``.npz``), which the
  GUI's sink view browses (layer / head picker, grid overview, difference between two runs).
- Heatmaps (:class:`workbench.artifacts.Heatmap`): :func:`sink_heatmap` (layer x head),
  :func:`attention_heatmap` (one head, token labels on both axes), :func:`difference_heatmap`
  (diverging) and :func:`sink_difference_heatmap` (layer x head, diverging).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from backends.llm.models import LoadedLM, apply_prompt, with_eager_attention
from workbench.artifacts import AttentionStack, Heatmap

DEFAULT_SINK_THRESHOLD = 0.3
STACK_DTYPES = ("float16", "float32")


@dataclass
class AttentionMaps:
    """Attention probabilities of one prompt: ``attentions[l, h, q, k]`` (rows sum to 1)."""

    attentions: torch.Tensor
    tokens: list[str]
    input_ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.attentions.ndim != 4 or self.attentions.shape[-1] != self.attentions.shape[-2]:
            raise ValueError(
                "attention maps must have shape (layers, heads, T, T), got "
                f"{tuple(self.attentions.shape)}"
            )
        if self.tokens and len(self.tokens) != self.attentions.shape[-1]:
            raise ValueError(
                f"{len(self.tokens)} tokens for attention maps over {self.attentions.shape[-1]}"
            )

    @property
    def num_layers(self) -> int:
        return int(self.attentions.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.attentions.shape[1])

    @property
    def length(self) -> int:
        return int(self.attentions.shape[-1])


@dataclass
class AttentionDifference:
    """``delta[l, h, q, k] = A_a - A_b`` over the first ``T = min(T_a, T_b)`` positions."""

    delta: torch.Tensor
    tokens_a: list[str]
    tokens_b: list[str]

    @property
    def labels(self) -> list[str]:
        """Token labels: one token where both prompts agree, ``a | b`` where they differ."""
        return [
            ta if ta == tb else f"{ta} | {tb}"
            for ta, tb in zip(self.tokens_a, self.tokens_b, strict=True)
        ]


def _display(token: str) -> str:
    return token.replace(" ", "\u2423").replace("\n", "\u23ce").replace("\t", "\u21e5")


def _prompt_ids(
    model_or_loaded: Any, tokenizer: Any, prompt: Any, use_chat_template: bool
) -> list[int]:
    if isinstance(prompt, str):
        if isinstance(model_or_loaded, LoadedLM):
            return apply_prompt(model_or_loaded, prompt, use_chat_template=use_chat_template)
        ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        bos = getattr(tokenizer, "bos_token_id", None)
        if bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        return ids
    if isinstance(prompt, torch.Tensor):
        if prompt.ndim == 2 and prompt.shape[0] == 1:
            prompt = prompt[0]
        if prompt.ndim != 1:
            raise ValueError("attention_maps takes one prompt (token ids of shape (T,) or (1, T))")
        return [int(i) for i in prompt.tolist()]
    return [int(i) for i in prompt]


@torch.no_grad()
def attention_maps(
    loaded_or_model: LoadedLM | Any,
    tokenizer: Any = None,
    prompt: str | Sequence[int] | torch.Tensor = "",
    *,
    use_chat_template: bool = True,
) -> AttentionMaps:
    """Attention maps ``(layers, heads, T, T)`` of one prompt, with its token strings.

    ``loaded_or_model`` is a :class:`LoadedLM` (then ``tokenizer`` may be None and a text prompt
    goes through :func:`apply_prompt`: chat template, leading BOS) or a model with ``tokenizer``
    (a text prompt is tokenised with a leading BOS). ``prompt`` may also be token ids. A model
    loaded with ``sdpa`` is switched to eager attention for this call and switched back.
    """
    if isinstance(loaded_or_model, LoadedLM):
        model = loaded_or_model.model
        tokenizer = tokenizer if tokenizer is not None else loaded_or_model.tokenizer
    else:
        model = loaded_or_model
    if tokenizer is None:
        raise ValueError("attention_maps needs a tokenizer (or a LoadedLM that carries one)")
    ids = _prompt_ids(loaded_or_model, tokenizer, prompt, use_chat_template)
    if not ids:
        raise ValueError("attention_maps: the prompt is empty")
    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        with with_eager_attention(model):
            out = model(input_ids=input_ids, output_attentions=True, use_cache=False)
    finally:
        model.train(was_training)
    attentions = getattr(out, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise ValueError(
            f"{type(model).__name__} returned no attention maps even under eager attention; "
            "this architecture does not support output_attentions"
        )
    stacked = torch.stack([a[0] for a in attentions]).to(dtype=torch.float32, device="cpu")
    tokens = [tokenizer.decode([i]) for i in ids]
    return AttentionMaps(attentions=stacked, tokens=tokens, input_ids=ids)


def _as_tensor(maps: AttentionMaps | torch.Tensor) -> torch.Tensor:
    return maps.attentions if isinstance(maps, AttentionMaps) else torch.as_tensor(maps)


def sink_mass(
    maps: AttentionMaps | torch.Tensor, k: int = 1, *, include_sink_queries: bool = False
) -> torch.Tensor:
    """Attention mass on the first ``k`` key positions, shape ``(layers, heads)``, in [0, 1].

    Averaged over query positions ``q >= k`` (default; queries ``q < k`` put all their mass on
    keys ``< k`` under the causal mask, so they would only add a constant) or over all queries
    (``include_sink_queries=True``, the spec's ``(1/T) sum_t A[t, 0]``). Works on any tensor whose
    last two axes are (query, key).
    """
    a = _as_tensor(maps)
    if k < 1:
        raise ValueError(f"sink_mass: k must be at least 1, got {k}")
    t = a.shape[-1]
    if include_sink_queries:
        if t < k:
            raise ValueError(f"sink_mass: the prompt has {t} tokens, fewer than k = {k}")
        rows = a
    else:
        if t <= k:
            raise ValueError(
                f"sink_mass: the prompt has {t} tokens; it needs more than k = {k} so that some "
                "query follows the sink positions"
            )
        rows = a[..., k:, :]
    return rows[..., :k].sum(dim=-1).mean(dim=-1)


def sink_ratio(mass: torch.Tensor, threshold: float = DEFAULT_SINK_THRESHOLD) -> float:
    """The fraction of heads whose sink mass is strictly above ``threshold``."""
    mass = torch.as_tensor(mass)
    if mass.numel() == 0:
        raise ValueError("sink_ratio: no heads")
    return float((mass > threshold).float().mean())


def difference(
    maps_a: AttentionMaps | torch.Tensor, maps_b: AttentionMaps | torch.Tensor
) -> AttentionDifference:
    """``A_a - A_b`` on the first ``min(T_a, T_b)`` positions (same layers and heads required).

    Two prompts through one model (e.g. triggered minus clean, spec section 6) or two models on one
    prompt. Truncating to the shorter prompt is exact for causal attention: rows ``q < T`` depend
    only on tokens ``<= q``. Alignment is positional: a prefix trigger shifts later tokens, which
    the token labels of both prompts make visible.
    """
    a, b = _as_tensor(maps_a), _as_tensor(maps_b)
    if a.shape[:-2] != b.shape[:-2]:
        raise ValueError(
            f"difference: maps of shape {tuple(a.shape)} and {tuple(b.shape)} do not have the same "
            "layers and heads"
        )
    t = min(a.shape[-1], b.shape[-1])
    delta = a[..., :t, :t] - b[..., :t, :t]
    tok_a = maps_a.tokens[:t] if isinstance(maps_a, AttentionMaps) and maps_a.tokens else []
    tok_b = maps_b.tokens[:t] if isinstance(maps_b, AttentionMaps) and maps_b.tokens else []
    tok_a = tok_a or [str(i) for i in range(t)]
    tok_b = tok_b or [str(i) for i in range(t)]
    return AttentionDifference(delta=delta, tokens_a=list(tok_a), tokens_b=list(tok_b))


def _check_head(shape: Sequence[int], layer: int, head: int) -> None:
    if not 0 <= layer < shape[0]:
        raise ValueError(f"layer {layer} is out of range: the model has {shape[0]} layers")
    if not 0 <= head < shape[1]:
        raise ValueError(f"head {head} is out of range: each layer has {shape[1]} heads")


def token_labels(tokens: Sequence[str]) -> list[str]:
    """Axis labels ``"i:token"`` with spaces and newlines made visible."""
    return [f"{i}:{_display(t)}" for i, t in enumerate(tokens)]


def sink_heatmap(mass: torch.Tensor, *, k: int = 1, title: str = "") -> Heatmap:
    """A layer x head grid of sink mass (rows: layers, columns: heads), scale 0..1."""
    m = torch.as_tensor(mass).detach().cpu()
    if m.ndim != 2:
        raise ValueError(f"sink_heatmap: expected (layers, heads), got {tuple(m.shape)}")
    return Heatmap(
        matrix=m.numpy(),
        x_labels=[f"H{h}" for h in range(m.shape[1])],
        y_labels=[f"L{layer}" for layer in range(m.shape[0])],
        title=title or f"Sink mass on the first {k} token(s)",
        x_title="head",
        y_title="layer",
        vmin=0.0,
        vmax=1.0,
    )


def attention_heatmap(maps: AttentionMaps, layer: int, head: int, *, title: str = "") -> Heatmap:
    """One head's attention (rows: query tokens, columns: key tokens), scale 0..1."""
    _check_head(maps.attentions.shape, layer, head)
    labels = token_labels(maps.tokens) if maps.tokens else []
    return Heatmap(
        matrix=maps.attentions[layer, head].detach().cpu().numpy(),
        x_labels=labels,
        y_labels=labels,
        title=title or f"Attention, layer {layer} head {head}",
        x_title="key token",
        y_title="query token",
        vmin=0.0,
        vmax=1.0,
    )


def difference_heatmap(
    diff: AttentionDifference, layer: int, head: int, *, title: str = ""
) -> Heatmap:
    """One head's ``Delta A`` (diverging, symmetric scale around 0)."""
    _check_head(diff.delta.shape, layer, head)
    matrix = diff.delta[layer, head].detach().cpu().numpy()
    bound = float(max(abs(matrix).max(), 1e-12))
    labels = token_labels(diff.labels)
    return Heatmap(
        matrix=matrix,
        x_labels=labels,
        y_labels=labels,
        title=title or f"Attention difference (a - b), layer {layer} head {head}",
        x_title="key token",
        y_title="query token",
        vmin=-bound,
        vmax=bound,
        diverging=True,
    )


def sink_difference_heatmap(
    mass_a: torch.Tensor, mass_b: torch.Tensor, *, title: str = ""
) -> Heatmap:
    """A layer x head grid of ``sink_mass_a - sink_mass_b`` (diverging, scale -1..1)."""
    a, b = torch.as_tensor(mass_a), torch.as_tensor(mass_b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"sink_difference_heatmap: shapes {tuple(a.shape)} and {tuple(b.shape)} differ"
        )
    d = (a - b).detach().cpu()
    return Heatmap(
        matrix=d.numpy(),
        x_labels=[f"H{h}" for h in range(d.shape[1])],
        y_labels=[f"L{layer}" for layer in range(d.shape[0])],
        title=title or "Sink mass difference (a - b)",
        x_title="head",
        y_title="layer",
        vmin=-1.0,
        vmax=1.0,
        diverging=True,
    )


def attention_stack(
    maps: AttentionMaps,
    *,
    prompt: str = "",
    sink: torch.Tensor | None = None,
    dtype: str = "float16",
    layer: int = 0,
    head: int = 0,
    title: str = "",
) -> AttentionStack:
    """All ``layers x heads`` maps of one prompt as one artifact, stored in ``dtype``.

    ``float16`` (about 3 significant digits, enough to draw and compare maps whose entries lie in
    [0, 1]) halves the file; ``float32`` keeps the computed values exactly. ``layer``/``head``
    (clamped to the model) name the map shown first.
    """
    if dtype not in STACK_DTYPES:
        raise ValueError(f"attention_stack: dtype must be one of {STACK_DTYPES}, got {dtype!r}")
    arr = maps.attentions.detach().cpu().numpy().astype(dtype)
    return AttentionStack(
        maps=arr,
        tokens=list(maps.tokens),
        prompt=prompt,
        title=title or f"Attention of every layer and head ({maps.num_layers} x {maps.num_heads})",
        input_ids=list(maps.input_ids),
        sink_mass=None if sink is None else torch.as_tensor(sink).detach().cpu().numpy(),
        layer=min(max(layer, 0), maps.num_layers - 1),
        head=min(max(head, 0), maps.num_heads - 1),
    )
