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
