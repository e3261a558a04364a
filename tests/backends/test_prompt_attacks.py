"""Adversarial-prompt attacks and concept inversion on the tiny text-to-image model (spec
``diffusion-methods.md`` sections 6.1 UnlearnDiffAtk, 6.2 P4D, 6.3 Ring-A-Bell, 6.4 concept
inversion, and 3 "Inversion procedure").

Every test that asserts what a model does loads the SHIPPED small tiny model
(``tests/fixtures/diffusion/tiny-sd-small``: 16x16 images, fixed weights) and never retrains it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from backends.diffusion.inversion import (
    LearnedToken,
    concept_images,
    denoising_loss,
    encode_with_token,
    init_row,
    invert_concept,
)
from backends.diffusion.pipeline import encode, encode_images, load_pipeline
from backends.diffusion.probes import PROBES_DIR, Probes


@pytest.fixture(scope="module")
def small(tiny_sd_small: Path) -> Any:
    torch.set_num_threads(1)
    return load_pipeline(tiny_sd_small, device="cpu")


@pytest.fixture(scope="module")
def probes(tiny_sd_small: Path) -> Probes:
    return Probes.load(tiny_sd_small / PROBES_DIR)


# -- concept inversion (spec 6.4 / 3) ------------------------------------------------------------


def test_a_token_row_at_the_placeholder_encodes_exactly_as_the_word_itself(small: Any) -> None:
    """The text encoder run from embeddings (what inversion and the attacks differentiate) is
    the pipeline's own encoder: the row of "striped" put at the placeholder gives the states of
    the prompt that says "striped", in any position and with the placeholder twice."""
    pipe = small.pipe
    token = LearnedToken("<v>", init_row(pipe, "striped"))
    got = encode_with_token(pipe, ["a <v> red circle", "<v> a blue <v> square"], token)
    want = encode(pipe, ["a striped red circle", "striped a blue striped square"])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_inversion_on_the_small_model_lowers_the_denoising_loss_of_held_out_concept_images(
    small: Any, probes: Probes
) -> None:
    """25 Adam steps (lr 5e-3) on the row of a new token, initialised from the neutral word "a",
    on 16 striped images: the denoising loss of 16 OTHER striped images (same fixed timesteps and
    noise) drops below the initial row's by at least half of what the concept word "striped"
    itself gains over "a" (measured: a 0.0722, striped 0.0682, learned 0.0677), and the UNet and
    the text encoder are untouched."""
    pipe = small.pipe
    before = {k: v.clone() for k, v in pipe.text_encoder.state_dict().items()}
    images, combos = concept_images(probes.world, 16, seed=11)
    captions = [f"a <concept> {c} {s}" for s, c in combos]
    result = invert_concept(
        pipe, images, captions, token="<concept>", init_word="a", steps=25, batch_size=4, seed=0
    )
    held_images, held_combos = concept_images(probes.world, 16, seed=99)
    held_captions = [f"a <concept> {c} {s}" for s, c in held_combos] * 4
    z = encode_images(pipe, held_images).repeat(4, 1, 1, 1)
    gen = torch.Generator().manual_seed(5)
    t = torch.randint(0, 1000, (len(z),), generator=gen)
    noise = torch.randn(z.shape, generator=gen)

    def loss(row: torch.Tensor) -> float:
        with torch.no_grad():
            return float(denoising_loss(pipe, z, held_captions, "<concept>", row, t, noise))

    initial, word, learned = (
        loss(init_row(pipe, "a")),
        loss(init_row(pipe, "striped")),
        loss(result.learned.vector),
    )
    assert initial - learned > 0.5 * (initial - word), (initial, word, learned)
    for k, v in pipe.text_encoder.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert len(result.losses) == 25


def test_a_learned_token_round_trips_through_its_artifact_and_refuses_other_files(
    tmp_path: Path, small: Any
) -> None:
    row = torch.arange(32, dtype=torch.float32) / 10
    token = LearnedToken("<zz>", row, init_word="zebra", meta={"steps": 3})
    path = token.save(tmp_path / "token.safetensors")
    back = LearnedToken.load(path)
    assert (back.token, back.init_word, back.meta) == ("<zz>", "zebra", {"steps": 3})
    assert torch.equal(back.vector, row)
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="not a safetensors file"):
        LearnedToken.load(tmp_path / "junk.safetensors")
    with pytest.raises(ValueError, match="width 5"):
        encode_with_token(small.pipe, ["<zz>"], LearnedToken("<zz>", torch.zeros(5)))
