"""Light checks for the LLM family's model and dataset kinds (no torch; used by the registry)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.config import ConfigError
from workbench.files import FileCheckError, read_json_file

LAYER_KEYS = ("n_layer", "num_hidden_layers", "num_layers")
HEAD_KEYS = ("n_head", "num_attention_heads")


def check_causal_lm(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` is a causal-LM folder with a tokenizer."""
    from backends.llm.models import check_causal_lm_folder

    check_causal_lm_folder(path)


def check_universe_folder(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` is (or holds) a universe.json with facts."""
    p = Path(path)
    file = p / "universe.json" if p.is_dir() else p
    if not file.exists():
        raise ValueError(f"{path} holds no universe.json")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not data.get("facts"):
        raise ValueError(f"{file} has no facts; it is not a fact universe")


def _model_shape(model: Any) -> tuple[int | None, int | None]:
    """(layers, heads) from a causal-LM folder's config.json; ``None`` where it does not say."""
    path = getattr(model, "path", None)
    if path is None:
        return None, None
    try:
        cfg = read_json_file(Path(path) / "config.json", max_bytes=4 * 1024 * 1024, expect=dict)
    except FileCheckError:
        return None, None
    cfg = cfg.get("text_config", cfg) if isinstance(cfg.get("text_config"), dict) else cfg
    layers = next((cfg[k] for k in LAYER_KEYS if isinstance(cfg.get(k), int)), None)
    heads = next((cfg[k] for k in HEAD_KEYS if isinstance(cfg.get(k), int)), None)
    return layers, heads


def check_memory(config: Any, model: Any) -> None:
    """Refuse an unlearning run whose memory estimate (:mod:`backends.llm.memory`) exceeds what
    the chosen device holds (or ``memory_limit_gb``); the message gives the estimate's terms and
    what to change. Jobs without the training fields (attention, SKeB) are not checked."""
    if not hasattr(config, "grad_accum_steps") or not hasattr(config, "memory_limit_gb"):
        return
    from backends.llm.memory import GIB, device_capacity, estimate_for_config
    from backends.llm.plugin import TINY_GPT

    path = Path(getattr(model, "path", None) or TINY_GPT)
    device = getattr(config, "device", "auto")
    capacity, what, on_gpu = device_capacity(
        device, getattr(config, "device_map", "none"), float(config.memory_limit_gb)
    )
    try:
        needed = estimate_for_config(path, _method_of(config), config, on_gpu)
    except (OSError, ValueError):
        return  # the folder check reports an unreadable model
    if capacity and needed.total > capacity:
        advice = (
            "use_lora, dtype bfloat16, a smaller batch_size or more grad_accum_steps, "
            "gradient_checkpointing"
            + (", or device_map auto over several GPUs" if on_gpu else ", or a GPU")
        )
        raise ConfigError(
            f"{getattr(model, 'name', None) or path.name} does not fit: this run needs about "
            f"{needed.describe()}, more than {what} ({capacity / GIB:.2f} GiB); try {advice}",
            "memory_limit_gb" if config.memory_limit_gb > 0 else "batch_size",
        )


def _method_of(config: Any) -> str:
    """The method whose config is a part of the composed ``config`` ("" when none is)."""
    from backends.llm.methods import METHODS
    from workbench.config import config_parts

    parts = set(config_parts(config))
    return next((info.name for info in METHODS.values() if info.config in parts), "")


def check_gpus(config: Any) -> None:
    """Refuse a ``gpus`` count this machine cannot give (more GPUs than it has, any on a machine
    without CUDA) and the combinations a multi-GPU run cannot make: a ``device`` other than
    ``auto`` / ``cuda`` (the CPU, or one fixed GPU for every process), or
    ``device_map: auto`` (one model spread over the GPUs, not one copy per GPU)."""
    gpus = getattr(config, "gpus", 1)
    if gpus == 1:
        return
    from workbench.accelerate_launch import check_gpus as check_count

    device = getattr(config, "device", "auto")
    if device not in ("auto", "cuda"):
        raise ConfigError(
            f"config field 'gpus': {gpus} GPUs were asked for with device {device!r}; set device "
            "to auto or cuda (each process takes its own GPU), or gpus=1",
            "gpus",
        )
    if getattr(config, "device_map", "none") == "auto":
        raise ConfigError(
            f"config field 'gpus': gpus={gpus} runs one copy of the model per GPU, which "
            "device_map 'auto' (one model spread over the GPUs) excludes; choose one",
            "gpus",
        )
    try:
        check_count(gpus)
    except ValueError as exc:
        raise ConfigError(str(exc), "gpus") from None


def check_submit(config: Any, model: Any, dataset: Any) -> None:
    """Submit-time checks of the LLM jobs that depend on the chosen model (no torch).

    The attention job's layer and head, and RMU's steered and updated blocks, must exist in the
    model (``config.json``: ``n_layer``/``num_hidden_layers``, ``n_head``/``num_attention_heads``);
    an unlearning run must fit the device's memory (:func:`check_memory`); its ``gpus`` must
    exist (:func:`check_gpus`).
    """
    check_gpus(config)
    check_memory(config, model)
    layers, heads = _model_shape(model)
    name = getattr(model, "name", "the model")
    if layers is not None:
        layer = getattr(config, "layer", None)
        if isinstance(layer, int) and not -layers <= layer < layers:
            allowed = f"0..{layers - 1}" + (
                f" (or -{layers}..-1 from the end)" if layer < 0 else ""
            )
            raise ConfigError(
                f"config field 'layer': {name} has {layers} layers, so layer {layer} does not "
                f"exist; allowed: {allowed}",
                "layer",
            )
        for value in getattr(config, "update_layers", None) or []:
            if isinstance(value, int) and not -layers <= value < layers:
                raise ConfigError(
                    f"config field 'update_layers': {name} has {layers} layers, so block {value} "
                    f"does not exist; allowed: 0..{layers - 1}",
                    "update_layers",
                )
    head = getattr(config, "head", None)
    if heads is not None and isinstance(head, int) and not 0 <= head < heads:
        raise ConfigError(
            f"config field 'head': {name} has {heads} attention heads per layer, so head {head} "
            f"does not exist; allowed: 0..{heads - 1}",
            "head",
        )
