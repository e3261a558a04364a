"""Image metrics of real text-to-image audits (issue 17 part 4; spec ``diffusion-methods.md``
section 7 "Metrics catalogue" and section 1 "Evaluation protocol").

Every metric loads its feature extractor from a LOCAL file or folder the user gives, says in its
result which extractor it used (:attr:`MetricResult.extractor`), and refuses with
:class:`MetricUnavailable` (the message names what is missing and where to get it) when the
weights or a package are absent. Nothing is ever downloaded and nothing is silently substituted.

- **CLIP score** (:class:`ClipFeatures`, :func:`clip_score`): 100·cos(image embedding, text
  embedding) of a transformers ``CLIPModel`` folder, averaged over images: the ViT-B/32
  image-text logit of ResAlign and MemoRa (logit scale 100). Per-image values are returned too.
- **FID and KID on CLIP image features** (:func:`frechet_distance`, :func:`kid`): the Fréchet
  distance of Gaussians fitted to the two feature sets, and the unbiased polynomial-kernel MMD²
  (k(x, y) = (x·y/d + 1)³) averaged over random subsets (Bińkowski et al.; torchmetrics' KID).
  They are *not* comparable with Inception FID numbers in papers; the name says ``clip_fid``.
- **Inception FID** (:func:`inception_fid`): torchmetrics' ``FrechetInceptionDistance`` with the
  user's FID Inception weights file (``pt_inception-2015-12-05-6726825d.pth``). torchmetrics builds
  that network from the ``torch-fidelity`` package; without it the metric refuses, naming it.
- **LPIPS** (:func:`lpips`): torchmetrics' LPIPS with its linear heads (shipped in torchmetrics)
  on a torchvision backbone whose ImageNet weights lie in torchvision's cache; without
  ``torchvision`` or that file it refuses, naming them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backends.diffusion.probes import frechet_distance

__all__ = [
    "ClipFeatures",
    "MetricResult",
    "MetricUnavailable",
    "clip_fid",
    "clip_score",
    "frechet_distance",
    "inception_fid",
    "kid",
    "lpips",
    "mmd2_unbiased",
]

CLIP_HELP = (
    "a local CLIP folder as transformers saves it (config.json, model.safetensors, tokenizer "
    "files and preprocessor_config.json), e.g. openai/clip-vit-base-patch32 (the CLIP score of "
    "ResAlign and MemoRa) saved once with CLIPModel/CLIPProcessor.save_pretrained on a machine "
    "with internet"
)
INCEPTION_HELP = (
    "the FID Inception weights file pt_inception-2015-12-05-6726825d.pth (torch-fidelity's release "
    "page on GitHub; the same network as TF-FID and clean-fid's legacy mode)"
)


class MetricUnavailable(RuntimeError):
    """A metric cannot run here: its weights or a package it needs are absent (the message says
    which, and where to get it)."""


@dataclass
class MetricResult:
    """A metric's value, the extractor that produced it, and per-image values when it has them."""

    name: str
    value: float
    extractor: str
    per_image: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What a job stores beside the number (the extractor is part of the metric's identity)."""
        return {"name": self.name, "value": self.value, "extractor": self.extractor, **self.extra}


# -- CLIP ----------------------------------------------------------------------------------------


class ClipFeatures:
    """A local CLIP folder: image and text embeddings (L2-normalised, float64 numpy)."""

    def __init__(self, folder: str | Path, device: str = "cpu") -> None:
        path = Path(folder) if str(folder).strip() else None
        if path is None:
            raise MetricUnavailable(f"CLIP metrics need {CLIP_HELP}; none was given")
        if not path.is_dir():
            raise MetricUnavailable(f"CLIP folder {path} does not exist; give {CLIP_HELP}")
        if not any(path.glob("*.safetensors")):
            raise MetricUnavailable(
                f"CLIP folder {path} has no *.safetensors weights (pickle weights are refused); "
                f"give {CLIP_HELP}"
            )
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        try:
            self.model = CLIPModel.from_pretrained(str(path), local_files_only=True).to(device)
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.processor = AutoImageProcessor.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MetricUnavailable(
                f"CLIP folder {path} does not load as a CLIPModel with its tokenizer and image "
                f"processor ({first}); give {CLIP_HELP}"
            ) from None
        self.model.eval()
        self.path = path
        self.device = device
        cfg = self.model.config.vision_config
        self.name = (
            f"CLIP {path.name} (transformers CLIPModel, vision {cfg.hidden_size}x"
            f"{cfg.num_hidden_layers} patch {cfg.patch_size} at {cfg.image_size}px, "
            f"projection {self.model.config.projection_dim})"
        )

    def images(self, images: Sequence[Any], batch: int = 32) -> np.ndarray:
        """Normalised image embeddings of uint8 ``[H, W, 3]`` images."""
        import torch

        out = []
        for i in range(0, len(images), batch):
            chunk = [np.asarray(im) for im in images[i : i + batch]]
            px = self.processor(images=chunk, return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                f = self.model.get_image_features(pixel_values=px.to(self.device))
            f = getattr(f, "pooler_output", f)
            out.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu().double().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.projection_dim))

    def texts(self, texts: Sequence[str], batch: int = 64) -> np.ndarray:
        """Normalised text embeddings (truncated to the text model's length)."""
        import torch

        out = []
        for i in range(0, len(texts), batch):
            tok = self.tokenizer(
                list(texts[i : i + batch]),
                padding=True,
                truncation=True,
                max_length=self.model.config.text_config.max_position_embeddings,
                return_tensors="pt",
            ).to(self.device)
            with torch.no_grad():
                f = self.model.get_text_features(
                    input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]
                )
            f = getattr(f, "pooler_output", f)
            out.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu().double().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.projection_dim))


def clip_score_from_embeddings(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """Per pair, 100·cos(image, text) (rows need not be normalised)."""
    a = image_emb / np.linalg.norm(image_emb, axis=1, keepdims=True)
    b = text_emb / np.linalg.norm(text_emb, axis=1, keepdims=True)
    return 100.0 * (a * b).sum(1)


def clip_score(clip: ClipFeatures, images: Sequence[Any], prompts: Sequence[str]) -> MetricResult:
    """Mean CLIP score of images against their own prompts (one prompt per image)."""
    if len(images) != len(prompts):
        raise ValueError("clip_score: one prompt per image")
    per = clip_score_from_embeddings(clip.images(images), clip.texts(prompts))
    return MetricResult("clip_score", float(per.mean()), clip.name, [float(v) for v in per])


# -- FID / KID on any features -------------------------------------------------------------------


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance of Gaussians fitted to two feature sets (rows = samples)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FID needs at least 2 images in each set")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, coef: float = 1.0) -> float:
    """Unbiased MMD² with the polynomial kernel (x·y/d + coef)^degree (sets may differ in size)."""
    d = x.shape[1]
    kxx = (x @ x.T / d + coef) ** degree
    kyy = (y @ y.T / d + coef) ** degree
    kxy = (x @ y.T / d + coef) ** degree
    n, m = len(x), len(y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )


def kid(
    a: np.ndarray, b: np.ndarray, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID: mean and standard deviation of :func:`mmd2_unbiased` over ``subsets`` random subsets
    of ``min(subset_size, len(a), len(b))`` rows of each set (drawn without replacement)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError("KID needs at least 2 images in each set")
    rng = np.random.default_rng(seed)
    vals = [
        mmd2_unbiased(
            a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)]
        )
        for _ in range(subsets)
    ]
    return float(np.mean(vals)), float(np.std(vals))


def clip_fid(
    clip: ClipFeatures,
    images: Sequence[Any],
    reference: Sequence[Any],
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> tuple[MetricResult, MetricResult]:
    """FID and KID of ``images`` against ``reference`` on CLIP image embeddings."""
    fa, fb = clip.images(images), clip.images(reference)
    name = f"{clip.name} image embeddings"
    k_mean, k_std = kid(fa, fb, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    counts = {"images": float(len(fa)), "reference_images": float(len(fb))}
    return (
        MetricResult("clip_fid", fid_from_features(fa, fb), name, extra=counts),
        MetricResult("clip_kid", k_mean, name, extra={"std": k_std, **counts}),
    )


# -- Inception FID and LPIPS (torchmetrics; optional packages) -----------------------------------


def _need(module: str, package: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise MetricUnavailable(
            f"{what} needs the {package} package, which is not installed (pip install "
            f"{package}); the workbench does not substitute another network for it"
        )


def inception_fid(
    images: Sequence[Any], reference: Sequence[Any], weights: str | Path
) -> MetricResult:
    """Inception FID (2048-d pool features) with the user's FID Inception weights file."""
    path = Path(weights) if str(weights).strip() else None
    if path is None:
        raise MetricUnavailable(f"Inception FID needs {INCEPTION_HELP}; none was given")
    if not path.is_file():
        raise MetricUnavailable(f"Inception weights {path} do not exist; give {INCEPTION_HELP}")
    _need("torch_fidelity", "torch-fidelity", "Inception FID (torchmetrics' InceptionV3)")
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(path))
    for batch, real in ((reference, True), (images, False)):
        for im in batch:  # one at a time: reference images may differ in size
            x = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None]
            fid.update(x.to(torch.uint8), real=real)
    return MetricResult(
        "inception_fid",
        float(fid.compute()),
        f"InceptionV3 FID weights {path.name} (torchmetrics + torch-fidelity, 2048-d pool)",
        extra={"images": float(len(images)), "reference_images": float(len(reference))},
    )


LPIPS_BACKBONES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


def lpips_weights_file(net: str = "alex") -> Path:
    """Where torchvision looks for the LPIPS backbone's ImageNet weights (its hub cache)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONES[net]


def lpips(images: Sequence[Any], others: Sequence[Any], net: str = "alex") -> MetricResult:
    """Mean LPIPS between paired uint8 images (same prompt and seed from two models):
    torchmetrics' linear heads (shipped in torchmetrics) on torchvision's ``net``, whose ImageNet
    weights must already lie in torchvision's cache (:func:`lpips_weights_file`); then nothing is
    downloaded."""
    _need("torchvision", "torchvision", "LPIPS (its backbone network)")
    file = lpips_weights_file(net)
    if not file.is_file():
        raise MetricUnavailable(
            f"LPIPS needs the torchvision {net} ImageNet weights at {file} (copy "
            f"{LPIPS_BACKBONES[net]} from torchvision's model zoo there); it is absent"
        )
    if len(images) != len(others):
        raise ValueError("lpips: the two image lists must pair up")
    import torch
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    metric = LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True)

    def as_tensor(batch: Sequence[Any]) -> Any:
        x = torch.from_numpy(np.stack([np.asarray(im) for im in batch])).permute(0, 3, 1, 2)
        return x.float() / 255.0

    value = float(metric(as_tensor(images), as_tensor(others)))
    return MetricResult("lpips", value, f"LPIPS {net} ({file.name}, torchmetrics linear heads)")
