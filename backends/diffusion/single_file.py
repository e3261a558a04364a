"""Single-file Stable Diffusion checkpoints (the original SD / CompVis key layout, one
``.safetensors``), as AUTOMATIC1111 and ComfyUI keep them (issue 17 part 4).

Loading one offline needs the pipeline's *diffusers config*: ``model_index.json``,
``unet/config.json``, ``vae/config.json``, ``text_encoder/config.json``, ``tokenizer/`` and
``scheduler/`` (no weights). Without it diffusers' ``from_single_file`` would fetch the config from
the Hugging Face hub, which the workbench never does. The rule here: the checkpoint lies in a
folder that holds those config files (for SD 1.5, the config files of the
``stable-diffusion-v1-5`` repository; :func:`backends.diffusion.export.export_single_file` writes
them next to every exported file). An original ``.yaml`` (LDM config) alone is not enough offline:
it does not describe the tokenizer and text encoder, and diffusers' legacy path downloads them.

This module stays light (no torch at import): :func:`check_single_file` is the registry's check of
the ``diffusion.sd_file`` model kind; :func:`load_single_file` imports diffusers when called.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backends.common.safe_load import PICKLE_SUFFIXES, UnsafeCheckpointError
from backends.diffusion.checks import NotAPipelineError

CONFIG_FILES = (
    "model_index.json",
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
)


def config_help(file: Path) -> str:
    """What to give so ``file`` loads offline (the one sentence every refusal ends with)."""
    return (
        f"put {file.name} in a folder that holds the pipeline's diffusers config files "
        "(model_index.json, unet/config.json, vae/config.json, text_encoder/config.json, "
        "tokenizer/ and scheduler/; for SD 1.x the config files of the stable-diffusion-v1-5 "
        "repository, no weights needed), then add that file again"
    )


def config_folder_of(path: str | Path) -> Path:
    """The diffusers config folder of single-file checkpoint ``path``; a clear error otherwise."""
    file = Path(path)
    if not file.is_file():
        raise NotAPipelineError(f"{file} does not exist or is not a file")
    if file.suffix in PICKLE_SUFFIXES:
        raise UnsafeCheckpointError(
            f"{file} is a pickle checkpoint; pickle files can run arbitrary code when loaded, so "
            "they are refused. Convert it to .safetensors and add that file."
        )
    if file.suffix != ".safetensors":
        raise NotAPipelineError(
            f"{file} is not a .safetensors checkpoint; a single-file SD model is one .safetensors"
        )
    folder = file.parent
    missing = [c for c in CONFIG_FILES if not (folder / c).is_file()]
    missing += [c + "/" for c in ("tokenizer", "scheduler") if not (folder / c).is_dir()]
    if missing:
        yaml = file.with_suffix(".yaml")
        note = (
            f" ({yaml.name} is an original LDM config: it does not describe the tokenizer and "
            "text encoder, so it is not enough offline)"
            if yaml.is_file()
            else ""
        )
        raise NotAPipelineError(
            f"{file} is a single-file checkpoint without its config: {folder} lacks "
            f"{', '.join(missing)}{note}. To load it offline, {config_help(file)}"
        )
    try:
        meta = json.loads((folder / "model_index.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise NotAPipelineError(f"{folder / 'model_index.json'} is not valid JSON: {exc}") from exc
    if meta.get("_class_name") not in (None, "StableDiffusionPipeline"):
        raise NotAPipelineError(
            f"{folder / 'model_index.json'} describes a {meta.get('_class_name')}, not a "
            "StableDiffusionPipeline; only SD 1.x-style single files are supported"
        )
    return folder


def check_single_file(path: str) -> None:
    """Registry check of the ``diffusion.sd_file`` model kind."""
    config_folder_of(path)


def load_single_file(path: str | Path, *, dtype: Any = None) -> Any:
    """A ``StableDiffusionPipeline`` from a single-file checkpoint and its local config folder
    (``from_single_file(path, config=folder, local_files_only=True)``; never downloads)."""
    from diffusers import StableDiffusionPipeline

    folder = config_folder_of(path)
    return StableDiffusionPipeline.from_single_file(
        str(path),
        config=str(folder),
        local_files_only=True,
        dtype=dtype,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def single_file_kind() -> Any:
    """The ``diffusion.sd_file`` model kind (registered by the diffusion plugin)."""
    from workbench.registry import ModelKindSpec

    return ModelKindSpec(
        name="diffusion.sd_file",
        family="diffusion",
        title="Stable Diffusion single-file checkpoint",
        description="One .safetensors in the original SD 1.x key layout (as A1111 / ComfyUI "
        "keep them), lying in a folder of the pipeline's diffusers config files "
        "(model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/; no weights).",
        check="backends.diffusion.single_file:check_single_file",
    )


def single_file_exporter(kind: str) -> Any:
    """The ``single-file`` export format of a diffusion model kind."""
    from workbench.exporters import ExporterSpec

    return ExporterSpec(
        kind=kind,
        format="single-file",
        entry="backends.diffusion.export:export_for_workbench",
        title="One .safetensors in the original SD layout (AUTOMATIC1111 / ComfyUI)",
        description="model.diffusion_model.*, first_stage_model.*, cond_stage_model.*; float16 "
        "unless --option dtype=float32; the config files beside it and a model card.",
    )
