"""Registers the diffusion family with the workbench (light module: no torch at import)."""

from __future__ import annotations

from backends.common.configs import compose_config
from backends.common.methods import unlearn_jobs
from backends.diffusion.jobconfigs import (
    CheckpointConfig,
    ConceptConfig,
    EvalConfig,
    GenerateConfig,
    MemoRaJobConfig,
    RelearnDataConfig,
)
from workbench.attack_matrix import declare_attack
from workbench.paths import BUILTIN_MODELS
from workbench.registry import DemoSpec, Headline, JobSpec, ModelKindSpec, Registry

TINY_SD = (
    BUILTIN_MODELS / "tiny-sd"
)  # the built-in model (`python -m backends.diffusion.zoo build`)
TINY_SD_TEXTURES = BUILTIN_MODELS / "tiny-sd-textures"  # tiny-sd's recipe + dotted, checkered
CLOSED_FORM = ("uce",)  # erasures without iterations: nothing to checkpoint or resume


def register(registry: Registry) -> None:
    from backends.diffusion.attacks.configs import MemoRaConfig, RelearnConfig
    from backends.diffusion.attacks.prompt_configs import register_prompt_attacks
    from backends.diffusion.defence import defence_job
    from backends.diffusion.guidance import SLDConfig
    from backends.diffusion.methods import METHODS
    from backends.diffusion.single_file import single_file_exporter, single_file_kind

    builtin = (("tiny-sd", str(TINY_SD)),) if (TINY_SD / "model_index.json").exists() else ()
    if (TINY_SD_TEXTURES / "model_index.json").exists():  # issue 14's collateral-damage model
        builtin += (("tiny-sd-textures", str(TINY_SD_TEXTURES)),)
    registry.add_model_kind(
        ModelKindSpec(
            name="diffusion.sd",
            family="diffusion",
            title="Stable Diffusion pipeline",
            description="A local StableDiffusionPipeline folder (SD 1.x, or the built-in tiny "
            "text-to-image model on the shapes world), safetensors weights only.",
            check="backends.diffusion.checks:check_sd_pipeline",
            builtin=builtin,
        )
    )
    registry.add_model_kind(single_file_kind())  # one .safetensors beside its config files
    for kind in ("diffusion.sd", "diffusion.sd_file"):  # A1111 / ComfyUI (erasing#29)
        registry.add_exporter(single_file_exporter(kind))
    registry.add_job(
        JobSpec(
            name="diffusion.generate",
            kind="evaluate",
            family="diffusion",
            method="generate",
            title="Generate an image grid",
            description="Images for a prompt list with fixed seeds; prompts and seeds as labels "
            "and the concept detector's score under each image.",
            config=compose_config(
                "DiffusionGenerateConfig",
                "A prompt grid with fixed seeds.",
                GenerateConfig,
                SLDConfig,
                EvalConfig,
            ),
            entry="backends.diffusion.jobs:run_generate",
            needs_model="diffusion",
            submit_check="backends.diffusion.checks:check_submit",
        )
    )
    for job in unlearn_jobs(
        "diffusion",
        METHODS,
        entry="backends.diffusion.jobs:run_unlearn",
        title="Erase a concept: {title}",
        description="{description} Measured before and after: concept rate on explicit and "
        "implicit prompts, benign utility; the erased pipeline is added to the project's "
        "models.{resume}",
        config_name="DiffusionErase{config}",
        config_doc="{title} ({spec}).",
        before=(ConceptConfig,),
        after=(EvalConfig,),
        checkpoint=CheckpointConfig,
        closed_form=CLOSED_FORM,
        resume_text=(
            " Checkpoints every checkpoint_every steps; a stopped run resumes exactly.",
            " It has no iterations (a closed-form edit), so there is nothing to resume: rerun it.",
        ),
        # the names before issue 12: runs and run files that record them still rerun
        aliases=lambda name: (f"diffusion.erase.{name}",),
        needs_model="diffusion",
        submit_check="backends.diffusion.checks:check_submit",
    ):
        registry.add_job(job)
    registry.add_job(
        JobSpec(
            name="diffusion.relearn",
            kind="attack",
            family="diffusion",
            method="relearn",
            title="Relearning attack: downstream fine-tuning",
            description="Fine-tune an erased pipeline (full, LoRA or DreamBooth-style with prior "
            "preservation) on benign or concept images and measure how much of the concept comes "
            "back: a recovery curve of concept rate and utility against steps (spec 6.6).",
            config=compose_config(
                "DiffusionRelearnConfig",
                "Downstream fine-tuning attack.",
                ConceptConfig,
                RelearnDataConfig,
                RelearnConfig,
                EvalConfig,
                CheckpointConfig,
            ),
            entry="backends.diffusion.attack_jobs:run_relearn",
            needs_model="diffusion",
            submit_check="backends.diffusion.checks:check_submit",
            supports_resume=True,
        )
    )
    registry.add_job(
        JobSpec(
            name="diffusion.memora",
            kind="attack",
            family="diffusion",
            method="memora",
            title="MemoRa: memory self-regeneration",
            description="Seed images from the original model, DDIM inversion with the erased "
            "model, slerp, regeneration and a short LoRA: does the concept come back, after how "
            "many steps (short-term vs long-term forgetting), and how much does the same budget "
            "teach a model that never learned it (spec section 2)?",
            config=compose_config(
                "DiffusionMemoRaJobConfig",
                "MemoRa regeneration attack.",
                ConceptConfig,
                MemoRaJobConfig,
                MemoRaConfig,
                EvalConfig,
                CheckpointConfig,
            ),
            entry="backends.diffusion.attack_jobs:run_memora",
            needs_model="diffusion",
            submit_check="backends.diffusion.checks:check_submit",
            supports_resume=True,
        )
    )
    from backends.diffusion.collateral import CollateralConfig

    registry.add_job(
        JobSpec(
            name="diffusion.collateral",
            kind="evaluate",
            family="diffusion",
            method="collateral",
            title="Collateral damage: what else an erasure removes",
            description="Erase the concept with each chosen method from the same weights and "
            "measure, on held-out prompts, the target's rate next to its neighbour textures' "
            "(dotted, checkered): paired changes with 95% intervals, bars and galleries. Needs "
            "a model whose shapes world has neighbour textures (zoo build --neighbours).",
            config=compose_config(
                "DiffusionCollateralConfig",
                "Collateral damage of erasure on neighbour concepts.",
                ConceptConfig,
                CollateralConfig,
                EvalConfig,
            ),
            entry="backends.diffusion.collateral:run_collateral",
            needs_model="diffusion",
            submit_check="backends.diffusion.checks:check_collateral",
        )
    )
    from backends.diffusion.audit import job_spec as audit_job
    from backends.diffusion.resilience import job_spec as resilience_job

    registry.add_job(resilience_job())
    registry.add_job(audit_job())  # diffusion.audit: I2P / UnlearnDiffAtk prompt lists (issue 17)
    registry.add_job(defence_job())
    register_prompt_attacks(registry)  # diffusion.attack.<unlearndiffatk|p4d|ringabell|inversion>
    declare_attack(registry, "diffusion.attack.unlearndiffatk", ("diffusion",), Headline("asr"))
    declare_attack(registry, "diffusion.attack.p4d", ("diffusion",), Headline("asr"))
    declare_attack(registry, "diffusion.attack.ringabell", ("diffusion",), Headline("asr"))
    declare_attack(registry, "diffusion.attack.inversion", ("diffusion",), Headline("asr"))
    recovered = Headline("erased/pooled/{metric}", reference="control/pooled/{metric}")
    declare_attack(registry, "diffusion.memora", ("diffusion",), recovered)
    relearned = Headline("recovered/concept_rate/explicit")
    declare_attack(registry, "diffusion.relearn", ("diffusion",), relearned)
    if builtin:
        registry.add_demo(
            DemoSpec(
                family="diffusion",
                title="Erase stripes from the tiny text-to-image model with UCE and ESD",
                runs=(
                    {
                        "job": "diffusion.generate",
                        "seed": 0,
                        "model": "tiny-sd",
                        "dataset": None,
                        "config": {"device": "cpu", "samples_per_prompt": 2, "max_prompts": 4},
                    },
                    {
                        "job": "diffusion.unlearn.uce",
                        "seed": 0,
                        "model": "tiny-sd",
                        "dataset": None,
                        "config": {"device": "cpu", "eval_samples": 1},
                    },
                ),
            )
        )
