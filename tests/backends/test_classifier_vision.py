"""Vision data and real image classifiers (issue 17 part 3).

- CIFAR-10/100 from the official *binary* version: a few records per file written by
  :func:`write_cifar` in the real layout (``<label> <1024 R> <1024 G> <1024 B>``, CIFAR-100 with a
  coarse and a fine label byte), read back pixel for pixel; wrong layouts give one error naming
  the file.
- Hugging Face classifiers preprocessed with their own ``AutoImageProcessor``: a known-answer
  check of the normalisation, and (slow) a tiny ViT and a tiny ResNet with random weights and a
  processor config, end to end through the engine: load, unlearn one step, evaluate, save, load
  back.  Nothing asserts what a model learned.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from backends.classifier.checks import check_cifar10_binary, check_cifar100_binary, check_submit
from backends.classifier.data import (
    CIFAR10,
    CIFAR100,
    CifarLayout,
    load_cifar,
    load_dataset,
    load_image_folder,
    processor_fn,
)
from backends.classifier.experiment import build_setup
from backends.classifier.jobconfigs import SetupConfig
from backends.classifier.models import PROCESSOR_FILE, build_model, load_classifier
from workbench.jobs import Engine
from workbench.store import Project

MEAN, STD = [0.5, 0.25, 0.0], [0.5, 0.25, 1.0]


def write_cifar(
    root: Path, layout: CifarLayout, per_file: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """A folder in the official binary layout with ``per_file`` seeded random records per file;
    returns each file's (images (N, 32, 32, 3), labels) as written.  Labels cycle over the
    classes so that every class is in every file (CIFAR-100: fine = i % 100, coarse = i % 20)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in (*layout.train, layout.test):
        images = rng.integers(0, 256, (per_file, 32, 32, 3), dtype=np.uint8)
        planes = images.transpose(0, 3, 1, 2).reshape(per_file, -1)  # R plane, G, B; row-major
        idx = np.arange(per_file)
        if layout.label_bytes == 1:
            labels = (idx % 10).astype(np.uint8)[:, None]
        else:
            labels = np.stack([idx % 20, idx % 100], 1).astype(np.uint8)
        (root / name).write_bytes(np.concatenate([labels, planes], 1).tobytes())
        written[name] = (images, labels)
    return written


def test_cifar10_binary_reads_pixels_labels_and_the_official_split(tmp_path: Path) -> None:
    written = write_cifar(tmp_path / "cifar-10-batches-bin", CIFAR10, per_file=10)
    (tmp_path / "cifar-10-batches-bin" / "batches.meta.txt").write_text(
        "\n".join(f"thing{i}" for i in range(10)) + "\n\n"
    )
    check_cifar10_binary(str(tmp_path / "cifar-10-batches-bin"))
    data = load_cifar(tmp_path / "cifar-10-batches-bin", "cifar10-binary")
    assert data.x.shape == (60, 3, 32, 32) and data.x.dtype == np.float32
    # record 3 of data_batch_2 is example 13: channel, row, column as written, scaled to [0, 1]
    images, labels = written["data_batch_2.bin"]
    assert np.array_equal(data.x[13], images[3].transpose(2, 0, 1) / np.float32(255.0))
    assert data.y[13] == labels[3, 0] == 3
    train, test = data.official_split
    assert train.tolist() == list(range(50)) and test.tolist() == list(range(50, 60))
    assert data.class_names[2] == "thing2"


def test_cifar100_binary_picks_fine_or_coarse_labels(tmp_path: Path) -> None:
    root = tmp_path / "cifar-100-binary"
    write_cifar(root, CIFAR100, per_file=120)
    check_cifar100_binary(str(root))
    fine = load_dataset("c100", str(root), kind="cifar100-binary")
    coarse = load_dataset("c100", str(root), kind="cifar100-binary", labels="coarse")
    assert fine.y[:3].tolist() == [0, 1, 2] and fine.y[105] == 105 % 100
    assert coarse.y[105] == 105 % 20 and coarse.num_classes == 20 and fine.num_classes == 100
    assert np.array_equal(fine.x, coarse.x)
    assert fine.official_split[1].tolist() == list(range(120, 240))


def test_wrong_cifar_layouts_give_one_error_naming_the_file(tmp_path: Path) -> None:
    c10 = tmp_path / "c10"
    write_cifar(c10, CIFAR10, per_file=2)
    # a CIFAR-10 folder read as CIFAR-100: its files are missing
    with pytest.raises(ValueError, match=r"c10/train\.bin is missing: a cifar100-binary folder"):
        check_cifar100_binary(str(c10))
    # a truncated file: not a whole number of records
    (c10 / "test_batch.bin").write_bytes((c10 / "test_batch.bin").read_bytes()[:-7])
    with pytest.raises(ValueError) as info:
        load_cifar(c10)
    assert str(info.value).startswith(f"{c10 / 'test_batch.bin'} has 6139 bytes")
    assert "1 label byte(s) + 3072 pixels = 3073 bytes" in str(info.value)
    # CIFAR-100 records (3074 bytes) in a CIFAR-10 folder: the size says which layout it fits
    c100 = tmp_path / "c100"
    write_cifar(c100, CIFAR100, per_file=3)
    for name in (*CIFAR10.train, CIFAR10.test):
        (c10 / name).write_bytes((c100 / "train.bin").read_bytes())
    with pytest.raises(ValueError, match="fits the cifar100-binary layout"):
        check_cifar10_binary(str(c10))
    # the pickle version is named as such
    pickled = tmp_path / "cifar-10-batches-py"
    pickled.mkdir()
    (pickled / "data_batch_1").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="data_batch_1 is the Python pickle version"):
        check_cifar10_binary(str(pickled))
    # a label byte outside the classes
    bad = tmp_path / "bad"
    write_cifar(bad, CIFAR10, per_file=2)
    raw = bytearray((bad / "data_batch_4.bin").read_bytes())
    raw[3073] = 12  # record 1's label
    (bad / "data_batch_4.bin").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"data_batch_4\.bin: record 1 has label byte 12"):
        load_cifar(bad)


def test_official_split_gives_train_test_and_a_shadow_pool_from_the_test_file(
    tmp_path: Path,
) -> None:
    write_cifar(tmp_path / "c10", CIFAR10, per_file=20)
    ref = SimpleNamespace(name="c10", kind="cifar10-binary", path=tmp_path / "c10")
    setup = build_setup(SetupConfig(device="cpu", shadow_fraction=0.4), ref, None)
    assert setup.split.train.tolist() == list(range(100))
    held_out = set(setup.split.test.tolist()) | set(setup.split.shadow.tolist())
    assert held_out == set(range(100, 120)) and len(setup.split.shadow) == 10
    assert setup.data.y[setup.forget_idx].tolist() == [3] * 10  # class 3 of the train files
    check_submit(SetupConfig(), None, ref)  # 10 classes: forget class 3 exists
    c100 = SimpleNamespace(name="c100", kind="cifar100-binary", path=tmp_path / "c10")
    with pytest.raises(ValueError, match="forget class 30 does not exist: dataset c100 has 20"):
        check_submit(SetupConfig(forget_class=30, cifar100_labels="coarse"), None, c100)


def _vit_processor(folder: Path, size: int = 16) -> None:
    from transformers import ViTImageProcessor

    ViTImageProcessor(
        size={"height": size, "width": size}, image_mean=MEAN, image_std=STD
    ).save_pretrained(folder)


def test_the_models_processor_normalises_as_its_config_says(tmp_path: Path) -> None:
    """A flat image of value v becomes (v / 255 - mean) / std per channel, at the processor's
    size, whatever the scalar image settings say."""
    from PIL import Image

    for c, value in enumerate((0, 51, 255)):
        (tmp_path / "pets" / f"class{c}").mkdir(parents=True)
        Image.new("RGB", (40, 24), (value, value, value)).save(
            tmp_path / "pets" / f"class{c}" / "a.png"
        )
    _vit_processor(tmp_path / "model")
    data = load_image_folder(
        tmp_path / "pets", image_size=32, processor=processor_fn(tmp_path / "model")
    )
    assert data.x.shape == (3, 3, 16, 16)
    for c, value in enumerate((0, 51, 255)):
        expected = (value / 255 - np.array(MEAN)) / np.array(STD)
        assert np.allclose(data.x[c].mean((1, 2)), expected, atol=1e-5)
        assert np.allclose(data.x[c].std((1, 2)), 0.0, atol=1e-6)
    assert processor_fn(tmp_path / "pets") is None  # no processor config: the scalar path


def _tiny_hf(kind: str, folder: Path) -> Path:
    """A tiny random-weight ViT or ResNet (real architectures) with a processor config."""
    from transformers import (
        ConvNextImageProcessor,
        ResNetConfig,
        ResNetForImageClassification,
        ViTConfig,
        ViTForImageClassification,
    )

    torch.manual_seed(0)
    labels = {i: name for i, name in enumerate(CIFAR_NAMES)}
    if kind == "vit":
        config = ViTConfig(
            image_size=16,
            patch_size=8,
            num_channels=3,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            id2label=labels,
        )
        ViTForImageClassification(config).save_pretrained(folder)
        _vit_processor(folder)
    else:
        config = ResNetConfig(
            num_channels=3,
            embedding_size=8,
            hidden_sizes=[8, 16],
            depths=[1, 1],
            layer_type="basic",
            id2label=labels,
        )
        ResNetForImageClassification(config).save_pretrained(folder)
        ConvNextImageProcessor(
            size={"shortest_edge": 24}, crop_pct=0.875, image_mean=MEAN, image_std=STD
        ).save_pretrained(folder)
    return folder


CIFAR_NAMES = [f"c{i}" for i in range(10)]


@pytest.mark.slow  # two unlearning runs through the engine: ~10 s together on a quiet machine
@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_hf_classifier_with_its_processor_end_to_end_on_cifar(
    kind: str, project: Project, tmp_path: Path
) -> None:
    write_cifar(tmp_path / "cifar-10-batches-bin", CIFAR10, per_file=20)
    project.add_dataset(
        "c10", "classifier", "cifar10-binary", str(tmp_path / "cifar-10-batches-bin")
    )
    folder = _tiny_hf(kind, tmp_path / kind)
    engine = Engine(project)
    try:
        run_id = engine.submit(
            "classifier.unlearn.ga",
            {
                "epochs": 1,
                "train_epochs": 1,
                "attacks": ["svc_mia"],
                "n_bootstrap": 20,
                "device": "cpu",
                "shadow_fraction": 0.2,
            },
            seed=0,
            dataset="c10",
            model=str(folder),
        )
        assert engine.wait(run_id, 600) == "completed", project.run(run_id).error
    finally:
        engine.shutdown()
    metrics = project.final_metrics(run_id)
    assert "forget_acc" in metrics and "test_acc" in metrics
    row = project.model(f"ga-run{run_id}")
    saved = project.abspath(row["path"])
    assert row["kind"] == "classifier.hf" and (saved / PROCESSOR_FILE).is_file()
    # loaded back: the processor's image size, the same logits as the unlearned model had
    model, _ = load_classifier(saved)
    data = load_cifar(tmp_path / "cifar-10-batches-bin", processor=processor_fn(saved))
    side = 16 if kind == "vit" else 24  # ConvNext: shortest edge to 24 / 0.875 = 27, crop 24
    assert data.x.shape[2] == data.x.shape[3] == side
    with torch.no_grad():
        logits = model(torch.from_numpy(data.x[:4]))
    assert logits.shape == (4, 10)
    again, _ = load_classifier(saved)
    with torch.no_grad():
        assert torch.equal(again(torch.from_numpy(data.x[:4])), logits)


def test_resnet18_recipe_is_transformers_resnet18() -> None:
    model = build_model("resnet18", (3, 32, 32), 10, [1])
    config = model.model.config
    assert config.depths == [2, 2, 2, 2] and config.hidden_sizes == [64, 128, 256, 512]
    assert config.layer_type == "basic" and config.num_labels == 10
    # 11.2 M parameters: ResNet-18's 11.69 M less the 1000-class head's 0.51 M
    assert sum(p.numel() for p in model.parameters()) == 11_181_642
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_batch_norm_ensembles_predict_with_each_models_running_statistics() -> None:
    """ResNet-18 has batch norm: the stacked ensembles (shadows, references) keep each model's
    running statistics and predict in evaluation mode, exactly as each model alone."""
    from torch import nn

    from backends.classifier.ensemble import train_ensemble
    from backends.classifier.training import TrainSpec

    def factory() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3))

    torch.manual_seed(0)
    x, y = torch.randn(40, 1, 2, 2) * 3 + 1, torch.randint(0, 3, (40,))
    membership = np.zeros((2, 40), bool)
    membership[0, :20], membership[1, 20:] = True, True
    ens = train_ensemble(factory, x, y, membership, TrainSpec(epochs=2, batch_size=8), 0)
    stats = ens.buffers["2.running_mean"]
    assert stats.shape == (2, 3) and not torch.allclose(stats[0], stats[1])
    probe = x[:1]  # one example: batch statistics would be degenerate
    for i in range(2):
        alone = ens.model(i).eval()
        with torch.no_grad():
            assert torch.allclose(ens.predict(probe)[i], alone(probe), atol=1e-6)
    assert torch.equal(ens.buffers["2.running_mean"], stats)  # predicting changed nothing


def test_cifar_preview_counts_classes_and_shows_the_first_images(tmp_path: Path) -> None:
    from backends.classifier.data import preview_cifar100

    written = write_cifar(tmp_path / "c100", CIFAR100, per_file=120)
    preview = preview_cifar100(str(tmp_path / "c100"), 1)
    assert preview["examples"] == 240
    # fine label = record % 100 in each of the two files: classes 0-19 twice per file
    assert preview["classes"][:2] == [("0", 4), ("1", 4)] and preview["classes"][50] == ("50", 2)
    label, image = preview["samples"][7]  # the first image of fine class 7: train record 7
    assert label == "7" and np.array_equal(image, written["train.bin"][0][7] / np.float32(255.0))
    assert len(preview["samples"]) == 100
