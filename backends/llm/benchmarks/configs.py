"""Typed configs of the benchmark data and evaluation (light: no torch).

:class:`BenchmarkConfig` is a part of every ``llm.unlearn.<method>`` job (which benchmark, if any,
the forget and retain sets come from, and how it is evaluated) and of ``llm.benchmark_eval``.
Its defaults follow the benchmarks' own evaluation settings (TOFU: greedy answers of up to 200
tokens, ROUGE-L recall; MUSE: KnowMem answers of 32 tokens, VerbMem continuations of 128 tokens,
ROUGE-L F1 as OpenUnlearning's MUSE configs, Min-40% for PrivLeak; WMDP / MMLU: lm-eval's
zero-shot prompt with lettered choices).
"""

from __future__ import annotations

from dataclasses import dataclass

from backends.common.devices import DEVICE_CHOICES
from workbench.config import ConfigError, param

#: the value of ``benchmark_path`` that writes the model's own fact universe in the TOFU layout
TINY_WORLD = "tiny-world"
BENCHMARK_CHOICES = ("none", "tofu", "muse", "wmdp")


@dataclass
class BenchmarkConfig:
    """Which benchmark's files to unlearn from and evaluate on, and how to score them."""

    benchmark: str = param(
        "none",
        "Benchmark the forget / retain sets come from (none: the model's fact universe, as "
        "before). A dataset of kind tofu, muse or wmdp chosen for the job sets it too.",
        choices=BENCHMARK_CHOICES,
    )
    benchmark_path: str = param(
        "",
        "Folder of the benchmark's files on disk (TOFU: the folder with forget10.json ...; MUSE: "
        "the corpus folder with knowmem/, verbmem/, privleak/; WMDP: a file or folder). "
        f"'{TINY_WORLD}' writes the model's own fact universe in the TOFU layout.",
        path=True,
    )
    tofu_split: str = param(
        "forget10",
        "TOFU forget split forgetNN (forget01, forget05, forget10); the retain split is "
        "retain{100-NN}.",
    )
    retain_model: str = param(
        "",
        "Folder of the retain-only (retrained) model: TOFU forget quality and MUSE PrivLeak are "
        "measured against it (empty: the tiny GPT's retrained reference for tiny-world, else "
        "those two metrics are skipped).",
        path=True,
    )
    prompt_format: str = param(
        "Q: {question}\nA:",
        "Prompt of a TOFU question ({question}); the tiny GPT's QA format by default. A TOFU "
        "model fine-tuned with Llama-2's chat format wants '[INST] {question} [/INST]'.",
    )
    answer_sep: str = param(
        " ", "Text between the prompt and the answer when answers are scored.", advanced=True
    )
    stop: str = param(
        "\n",
        "Generations are cut at the first occurrence of this text (empty: no cut).",
        advanced=True,
    )
    max_new_tokens: int = param(
        200, "Tokens generated per TOFU answer (TOFU: 200).", range=(1, 4096), advanced=True
    )
    knowmem_new_tokens: int = param(
        32, "Tokens generated per MUSE KnowMem answer (MUSE: 32).", range=(1, 4096), advanced=True
    )
    verbmem_new_tokens: int = param(
        128,
        "Tokens generated per MUSE VerbMem continuation (MUSE: 128).",
        range=(1, 4096),
        advanced=True,
    )
    muse_rouge: str = param(
        "f1",
        "ROUGE-L of MUSE KnowMem and VerbMem: f1 (OpenUnlearning's rougeL_f1) or recall.",
        choices=("f1", "recall"),
        advanced=True,
    )
    privleak_k: float = param(
        0.4,
        "Min-K% of the MUSE PrivLeak attack (MUSE: Min-40%).",
        range=(0.01, 1.0),
        advanced=True,
    )
    retrained_auc: float = param(
        0.0,
        "MUSE: the retrained model's published forget-vs-holdout AUC (News, Min-40%: 0.4772) to "
        "use when no retain_model is given (0: none).",
        range=(0.0, 1.0),
        advanced=True,
    )
    mc_format: str = param(
        "letters",
        "WMDP / MMLU: lm-eval's prompt with lettered choices scored as ' A', ' B', ... (letters) "
        "or each choice's text scored after the question (cloze, for small models).",
        choices=("letters", "cloze"),
    )
    max_benchmark_items: int = param(
        400,
        "Largest number of items per evaluated split (a seeded subset beyond it).",
        range=(1, 1_000_000),
    )
    max_train_texts: int = param(
        0,
        "Largest number of retain texts an unlearning method trains on (0: all).",
        range=(0, 10_000_000),
        advanced=True,
    )

    def __post_init__(self) -> None:
        if self.benchmark == "tofu" or self.tofu_split != "forget10":
            from backends.llm.benchmarks.loaders import retain_split_for

            try:
                retain_split_for(self.tofu_split)
            except ValueError as exc:
                raise ConfigError(f"config field 'tofu_split': {exc}", "tofu_split") from None
        if "{question}" not in self.prompt_format:
            raise ConfigError(
                "config field 'prompt_format' must contain {question}", "prompt_format"
            )


@dataclass
class BenchmarkRunConfig:
    """Where the benchmark evaluation runs and the intervals it reports."""

    device: str = param("auto", "Where to run.", choices=DEVICE_CHOICES)
    dtype: str = param(
        "float32", "Weights' number format.", choices=("float32", "bfloat16"), advanced=True
    )
    n_bootstrap: int = param(
        1000, "Bootstrap replicates of every interval.", range=(100, 100_000), advanced=True
    )
    confidence: float = param(
        0.95, "Confidence level of every interval.", range=(0.5, 0.999), advanced=True
    )


def _eval_config() -> type:
    from backends.common.configs import compose_config

    cls = compose_config(
        "BenchmarkEvalConfig",
        "Evaluate a causal LM on TOFU, MUSE or WMDP / MMLU files from disk (spec section 8).",
        BenchmarkConfig,
        BenchmarkRunConfig,
    )
    cls.__module__ = __name__
    return cls


#: the config of ``llm.benchmark_eval``: the benchmark part and the run part
BenchmarkEvalConfig = _eval_config()
