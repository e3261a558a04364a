"""Classifier data, models and ensembles: splits, forget sets, image folders, HF folders, vmap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backends.classifier.data import (
    load_digits,
    load_image_folder,
    load_split_json,
    make_forget_set,
    stratified_split,
)
from backends.classifier.ensemble import Ensemble, half_membership, train_ensemble
from backends.classifier.models import (
    MLP,
    SmallCNN,
    build_model,
    check_label_count,
    load_classifier,
    save_classifier,
)
from backends.classifier.setup import ClassifierSetup
from backends.classifier.training import TrainSpec
from backends.common.safe_load import UnsafeCheckpointError


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_three_way_split_is_disjoint_stratified_and_seeded(digits) -> None:
    split = stratified_split(digits.y, 0.2, 0, 0.4)
    parts = [split.train, split.test, split.shadow]
    assert sum(map(len, parts)) == len(digits.y)
    assert len(np.unique(np.concatenate(parts))) == len(digits.y)
    assert abs(len(split.test) / len(digits.y) - 0.2) < 0.01
    assert abs(len(split.shadow) / len(digits.y) - 0.4) < 0.01
    for part in parts:  # every class in every part, in proportion
        assert len(np.unique(digits.y[part])) == 10
    again = stratified_split(digits.y, 0.2, 0, 0.4)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(parts, [again.train, again.test, again.shadow], strict=True)
    )
    other = stratified_split(digits.y, 0.2, 1, 0.4)
    assert not np.array_equal(split.train, other.train)


def test_split_from_json_reproduces_and_rejects_overlaps(tmp_path: Path, digits) -> None:
    split = stratified_split(digits.y, 0.2, 0, 0.4)
    path = tmp_path / "split.json"
    path.write_text(json.dumps(split.to_json()))
    back = load_split_json(path, len(digits.y))
    assert np.array_equal(back.train, split.train) and np.array_equal(back.shadow, split.shadow)
    path.write_text(json.dumps({"train": [0, 1, 2], "test": [2, 3]}))
    with pytest.raises(ValueError, match="index 2 is in both train and test"):
        load_split_json(path, len(digits.y))
    path.write_text(json.dumps({"train": [0, 5000], "test": [1]}))
    with pytest.raises(ValueError, match="outside 0..1796"):
        load_split_json(path, len(digits.y))
    path.write_text(json.dumps({"train": [0]}))
    with pytest.raises(ValueError, match="lacks test"):
        load_split_json(path, len(digits.y))


def test_forget_sets_of_three_kinds(tmp_path: Path, digits) -> None:
    split = stratified_split(digits.y, 0.2, 0, 0.4)
    by_class = make_forget_set(digits, split, kind="class", forget_class=3)
    assert set(digits.y[by_class.indices]) == {3}
    assert np.isin(by_class.indices, split.train).all()
    assert (digits.y[split.train] == 3).sum() == len(by_class.indices)
    random = make_forget_set(digits, split, kind="random", fraction=0.1, seed=4)
    assert len(random.indices) == round(0.1 * len(split.train)) and random.forget_class is None
    assert np.array_equal(
        random.indices, make_forget_set(digits, split, kind="random", fraction=0.1, seed=4).indices
    )
    listed = tmp_path / "forget.json"
    listed.write_text(json.dumps(split.train[:5].tolist()))
    explicit = make_forget_set(digits, split, kind="indices", indices_file=str(listed))
    assert np.array_equal(explicit.indices, np.sort(split.train[:5]))


def test_bad_forget_sets_say_what_is_wrong(tmp_path: Path, digits) -> None:
    split = stratified_split(digits.y, 0.2, 0, 0.4)
    with pytest.raises(
        ValueError, match=r"forget class 12 does not exist: digits has classes 0..9"
    ):
        make_forget_set(digits, split, kind="class", forget_class=12)
    listed = tmp_path / "forget.json"
    listed.write_text(json.dumps(split.test[:2].tolist()))
    with pytest.raises(ValueError, match="not in the training split"):
        make_forget_set(digits, split, kind="indices", indices_file=str(listed))
    with pytest.raises(ValueError, match="is not one of"):
        make_forget_set(digits, split, kind="everything")


def _write_image_folder(root: Path, classes: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            arr = (rng.random((12, 10, 3)) * 255).astype(np.uint8)
            Image.fromarray(arr).save(root / name / f"{i}.png")


def test_image_folder_is_resized_normalised_and_labelled(tmp_path: Path) -> None:
    _write_image_folder(tmp_path / "imgs", {"cat": 3, "dog": 2})
    data = load_image_folder(tmp_path / "imgs", image_size=8, mean=0.5, std=0.25)
    assert data.x.shape == (5, 3, 8, 8) and data.class_names == ["cat", "dog"]
    assert data.y.tolist() == [0, 0, 0, 1, 1]
    assert data.x.min() >= (0 - 0.5) / 0.25 and data.x.max() <= (1 - 0.5) / 0.25
    grey = load_image_folder(tmp_path / "imgs", image_size=6, grayscale=True)
    assert grey.x.shape == (5, 1, 6, 6)


def test_empty_image_folders_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no class sub-folders"):
        load_image_folder(tmp_path / "empty")
    (tmp_path / "noimages" / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        load_image_folder(tmp_path / "noimages")
    _write_image_folder(tmp_path / "partial", {"cat": 2})
    (tmp_path / "partial" / "dog").mkdir()
    with pytest.raises(ValueError, match="dog hold no images"):
        load_image_folder(tmp_path / "partial")
    with pytest.raises(ValueError, match="does not exist"):
        load_image_folder(tmp_path / "missing")


def test_workbench_models_round_trip(tmp_path: Path) -> None:
    for model in (
        build_model("mlp", (1, 8, 8), 10, [16]),
        build_model("cnn", (1, 8, 8), 10, [4, 8]),
    ):
        save_classifier(model, tmp_path / type(model).__name__)
        back, config = load_classifier(tmp_path / type(model).__name__)
        x = torch.rand(3, 1, 8, 8)
        assert torch.equal(back(x), model(x))
        assert isinstance(back, (MLP, SmallCNN)) and config["num_classes"] == 10


def test_label_count_mismatch_is_a_clear_error() -> None:
    model = build_model("mlp", (1, 8, 8), 5, [16])
    with pytest.raises(ValueError, match="predicts 5 classes but dataset digits has 10"):
        check_label_count(model, 10, "my-model", "digits")


def test_hugging_face_image_classifier_folder(tmp_path: Path) -> None:
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        image_size=8,
        patch_size=4,
        num_channels=1,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=10,
        id2label={i: f"digit {i}" for i in range(10)},
    )
    torch.manual_seed(0)
    hf = ViTForImageClassification(config).eval()
    hf.save_pretrained(tmp_path / "vit")
    model, meta = load_classifier(tmp_path / "vit")
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), hf(pixel_values=x).logits, atol=1e-6)
    assert meta["class_names"][3] == "digit 3"
    check_label_count(model, 10, "vit", "digits")
    with pytest.raises(ValueError, match="predicts 10 classes but dataset five has 5"):
        check_label_count(model, 5, "vit", "five")
    # a folder with only pickle weights is refused before anything is unpickled
    (tmp_path / "vit" / "model.safetensors").rename(tmp_path / "vit" / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match="only pickle weights"):
        load_classifier(tmp_path / "vit")


def test_ensemble_members_learn_their_own_members(digits) -> None:
    """Model 0 sees only classes 0-4, model 1 only 5-9: each predicts only its own classes."""
    x, y = torch.from_numpy(digits.x[:600]), torch.from_numpy(digits.y[:600])
    low = (y < 5).numpy()
    membership = np.stack([low, ~low])
    ens = train_ensemble(lambda: MLP(64, [32], 10), x, y, membership, TrainSpec(epochs=15), 0)
    preds = ens.predict(torch.from_numpy(digits.x[600:])).argmax(-1)
    assert (preds[0] < 5).float().mean() > 0.99 and (preds[1] >= 5).float().mean() > 0.99
    # a member as an ordinary module gives the same logits as the stacked call
    one = ens.model(1)
    probe = torch.from_numpy(digits.x[600:650])
    assert torch.allclose(one(probe), ens.predict(probe)[1], atol=1e-5)
    again = Ensemble.from_state_dict(MLP(64, [32], 10), ens.state_dict(), torch.device("cpu"))
    assert torch.allclose(again.predict(probe), ens.predict(probe))


def test_half_membership_is_balanced() -> None:
    m = half_membership(16, 200, 3)
    assert (m.sum(0) == 8).all()
    assert 80 < m.sum(1).mean() < 120


def test_setup_index_sets(digits) -> None:
    split = stratified_split(digits.y, 0.2, 0, 0.4)
    forget = make_forget_set(digits, split, kind="class", forget_class=3)
    setup = ClassifierSetup(digits, split, forget)
    assert len(setup.retain_idx) + len(setup.forget_idx) == len(split.train)
    assert (digits.y[setup.forget_test_idx] == 3).all() and len(setup.forget_test_idx) > 0
    assert 3 not in setup.remaining_classes and len(setup.remaining_classes) == 9
    shadow = setup.derive(split, make_forget_set(digits, split, kind="class", forget_class=5))
    assert shadow.x is setup.x and (digits.y[shadow.forget_idx] == 5).all()
    assert setup.fingerprint("a") != shadow.fingerprint("a")
