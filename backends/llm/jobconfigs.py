"""Typed configs of the LLM family's jobs (light: no torch).

The model comes from the job's model picker (default: the built-in tiny GPT) and the fact
universe from the dataset picker (default: the universe the tiny GPT was trained on).
"""

from __future__ import annotations

from dataclasses import dataclass

from backends.common import fields
from backends.common.devices import DEVICE_CHOICES
from workbench.config import param


@dataclass
class LLMSetupConfig:
    """What to forget, where to run, and how much to evaluate."""

    forget_kind: str = param(
        "entity", "Forget an entity's neighbourhood or a whole book.", choices=("entity", "book")
    )
    forget_target: str = param(
        "", "The entity name or book id to forget (empty: the first person / the first book)."
    )
    hops: int = param(
        1, "Neighbourhood radius in the chapter co-occurrence graph (entity).", range=(0, 5)
    )
    max_eval_items: int = param(
        200,
        "Largest number of QA pairs per recall set (retain is subsampled, seeded).",
        range=(10, 100_000),
    )
    device: str = param("auto", "Where to run.", choices=DEVICE_CHOICES)
    dtype: str = param(
        "float32",
        "Weights' number format: bfloat16 or float16 halve the memory on a GPU (float16 trains "
        "without loss scaling: prefer bfloat16 for unlearning).",
        choices=("float32", "bfloat16", "float16"),
        advanced=True,
    )
    device_map: str = param(
        "none",
        "none: the whole model on `device`; auto: spread a model larger than one GPU over all "
        "GPUs (then CPU) with accelerate's device_map='auto'.",
        choices=("none", "auto"),
        advanced=True,
    )
    gpus: int = param(
        1,
        "GPUs to train on: more than 1 makes `workbench run` launch one process per GPU "
        "through `accelerate launch` (DDP: each takes its share of every batch; the same steps "
        "and result as one process, up to float rounding). The app runs one process.",
        range=(1, 1024),
        advanced=True,
    )
    use_chat_template: bool = param(
        True,
        "When the tokenizer has a chat template (chat models), put QA pairs through it: the "
        "question as a user turn, the answer as the assistant's; base models are unaffected.",
    )
    use_lora: bool = param(
        False,
        "Unlearn through a LoRA adapter (peft): only the adapter trains; it is saved in the run "
        "folder (adapter/adapter_model.safetensors) and merged into the saved model.",
    )
    lora_rank: int = param(8, "LoRA rank (with use_lora).", range=(1, 1024), advanced=True)
    lora_alpha: float = param(
        16.0, "LoRA scaling alpha (with use_lora).", range=(1e-3, 1e6), advanced=True
    )
    memory_limit_gb: float = param(
        0.0,
        "Refuse the run at submit when its memory estimate exceeds this many GiB (0: the "
        "chosen device's memory: the GPU's, or this machine's available RAM).",
        range=(0.0, 1e6),
        advanced=True,
    )
    privleak: bool = param(
        True,
        "MUSE PrivLeak against a model retrained without the forget set by the original's "
        "recipe (trained once per forget set and cached in the project; shipped for the tiny "
        "GPT's default forget set). Needs a model built by backends.llm.zoo.",
    )
    mia_k: float = param(
        0.2,
        "Min-K% attack: the share k of lowest token log-probs averaged.",
        range=(0.01, 1.0),
        advanced=True,
    )
    n_bootstrap: int = param(
        1000,
        "Bootstrap replicates of the AUC and PrivLeak intervals.",
        range=(100, 100_000),
        advanced=True,
    )
    confidence: float = param(
        0.95, "Confidence level of every interval.", range=(0.5, 0.999), advanced=True
    )


@dataclass
class CheckpointConfig:
    """How often an unlearning run saves a checkpoint it can resume from exactly."""

    checkpoint_every: int = fields.checkpoint_every(
        25,
        "Save a resumable checkpoint every N optimiser steps (and after the last); a cancelled or "
        "interrupted run resumes after the last one with the same weights as an uninterrupted "
        "run.",
    )


@dataclass
class SkebJobConfig:
    """SKeB probing (spec section 5): questions in four framings, judged against the universe."""

    question_source: str = param(
        "forget",
        "Which facts' questions to ask: the forget set, the retain set or all.",
        choices=("forget", "retain", "all"),
    )
    forget_kind: str = param(
        "entity",
        "Forget set used to pick questions (as the unlearn job).",
        choices=("entity", "book"),
    )
    forget_target: str = param("", "Entity or book of the forget set (empty: the default).")
    hops: int = param(1, "Neighbourhood radius of the forget set.", range=(0, 5))
    max_questions: int = param(40, "Questions asked (seeded subset).", range=(1, 10_000))
    framings: list[str] = param(
        ["original", "emotional", "logical", "authority"],
        "Framings to probe.",
        choices=("original", "emotional", "logical", "authority"),  # skeb.framings.FRAMINGS
    )
    max_new_tokens: int = param(24, "Tokens generated per response.", range=(1, 4096))
    do_sample: bool = param(False, "Sample (the paper) or decode greedily (reproducible).")
    temperature: float = param(1.0, "Sampling temperature (with do_sample).", range=(0.01, 10.0))
    n_related: int = param(2, "Related entities a framing template may add.", range=(0, 20))
    graph_csv: str = param(
        "",
        "Domain graph from a table of the paper's shape (columns Chapter, Entities) instead of "
        "the universe's chapters.",
        path=True,
    )
    alias_file: str = param(
        "", "Alias map for graph_csv (JSON {alias: name} or CSV alias,canonical).", path=True
    )
    device: str = param("auto", "Where to run.", choices=DEVICE_CHOICES)


@dataclass
class AttentionJobConfig:
    """Attention maps and sink mass (spec section 6, measurement only)."""

    prompt: str = param("", "Prompt to map (empty: the first forget question of the universe).")
    compare_prompt: str = param("", "Second prompt for a difference map (empty: none).")
    sink_tokens: int = param(
        1, "k: sink mass is the attention on the first k tokens.", range=(1, 64)
    )
    threshold: float = param(
        0.3, "Sink-head threshold on sink mass (Gu et al. 2024: 0.3).", range=(0.0, 1.0)
    )
    layer: int = param(
        0, "Layer the sink view opens on (and of the difference map).", range=(0, 1000)
    )
    head: int = param(
        0, "Head the sink view opens on (and of the difference map).", range=(0, 1000)
    )
    store_dtype: str = param(
        "float16",
        "Number format of the stored maps of every layer and head (float16: half the "
        "file, about 3 significant digits; float32: the computed values exactly).",
        choices=("float16", "float32"),
        advanced=True,
    )
    device: str = param("auto", "Where to run.", choices=DEVICE_CHOICES)
