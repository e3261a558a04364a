"""Registers the benchmark dataset kinds and ``llm.benchmark_eval`` (light: no torch)."""

from __future__ import annotations

from backends.llm.benchmarks.configs import BenchmarkEvalConfig
from workbench.registry import DatasetSpec, JobSpec, Registry

_KINDS = (
    (
        "tofu",
        "TOFU benchmark folder",
        "TOFU's files (forget01/05/10, retain90/95/99, the perturbed files) as locuslab/TOFU "
        "ships them: JSON lines or Parquet.",
        "backends.llm.benchmarks.checks:check_tofu_folder",
    ),
    (
        "muse",
        "MUSE corpus folder",
        "A MUSE corpus (News or Books): knowmem/, verbmem/, privleak/ and optional raw/ splits.",
        "backends.llm.benchmarks.checks:check_muse_folder",
    ),
    (
        "wmdp",
        "WMDP / MMLU multiple choice",
        "Multiple-choice items (question, choices, answer) in a JSON, JSON-lines or Parquet file "
        "or folder, as cais/wmdp and cais/mmlu ship them.",
        "backends.llm.benchmarks.checks:check_mc_path",
    ),
)


def register(registry: Registry) -> None:
    for name, title, description, check in _KINDS:
        registry.add_dataset(
            DatasetSpec(
                name=name,
                family="llm",
                title=title,
                description=description,
                builtin=False,
                check=check,
            )
        )
    registry.add_job(
        JobSpec(
            name="llm.benchmark_eval",
            kind="evaluate",
            family="llm",
            method="benchmark",
            title="Benchmark evaluation: TOFU, MUSE, WMDP / MMLU",
            description="Evaluate a causal LM on benchmark files from disk: TOFU probability, "
            "ROUGE-L, truth ratio, forget quality and model utility; MUSE KnowMem, VerbMem and "
            "PrivLeak; multiple-choice accuracy. Every number with its 95% interval.",
            config=BenchmarkEvalConfig,
            entry="backends.llm.benchmarks.jobs:run_benchmark_eval",
            needs_model="llm",
            submit_check="backends.llm.checks:check_submit",
        )
    )
