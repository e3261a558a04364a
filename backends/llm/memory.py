"""How much memory an LLM unlearning run needs, estimated before it starts (no torch import).

Issue 17 part 2, and spec ``classifier-and-llm-methods.md`` section 8 ("Memory / compute":
OOM with 8B models on a 40 GB card; offer LoRA, gradient checkpointing): the estimate is shown before a job starts (the run's first log line, and
``python -m backends.llm.memory MODEL_FOLDER``) and a run that cannot fit the chosen device is
refused at submit (:func:`backends.llm.checks.check_submit`, ``JobSpec.submit_check``).

The sum of four terms (bytes), plus a fixed allowance for the CUDA context on a GPU:

- **weights**: ``P * b`` for ``P`` parameters (read from the safetensors headers) stored in the
  run's ``dtype`` (``b`` = 4 for float32, 2 for bfloat16 / float16), plus a frozen copy of the
  model for the methods that keep a reference (NPO always, RMU always, any method whose retain
  term is the KL to the original);
- **gradients**: one per trained parameter, in the parameter's dtype: the whole model, or the LoRA
  adapter only (peft keeps adapters in float32);
- **optimiser states**: AdamW keeps two tensors per trained parameter (``exp_avg``,
  ``exp_avg_sq``), SGD with momentum one;
- **activations** of one micro-batch (``batch_size / grad_accum_steps`` texts of ``max_length``
  tokens), for the forget and, when the retain term needs a forward pass, the retain batch:
  per layer ``s b h (34 + 5 a s / h)`` bytes in 16-bit (Korthikanti et al. 2022, "Reducing
  Activation Recomputation in Large Transformer Models", eq. 2; doubled in float32); with gradient
  checkpointing only each layer's input ``2 s b h`` is kept plus one layer recomputed. The logits
  add ``b s V`` values in the weights' dtype plus the float32 log-softmax and its gradient.

The figures are an estimate, not a measurement: ``benchmarks/gpu_check.py`` prints measured peaks
beside it (``docs/results.md``). Everything is rounded *up* (a 10 % margin) so a refusal means
the run would not fit, not that it might not.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 1024**3
MARGIN = 1.10  # the estimate is multiplied by this
CUDA_CONTEXT_BYTES = 600 * 1024**2  # the CUDA context and the allocator's reserve
DTYPE_BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}
_HEADER_MAX = 100 * 1024 * 1024

# which methods keep a frozen copy of the model whatever their retain term
_ALWAYS_REFERENCE = ("npo", "rmu")


def parameter_count(folder: str | Path) -> int:
    """Parameters of the model in ``folder``: the shapes in its top-level ``*.safetensors``
    headers (no weights read). ``ValueError`` when there are none."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ValueError(f"{folder} has no *.safetensors weights to count parameters from")
    total = 0
    for file in files:
        with open(file, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 0 < n <= _HEADER_MAX:
                raise ValueError(f"{file} is not a safetensors file (bad header length)")
            header = json.loads(fh.read(n).decode("utf-8"))
        for key, entry in header.items():
            if key != "__metadata__" and isinstance(entry, dict):
                total += math.prod(entry.get("shape") or [1])
    return total


@dataclass(frozen=True)
class Shape:
    """What the estimate needs from ``config.json``."""

    model_type: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    vocab: int
    context: int | None
    ffn: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Shape:
        cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
        assert isinstance(cfg, dict)

        def first(*keys: str, default: int | None = None) -> int | None:
            for key in keys:
                value = cfg.get(key)
                if isinstance(value, int) and value > 0:
                    return value
            return default

        hidden = first("hidden_size", "n_embd", "d_model", "word_embed_proj_dim") or 0
        heads = first("num_attention_heads", "n_head") or 1
        return cls(
            model_type=str(cfg.get("model_type", "")),
            layers=first("num_hidden_layers", "n_layer", "num_layers") or 0,
            hidden=hidden,
            heads=heads,
            kv_heads=first("num_key_value_heads", default=heads) or heads,
            vocab=first("vocab_size") or 0,
            context=first("max_position_embeddings", "n_positions"),
            ffn=first("intermediate_size", "n_inner", "ffn_dim", default=4 * hidden) or 4 * hidden,
        )


def lora_parameters(shape: Shape, rank: int) -> int:
    """Trainable parameters of the LoRA adapter :func:`backends.common.lora.default_targets`
    puts on this architecture (``rank * (in + out)`` per adapted projection)."""
    h, L = shape.hidden, shape.layers
    head_dim = h // max(shape.heads, 1)
    if shape.model_type == "gpt2":  # c_attn (h -> 3h) and every c_proj (attn h -> h, mlp 4h -> h)
        per_layer = (h + 3 * h) + (h + h) + (shape.ffn + h)
    elif shape.model_type in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2"):
        per_layer = (h + shape.heads * head_dim) + (h + shape.kv_heads * head_dim)
    else:  # q_proj and v_proj of width h (OPT) and the fallback
        per_layer = 4 * h
    return rank * per_layer * L


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per term; :attr:`total` includes the margin and the CUDA context on a GPU."""

    weights: int
    reference: int
    gradients: int
    optimizer: int
    activations: int
    overhead: int
    parameters: int
    trained: int

    @property
    def total(self) -> int:
        terms = self.weights + self.reference + self.gradients + self.optimizer + self.activations
        return int(terms * MARGIN) + self.overhead

    def describe(self) -> str:
        def g(n: int) -> str:
            return f"{n / GIB:.2f} GiB"

        return (
            f"{g(self.total)} (weights {g(self.weights)}"
            + (f", reference copy {g(self.reference)}" if self.reference else "")
            + f", gradients {g(self.gradients)}, optimiser {g(self.optimizer)}, "
            f"activations {g(self.activations)}"
            + (f", CUDA context {g(self.overhead)}" if self.overhead else "")
            + f"; {self.trained:,} of {self.parameters:,} parameters trained, +10% margin)"
        )


def estimate(
    parameters: int,
    shape: Shape,
    *,
    dtype: str = "float32",
    lora_rank: int | None = None,
    optimizer: str = "adamw",
    batch_size: int = 8,
    grad_accum_steps: int = 1,
    max_length: int = 256,
    gradient_checkpointing: bool = False,
    reference: bool = False,
    retain_forward: bool = True,
    on_gpu: bool = False,
) -> MemoryEstimate:
    """The memory of one unlearning run (module docstring); ``lora_rank=None`` trains every
    parameter, ``reference`` keeps a frozen copy, ``retain_forward`` adds the retain batch."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BYTES)}")
    b = DTYPE_BYTES[dtype]
    weights = parameters * b
    if lora_rank is None:
        trained, grad_bytes = parameters, b
    else:
        trained, grad_bytes = lora_parameters(shape, lora_rank), 4
        weights += trained * 4
    states = {"adamw": 2, "sgd": 1}.get(optimizer, 2)
    micro = math.ceil(batch_size / max(grad_accum_steps, 1))
    s = min(max_length, shape.context) if shape.context else max_length
    h, a, L = shape.hidden, shape.heads, shape.layers
    act_scale = 2 if b >= 4 else 1  # the formula counts 16-bit activations
    per_layer = s * micro * h * (34 + 5 * a * s / max(h, 1)) * act_scale
    if gradient_checkpointing:
        layers = 2 * s * micro * h * L * act_scale + per_layer
    else:
        layers = per_layer * L
    logits = micro * s * shape.vocab * (b + 4 + 4)
    batches = 2 if retain_forward else 1
    return MemoryEstimate(
        weights=weights,
        reference=parameters * b if reference else 0,
        gradients=trained * grad_bytes,
        optimizer=trained * grad_bytes * states,
        activations=int((layers + logits) * batches),
        overhead=CUDA_CONTEXT_BYTES if on_gpu else 0,
        parameters=parameters,
        trained=trained,
    )


def needs_reference(method: str, retain_loss: str | None) -> bool:
    """Whether the method keeps a frozen copy of the model (NPO, RMU, any KL retain term)."""
    return method in _ALWAYS_REFERENCE or retain_loss == "kl"


def estimate_for_config(
    folder: str | Path, method: str, config: Any, on_gpu: bool
) -> MemoryEstimate:
    """:func:`estimate` for an ``llm.unlearn.<method>`` config (its setup and method fields)."""
    folder = Path(folder)
    try:
        config_json = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {folder / 'config.json'}: {exc}") from None
    retain = getattr(config, "retain_loss", "none")
    return estimate(
        parameter_count(folder),
        Shape.from_config(config_json),
        dtype=getattr(config, "dtype", "float32"),
        lora_rank=getattr(config, "lora_rank", 8) if getattr(config, "use_lora", False) else None,
        optimizer=getattr(config, "optimizer", "adamw"),
        batch_size=getattr(config, "batch_size", 8),
        grad_accum_steps=getattr(config, "grad_accum_steps", 1),
        max_length=getattr(config, "max_length", 256),
        gradient_checkpointing=getattr(config, "gradient_checkpointing", False),
        reference=needs_reference(method, retain),
        retain_forward=retain != "none",
        on_gpu=on_gpu,
    )


# -- what the chosen device holds --------------------------------------------------------------
def gpu_memory() -> list[int]:
    """Total memory of each NVIDIA GPU in bytes (``nvidia-smi``; no torch import), ``[]`` when
    there is none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(float(line)) * 1024**2 for line in out.split() if line.strip()]


def cpu_memory() -> int:
    """Memory available to a new allocation on this machine (``MemAvailable``), in bytes."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def device_capacity(device: str, device_map: str, limit_gb: float) -> tuple[int, str, bool]:
    """``(bytes, what, on_gpu)``: the memory the run may use on ``device`` (``limit_gb`` when set,
    else the GPU's total, all GPUs' with ``device_map="auto"``, or the machine's available RAM)."""
    gpus = [] if device == "cpu" else gpu_memory()
    on_gpu = bool(gpus)
    if limit_gb > 0:
        return int(limit_gb * GIB), f"the configured limit of {limit_gb:g} GiB", on_gpu
    if on_gpu:
        if device_map == "auto":
            return sum(gpus), f"{len(gpus)} GPU(s) together", True
        index = int(device.partition(":")[2] or 0) if device.startswith("cuda") else 0
        return gpus[min(index, len(gpus) - 1)], f"GPU {index}", True
    return cpu_memory(), "this machine's available memory", False


def main(argv: list[str] | None = None) -> int:
    """``python -m backends.llm.memory MODEL_FOLDER [--method npo] [--dtype bfloat16] ...``"""
    import argparse

    parser = argparse.ArgumentParser(description="Estimate an LLM unlearning run's memory.")
    parser.add_argument("folder", help="the causal LM folder (config.json + safetensors)")
    parser.add_argument("--method", default="npo", help="ga, graddiff, npo, simnpo or rmu")
    parser.add_argument("--dtype", default="float32", choices=tuple(DTYPE_BYTES))
    parser.add_argument(
        "--lora-rank", type=int, default=0, help="train a LoRA adapter of this rank"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="texts per batch")
    parser.add_argument("--grad-accum-steps", type=int, default=1, help="micro-batches per step")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per text")
    parser.add_argument("--retain-loss", default="kl", help="none, nll or kl")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute")
    parser.add_argument("--gpu", action="store_true", help="add the CUDA context")
    args = parser.parse_args(argv)
    result = estimate(
        parameter_count(args.folder),
        Shape.from_config(json.loads((Path(args.folder) / "config.json").read_text())),
        dtype=args.dtype,
        lora_rank=args.lora_rank or None,
        batch_size=args.batch_size,
        grad_accum_steps=args.grad_accum_steps,
        max_length=args.max_length,
        gradient_checkpointing=args.gradient_checkpointing,
        reference=needs_reference(args.method, args.retain_loss),
        retain_forward=args.retain_loss != "none",
        on_gpu=args.gpu,
    )
    print(result.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
