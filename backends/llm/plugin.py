"""Registers the LLM family with the workbench (light module: no torch at import)."""

from __future__ import annotations

from backends.common.methods import unlearn_jobs
from backends.llm.benchmarks.configs import BenchmarkConfig
from backends.llm.jobconfigs import (
    AttentionJobConfig,
    CheckpointConfig,
    LLMSetupConfig,
    SkebJobConfig,
)
from workbench.attack_matrix import declare_attack
from workbench.exporters import ExporterSpec
from workbench.paths import BUILTIN_MODELS
from workbench.registry import DatasetSpec, DemoSpec, Headline, JobSpec, ModelKindSpec, Registry

TINY_GPT = BUILTIN_MODELS / "tiny-gpt"  # the built-in model (`python -m backends.llm.zoo build`)


def register(registry: Registry) -> None:
    from backends.llm.backdoor_study import register as register_backdoor
    from backends.llm.benchmarks.plugin import register as register_benchmarks
    from backends.llm.methods import METHODS
    from backends.llm.pruning_config import LLM_PRUNING_JOB
    from backends.llm.scanner import register as register_scanner

    registry.add_dataset(
        DatasetSpec(
            name="fact-universe",
            family="llm",
            title="Fact universe (universe.json)",
            description="A synthetic universe of entities, facts, QA pairs and chapters, as "
            "`python -m backends.llm.zoo build` writes beside the tiny GPT.",
            builtin=False,
            check="backends.llm.checks:check_universe_folder",
        )
    )
    builtin = (("tiny-gpt", str(TINY_GPT)),) if (TINY_GPT / "config.json").exists() else ()
    registry.add_model_kind(
        ModelKindSpec(
            name="llm.causal",
            family="llm",
            title="Causal language model",
            description="A local Hugging Face causal LM folder (GPT-2, OPT, Llama, ...) with its "
            "tokenizer; the built-in tiny GPT is one.",
            check="backends.llm.checks:check_causal_lm",
            builtin=builtin,
        )
    )
    registry.add_exporter(
        ExporterSpec(
            kind="llm.causal",
            format="hf",
            entry="backends.llm.export:export_hf",
            title="Hugging Face folder (save_pretrained, safetensors) with a model card",
        )
    )
    for job in unlearn_jobs(
        "llm",
        METHODS,
        entry="backends.llm.jobs:run_unlearn",
        title="Unlearn facts: {title}",
        description="{description} Evaluated before and after: forget, retain and paraphrase "
        "recall, perplexity, LOSS and Min-K% MIAs. Checkpoints every checkpoint_every steps; a "
        "stopped run resumes exactly.",
        config_name="LLMUnlearn{config}",
        config_doc="{title} on a fact forget set ({spec}).",
        before=(LLMSetupConfig, BenchmarkConfig),
        checkpoint=CheckpointConfig,
        needs_model="llm",
        submit_check="backends.llm.checks:check_submit",
    ):
        registry.add_job(job)
    registry.add_job(
        JobSpec(
            name="llm.skeb",
            kind="attack",
            family="llm",
            method="skeb",
            title="SKeB: persuasive framings vs recall",
            description="Ask the questions of a forget set in original, emotional, logical and "
            "authority framings; judge each answer against the universe; relate recall to each "
            "prompt's entanglement on the domain graph.",
            config=SkebJobConfig,
            entry="backends.llm.jobs:run_skeb",
            needs_model="llm",
            submit_check="backends.llm.checks:check_submit",
        )
    )
    registry.add_job(
        JobSpec(
            name="llm.attention",
            kind="evaluate",
            family="llm",
            method="attention",
            title="Attention-sink maps",
            description="Attention per layer and head for a prompt, sink mass on the first "
            "tokens, the sink-head ratio, and difference maps between two prompts.",
            config=AttentionJobConfig,
            entry="backends.llm.jobs:run_attention",
            needs_model="llm",
            submit_check="backends.llm.checks:check_submit",
            model_heavy=False,
        )
    )
    register_scanner(registry)  # llm.scan_backdoor (issue 16 part 4)
    register_backdoor(registry)  # llm.backdoor, llm.backdoor_sweep (spec section 6)
    register_benchmarks(registry)  # tofu / muse / wmdp datasets, llm.benchmark_eval (issue 17)
    declare_attack(registry, "llm.skeb", ("llm",), Headline("authority/recall"))
    # reference: the largest score of the clean reference models (a retrained model is one)
    scanned = Headline("score", reference="reference/score")
    declare_attack(registry, "llm.scan_backdoor", ("llm",), scanned)
    registry.add_job(LLM_PRUNING_JOB)  # llm.influence_pruning (issue 15 part 4)
    if builtin:
        registry.add_demo(
            DemoSpec(
                family="llm",
                title="Unlearn an entity from the tiny GPT with NPO, then probe it with SKeB",
                runs=(
                    {
                        "job": "llm.unlearn.npo",
                        "seed": 0,
                        "model": "tiny-gpt",
                        "dataset": None,
                        "config": {"device": "cpu"},
                    },
                    {
                        "job": "llm.skeb",
                        "seed": 0,
                        "model": "tiny-gpt",
                        "dataset": None,
                        "config": {"device": "cpu", "max_questions": 10},
                    },
                    {
                        "job": "llm.attention",
                        "seed": 0,
                        "model": "tiny-gpt",
                        "dataset": None,
                        "config": {"device": "cpu"},
                    },
                ),
            )
        )
