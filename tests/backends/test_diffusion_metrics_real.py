"""Real-audit image metrics: the math on known cases, the CLIP paths on a tiny random CLIP
(``tests/fixtures/diffusion/tiny-clip``), and the refusals when weights or packages are absent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from backends.diffusion import metrics_real as mr

TINY_CLIP = Path(__file__).parents[1] / "fixtures" / "diffusion" / "tiny-clip"


def test_fid_of_a_set_with_itself_is_zero_and_a_mean_shift_costs_its_squared_norm() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 5))
    assert mr.fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([3.0, 0.0, -4.0, 0.0, 0.0])
    # same covariance, means 5 apart: FID = |Δμ|² = 25 exactly
    assert mr.fid_from_features(a, a + shift) == pytest.approx(25.0, abs=1e-6)


def test_kid_on_hand_computed_cases() -> None:
    x, y = np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])
    # k(a, b) = (ab + 1)^3: xx off-diagonal 1, yy off-diagonal 27, xy mean (1 + 1 + 8 + 27) / 4
    assert mr.mmd2_unbiased(x, y) == pytest.approx(1 + 27 - 2 * 37 / 4)
    assert mr.kid(x, y, subsets=3, subset_size=2) == pytest.approx((9.5, 0.0))
    # in 2-d the kernel divides by d = 2: orthogonal pairs give 1, x·y = 1 gives 1.5³ = 3.375
    x2, y2 = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 1.0], [0.0, 0.0]])
    assert mr.mmd2_unbiased(x2, y2) == pytest.approx(1 + 1 - 2 * (2 * 3.375 + 2) / 4)


def test_clip_score_is_100_times_the_cosine() -> None:
    img = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    txt = np.array([[2.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    assert mr.clip_score_from_embeddings(img, txt) == pytest.approx([100.0, 0.0, -100.0])


def test_tiny_clip_scores_match_clipmodels_own_logits_and_name_the_extractor() -> None:
    import torch
    from transformers import CLIPModel

    clip = mr.ClipFeatures(TINY_CLIP)
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8) for _ in range(4)]
    prompts = ["a red circle", "a striped blue square", "a green cross", "a framed triangle"]
    res = mr.clip_score(clip, images, prompts)
    assert "tiny-clip" in res.extractor and "CLIPModel" in res.extractor
    model = CLIPModel.from_pretrained(str(TINY_CLIP), local_files_only=True).eval()
    tok = clip.tokenizer(prompts, padding=True, return_tensors="pt")
    px = clip.processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model(
            input_ids=tok["input_ids"], attention_mask=tok["attention_mask"], pixel_values=px
        )
        want = (out.logits_per_image.diagonal() / model.logit_scale.exp() * 100).numpy()
    assert res.per_image == pytest.approx(want.tolist(), abs=1e-3)
    assert res.value == pytest.approx(float(want.mean()), abs=1e-3)
    fid, kid = mr.clip_fid(clip, images, images, kid_subsets=5)
    assert fid.value == pytest.approx(0.0, abs=1e-6)
    assert fid.extractor.endswith("image embeddings") and kid.record()["reference_images"] == 4


def test_missing_weights_are_refused_by_name_never_substituted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(mr.MetricUnavailable, match="CLIP metrics need a local CLIP folder"):
        mr.ClipFeatures("")
    with pytest.raises(mr.MetricUnavailable, match=f"CLIP folder {tmp_path / 'nope'} does not"):
        mr.ClipFeatures(tmp_path / "nope")
    (tmp_path / "pkl").mkdir()
    (tmp_path / "pkl" / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(mr.MetricUnavailable, match="no \\*.safetensors weights"):
        mr.ClipFeatures(tmp_path / "pkl")
    images = [np.zeros((8, 8, 3), np.uint8)] * 2
    with pytest.raises(mr.MetricUnavailable, match="pt_inception-2015-12-05-6726825d.pth"):
        mr.inception_fid(images, images, "")
    weights = tmp_path / "pt_inception.pth"
    weights.write_bytes(b"x")
    real_find = importlib.util.find_spec
    monkeypatch.setattr(
        mr.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("torch_fidelity", "torchvision") else real_find(name, *a),
    )
    with pytest.raises(mr.MetricUnavailable, match="needs the torch-fidelity package"):
        mr.inception_fid(images, images, weights)
    with pytest.raises(mr.MetricUnavailable, match="needs the torchvision package"):
        mr.lpips(images, images)
