"""Light checks for the diffusion family's model kinds (no torch; used by the registry)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from backends.common.safe_load import PICKLE_SUFFIXES, UnsafeCheckpointError
from workbench.config import ConfigError

REQUIRED_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


class NotAPipelineError(ValueError):
    """The folder is not a Stable Diffusion pipeline folder (the message says what is missing)."""


def check_pipeline_folder(path: str | Path) -> Path:
    """Raise a clear error unless ``path`` is a loadable, safetensors-only SD pipeline folder."""
    folder = Path(path)
    if not folder.is_dir():
        raise NotAPipelineError(f"{folder} does not exist or is not a folder")
    index = folder / "model_index.json"
    if not index.is_file():
        hint = ""
        if (folder / "config.json").is_file():
            hint = " (it has a config.json: it looks like a single model, not a whole pipeline)"
        raise NotAPipelineError(
            f"{folder} is not a Stable Diffusion pipeline folder: model_index.json is missing{hint}. "
            "Pick the folder that holds model_index.json, unet/, vae/, text_encoder/ and tokenizer/."
        )
    try:
        meta = json.loads(index.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise NotAPipelineError(f"{index} is not valid JSON: {exc}") from exc
    missing = [c for c in REQUIRED_COMPONENTS if c not in meta or not (folder / c).is_dir()]
    if missing:
        raise NotAPipelineError(
            f"{folder} is missing the pipeline components {', '.join(missing)}; a Stable "
            "Diffusion folder needs unet, vae, text_encoder, tokenizer and scheduler"
        )
    for comp in ("unet", "vae", "text_encoder"):
        files = list((folder / comp).iterdir())
        if any(f.name.endswith(".safetensors") for f in files):
            continue
        pickles = sorted(f.name for f in files if f.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise UnsafeCheckpointError(
                f"{folder / comp} has only pickle weights ({', '.join(pickles)}); pickle files can "
                "run arbitrary code when loaded, so they are refused. Convert the pipeline to "
                "safetensors (pipe.save_pretrained(..., safe_serialization=True)) and open that."
            )
        raise NotAPipelineError(f"{folder / comp} has no weights (*.safetensors)")
    return folder


def check_sd_pipeline(path: str) -> None:
    """Registry check of the ``diffusion.sd`` model kind."""
    check_pipeline_folder(path)


def check_submit(config: Any, model: Any, dataset: Any) -> None:
    """Submit-time checks of the diffusion jobs (no torch): what the job would refuse at run time.

    A custom concept needs its words and one anchor prompt per forget prompt; the NudeNet detector
    must be installed; MemoRa's seeds come in pairs and its start step lies inside its steps; the
    relearning attack's evaluation steps lie within its step budget.
    """
    if getattr(config, "concept", None) == "custom":
        if not str(getattr(config, "concept_word", "")).strip():
            raise ConfigError(
                "config field 'concept_word': a custom concept needs its words (e.g. 'nudity')",
                "concept_word",
            )
        anchors, forget = (
            getattr(config, "anchor_prompts", []),
            getattr(config, "forget_prompts", []),
        )
        if anchors and len(anchors) != len(forget):
            raise ConfigError(
                f"config field 'anchor_prompts': one anchor prompt per forget prompt "
                f"({len(anchors)} anchors for {len(forget)} forget prompts)",
                "anchor_prompts",
            )
    if (
        getattr(config, "detector", None) == "nudenet"
        and importlib.util.find_spec("nudenet") is None
    ):
        raise ConfigError(
            "config field 'detector': the NudeNet detector is not installed (pip install "
            "'unlearning-workbench[nudenet]'); use the built-in probes",
            "detector",
        )
    steps = getattr(config, "steps", None)
    start = getattr(config, "start_step", None)
    if isinstance(start, int) and isinstance(steps, int) and not 0 < start < steps:
        raise ConfigError(
            f"config field 'start_step': {start} must lie inside the {steps} DDIM steps "
            f"(1..{steps - 1})",
            "start_step",
        )
    seeds = getattr(config, "seeds", None)
    if start is not None and isinstance(seeds, list) and (len(seeds) < 2 or len(seeds) % 2):
        raise ConfigError(
            f"config field 'seeds': MemoRa seeds come in pairs (a1, b1, a2, b2, ...); got "
            f"{len(seeds)} seed(s)",
            "seeds",
        )
    # evaluation steps beyond the budget are refused by RelearnConfig itself (attacks/configs.py)


def check_collateral(config: Any, model: Any, dataset: Any) -> None:
    """Submit-time checks of ``diffusion.collateral``: the diffusion checks, a built-in concept,
    at least one method, and a model whose shapes world has the neighbour textures asked for."""
    check_submit(config, model, dataset)
    if config.concept == "custom":
        raise ConfigError(
            "config field 'concept': collateral damage is measured on the shapes world's "
            "neighbour textures; choose stripes or frame",
            "concept",
        )
    if not config.methods:
        raise ConfigError("config field 'methods': choose at least one erasure method", "methods")
    from backends.diffusion.plugin import TINY_SD

    folder = Path(model.path) if model is not None and getattr(model, "path", None) else TINY_SD
    probes = Path(config.probes) if config.probes else folder / "workbench_probes"
    try:
        world = json.loads((probes / "world.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        return  # no probes here: the job says so itself when it loads them
    known = list(world.get("neighbours", []))
    wanted = list(config.neighbours) or known
    if not known or any(t not in known for t in wanted):
        raise ConfigError(
            f"config field 'neighbours': {folder.name}'s shapes world knows "
            f"{', '.join(known) or 'no neighbour textures'}; build a model that knows them with "
            "`python -m backends.diffusion.zoo build --neighbours dotted,checkered --out <folder>`",
            "neighbours",
        )
