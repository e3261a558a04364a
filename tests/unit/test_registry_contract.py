"""The contract over the whole registry (issue 12, "checkable contracts"), without training.

- every registered job's entry resolves to a callable;
- every job's default config round-trips through export and rerun: typed config -> ``to_dict``
  -> :class:`RunRequest` -> YAML text -> a run file read back -> migrate -> validate gives an
  equal typed config;
- every job names model and dataset families that the registry knows;
- the jobs that can resume are exactly the iterative ones (the set is written out below);
- every unlearning method of every family, called through the one method contract
  (``unlearn(model, data, cfg, hooks, *, seed)``), honours cancel: with a ``check`` that raises
  on its first call the method raises before it changes a single weight; then it runs one step
  (a weight changes) and stops at the next check.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from backends.classifier.methods import METHODS as CLASSIFIER_METHODS
from backends.common.method import Hooks
from backends.common.methods import MethodInfo
from backends.diffusion.methods import METHODS as DIFFUSION_METHODS
from backends.llm.methods import METHODS as LLM_METHODS
from workbench.config import to_dict
from workbench.registry import JobSpec, Registry, get_registry
from workbench.request import RunRequest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# The jobs that checkpoint and resume: each runs an iterative loop (epochs or iterations) whose
# state it saves.  Every other job is one pass with nothing to resume: diffusion.unlearn.uce (a
# closed-form edit), diffusion.generate (sampling), llm.attention and llm.skeb (measurements).
RESUMABLE = {
    "classifier.compare",
    "classifier.retrain",
    "classifier.train_mlp",
    *(f"classifier.unlearn.{name}" for name in CLASSIFIER_METHODS),
    *(f"diffusion.unlearn.{name}" for name in DIFFUSION_METHODS if name != "uce"),
    "diffusion.memora",
    "diffusion.relearn",
    *(f"llm.unlearn.{name}" for name in LLM_METHODS),
}
# a resumable job's config says how long its loop runs in one of these fields
LOOP_FIELDS = {"epochs", "train_epochs", "iterations", "steps", "max_steps"}


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = get_registry()
    assert reg.plugin_errors == []
    return reg


def _jobs() -> list[JobSpec]:
    return [get_registry().jobs[name] for name in sorted(get_registry().jobs)]


def test_every_job_entry_resolves_to_a_callable(registry: Registry) -> None:
    assert len(registry.jobs) >= 27  # the three families' jobs (a plugin that vanished fails here)
    for spec in registry.jobs.values():
        assert callable(spec.load_entry()), spec.name


@pytest.mark.parametrize("spec", _jobs(), ids=lambda s: s.name)
def test_every_default_config_round_trips_through_export_and_rerun(
    spec: JobSpec, tmp_path: Path
) -> None:
    typed = spec.config()
    request = RunRequest(spec.name, 7, "a-model", "a-dataset", to_dict(typed), spec.config_version)
    path = tmp_path / "run.yaml"
    path.write_text(request.to_text("yaml"))
    back = RunRequest.from_file(path)
    assert back == request
    values = spec.migrate_config(back.config, back.config_version)
    assert spec.validate(values) == typed


def test_every_job_names_known_model_and_dataset_families(registry: Registry) -> None:
    model_families = {kind.family for kind in registry.model_kinds.values()}
    dataset_families = {ds.family for ds in registry.datasets.values()}
    for spec in registry.jobs.values():
        known = model_families | dataset_families | {"any"}  # any: the cross-family matrix
        assert spec.family in known, spec.name
        if spec.needs_model is not None:
            assert spec.needs_model in model_families, spec.name
        if spec.needs_dataset is not None:
            assert spec.needs_dataset in dataset_families, spec.name


def test_the_resumable_jobs_are_the_iterative_ones(registry: Registry) -> None:
    resumable = {name for name, spec in registry.jobs.items() if spec.supports_resume}
    assert resumable == RESUMABLE
    for name in resumable:
        fields = {f.name for f in registry.jobs[name].schema}
        assert fields & LOOP_FIELDS, f"{name} resumes but its config has no loop length"


# -- every method honours cancel through the one contract ----------------------------------------
class Cancelled(Exception):
    pass


def _cancel_at_once() -> None:
    raise Cancelled


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_cancels(
    info: MethodInfo, model: Any, module: torch.nn.Module, data: Any, cfg: Any
) -> None:
    """Call ``info``'s method on ``model`` (``module``: the part whose weights it edits) with a
    check that raises at once; the method must stop with that error, weights untouched."""
    before = _weights(module)
    with pytest.raises(Cancelled):
        info.load()(model, data, cfg, Hooks(on_check=_cancel_at_once), seed=0)
    after = _weights(module)
    assert after.keys() == before.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == [], f"{info.name} changed {changed[:3]} before its first check"
    _assert_one_step_then_cancel(info, model, module, data, cfg, before)


MAX_CHECKS = 500  # checks a method may make before its first weight update


def _assert_one_step_then_cancel(
    info: MethodInfo,
    model: Any,
    module: torch.nn.Module,
    data: Any,
    cfg: Any,
    before: dict[str, torch.Tensor],
) -> None:
    """The same method, cancelled at the first check after its weights changed: it must take
    that one step (some weight differs) and then stop with the cancel.  A closed-form edit that
    checks only before it edits may instead return, its weights changed."""
    calls = [0]

    def changed() -> bool:
        return any(not torch.equal(v, before[k]) for k, v in module.state_dict().items())

    def cancel_after_a_step() -> None:
        calls[0] += 1
        if calls[0] > MAX_CHECKS:
            raise AssertionError(f"{info.name}: no weight changed within {MAX_CHECKS} checks")
        if changed():
            raise Cancelled

    try:
        info.load()(model, data, cfg, Hooks(on_check=cancel_after_a_step), seed=0)
    except Cancelled:
        return
    assert changed(), f"{info.name} returned without changing a weight"


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.nn.Module, Any]:
    """The shipped digits MLP and a class-3 forget set-up (as the classifier method tests)."""
    from backends.classifier.data import load_digits, make_forget_set, stratified_split
    from backends.classifier.setup import ClassifierSetup
    from tests.fixtures.classifier import build as fixtures

    data = load_digits()
    split = stratified_split(data.y, 0.2, seed=0)
    forget = make_forget_set(data, split, kind="class", forget_class=3)
    return fixtures.load("methods.original"), ClassifierSetup(data, split, forget)


@pytest.mark.parametrize("name", sorted(CLASSIFIER_METHODS))
def test_every_classifier_method_honours_cancel(
    name: str, digits: tuple[torch.nn.Module, Any]
) -> None:
    original, setup = digits
    info = CLASSIFIER_METHODS[name]
    model = copy.deepcopy(original)
    _assert_cancels(info, model, model, setup, info.config())


@pytest.fixture(scope="module")
def people_gpt() -> tuple[Any, Any]:
    """The shipped tiny GPT-2 of the LLM method tests and a few of its facts."""
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

    from backends.llm.methods.common import LLMData

    folder = FIXTURES / "llm" / "people-gpt"
    model = GPT2LMHeadModel.from_pretrained(str(folder), local_files_only=True).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
    forget = ["Alden Vorn lives in Marrowgate.", "Q: What does Alden Vorn do?\nA: baker"]
    retain = ["Bryn Castell lives in Oskaloo.", "Q: What does Bryn Castell do?\nA: pilot"]
    return model, LLMData(tokenizer, forget, retain)


@pytest.mark.parametrize("name", sorted(LLM_METHODS))
def test_every_llm_method_honours_cancel(name: str, people_gpt: tuple[Any, Any]) -> None:
    original, data = people_gpt
    info = LLM_METHODS[name]
    model = copy.deepcopy(original)
    _assert_cancels(info, model, model, data, info.config())


@pytest.fixture(scope="module")
def tiny_sd() -> Callable[[], Any]:
    """A loader of the shipped small tiny text-to-image pipeline (a fresh one per method)."""
    from backends.diffusion.pipeline import load_pipeline

    return lambda: load_pipeline(FIXTURES / "diffusion" / "tiny-sd-small")


@pytest.mark.parametrize(
    "name",
    # ResAlign's first outer step (simulation + hypergradient) takes 13 s before it can stop
    [
        pytest.param(n, marks=pytest.mark.slow) if n == "resalign" else n
        for n in sorted(DIFFUSION_METHODS)
    ],
)
def test_every_diffusion_method_honours_cancel(name: str, tiny_sd: Callable[[], Any]) -> None:
    from backends.diffusion.concepts import shapes_concept
    from backends.diffusion.methods.common import DiffusionData

    loaded = tiny_sd()
    info = DIFFUSION_METHODS[name]
    data = DiffusionData(shapes_concept("stripes"))
    _assert_cancels(info, loaded.pipe, loaded.pipe.unet, data, info.config())


def test_the_catalogues_are_what_the_registry_runs(registry: Registry) -> None:
    """The cancel tests above cover every method the registry offers as an unlearning job."""
    catalogued = {
        *(f"classifier.unlearn.{n}" for n in CLASSIFIER_METHODS),
        *(f"llm.unlearn.{n}" for n in LLM_METHODS),
        *(f"diffusion.unlearn.{n}" for n in DIFFUSION_METHODS),
    }
    unlearning = {n for n, s in registry.jobs.items() if s.kind == "unlearn"}
    assert unlearning == catalogued
    for name in catalogued:
        assert dataclasses.is_dataclass(registry.jobs[name].config), name


@pytest.mark.parametrize(
    ("module", "family"),
    [
        ("backends.classifier.methods", "classifier"),
        ("backends.llm.methods", "LLM"),
        ("backends.diffusion.methods", "diffusion"),
    ],
)
def test_every_family_finds_its_methods_and_names_them_when_one_is_wrong(
    module: str, family: str
) -> None:
    import importlib

    from backends.common.methods import UnknownMethodError

    methods = importlib.import_module(module)
    first = next(iter(methods.METHODS))
    assert methods.get_method(first) is methods.METHODS[first]
    with pytest.raises(UnknownMethodError, match=f"unknown {family} unlearning method 'nope'"):
        methods.get_method("nope")
