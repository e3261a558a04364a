"""Export an (erased) SD pipeline as ONE safetensors file in the original SD key layout
(issue 17 part 5, rohitgandikota/erasing#29: "how do I use the erased model in AUTOMATIC1111?").

The original (CompVis / LDM) checkpoint holds three models under three prefixes:

- ``model.diffusion_model.``: the UNet, in the LDM block layout: ``input_blocks.<k>.<m>``,
  ``middle_block.<m>``, ``output_blocks.<k>.<m>``, ``time_embed``, ``out``;
- ``first_stage_model.``: the VAE (``encoder.down.<i>.block.<j>``, ``mid.block_1``,
  ``mid.attn_1`` with 1x1-conv q/k/v, ``decoder.up.<n-1-i>``, ...);
- ``cond_stage_model.transformer.``: the CLIP text model, with transformers' ``text_model.`` keys.

The mapping below is written from the layouts themselves (read against diffusers'
``scripts/convert_diffusers_to_original_stable_diffusion.py`` and the single-file loader's
``convert_ldm_*_checkpoint``, which is the inverse the round-trip test exercises). It follows the
diffusers config (number of blocks, ``layers_per_block``, which blocks have attention), so an
SD 1.x pipeline maps to exactly the keys A1111 / ComfyUI expect and the tiny built-in model maps
the same way in its own shapes. A key the SD 1.x layout has no place for (an SDXL addition
embedding, say) is refused by name instead of dropped.

:func:`export_single_file` also writes the pipeline's config files (no weights) beside the file,
so the workbench (and ``from_single_file(..., config=<that folder>, local_files_only=True)``)
loads it back offline: :mod:`backends.diffusion.single_file`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."

# inside a UNet ResnetBlock2D: diffusers name -> LDM name
UNET_RESNET = (
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("time_emb_proj.", "emb_layers.1."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("conv_shortcut.", "skip_connection."),
)
# inside a VAE ResnetBlock2D
VAE_RESNET = (("conv_shortcut.", "nin_shortcut."),)
# inside the VAE's mid-block attention (LDM uses 1x1 convolutions: weights get two unit dims)
VAE_ATTENTION = (
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
)


class ExportError(ValueError):
    """The pipeline cannot be written in the SD 1.x single-file layout (the message says why)."""


def _layers(config: Mapping[str, Any], what: str) -> int:
    layers = config.get("layers_per_block")
    if not isinstance(layers, int):
        raise ExportError(
            f"the {what}'s layers_per_block is {layers!r}; the SD 1.x single-file layout needs "
            "one number for every block"
        )
    return layers


def unet_prefixes(config: Mapping[str, Any]) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(diffusers prefix, LDM prefix, inner renames) for every part of a UNet2DConditionModel."""
    n = len(config["block_out_channels"])
    per = _layers(config, "UNet") + 1  # LDM slots per level: the resnets and one down/upsampler
    none: tuple[tuple[str, str], ...] = ()
    out: list[tuple[str, str, tuple[tuple[str, str], ...]]] = [
        ("time_embedding.linear_1.", "time_embed.0.", none),
        ("time_embedding.linear_2.", "time_embed.2.", none),
        ("conv_in.", "input_blocks.0.0.", none),
        ("conv_norm_out.", "out.0.", none),
        ("conv_out.", "out.2.", none),
        ("mid_block.resnets.0.", "middle_block.0.", UNET_RESNET),
        ("mid_block.attentions.0.", "middle_block.1.", none),
        ("mid_block.resnets.1.", "middle_block.2.", UNET_RESNET),
    ]
    for i in range(n):
        for j in range(per - 1):  # input block 0 is conv_in
            slot = 1 + i * per + j
            out.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{slot}.0.", UNET_RESNET))
            out.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{slot}.1.", none))
        if i < n - 1:
            slot = (i + 1) * per
            out.append(
                (f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{slot}.0.op.", none)
            )
    up_types = list(config["up_block_types"])
    for i in range(n):
        for j in range(per):  # an up block has one resnet more than a down block
            slot = i * per + j
            out.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{slot}.0.", UNET_RESNET))
            out.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{slot}.1.", none))
        if i < n - 1:
            # the upsampler sits after the resnet (and the attention, when the block has one)
            module = 2 if "CrossAttn" in up_types[i] else 1
            slot = i * per + per - 1
            out.append(
                (f"up_blocks.{i}.upsamplers.0.conv.", f"output_blocks.{slot}.{module}.conv.", none)
            )
    return out


def vae_prefixes(config: Mapping[str, Any]) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(diffusers prefix, LDM prefix, inner renames) for every part of an AutoencoderKL."""
    n = len(config["block_out_channels"])
    layers = _layers(config, "VAE")
    none: tuple[tuple[str, str], ...] = ()
    out: list[tuple[str, str, tuple[tuple[str, str], ...]]] = [
        ("quant_conv.", "quant_conv.", none),
        ("post_quant_conv.", "post_quant_conv.", none),
    ]
    for part in ("encoder", "decoder"):
        out += [
            (f"{part}.conv_in.", f"{part}.conv_in.", none),
            (f"{part}.conv_out.", f"{part}.conv_out.", none),
            (f"{part}.conv_norm_out.", f"{part}.norm_out.", none),
            (f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1.", VAE_RESNET),
            (f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2.", VAE_RESNET),
            (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1.", VAE_ATTENTION),
        ]
    for i in range(n):
        for j in range(layers):
            out.append(
                (
                    f"encoder.down_blocks.{i}.resnets.{j}.",
                    f"encoder.down.{i}.block.{j}.",
                    VAE_RESNET,
                )
            )
        out.append(
            (
                f"encoder.down_blocks.{i}.downsamplers.0.conv.",
                f"encoder.down.{i}.downsample.conv.",
                none,
            )
        )
        level = n - 1 - i  # the LDM decoder counts its levels from the lowest resolution up
        for j in range(layers + 1):
            out.append(
                (
                    f"decoder.up_blocks.{i}.resnets.{j}.",
                    f"decoder.up.{level}.block.{j}.",
                    VAE_RESNET,
                )
            )
        out.append(
            (
                f"decoder.up_blocks.{i}.upsamplers.0.conv.",
                f"decoder.up.{level}.upsample.conv.",
                none,
            )
        )
    return out


def _rename(
    state: Mapping[str, Any],
    prefixes: list[tuple[str, str, tuple[tuple[str, str], ...]]],
    out_prefix: str,
    what: str,
) -> dict[str, Any]:
    """Every key of ``state`` renamed by the longest matching prefix; unknown keys refused."""
    ordered = sorted(prefixes, key=lambda p: -len(p[0]))
    out: dict[str, Any] = {}
    unknown = []
    for key, value in state.items():
        for src, dst, inner in ordered:
            if key.startswith(src):
                rest = key[len(src) :]
                for a, b in inner:
                    if rest.startswith(a):
                        rest = b + rest[len(a) :]
                        break
                out[out_prefix + dst + rest] = value
                break
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise ExportError(
            f"the {what} has weights the SD 1.x single-file layout has no place for ({shown}); "
            "only SD 1.x-style pipelines export to one A1111/ComfyUI file"
        )
    return out


def original_state_dict(unet: Any, vae: Any, text_encoder: Any) -> dict[str, Any]:
    """The three models' weights under their original SD 1.x keys (tensors shared, not copied,
    except the VAE attention's linear weights, which become 1x1-conv weights)."""
    sd = _rename(unet.state_dict(), unet_prefixes(unet.config), UNET_PREFIX, "UNet")
    vae_sd = _rename(vae.state_dict(), vae_prefixes(vae.config), VAE_PREFIX, "VAE")
    for key, value in vae_sd.items():
        if ".mid.attn_1." in key and key.endswith(".weight") and value.ndim == 2:
            vae_sd[key] = value[:, :, None, None]
    sd.update(vae_sd)
    for key, value in text_encoder.state_dict().items():
        if key.endswith("position_ids"):
            continue  # a buffer, rebuilt on load
        # transformers >= 5.6 keeps CLIPTextModel's keys without the text_model. wrapper
        name = key if key.startswith("text_model.") else "text_model." + key
        sd[TEXT_PREFIX + name] = value
    return sd


def write_config_folder(pipe: Any, folder: Path) -> None:
    """The pipeline's config files without weights (model_index.json, each part's config, the
    tokenizer, the scheduler): what loading the single file back offline needs."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps(dict(pipe.config), indent=2, default=str))
    for name in ("unet", "vae"):
        getattr(pipe, name).save_config(folder / name)
    pipe.text_encoder.config.save_pretrained(folder / "text_encoder")
    pipe.scheduler.save_config(folder / "scheduler")
    pipe.tokenizer.save_pretrained(folder / "tokenizer")


def export_single_file(
    pipe: Any,
    out: str | Path,
    *,
    name: str = "model",
    half: bool = False,
    metadata: Mapping[str, str] | None = None,
    with_config: bool = True,
) -> Path:
    """Write ``pipe`` as ``<out>/<name>.safetensors`` in the original SD layout (fp16 with
    ``half``) and, with ``with_config``, the config files beside it. Returns the file."""
    import torch
    from safetensors.torch import save_file

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    state = original_state_dict(pipe.unet, pipe.vae, pipe.text_encoder)
    tensors = {}
    for key, value in state.items():
        t = value.detach().to("cpu")
        if half and t.is_floating_point():
            t = t.to(torch.float16)
        tensors[key] = t.contiguous()
    meta = {"format": "pt", "layout": "sd1-original", "written_by": "unlearning-workbench"}
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    file = folder / f"{name}.safetensors"
    tmp = folder / f".{name}.safetensors.tmp"
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(file)
    if with_config:
        write_config_folder(pipe, folder)
    return file


def export_pipeline_folder(
    source: str | Path,
    out: str | Path,
    *,
    name: str = "model",
    half: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Load a pipeline folder (or single file) on the CPU and export it (the CLI's entry)."""
    from backends.diffusion.pipeline import load_pipeline

    loaded = load_pipeline(source, device="cpu")
    return export_single_file(loaded.pipe, out, name=name, half=half, metadata=metadata)


EXPORT_OPTIONS = ("dtype", "name")


def export_for_workbench(source: Any) -> Path:
    """The ``single-file`` exporter of the diffusion model kinds (``workbench export-model RUN
    --out DIR``): ``DIR/<name>.safetensors`` in the original SD layout (float16 unless
    ``--option dtype=float32``), the config files beside it and a ``README.md`` model card of
    the run (method, config, seed, metrics)."""
    from workbench.exporters import ExportError as CoreExportError
    from workbench.exporters import model_card

    unknown = set(source.options) - set(EXPORT_OPTIONS)
    if unknown:
        raise CoreExportError(
            f"unknown option(s) {', '.join(sorted(unknown))}; the single-file export takes "
            "dtype=float16|float32 and name=<file name>"
        )
    dtype = source.options.get("dtype", "float16")
    if dtype not in ("float16", "float32"):
        raise CoreExportError(f"option dtype={dtype!r}: give float16 or float32")
    name = source.options.get("name") or source.model_name
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise CoreExportError(f"option name={name!r} is not a plain file name")
    run = source.run or {}
    meta = {
        "model": source.model_name,
        "run": str(run.get("id", "")),
        "job": str(run.get("job", "")),
        "method": str(run.get("method", "")),
        "seed": str(run.get("seed", "")),
    }
    try:
        file = export_pipeline_folder(
            source.model_path, source.out, name=name, half=dtype == "float16", metadata=meta
        )
    except ExportError as exc:
        raise CoreExportError(str(exc)) from None
    what = (
        f"`{file.name}` is a Stable Diffusion checkpoint in the original SD 1.x key layout "
        f"({dtype}): copy it into AUTOMATIC1111's `models/Stable-diffusion/` or ComfyUI's "
        "`models/checkpoints/`. The config files beside it let diffusers load it offline: "
        f"`StableDiffusionPipeline.from_single_file('{file.name}', config='.', "
        "local_files_only=True)`."
    )
    card = model_card(source, library="diffusers", what=what, tags=("stable-diffusion",))
    (source.out / "README.md").write_text(card, encoding="utf-8")
    return file
