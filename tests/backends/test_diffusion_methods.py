"""Diffusion concept-erasure methods (``backends.diffusion.methods``, spec ``diffusion-methods.md``
sections 4.1-4.4): UCE's closed form, SalUn's mask, ESD's parameter subsets, cancellation, and
every method on the small tiny text-to-image pipeline.

The end-to-end tests erase the built-in "striped" concept from the SHIPPED small pipeline
(``tests/fixtures/diffusion/tiny-sd-small``: 16x16 images, a 1M-parameter UNet, fixed weights, so
every machine measures the same model). Each method trains on the TRAIN half of the shape x colour
prompts (``shapes_concept`` default) and is scored on the disjoint EVAL half, with evaluation
seeds no method uses: 8 images for each of the 8 held-out explicit ("a striped red square") and 8
plain ("a red square") prompts, 64 per set, at guidance 2. Measured on the shipped weights under
OMP_NUM_THREADS=1 (run with ``pytest -s`` to see them; explicit rate, plain rate, specificity,
benign accuracy; original 0.97, 0.34, 0.63 [0.50, 0.75], 0.52):

- ESD 0.17, 0.05, 0.13 [0.02, 0.23], 0.22: erased;
- UCE 0.33, 0.25, 0.08 [-0.08, 0.25], 0.36: erased;
- CA 0.39, 0.27, 0.13 [-0.05, 0.30], 0.34: erased;
- SalUn 0.30, 0.30, 0.00 [-0.16, 0.16], 0.28: not specific (plain-rate rise -0.05 [-0.20, 0.13]).

Every method's explicit rate and specificity fall with intervals apart, robustly (what the test
asserts for all four, with the drop of :data:`MIN_DROP`). The third part of "erased" (plain
prompts do not gain stripes: upper end of the rise below 0.1) sits within one or two of 64
images for UCE, CA and SalUn on this small model, whose plain prompts show stripes a third of the
time, so only ESD's full verdict is asserted (:data:`EXPECTED`); the verdict rule itself is
tested on known counts in ``test_diffusion_verdicts.py``, and the 32x32 model's verdicts are in
the study (docs/results.md). ESD costs this small model much of its benign accuracy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from backends.common.method import Hooks
from backends.diffusion.concepts import shapes_concept
from backends.diffusion.methods import METHODS, get_method
from backends.diffusion.methods.common import DiffusionData, select_parameters
from backends.diffusion.methods.configs import (
    CAConfig,
    ESDConfig,
    ResAlignConfig,
    SalUnConfig,
    UCEConfig,
)
from backends.diffusion.methods.salun import saliency_mask
from backends.diffusion.methods.uce import uce_closed_form
from backends.diffusion.verdicts import counts, erasure_verdict

# the explicit rate must fall at least this much (measured drops on the shipped weights: ESD 0.80,
# UCE 0.64, CA 0.58, SalUn 0.67), and benign accuracy by at most MAX_ACCURACY_LOSS (measured
# losses: 0.30, 0.16, 0.17, 0.23; the accuracy of 64 images moves by about 0.06 per 4 images)
MIN_DROP = {"esd": 0.6, "uce": 0.45, "ca": 0.4, "salun": 0.45}
MAX_ACCURACY_LOSS = {"esd": 0.4, "uce": 0.3, "ca": 0.3, "salun": 0.35}
EXPECTED = {"esd": "erased"}  # full verdicts that hold with a margin (module docstring)
SAMPLES_PER_PROMPT = 8  # x 8 held-out prompts = 64 images per set
EVAL_SEED = 1000

# the methods' own defaults are what the test runs (they are tuned for this model)
CONFIGS: dict[str, Any] = {
    "esd": ESDConfig(),
    "uce": UCEConfig(),
    "ca": CAConfig(),
    "salun": SalUnConfig(),
    "resalign": ResAlignConfig(),
}


class Cancelled(Exception):
    pass


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _evaluate(loaded: Any, probes: Any) -> dict[str, float]:
    from backends.diffusion.evaluation import evaluate_prompt_sets

    result = evaluate_prompt_sets(
        loaded,
        probes,
        sets=("explicit", "benign"),
        samples_per_prompt=SAMPLES_PER_PROMPT,
        seed=EVAL_SEED,
        guidance=2.0,
        split="eval",
    )
    return result.metrics


@pytest.fixture(scope="module")
def probes(tiny_sd_small: Path) -> Any:
    from backends.diffusion.probes import PROBES_DIR, Probes

    return Probes.load(tiny_sd_small / PROBES_DIR)


@pytest.fixture(scope="module")
def original(tiny_sd_small: Path, probes: Any) -> dict[str, float]:
    from backends.diffusion.pipeline import load_pipeline

    torch.set_num_threads(1)
    metrics = _evaluate(load_pipeline(tiny_sd_small), probes)
    print(
        f"\noriginal: explicit {metrics['concept_rate/explicit']:.3f} "
        f"accuracy {metrics['utility/accuracy']:.3f}"
    )
    assert metrics["concept_rate/explicit"] >= 0.8, "the tiny model should show the concept"
    return metrics


# -- UCE closed form ---------------------------------------------------------------------------------
def test_uce_closed_form_is_the_weighted_least_squares_solution() -> None:
    g = torch.Generator().manual_seed(0)
    out, d, n_e, n_p = 5, 6, 3, 4
    W = torch.randn(out, d, generator=g)
    erase, guides = torch.randn(n_e, d, generator=g), torch.randn(n_e, d, generator=g)
    preserve = torch.randn(n_p, d, generator=g)
    lamb, s_e, s_p = 0.5, 2.0, 0.7
    new = uce_closed_form(W, erase, guides, preserve, lamb, s_e, s_p)

    # min_X  lamb‖X − W‖² + s_e Σ‖X c_e − W c_g‖² + s_p Σ‖X c_p − W c_p‖², row-stacked for Xᵀ
    w = W.double()
    design = torch.cat(
        [
            lamb**0.5 * torch.eye(d, dtype=torch.float64),
            s_e**0.5 * erase.double(),
            s_p**0.5 * preserve.double(),
        ]
    )
    targets = torch.cat(
        [
            lamb**0.5 * w.T,
            s_e**0.5 * (w @ guides.double().T).T,
            s_p**0.5 * (w @ preserve.double().T).T,
        ]
    )
    expected = torch.linalg.lstsq(design, targets).solution.T
    assert new.dtype == W.dtype and new.shape == W.shape
    torch.testing.assert_close(new.double(), expected, rtol=1e-5, atol=1e-5)
    # the erased features now give (nearly) their guides' outputs when erase weight dominates
    strong = uce_closed_form(W, erase, guides, torch.zeros(0, d), 1e-6, 1.0, 1.0)
    torch.testing.assert_close(strong @ erase.T, W @ guides.T, rtol=1e-3, atol=1e-3)


def test_uce_closed_form_without_edits_returns_w() -> None:
    W = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    empty = torch.zeros(0, 3)
    torch.testing.assert_close(uce_closed_form(W, empty, empty, empty, 0.5, 1.0, 1.0), W)


def test_uce_aligned_positions_pair_each_token_with_its_guide_token(tiny_sd_small: Path) -> None:
    from transformers import CLIPTokenizer

    from backends.diffusion.methods.uce import aligned_positions

    pipe = SimpleNamespace(tokenizer=CLIPTokenizer.from_pretrained(tiny_sd_small / "tokenizer"))
    # <bos> a striped red circle <eos>  vs  <bos> a red circle <eos>
    assert aligned_positions(pipe, "a striped red circle", "a red circle") == [
        (2, 1),
        (3, 2),
        (4, 3),
    ]
    assert aligned_positions(pipe, "striped", "") == [(1, 0)]  # the neutral guide: start token
    assert aligned_positions(pipe, "a striped red circle", "") == [(1, 0), (2, 0), (3, 0), (4, 0)]
    assert aligned_positions(pipe, "a red circle", "a red circle") == []


# -- SalUn mask --------------------------------------------------------------------------------------
def test_saliency_mask_keeps_exactly_the_top_fraction_globally() -> None:
    scores = {
        "a": torch.tensor([[0.1, -9.0], [0.3, 0.2]]),  # |-9| is the largest magnitude
        "b": torch.tensor([5.0, 0.0, -0.4, 7.0]),
        "c": torch.tensor([1.0, 2.0]),
    }
    mask = saliency_mask(None, scores, 0.5)  # 5 of 10: 9, 7, 5, 2, 1
    assert {n: m.dtype for n, m in mask.items()} == {n: torch.bool for n in scores}
    assert mask["a"].tolist() == [[False, True], [False, False]]
    assert mask["b"].tolist() == [True, False, False, True]
    assert mask["c"].tolist() == [True, True]
    assert sum(int(m.sum()) for m in saliency_mask(None, scores, 0.3).values()) == 3
    assert not any(m.any() for m in saliency_mask(None, scores, 0.0).values())
    assert all(m.all() for m in saliency_mask(None, scores, 1.0).values())


def test_saliency_mask_follows_a_module_and_counts_its_entries() -> None:
    net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    scores = {n: torch.randn(p.shape) for n, p in net.named_parameters()}
    mask = saliency_mask(net, scores, 0.25)
    total = sum(p.numel() for p in net.parameters())
    assert list(mask) == [n for n, _ in net.named_parameters()]
    assert sum(int(m.sum()) for m in mask.values()) == round(0.25 * total)
    threshold = min(float(scores[n][m].abs().min()) for n, m in mask.items() if m.any())
    assert all(float(scores[n][~m].abs().max()) <= threshold for n, m in mask.items() if (~m).any())


# -- ESD parameter subsets ---------------------------------------------------------------------------
def test_esd_parameter_subsets_on_the_tiny_unet(tiny_sd_small: Path) -> None:
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_sd_small / "unet")
    names = [n for n, _ in unet.named_parameters()]
    u, x = set(select_parameters(unet, "u")), set(select_parameters(unet, "x"))
    strict = set(select_parameters(unet, "x-strict"))
    assert u and x and strict
    assert not any("attn2" in n for n in u)
    assert any("attn1" in n for n in u) and any("resnets" in n for n in u)
    assert all("attn2" in n for n in x) and u | x == set(names) and not u & x
    assert strict == {n for n in names if ".attn2.to_k." in n or ".attn2.to_v." in n}
    assert strict < x and any("attn2.to_q" in n for n in x) and any("attn2.to_out" in n for n in x)
    assert set(select_parameters(unet, "all")) == set(names)
    with pytest.raises(ValueError, match="unknown parameter set"):
        select_parameters(unet, "nope")


# -- catalogue ---------------------------------------------------------------------------------------
def test_catalogue_names_configs_and_light_import() -> None:
    assert list(METHODS) == ["esd", "uce", "ca", "salun", "resalign"]
    for name, info in METHODS.items():
        assert get_method(name) is info
        assert info.spec.startswith("section 1" if name == "resalign" else "section 4.")
        assert callable(info.load())
        assert isinstance(CONFIGS[name], info.config)
    with pytest.raises(KeyError, match="known methods: esd, uce, ca, salun"):
        get_method("fmn")
    code = (
        "import sys; import backends.diffusion.methods, backends.diffusion.methods.configs; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- cancellation ------------------------------------------------------------------------------------
def test_esd_check_cancels_and_leaves_the_unet_frozen(tiny_sd_small: Path) -> None:
    from backends.diffusion.methods.esd import unlearn
    from backends.diffusion.pipeline import load_pipeline

    loaded = load_pipeline(tiny_sd_small)
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) > 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        unlearn(
            loaded.pipe,
            DiffusionData(shapes_concept("stripes")),
            ESDConfig(iterations=50),
            Hooks(on_check=check),
        )
    assert len(calls) == 4
    unet = loaded.pipe.unet
    assert not unet.training and not any(p.requires_grad for p in unet.parameters())


# -- every method erases on the small tiny model ------------------------------------------------------
# CA and SalUn train longest; they run in `make test-slow` (CI runs it too), ESD and UCE in `make test`
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("esd", marks=pytest.mark.slow),  # 45 s: ESD's own loop on the small model
        "uce",
        pytest.param("ca", marks=pytest.mark.slow),
        pytest.param("salun", marks=pytest.mark.slow),
    ],
)
def test_method_erases_the_concept_and_keeps_utility(
    name: str, tiny_sd_small: Path, probes: Any, original: dict[str, float]
) -> None:
    from backends.diffusion.pipeline import load_pipeline

    loaded = load_pipeline(tiny_sd_small)
    unet = loaded.pipe.unet
    weights = {k: v.clone() for k, v in unet.state_dict().items()}
    progress: list[float] = []
    hooks = Hooks(on_progress=lambda f, _text: progress.append(f))
    info = (
        get_method(name)
        .load()(loaded, DiffusionData(shapes_concept("stripes")), CONFIGS[name], hooks, seed=0)
        .stats
    )
    assert loaded.pipe.unet is unet
    assert not unet.training and not any(p.requires_grad for p in unet.parameters())
    assert all(p.grad is None for p in unet.parameters())
    assert info["parameters_changed"] > 0 and all(isinstance(v, float) for v in info.values())
    assert progress and progress[-1] == pytest.approx(1.0)
    after_weights = unet.state_dict()
    assert any(not torch.equal(weights[k], after_weights[k]) for k in weights)

    after = _evaluate(loaded, probes)
    before_rate, after_rate = original["concept_rate/explicit"], after["concept_rate/explicit"]
    before_acc, after_acc = original["utility/accuracy"], after["utility/accuracy"]
    verdict = erasure_verdict(
        (counts(original, "explicit"), counts(original, "benign")),
        (counts(after, "explicit"), counts(after, "benign")),
    )
    print(
        f"\n{name}: explicit {verdict.rate_before} -> {verdict.rate_after}, "
        f"plain {verdict.plain_before} -> {verdict.plain_after}, "
        f"specificity {verdict.specificity_before} -> {verdict.specificity_after}, "
        f"plain rise {verdict.plain_rise}: {verdict.verdict}; "
        f"accuracy {before_acc:.3f} -> {after_acc:.3f}, info "
        f"{ {k: round(v, 4) for k, v in info.items()} }"
    )
    assert after_rate <= before_rate - MIN_DROP[name]
    assert after_acc >= before_acc - MAX_ACCURACY_LOSS[name]
    assert verdict.rate_drop_held and verdict.specificity_drop_held
    if name in EXPECTED:
        assert verdict.verdict == EXPECTED[name]


@pytest.mark.slow  # the 32x32 model: about a minute; `make test-slow`, which CI runs
def test_uce_erases_the_concept_on_the_built_in_model() -> None:
    """UCE on the shipped 32x32 model (fixed weights), trained on the train half of the prompts
    and measured on the held-out half: the model the study reports on."""
    from backends.diffusion.evaluation import evaluate_prompt_sets
    from backends.diffusion.pipeline import load_pipeline
    from backends.diffusion.probes import PROBES_DIR, Probes
    from backends.diffusion.zoo import TINY_SD

    torch.set_num_threads(1)
    probes = Probes.load(TINY_SD / PROBES_DIR)

    def measure(loaded: Any) -> dict[str, float]:
        return evaluate_prompt_sets(
            loaded,
            probes,
            sets=("explicit", "benign"),
            samples_per_prompt=2,
            seed=EVAL_SEED,
            split="eval",
        ).metrics

    loaded = load_pipeline(TINY_SD)
    before = measure(loaded)
    get_method("uce").load()(
        loaded, DiffusionData(shapes_concept("stripes")), UCEConfig(), Hooks(), seed=0
    )
    after = measure(loaded)
    print(
        f"\nuce on tiny-sd: explicit {before['concept_rate/explicit']:.3f} -> "
        f"{after['concept_rate/explicit']:.3f}, accuracy {before['utility/accuracy']:.3f} -> "
        f"{after['utility/accuracy']:.3f}"
    )
    assert before["concept_rate/explicit"] >= 0.8
    assert after["concept_rate/explicit"] <= before["concept_rate/explicit"] - 0.5
    assert after["utility/accuracy"] >= before["utility/accuracy"] - 0.15
