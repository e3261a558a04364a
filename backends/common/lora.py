"""LoRA adapters for any model family, through peft (never hand-rolled).

Shared by the LLM family (spec ``classifier-and-llm-methods.md`` section 6: the CPU version trains
a tiny GPT; LoRA keeps fine-tuning of larger causal LMs cheap) and the diffusion family.

- :class:`LoraSpec` says rank, alpha, dropout and which modules to adapt. ``target_modules=None``
  picks them per architecture (:func:`default_targets`): GPT-2 ``c_attn``/``c_proj`` with
  ``fan_in_fan_out=True`` (GPT-2 stores its projections as ``Conv1D`` with transposed weights),
  Llama/OPT/Mistral-like ``q_proj``/``v_proj``, diffusers attention ``to_q``/``to_v``.
- :func:`add_lora`, :func:`merge_lora`, :func:`save_lora` (safetensors only),
  :func:`load_lora` (refuses pickle adapters with :class:`UnsafeCheckpointError`).

This module imports neither torch nor peft at import time, so configs may import :class:`LoraSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from backends.common.safe_load import PICKLE_SUFFIXES, UnsafeCheckpointError

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"

# model_type -> (target modules, fan_in_fan_out)
_TARGETS_BY_MODEL_TYPE: dict[str, tuple[tuple[str, ...], bool]] = {
    "gpt2": (("c_attn", "c_proj"), True),
    "llama": (("q_proj", "v_proj"), False),
    "opt": (("q_proj", "v_proj"), False),
    "mistral": (("q_proj", "v_proj"), False),
    "qwen2": (("q_proj", "v_proj"), False),
    "qwen3": (("q_proj", "v_proj"), False),
    "gemma": (("q_proj", "v_proj"), False),
    "gemma2": (("q_proj", "v_proj"), False),
    "phi3": (("qkv_proj",), False),
    "gpt_neox": (("query_key_value",), False),
}

# Fallback: module-name suffixes searched in order when the model type is unknown.
_TARGETS_BY_NAME: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("q_proj", "v_proj"), False),
    (("to_q", "to_v"), False),  # diffusers attention (UNet, transformer blocks)
    (("c_attn", "c_proj"), True),
    (("query", "value"), False),  # BERT/ViT-style
    (("query_key_value",), False),
)


@dataclass
class LoraSpec:
    """What a LoRA adapter looks like.

    ``target_modules=None`` picks the modules per architecture (see :func:`default_targets`);
    ``fan_in_fan_out=None`` follows the same choice (True only for GPT-2's ``Conv1D``).
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] | None = None
    fan_in_fan_out: bool | None = None
    bias: Literal["none", "all", "lora_only"] = "none"

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        if self.target_modules is not None and not self.target_modules:
            raise ValueError("LoRA target_modules is empty; give module names or None (auto)")


def _model_type(model: Any) -> str | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    if isinstance(config, dict):
        return config.get("model_type")
    return getattr(config, "model_type", None)


def default_targets(model: Any) -> tuple[list[str], bool]:
    """``(target module names, fan_in_fan_out)`` for a model, by model type, else by module names."""
    model_type = _model_type(model)
    if model_type in _TARGETS_BY_MODEL_TYPE:
        names, fan = _TARGETS_BY_MODEL_TYPE[model_type]
        return list(names), fan
    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for names, fan in _TARGETS_BY_NAME:
        if all(n in leaf_names for n in names):
            return list(names), fan
    raise ValueError(
        f"cannot pick LoRA target modules for model type {model_type!r}: none of the known "
        "projection names (q_proj/v_proj, to_q/to_v, c_attn/c_proj, query/value) were found; "
        "set LoraSpec.target_modules explicitly"
    )


def add_lora(model: Any, spec: LoraSpec, *, adapter_name: str = "default") -> Any:
    """Wrap ``model`` in a trainable ``peft.PeftModel`` with a fresh LoRA adapter.

    Only the adapter weights are trainable afterwards (peft freezes the base model).
    """
    from peft import LoraConfig, get_peft_model

    if spec.target_modules is None:
        targets, auto_fan = default_targets(model)
    else:
        targets, auto_fan = list(spec.target_modules), _model_type(model) == "gpt2"
    fan = spec.fan_in_fan_out if spec.fan_in_fan_out is not None else auto_fan
    config = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=targets,
        fan_in_fan_out=fan,
        bias=spec.bias,
    )
    return get_peft_model(model, config, adapter_name=adapter_name)


def is_lora_model(model: Any) -> bool:
    """Whether ``model`` is a peft-wrapped model."""
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency of the LLM family
        return False
    return isinstance(model, PeftModel)


def merge_lora(model: Any) -> Any:
    """Fold the LoRA weights into the base weights and return the plain base ``nn.Module``."""
    if not is_lora_model(model):
        raise ValueError("merge_lora: the model carries no LoRA adapter (not a peft PeftModel)")
    return model.merge_and_unload()


def save_lora(model: Any, folder: str | Path) -> Path:
    """Save only the adapter (``adapter_config.json`` + ``adapter_model.safetensors``) to ``folder``."""
    if not is_lora_model(model):
        raise ValueError("save_lora: the model carries no LoRA adapter (not a peft PeftModel)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    if not (folder / ADAPTER_WEIGHTS).is_file():  # pragma: no cover - peft contract
        raise RuntimeError(f"peft did not write {ADAPTER_WEIGHTS} into {folder}")
    return folder


def check_adapter_folder(folder: str | Path) -> Path:
    """A clear error unless ``folder`` holds a peft adapter saved as safetensors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"LoRA adapter folder {folder} does not exist")
    if not (folder / ADAPTER_CONFIG).is_file():
        raise ValueError(f"{folder} is not a LoRA adapter folder: {ADAPTER_CONFIG} is missing")
    if not (folder / ADAPTER_WEIGHTS).is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise UnsafeCheckpointError(
                f"{folder} has only pickle adapter weights ({', '.join(pickles)}); pickle files can "
                "run arbitrary code when loaded, so they are refused: re-save the adapter with "
                "safe_serialization=True"
            )
        raise ValueError(f"{folder} has no {ADAPTER_WEIGHTS}")
    return folder


def load_lora(model: Any, folder: str | Path, *, trainable: bool = False) -> Any:
    """Attach a saved adapter (safetensors only) to ``model``; returns the ``PeftModel``."""
    from peft import PeftModel

    folder = check_adapter_folder(folder)
    return PeftModel.from_pretrained(model, str(folder), is_trainable=trainable)
