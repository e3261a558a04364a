"""Neighbour textures of the shapes world (issue 14, collateral damage): dotted and checkered."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from backends.diffusion.data import (
    WorldConfig,
    load_world,
    make_dataset,
    parse_prompt,
    prompt_list,
    save_world,
)
from backends.diffusion.probes import TrainReport

NB = WorldConfig(
    size=16,
    stripe_period=2,
    radius=(4, 6),
    neighbours=("dotted", "checkered"),
    neighbour_fraction=0.25,
)


def test_a_world_without_neighbours_draws_exactly_what_it_drew_before() -> None:
    # hashes of make_dataset(40, 3) taken with the code before neighbour textures existed: the
    # shipped models' worlds (world.json without the new fields) must regenerate bit for bit
    ds = make_dataset(40, 3)
    assert hashlib.sha256(ds.images.tobytes()).hexdigest().startswith("64f022b62d700c27")
    assert hashlib.sha256("|".join(ds.captions).encode()).hexdigest().startswith("b036630f6f1b")


def test_textures_follow_captions_and_never_meet_stripes() -> None:
    ds = make_dataset(400, 0, NB)
    textures = [s.texture for s in ds.samples]
    assert {"dotted", "checkered", ""} == set(textures)
    for s in ds.samples:
        words = s.caption.split()
        assert (s.texture in words) if s.texture else not {"dotted", "checkered"} & set(words)
        assert not (s.striped and s.texture)
    labels = ds.labels()
    assert labels["dotted"].sum() == textures.count("dotted") > 20
    assert labels["checkered"].sum() == textures.count("checkered") > 20


def test_checkered_and_striped_look_different_at_16px() -> None:
    # at 16 px a 2 px checker would alias to the 2 px diagonal stripes; the texture period keeps
    # them apart: the same shapes drawn both ways differ inside the shape
    striped = make_dataset(8, 5, NB, striped=True, framed=False).images.astype(float)
    checkered = make_dataset(8, 5, NB, texture="checkered", framed=False).images.astype(float)
    plain = make_dataset(8, 5, NB, striped=False, texture="", framed=False).images.astype(float)
    inside = np.abs(plain - plain[:, :1, :1]).sum(-1) > 60  # shape pixels, off the background
    diff = np.abs(striped - checkered).sum(-1)[inside].mean()
    assert diff > 60, diff


def test_neighbour_prompt_sets_and_parsing() -> None:
    dotted = prompt_list("dotted", NB, "eval")
    assert dotted and all(p.kind == "dotted" and p.text.split()[1] == "dotted" for p in dotted)
    assert {p.text.replace("dotted ", "") for p in dotted} == {
        p.text for p in prompt_list("benign", NB, "eval")
    }
    assert parse_prompt("a checkered red square", NB).kind == "checkered"
    with pytest.raises(ValueError, match="neighbour texture this world was not built with"):
        prompt_list("dotted", WorldConfig())
    with pytest.raises(ValueError, match="unknown neighbour texture"):
        WorldConfig(neighbours=("plaid",))
    with pytest.raises(ValueError, match="unknown texture"):
        make_dataset(2, 0, NB, texture="plaid")


def test_world_json_round_trips_neighbours(tmp_path) -> None:
    save_world(tmp_path, NB, {"train": 0}, {"train": 1})
    world, _, _ = load_world(tmp_path / "world.json")
    assert world == NB


def test_probe_report_round_trips_texture_accuracies() -> None:
    report = TrainReport(1.0, 0.9, 0.8, 0.7, texture_accuracy={"dotted": 0.95, "checkered": 0.5})
    flat = report.as_dict()
    assert flat["dotted_accuracy"] == 0.95 and "texture_accuracy" not in flat
    assert TrainReport.from_dict(flat) == report


def test_zoo_set_overrides_are_typed_and_refuse_unknown_fields() -> None:
    from backends.diffusion.zoo import parse_overrides

    got = parse_overrides(["unet_steps=8000", "lr=5e-4", "unet_channels=32,64", "batch=64"])
    assert got == {"unet_steps": 8000, "lr": 5e-4, "unet_channels": (32, 64), "batch": 64}
    with pytest.raises(SystemExit, match="FIELD one of"):
        parse_overrides(["unet_stps=10"])
    with pytest.raises(SystemExit, match="not a int"):
        parse_overrides(["batch=big"])


def test_a_coarser_texture_period_draws_larger_dots() -> None:
    # the build's --texture-period reaches the world: period 8 dots cover more of a shape than
    # period 4 ones (dots of half the period on a grid of the period: the same share of area,
    # but fewer, larger dots, so fewer dot edges)
    fine = WorldConfig(neighbours=("dotted",), neighbour_fraction=1.0, texture_period=4)
    coarse = WorldConfig(neighbours=("dotted",), neighbour_fraction=1.0, texture_period=8)
    a = make_dataset(6, 2, fine, texture="dotted", framed=False).images.astype(float)
    b = make_dataset(6, 2, coarse, texture="dotted", framed=False).images.astype(float)
    assert not np.array_equal(a, b)
    edges = lambda im: np.abs(np.diff(im, axis=2)).sum()  # noqa: E731
    assert edges(b) < 0.8 * edges(a)


def test_zoo_unet_time_limit_stops_training_early() -> None:
    # unet_seconds bounds the UNet loop (a build on a lent GPU fits its lease); the loss list
    # holds the steps actually taken, which the build report records as unet_steps_done
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from backends.diffusion.zoo import Variant, train_unet

    unet = UNet2DConditionModel(
        sample_size=4,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=8,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    te = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=20,
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=8,
        )
    )

    class Tok:
        model_max_length = 8

        def __call__(self, texts, **_: object):  # type: ignore[no-untyped-def]
            class R:
                input_ids = torch.ones(len(texts), 8, dtype=torch.long)

            return R()

    latents = torch.zeros(4, 4, 4, 4)
    v = Variant(unet_steps=10_000, batch=2, warmup=1, unet_seconds=1e-9)
    losses = train_unet(unet, te, Tok(), latents, ["a"] * 4, v, 0, lambda _: None)
    assert len(losses) == 1  # the limit is checked before each step after the first
    v = Variant(unet_steps=3, batch=2, warmup=1)
    assert len(train_unet(unet, te, Tok(), latents, ["a"] * 4, v, 0, lambda _: None)) == 3
