"""Single-file SD checkpoints (issue 17 parts 4 and 5): export in the original SD key layout,
load back with diffusers' ``from_single_file`` and a local config, and the refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from backends.common.safe_load import UnsafeCheckpointError
from backends.diffusion.checks import NotAPipelineError

TOKENIZER = Path(__file__).parents[2] / "resources" / "models" / "tiny-sd" / "tokenizer"


def sd1_shaped_pipeline(seed: int = 0) -> object:
    """A random-weight pipeline with the SD 1.x block layout (4 levels, 2 layers per block, cross
    attention in the first three down and last three up blocks, 4-level VAE with a mid attention,
    CLIP text model) in tiny channels."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizerFast

    torch.manual_seed(seed)
    tokenizer = CLIPTokenizerFast.from_pretrained(str(TOKENIZER), local_files_only=True)
    text = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
    )
    # random weights are mostly near zero; give every parameter a spread so a wrong mapping shows
    for module in (unet, vae, text):
        for p in module.parameters():
            p.data.add_(torch.randn_like(p) * 0.05)
    sched = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=sched,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def test_original_keys_follow_the_sd1_layout() -> None:
    from backends.diffusion.export import original_state_dict

    pipe = sd1_shaped_pipeline()
    sd = original_state_dict(pipe.unet, pipe.vae, pipe.text_encoder)
    # keys every SD 1.x checkpoint has (A1111 / ComfyUI detect the model type from such keys)
    for key in (
        "model.diffusion_model.input_blocks.0.0.weight",
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
        "model.diffusion_model.input_blocks.3.0.op.weight",
        "model.diffusion_model.input_blocks.11.0.in_layers.2.weight",
        "model.diffusion_model.middle_block.1.proj_in.weight",
        "model.diffusion_model.middle_block.2.emb_layers.1.weight",
        "model.diffusion_model.output_blocks.2.1.conv.weight",  # UpBlock2D: upsampler at .1
        "model.diffusion_model.output_blocks.5.2.conv.weight",  # CrossAttnUpBlock2D: at .2
        "model.diffusion_model.output_blocks.11.0.skip_connection.weight",
        "model.diffusion_model.out.2.weight",
        "model.diffusion_model.time_embed.2.bias",
        "first_stage_model.encoder.down.0.downsample.conv.weight",
        "first_stage_model.encoder.mid.attn_1.q.weight",
        "first_stage_model.decoder.up.3.block.2.conv1.weight",
        "first_stage_model.decoder.up.1.upsample.conv.weight",
        "first_stage_model.decoder.norm_out.weight",
        "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
        "cond_stage_model.transformer.text_model.final_layer_norm.weight",
    ):
        assert key in sd, key
    assert sd["first_stage_model.encoder.mid.attn_1.q.weight"].ndim == 4  # a 1x1 convolution
    # decoder level 3 (LDM) is diffusers' first up block (lowest resolution)
    assert torch.equal(
        sd["first_stage_model.decoder.up.3.block.0.conv1.weight"],
        pipe.vae.state_dict()["decoder.up_blocks.0.resnets.0.conv1.weight"],
    )
    n = sum(len(m.state_dict()) for m in (pipe.unet, pipe.vae)) + sum(
        1 for k in pipe.text_encoder.state_dict() if not k.endswith("position_ids")
    )
    assert len(sd) == n  # every weight exported once, nothing dropped


def test_export_round_trip_through_from_single_file(tmp_path: Path) -> None:
    """Export, load back with from_single_file(config=<local folder>, local_files_only=True):
    UNet, text encoder and VAE give the same outputs as before."""
    from diffusers import StableDiffusionPipeline
    from safetensors import safe_open

    from backends.diffusion.export import export_single_file

    pipe = sd1_shaped_pipeline()
    file = export_single_file(pipe, tmp_path / "out", name="erased", metadata={"run": "7"})
    assert file == tmp_path / "out" / "erased.safetensors"
    with safe_open(str(file), "pt") as f:
        assert f.metadata()["run"] == "7" and f.metadata()["layout"] == "sd1-original"
    back = StableDiffusionPipeline.from_single_file(
        str(file), config=str(file.parent), local_files_only=True, safety_checker=None
    )
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 8, 8, generator=gen)
    cond = torch.randn(2, 5, 16, generator=gen)
    t = torch.tensor([10, 700])
    with torch.no_grad():
        want = pipe.unet(x, t, encoder_hidden_states=cond).sample
        got = back.unet(x, t, encoder_hidden_states=cond).sample
        assert want.abs().mean() > 0.01
        assert torch.allclose(want, got, atol=1e-5)
        ids = pipe.tokenizer(["a striped red circle"], return_tensors="pt").input_ids
        assert torch.allclose(pipe.text_encoder(ids)[0], back.text_encoder(ids)[0], atol=1e-5)
        img = torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
        z = pipe.vae.encode(img).latent_dist.mean
        assert torch.allclose(z, back.vae.encode(img).latent_dist.mean, atol=1e-5)
        assert torch.allclose(pipe.vae.decode(z).sample, back.vae.decode(z).sample, atol=1e-5)


@pytest.mark.slow
def test_exported_file_loads_through_the_workbench_and_half_halves_it(tmp_path: Path) -> None:
    from backends.diffusion.export import export_single_file
    from backends.diffusion.pipeline import load_pipeline
    from backends.diffusion.single_file import check_single_file

    pipe = sd1_shaped_pipeline()
    full = export_single_file(pipe, tmp_path / "a")
    half = export_single_file(pipe, tmp_path / "b", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    check_single_file(str(full))
    loaded = load_pipeline(full)
    x = torch.randn(1, 4, 8, 8)
    c = torch.randn(1, 5, 16)
    with torch.no_grad():
        assert torch.allclose(
            pipe.unet(x, 3, encoder_hidden_states=c).sample,
            loaded.unet(x, 3, encoder_hidden_states=c).sample,
            atol=1e-5,
        )


def test_single_file_without_its_config_is_refused_saying_what_to_give(tmp_path: Path) -> None:
    from backends.diffusion.export import export_single_file
    from backends.diffusion.single_file import check_single_file

    file = export_single_file(sd1_shaped_pipeline(), tmp_path / "a", with_config=False)
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.move(str(file), lone / "v1-5.safetensors")
    with pytest.raises(NotAPipelineError, match="without its config") as err:
        check_single_file(str(lone / "v1-5.safetensors"))
    assert "model_index.json" in str(err.value) and "stable-diffusion-v1-5" in str(err.value)
    (lone / "v1-5.yaml").write_text("model: {}\n")
    with pytest.raises(NotAPipelineError, match="v1-5.yaml is an original LDM config"):
        check_single_file(str(lone / "v1-5.safetensors"))
    (lone / "v1-5.ckpt").write_bytes(b"\x80\x02")
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        check_single_file(str(lone / "v1-5.ckpt"))


def test_a_non_sd1_unet_is_refused_by_name() -> None:
    from backends.diffusion.export import ExportError, original_state_dict

    pipe = sd1_shaped_pipeline()
    pipe.unet.register_buffer("add_embedding_extra", torch.zeros(1))
    with pytest.raises(ExportError, match="add_embedding_extra"):
        original_state_dict(pipe.unet, pipe.vae, pipe.text_encoder)


@pytest.mark.slow
def test_add_model_accepts_a_single_file_beside_its_config(tmp_path: Path) -> None:
    from backends.diffusion.export import export_single_file
    from workbench.registry import add_model_to_project, get_registry
    from workbench.store import Project

    file = export_single_file(sd1_shaped_pipeline(), tmp_path / "m", name="erased")
    project = Project.create(tmp_path / "p")
    _, kind = add_model_to_project(project, get_registry(), "erased", str(file))
    assert kind == "diffusion.sd_file"
    lone = tmp_path / "lone.safetensors"
    shutil.copy(file, lone)
    with pytest.raises(ValueError, match="without its config") as err:
        add_model_to_project(project, get_registry(), "lone", str(lone))
    assert str(lone) in str(err.value) and "model_index.json" in str(err.value)
    (tmp_path / "w.ckpt").write_bytes(b"\x80\x02")
    with pytest.raises(ValueError, match="is a file; a model is a folder"):
        add_model_to_project(project, get_registry(), "w", str(tmp_path / "w.ckpt"))


def _unet_out(unet: object, seed: int = 3) -> torch.Tensor:
    cfg = unet.config  # type: ignore[attr-defined]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, cfg.in_channels, cfg.sample_size, cfg.sample_size, generator=gen)
    c = torch.randn(1, 4, cfg.cross_attention_dim, generator=gen)
    with torch.no_grad():
        return unet(x, torch.tensor([500]), encoder_hidden_states=c).sample  # type: ignore[operator]


@pytest.mark.slow
def test_export_model_of_an_erasure_run_loads_back_with_the_same_unet(
    project: object, tiny_sd_small: Path, tmp_path: Path
) -> None:
    """`workbench export-model RUN --out DIR` on a UCE erasure of the tiny model: one file in
    the original layout, a model card naming the run, and the erased UNet's outputs back."""
    from diffusers import StableDiffusionPipeline

    from backends.diffusion.pipeline import load_pipeline
    from workbench.exporters import ExportError, export_model
    from workbench.jobs import Engine
    from workbench.registry import add_model_to_project, get_registry

    add_model_to_project(project, get_registry(), "small-sd", str(tiny_sd_small))
    engine = Engine(project)
    try:
        config = {"device": "cpu", "eval_samples": 1, "sampling_steps": 4, "gallery_rows": 2}
        run_id = engine.submit("diffusion.unlearn.uce", config, model="small-sd")
        engine.wait(run_id, 900)
    finally:
        engine.shutdown()
    assert project.run(run_id).status == "completed", project.run(run_id).error
    out = tmp_path / "export"
    file = export_model(
        project, get_registry(), out, run_id=run_id, options={"dtype": "float32", "name": "uce"}
    )
    assert file == out / "uce.safetensors"
    card = (out / "README.md").read_text()
    assert "diffusion.unlearn.uce" in card and "AUTOMATIC1111" in card
    (erased,) = [m for m in project.models() if m.get("source_run") == run_id]
    want = _unet_out(load_pipeline(project.abspath(erased["path"])).unet)
    back = StableDiffusionPipeline.from_single_file(
        str(file), config=str(out), local_files_only=True, safety_checker=None
    )
    assert torch.allclose(want, _unet_out(back.unet), atol=1e-5)
    with pytest.raises(ExportError, match="unknown option"):
        export_model(project, get_registry(), tmp_path / "x", run_id=run_id, options={"fp": "1"})
