"""Classifier unlearning methods (``backends.classifier.methods``): the TRW math, the catalogue and
every method on a small digits set-up.

The set-up: scikit-learn digits, a stratified 80/20 split (seed 0), a 64-128-10 MLP trained for 30
epochs (seed 0), forget class 3 (~145 training examples).  The thresholds below were set from
what the methods measured there with their defaults (seed 0; the table is in
``docs/methods/classifier-unlearning.md``): every method kept retain accuracy >= 0.96 and all but
FT and l1-sparse took forget accuracy from 0.99 to <= 0.07.  FT and l1-sparse never look at the
forget set; on this model they only bring it to ~0.5-0.6, so for them the test asks for a weaker
drop.  Everything runs on the CPU with one torch thread.
"""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from backends.classifier.data import load_digits, make_forget_set, stratified_split
from backends.classifier.methods import METHODS, MethodInfo, get_method
from backends.classifier.methods.boundary_shrink import nearest_wrong_labels
from backends.classifier.methods.common import mixed_batches, random_wrong_labels
from backends.classifier.methods.configs import SalUnConfig
from backends.classifier.methods.l1_sparse import l1_weight
from backends.classifier.methods.salun import saliency_masks
from backends.classifier.methods.trw import class_mean_logits, class_similarity, trw_target
from backends.classifier.setup import ClassifierSetup
from backends.classifier.training import accuracy
from backends.common.method import Hooks, unlearned_copy
from tests.fixtures.classifier import build as fixtures
from workbench.config import schema_of

NAMES = [
    "ft",
    "ga",
    "neggrad_plus",
    "rl",
    "scrub",
    "salun",
    "l1_sparse",
    "boundary_shrink",
    "rwft",
    "trw",
    "minnorm_og",
]
FORGET_CLASS = 3
RETAIN_FLOOR = 0.93  # measured minimum with defaults: 0.960 (SalUn)
FORGET_CEILING = 0.15  # measured maximum of the forget-set methods: 0.062 (GA)
RETAIN_ONLY = {"ft": 0.8, "l1_sparse": 0.8}  # measured forget acc: 0.575 (FT), 0.466 (l1-sparse)


class Cancelled(Exception):
    pass


# -- the digits set-up (one trained model per module) ------------------------------------------------
@pytest.fixture(scope="module")
def digits() -> tuple[nn.Module, ClassifierSetup, ClassifierSetup]:
    """(trained MLP, class-3 set-up, random 10% set-up)."""
    torch.set_num_threads(1)
    data = load_digits()
    split = stratified_split(data.y, 0.2, seed=0)
    forget_class = make_forget_set(data, split, kind="class", forget_class=FORGET_CLASS)
    forget_random = make_forget_set(data, split, kind="random", fraction=0.1, seed=0)
    class_setup = ClassifierSetup(data, split, forget_class)
    random_setup = ClassifierSetup(data, split, forget_random)
    # FIXED, shipped weights (tests/fixtures/classifier; built with this recipe: 30 epochs, seed 0)
    model = fixtures.load("methods.original")
    assert accuracy(model, *class_setup.forget) > 0.95
    assert accuracy(model, *class_setup.retain) > 0.95
    return model, class_setup, random_setup


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _run(
    name: str,
    model: nn.Module,
    setup: ClassifierSetup,
    check: Callable[[], None] | None = None,
    **overrides: object,
) -> nn.Module:
    info = get_method(name)
    cfg = dataclasses.replace(info.config(), **overrides)
    return unlearned_copy(info.load(), model, setup, cfg, Hooks(on_check=check), seed=0)


# -- catalogue and configs -----------------------------------------------------------------------------
def test_configs_and_catalogue_import_no_torch() -> None:
    code = (
        "import sys\n"
        "import backends.classifier.methods.configs\n"
        "from backends.classifier.methods import METHODS, get_method\n"
        "assert len(METHODS) == 11\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_catalogue_names_entries_and_configs() -> None:
    assert list(METHODS) == NAMES
    for name, info in METHODS.items():
        assert isinstance(info, MethodInfo) and info.name == name
        assert info.entry == f"backends.classifier.methods.{name}:unlearn"
        assert "section" in info.spec and info.title and info.description
        fn = info.load()
        params = inspect.signature(fn).parameters
        assert list(params) == ["model", "setup", "cfg", "hooks", "seed"]
        assert params["seed"].kind is inspect.Parameter.KEYWORD_ONLY
        assert "spec" in (inspect.getdoc(fn) or "") or "section" in (inspect.getdoc(fn) or "")
        assert "section" in (inspect.getmodule(fn).__doc__ or ""), name  # type: ignore[union-attr]
        for spec in schema_of(info.config):
            assert spec.help, (name, spec.name)
            assert spec.range is not None or spec.choices is not None, (name, spec.name)
        assert {"epochs", "lr", "batch_size", "optimizer"} <= {
            f.name for f in schema_of(info.config)
        }
    assert get_method("trw").config().beta == 10.0


def test_unknown_method_lists_the_known_names() -> None:
    with pytest.raises(KeyError) as err:
        get_method("retrain_from_scratch")
    assert "retrain_from_scratch" in str(err.value)
    assert all(name in str(err.value) for name in NAMES)


# -- TRW math --------------------------------------------------------------------------------------
def _probs(n: int = 32, k: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(2.0 * torch.randn(n, k, generator=g, dtype=torch.float64), dim=1)


SIM = torch.tensor([0.1, 0.0, 0.05, 0.6, 0.2, 0.05], dtype=torch.float64)  # forget class 1


def test_trw_target_is_a_distribution_with_no_forget_mass() -> None:
    q = trw_target(_probs(), 1, SIM, beta=10.0)
    assert torch.allclose(q.sum(1), torch.ones(32, dtype=torch.float64), atol=1e-12)
    assert torch.all(q[:, 1] == 0) and torch.all(q >= 0)


def test_trw_target_at_beta_zero_is_the_renormalised_distribution() -> None:
    p = _probs()
    tilde = p.clone()
    tilde[:, 1] = 0
    tilde /= tilde.sum(1, keepdim=True)
    assert torch.allclose(trw_target(p, 1, SIM, beta=0.0), tilde, atol=1e-12)


def test_trw_target_collapses_on_the_most_similar_class_for_large_beta() -> None:
    q = trw_target(_probs(), 1, SIM, beta=200.0)
    assert torch.all(q[:, 3] > 0.999), q[:, 3].min()
    # and the tilt is monotone: more beta, more mass on argmax s
    mass = [float(trw_target(_probs(), 1, SIM, beta=b)[:, 3].mean()) for b in (0, 1, 10, 50)]
    assert mass == sorted(mass) and mass[0] < 0.5


def test_trw_target_satisfies_the_i_projection_kkt_condition() -> None:
    """Stationarity of KL(q||p~) - beta (sum_j q_j s_j - c) + nu (sum_j q_j - 1):
    log(q_j / p~_j) - beta s_j is the same for every remaining class j."""
    p = _probs()
    beta = 10.0
    q = trw_target(p, 1, SIM, beta)
    keep = [j for j in range(6) if j != 1]
    tilde = p[:, keep] / p[:, keep].sum(1, keepdim=True)
    gap = torch.log(q[:, keep] / tilde) - beta * SIM[keep]
    assert float((gap - gap[:, :1]).abs().max()) < 1e-9
    # and q* meets the moment constraint it projects on with equality at c = E_q*[s] > E_p~[s]
    assert torch.all((q[:, keep] * SIM[keep]).sum(1) > (tilde * SIM[keep]).sum(1))


def test_trw_target_survives_underflowed_probabilities() -> None:
    p = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0, 0.0], [1e-40, 0.5, 0.5, 0.0, 0.0, 0.0]])
    q = trw_target(p.double(), 1, SIM, beta=200.0)
    assert torch.isfinite(q).all() and torch.allclose(q.sum(1), torch.ones(2, dtype=q.dtype))
    # all mass on the forget class: p~ is taken uniform, so q* is the tilt alone
    keep = [0, 2, 3, 4, 5]
    assert torch.allclose(q[0, keep], torch.softmax(200.0 * SIM[keep], 0))
    assert q[1, 2] == pytest.approx(1.0)  # p~ = onehot(2): no tilt can move mass off it


def test_class_similarity_finds_the_hand_made_nearest_class() -> None:
    # Class-mean logit vectors in a 5-class problem: class 0 (to forget) lies close to class 3.
    means = torch.tensor(
        [
            [6.0, 0.0, 0.0, 4.0, 0.0],
            [0.0, 6.0, 1.0, 0.0, 0.0],
            [0.0, 1.0, 6.0, 0.0, 1.0],
            [4.0, 0.0, 0.0, 6.0, 0.0],
            [0.0, 0.0, 1.0, 0.0, 6.0],
        ]
    )
    for dims in (2, 4, 100):  # 100 is clipped to K - 1 = 4
        s = class_similarity(means, 0, pca_dims=dims, temperature=0.1)
        assert s.shape == (5,) and s[0] == 0
        assert torch.isclose(s.sum(), torch.tensor(1.0))
        assert int(s.argmax()) == 3 and s[3] > 0.9, (dims, s)
    # a high temperature flattens it towards uniform over the remaining classes
    flat = class_similarity(means, 0, pca_dims=4, temperature=100.0)
    assert torch.allclose(flat[1:], torch.full((4,), 0.25), atol=0.01)


def test_class_mean_logits_averages_each_class() -> None:
    logits = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0]])
    means = class_mean_logits(logits, torch.tensor([0, 0, 1]), 2)
    assert torch.equal(means, torch.tensor([[2.0, 1.0], [0.0, 5.0]]))
    with pytest.raises(ValueError, match="class"):
        class_mean_logits(logits, torch.tensor([0, 0, 0]), 2)


# -- shared helpers ----------------------------------------------------------------------------------
def test_random_wrong_labels_avoid_the_label_and_the_forget_class() -> None:
    y = torch.tensor([3, 3, 0, 5, 9] * 40)
    labels = random_wrong_labels(y, 10, seed=0, forget_class=3)
    assert torch.all(labels != y) and torch.all(labels != 3)
    assert len(set(labels.tolist())) == 9  # every other class is drawn


def test_mixed_batches_cover_the_retain_set_and_cycle_the_forget_set() -> None:
    batches = list(mixed_batches(10, 50, 8, seed=0, epoch=0, device=torch.device("cpu")))
    assert len(batches) == 7
    retain = torch.cat([r for _, r in batches])
    assert sorted(retain.tolist()) == list(range(50))
    forget = torch.cat([f for f, _ in batches]).tolist()
    assert all(len(f) == 8 for f, _ in batches) and set(forget) == set(range(10))
    assert sorted(forget[:10]) == list(range(10))  # one full pass before any repeat


def test_l1_weight_decays_from_twice_lambda_to_zero() -> None:
    assert l1_weight(0.5, 0.0) == 1.0 and l1_weight(0.5, 0.5) == 0.5 and l1_weight(0.5, 1.0) == 0.0


# -- every method on the digits set-up -----------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_method_unlearns_class_3_on_a_copy(digits, name: str) -> None:
    model, setup, _ = digits
    before = _state(model)
    before_forget = accuracy(model, *setup.forget)
    unlearned = _run(name, model, setup)
    assert unlearned is not model
    assert _same(_state(model), before), "the original model was modified"
    assert not _same(_state(unlearned), before), "nothing was learnt"
    forget = accuracy(unlearned, *setup.forget)
    retain = accuracy(unlearned, *setup.retain)
    forget_test = accuracy(unlearned, *setup.tensors(setup.forget_test_idx))
    assert retain >= RETAIN_FLOOR, (name, forget, retain)
    if name in RETAIN_ONLY:
        # FT and l1-sparse only fine-tune on D_r: a real but weaker drop on this model.
        assert forget <= RETAIN_ONLY[name] < before_forget - 0.1, (name, forget)
    else:
        assert forget <= FORGET_CEILING, (name, forget, retain)
        assert forget_test <= FORGET_CEILING + 0.05, (name, forget_test)


def test_trw_sends_forget_examples_to_the_most_similar_class_more_than_rwft(digits) -> None:
    """The tilt at work: TRW puts more forget-class predictions on the class most similar to 3
    in the original's logit geometry than RWFT (beta = 0) does."""
    model, setup, _ = digits
    xf, _ = setup.forget
    x_train, y_train = setup.tensors(setup.train_idx)
    with torch.no_grad():
        means = class_mean_logits(model(x_train), y_train, 10)
    nearest = int(class_similarity(means, FORGET_CLASS, 5, 0.1).argmax())
    share = {}
    for name in ("rwft", "trw"):
        unlearned = _run(name, model, setup)
        with torch.no_grad():
            share[name] = float((unlearned(xf).argmax(1) == nearest).float().mean())
    assert share["trw"] > share["rwft"], (nearest, share)


@pytest.mark.parametrize("name", ["ga", "ft"])
def test_random_sample_forget_set(digits, name: str) -> None:
    """Sample unlearning: GA pushes the forget set's accuracy below the model's test accuracy
    (measured 0.80 forget, 0.85 retain with the class-tuned defaults); FT keeps everything near
    where it was (the forgotten examples look like the rest of the data)."""
    model, _, setup = digits
    before = _state(model)
    unlearned = _run(name, model, setup)
    assert _same(_state(model), before)
    forget, retain = accuracy(unlearned, *setup.forget), accuracy(unlearned, *setup.retain)
    original_forget = accuracy(model, *setup.forget)
    if name == "ga":
        assert forget <= original_forget - 0.1 and retain >= 0.75, (forget, retain)
    else:
        assert forget >= 0.9 and retain >= RETAIN_FLOOR, (forget, retain)


@pytest.mark.parametrize("name", ["trw", "rwft"])
def test_trw_and_rwft_refuse_a_sample_forget_set(digits, name: str) -> None:
    model, _, setup = digits
    with pytest.raises(ValueError, match="class forget set"):
        _run(name, model, setup)


@pytest.mark.parametrize("name", NAMES)
def test_check_cancels_the_method(digits, name: str) -> None:
    model, setup, _ = digits
    before = _state(model)
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        _run(name, model, setup, check=check)
    assert calls == 4
    assert _same(_state(model), before)


def test_check_is_called_at_every_step(digits) -> None:
    model, setup, _ = digits
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1

    _run("ft", model, setup, check=check, epochs=2, batch_size=100)
    assert calls == 2 * int(np.ceil(len(setup.retain_idx) / 100))


def test_log_gets_one_line_per_epoch_and_the_trw_similarity(digits) -> None:
    model, setup, _ = digits
    lines: list[str] = []
    info = get_method("trw")
    unlearned_copy(info.load(), model, setup, info.config(), Hooks(on_log=lines.append), seed=0)
    assert any("similarity" in line for line in lines)
    assert sum("TRW epoch" in line for line in lines) == info.config().epochs


def test_same_seed_same_result(digits) -> None:
    model, setup, _ = digits
    a, b = _run("rl", model, setup, epochs=1), _run("rl", model, setup, epochs=1)
    assert _same(_state(a), _state(b))


def test_salun_changes_only_salient_weights(digits) -> None:
    model, setup, _ = digits
    xf, yf = setup.forget
    masks = saliency_masks(model, xf, yf, 0.3)
    kept = sum(float(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert 0.29 <= kept <= 0.31
    unlearned = _run("salun", model, setup, keep_fraction=0.3, epochs=1)
    original = dict(model.named_parameters())
    for name, p in unlearned.named_parameters():
        frozen = masks[name] == 0
        assert torch.equal(p.detach()[frozen], original[name].detach()[frozen]), name
        assert not torch.equal(p.detach()[~frozen], original[name].detach()[~frozen]), name
    assert SalUnConfig().keep_fraction == 0.5


def test_boundary_shrink_labels_are_wrong_and_near(digits) -> None:
    model, setup, _ = digits
    xf, yf = setup.forget
    labels = nearest_wrong_labels(model, xf, yf, 0.1, bounds=(0.0, 1.0))
    assert torch.all(labels != yf)
    with torch.no_grad():
        logits = model(xf)
    logits[torch.arange(len(yf)), yf] = float("-inf")
    # the FGSM label mostly agrees with the clean runner-up class (the nearest boundary)
    assert float((labels == logits.argmax(1)).float().mean()) > 0.5
