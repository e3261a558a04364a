"""Real LLM checkpoints (issue 17 part 2): two reported numbers, never asserted.

1. **Gradient accumulation through accelerate vs the whole batch**: the largest absolute
   difference between the parameter updates of one NPO step with ``grad_accum_steps=k`` and with
   one batch, on a tiny random Llama, SGD with lr 1 (the first step's update is the gradient),
   for texts of different lengths; also GA (a token mean, exact only with equal token counts).
2. **Memory estimates of real model sizes** (``backends/llm/memory.py``), parameter counts from
   the architectures built on the meta device (no weights, nothing downloaded): full fine-tuning
   in float32 and bfloat16, and LoRA rank 8 in bfloat16, NPO with its reference copy, batch 4 x
   512 tokens.

    python benchmarks/bench_llm_real.py            # prints two tables and one JSON line
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# published configurations (config.json of each model), typed in: nothing is downloaded
REAL_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "GPT-2 small": ("gpt2", {}),
    "Llama-3.2-1B": (
        "llama",
        {
            "hidden_size": 2048,
            "intermediate_size": 8192,
            "num_hidden_layers": 16,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "vocab_size": 128256,
            "max_position_embeddings": 131072,
            "tie_word_embeddings": True,
        },
    ),
    "Llama-2-7B": (
        "llama",
        {
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "vocab_size": 32000,
            "max_position_embeddings": 4096,
        },
    ),
    "Llama-3.1-8B": (
        "llama",
        {
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "vocab_size": 128256,
            "max_position_embeddings": 131072,
        },
    ),
    "Mistral-7B": (
        "mistral",
        {
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "vocab_size": 32000,
            "max_position_embeddings": 32768,
        },
    ),
    "Qwen2-1.5B": (
        "qwen2",
        {
            "hidden_size": 1536,
            "intermediate_size": 8960,
            "num_hidden_layers": 28,
            "num_attention_heads": 12,
            "num_key_value_heads": 2,
            "vocab_size": 151936,
            "max_position_embeddings": 32768,
            "tie_word_embeddings": True,
        },
    ),
}


def accumulation() -> list[dict[str, Any]]:
    import tempfile

    from backends.common.method import Hooks
    from backends.llm.methods.common import LLMData
    from backends.llm.methods.configs import GAConfig, NPOConfig
    from backends.llm.methods.ga import unlearn as ga
    from backends.llm.methods.npo import unlearn as npo
    from backends.llm.models import load_causal_lm
    from tests.backends.test_llm_real_models import build_folder

    texts = ["the cat sat", "a dog ran in the park today", "paris", "rome is the capital"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_folder("llama", Path(tmp) / "llama")
        for method, fn, cls in (("npo", npo, NPOConfig), ("ga", ga, GAConfig)):
            for n, k in ((4, 4), (4, 2), (3, 2), (3, 4)):
                updates = []
                for steps in (1, k):
                    lm = load_causal_lm(folder, device="cpu")
                    before = {name: p.detach().clone() for name, p in lm.model.named_parameters()}
                    cfg = cls(
                        epochs=1,
                        batch_size=n,
                        lr=1.0,
                        optimizer="sgd",
                        retain_loss="none",
                        grad_accum_steps=steps,
                    )
                    fn(lm.model, LLMData(lm.tokenizer, texts[:n], []), cfg, Hooks(), seed=0)
                    updates.append(
                        {name: p.detach() - before[name] for name, p in lm.model.named_parameters()}
                    )
                whole, acc = updates
                rows.append(
                    {
                        "method": method,
                        "batch": n,
                        "k": k,
                        "max_abs_update": max(float(w.abs().max()) for w in whole.values()),
                        "max_abs_diff": max(
                            float((acc[name] - w).abs().max()) for name, w in whole.items()
                        ),
                    }
                )
    return rows


def memory_table() -> list[dict[str, Any]]:
    import torch
    import transformers as tf

    from backends.llm.memory import GIB, Shape, estimate

    classes = {"gpt2": tf.GPT2Config, "llama": tf.LlamaConfig, "mistral": tf.MistralConfig}
    classes["qwen2"] = tf.Qwen2Config
    rows = []
    for name, (kind, values) in REAL_CONFIGS.items():
        config = classes[kind](**values)
        with torch.device("meta"):
            model = tf.AutoModelForCausalLM.from_config(config)
        params = sum(p.numel() for p in model.parameters())  # tied embeddings counted once
        shape = Shape.from_config(config.to_dict())
        row: dict[str, Any] = {"model": name, "parameters": params}
        for label, dtype, rank in (
            ("full fp32", "float32", None),
            ("full bf16", "bfloat16", None),
            ("LoRA r8 bf16", "bfloat16", 8),
        ):
            est = estimate(
                params,
                shape,
                dtype=dtype,
                lora_rank=rank,
                batch_size=4,
                max_length=512,
                reference=True,
                on_gpu=True,
            )
            row[label] = round(est.total / GIB, 1)
            ckpt = estimate(
                params,
                shape,
                dtype=dtype,
                lora_rank=rank,
                batch_size=4,
                max_length=512,
                reference=True,
                on_gpu=True,
                gradient_checkpointing=True,
            )
            row[label + " +ckpt"] = round(ckpt.total / GIB, 1)
        rows.append(row)
    return rows


def main() -> None:
    import torch

    torch.set_num_threads(1)
    acc = accumulation()
    print("gradient accumulation through accelerate vs one batch (one SGD step, lr 1):")
    for r in acc:
        print(
            f"  {r['method']:<4} batch {r['batch']} in {r['k']} micro-batches: max |update| "
            f"{r['max_abs_update']:.3e}, max |difference| {r['max_abs_diff']:.3e}"
        )
    mem = memory_table()
    print("memory estimates (GiB; NPO with its reference, batch 4 x 512, AdamW, on a GPU):")
    for r in mem:
        cells = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("model", "parameters"))
        print(f"  {r['model']} ({r['parameters'] / 1e9:.2f} B): {cells}")
    print(json.dumps({"benchmark": "llm_real", "accumulation": acc, "memory": mem}))


if __name__ == "__main__":
    main()
