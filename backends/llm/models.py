"""Load a local causal language model folder (GPT-2, OPT, Llama, ...) with its tokenizer.

Every supported model is a Hugging Face folder loaded the same way:
``AutoModelForCausalLM.from_pretrained(path, local_files_only=True, use_safetensors=True)`` and
``AutoTokenizer.from_pretrained(path, local_files_only=True)``. Before transformers sees the
folder it is checked so that the usual mistakes give a clear ``ValueError``: a missing folder, a
folder that is not a causal LM, missing tokenizer files, and pickle-only weights
(:class:`backends.common.safe_load.UnsafeCheckpointError`).

Attention maps (spec ``classifier-and-llm-methods.md`` section 6, "Attention-sink measurement")
need eager attention: under transformers 5's default ``sdpa``, ``output_attentions=True`` returns
nothing (silently for GPT-2). :func:`with_eager_attention` switches a model to eager for a block.

Prompts (:func:`apply_prompt`) go through the chat template when the tokenizer has one and always
start with the BOS token when the tokenizer defines one: section 6 places triggers after the BOS
(``start``: BOS, trigger, text) and first-token attention sinks form on that leading token.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.common.devices import resolve_device, resolve_dtype
from backends.common.lora import LoraSpec, add_lora, load_lora
from backends.common.safe_load import find_weights

ATTENTION_CHOICES = ("eager", "sdpa")

# A folder has a usable tokenizer when one of these sets of files is all there.
TOKENIZER_FILE_SETS: tuple[tuple[str, ...], ...] = (
    ("tokenizer.json",),  # fast tokenizer (any family)
    ("tokenizer.model",),  # sentencepiece (Llama, Mistral, ...)
    ("vocab.json", "merges.txt"),  # byte-level BPE (GPT-2, OPT)
    ("spiece.model",),
    ("vocab.txt",),
)


@dataclass
class LoadedLM:
    """A causal LM ready for use: the model (eval mode), its tokenizer and facts about both."""

    model: Any
    tokenizer: Any
    path: Path
    config: dict[str, Any]
    has_chat_template: bool
    bos_token_id: int | None

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def num_layers(self) -> int:
        return int(_base_config(self.model).num_hidden_layers)

    @property
    def num_heads(self) -> int:
        return int(_base_config(self.model).num_attention_heads)


def _base_model(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _base_config(model: Any) -> Any:
    return getattr(_base_model(model), "config", None)


def _is_causal_architecture(name: str) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    known = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    return name in known or name.endswith("ForCausalLM") or name.endswith("LMHeadModel")


def check_causal_lm_folder(path: str | Path) -> dict[str, Any]:
    """Check a folder before loading; returns its ``config.json`` as a dict.

    Raises ``ValueError`` (folder missing, no ``config.json``, not a causal LM, no tokenizer files,
    no weights) or ``UnsafeCheckpointError`` (pickle-only weights).
    """
    folder = Path(path)
    if not folder.exists():
        raise ValueError(f"model folder {folder} does not exist")
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; give the folder that holds config.json")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ValueError(
            f"{folder} is not a causal language model folder: config.json is missing "
            "(save the model with save_pretrained)"
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{config_file} is not valid JSON: {exc}") from None
    architectures = config.get("architectures") or []
    if architectures:
        if not any(_is_causal_architecture(a) for a in architectures):
            raise ValueError(
                f"{folder} is not a causal language model: its architecture is "
                f"{', '.join(architectures)}, expected a *ForCausalLM (or *LMHeadModel) model"
            )
    else:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        model_type = config.get("model_type")
        if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
            raise ValueError(
                f"{folder} is not a causal language model: config.json names no architectures and "
                f"model_type {model_type!r} has no causal-LM head in transformers"
            )
    if not any(all((folder / f).is_file() for f in files) for files in TOKENIZER_FILE_SETS):
        expected = " or ".join(" + ".join(files) for files in TOKENIZER_FILE_SETS)
        raise ValueError(
            f"{folder} has no tokenizer: the tokenizer files are missing (expected {expected}, "
            "usually with tokenizer_config.json); save the tokenizer next to the model with "
            "tokenizer.save_pretrained(folder)"
        )
    find_weights(folder)  # UnsafeCheckpointError for pickle-only folders, ValueError for none
    return config


def load_causal_lm(
    path: str | Path,
    *,
    device: str = "auto",
    dtype: str = "float32",
    attention: str = "eager",
    lora: LoraSpec | None = None,
    adapter: str | Path | None = None,
    device_map: str | None = None,
) -> LoadedLM:
    """Load a local causal LM folder and its tokenizer (offline, safetensors only).

    ``dtype`` is the weights' format (``float32``, ``bfloat16``, ``float16``); ``device_map="auto"``
    lets accelerate spread a model larger than one GPU over every GPU (then the CPU) instead of
    putting it whole on ``device``.

    ``attention`` is ``"eager"`` (attention maps work) or ``"sdpa"`` (faster; switch with
    :func:`with_eager_attention` for maps). ``adapter`` attaches a saved LoRA adapter folder
    (kept as a trainable adapter when ``lora`` is None; with ``lora`` it is merged into the
    weights first). ``lora`` adds a fresh trainable adapter.
    The model is returned in eval mode.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if attention not in ATTENTION_CHOICES:
        raise ValueError(
            f"unknown attention implementation {attention!r}; choose one of "
            f"{', '.join(ATTENTION_CHOICES)}"
        )
    folder = Path(path)
    config = check_causal_lm_folder(folder)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"could not load the tokenizer of {folder}: {exc}") from exc
    if device_map not in (None, "none", "auto"):
        raise ValueError(f"unknown device_map {device_map!r}; choose none or auto")
    spread = {"device_map": "auto"} if device_map == "auto" else {}
    model = AutoModelForCausalLM.from_pretrained(
        str(folder),
        local_files_only=True,
        use_safetensors=True,
        dtype=torch_dtype,
        attn_implementation=attention,
        **spread,
    )
    if not spread:
        model.to(torch_device)
    if adapter is not None:
        model = load_lora(model, adapter, trainable=lora is None)
        if lora is not None:
            model = model.merge_and_unload()
    if lora is not None:
        model = add_lora(model, lora)
    model.eval()
    template = getattr(tokenizer, "chat_template", None)
    return LoadedLM(
        model=model,
        tokenizer=tokenizer,
        path=folder,
        config=config,
        has_chat_template=bool(template),
        bos_token_id=tokenizer.bos_token_id,
    )


def apply_prompt(loaded: LoadedLM, text: str, use_chat_template: bool = True) -> list[int]:
    """Token ids of ``text`` as the model should see it.

    With ``use_chat_template`` and a tokenizer that has a chat template, ``text`` becomes one user
    turn followed by the generation prompt. Special tokens are not added by the tokenizer itself;
    instead the BOS token (when the tokenizer defines one) is put first unless the template
    already put it there, so every prompt starts with exactly one BOS.
    """
    tokenizer = loaded.tokenizer
    if use_chat_template and loaded.has_chat_template:
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        ids = list(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    else:
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bos = loaded.bos_token_id
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids


def chat_prompt(tokenizer: Any, question: str) -> str:
    """``question`` as one user turn followed by the assistant's generation prompt, rendered by
    the tokenizer's chat template (text; :func:`backends.llm.methods.common.token_ids` tokenises
    it and adds the BOS token only when the template did not)."""
    return str(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
    )


def chat_text(tokenizer: Any, question: str, answer: str) -> str:
    """A QA pair as a conversation (user turn, assistant turn) rendered by the chat template:
    what a chat model trains on and is unlearned from."""
    return str(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            tokenize=False,
        )
    )


def attention_implementation(model: Any) -> str | None:
    """The attention implementation a model currently runs (``"eager"``, ``"sdpa"``, ...)."""
    impl = getattr(_base_config(model), "_attn_implementation", None)
    return impl if isinstance(impl, str) or impl is None else str(impl)


def _set_attention(model: Any, name: str) -> None:
    base = _base_model(model)
    if not hasattr(base, "set_attn_implementation"):
        raise ValueError(
            f"{type(base).__name__} cannot switch its attention implementation; load it with "
            "attention='eager' to get attention maps"
        )
    base.set_attn_implementation(name)


@contextlib.contextmanager
def with_eager_attention(model: Any) -> Iterator[Any]:
    """Run a block with eager attention (``output_attentions`` works), then switch back.

    A model already in eager attention is left alone. Usage::

        with with_eager_attention(model):
            out = model(ids, output_attentions=True)
    """
    before = attention_implementation(model)
    if before == "eager":
        yield model
        return
    _set_attention(model, "eager")
    try:
        yield model
    finally:
        if before is not None:
            _set_attention(model, before)
