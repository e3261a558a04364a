"""RunRequest: run files in and out, records, overrides; Engine.submit validates it once; and
composed configs that remember their parts and run the parts' checks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from backends.common.configs import compose_config
from tests.unit import fixture_jobs as fj
from workbench.config import ConfigError, config_parts, param, part
from workbench.jobs import Engine
from workbench.registry import JobSpec, Registry
from workbench.request import RequestError, RunRequest
from workbench.store import Project

WAIT = 30.0


def test_a_request_round_trips_through_yaml_and_json(tmp_path: Path) -> None:
    request = RunRequest("test.steps", 7, "a-model", "toy", {"steps": 3, "key": "k"}, 1)
    for name in ("run.yaml", "run.json"):
        path = request.to_file(tmp_path / name)
        assert RunRequest.from_file(path) == request
    assert json.loads((tmp_path / "run.json").read_text())["config_version"] == 1
    assert "config_version: 1" in (tmp_path / "run.yaml").read_text()


def test_todays_run_files_stay_readable(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("job: test.steps\nseed: '3'\nmodel: null\ndataset: toy\nconfig: {steps: 2}\n")
    request = RunRequest.from_file(path)
    assert (request.job, request.seed, request.dataset) == ("test.steps", 3, "toy")
    assert request.config == {"steps": 2} and request.config_version == 1


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[1, 2]", "expected a mapping"),
        ("job: x\nepochs: 3\n", "unknown key 'epochs'"),
        ("seed: 1\n", "'job' is missing"),
        ("job: x\nseed: -1\n", "'seed' must be an integer"),
        ("job: x\nconfig: [1]\n", "'config' must be a mapping"),
        ("job: x\nconfig_version: 0\n", "'config_version' must be a positive integer"),
        ("job: [x]\n", "'job' must be a job name"),
        ("job: x\nmodel: 3\n", "'model' must be a name or a path"),
    ],
)
def test_a_bad_run_file_is_one_clear_error(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RequestError, match=words):
        RunRequest.from_file(path)


def test_from_record_carries_the_recorded_config_version(project: Project) -> None:
    engine = Engine(project, registry=fj.make_registry())
    try:
        run_id = engine.submit(RunRequest("test.steps", 4, dataset="toy", config={"steps": 2}))
        engine.wait(run_id, WAIT)
    finally:
        engine.shutdown()
    request = RunRequest.from_record(project.run(run_id))
    assert (request.job, request.seed, request.dataset) == ("test.steps", 4, "toy")
    assert request.config == {"steps": 2, "fail_at": -1, "key": ""}
    assert request.config_version == 1


def test_overrides_replace_values_and_keep_the_request(tmp_path: Path) -> None:
    fields = {f.name: f for f in fj.make_registry().job("test.steps").schema}
    request = RunRequest("test.steps", config={"steps": 2, "key": "a"})
    out = request.apply_overrides(["steps=5", "config.key=007", "seed=3", "model=~"], fields)
    assert out.config == {"steps": 5, "key": "007"} and out.seed == 3 and out.model is None
    assert request.config == {"steps": 2, "key": "a"}  # the original is unchanged
    for bad, words in (("job=x", "cannot be overridden"), ("steps", "expected KEY=VALUE")):
        with pytest.raises(RequestError, match=words):
            request.apply_overrides([bad], fields)


# -- validation happens once --------------------------------------------------------------------

BUILT: list[int] = []


@dataclasses.dataclass
class CountedConfig:
    """Counts how often it is built (each validation builds it once)."""

    steps: int = param(2, "Steps.", range=(0, 10))
    key: str = param("", "Key.")
    fail_at: int = param(-1, "Never fails.", range=(-1, -1))

    def __post_init__(self) -> None:
        BUILT.append(self.steps)


def counted_registry() -> Registry:
    reg = Registry()
    reg.add_job(
        JobSpec(
            name="test.counted",
            kind="experiment",
            family="test",
            title="counted",
            description="steps_job with a counting config",
            config=CountedConfig,
            entry="tests.unit.fixture_jobs:steps_job",
            model_heavy=False,
        )
    )
    return reg


def test_submit_validates_a_request_once_and_the_job_gets_that_config(project: Project) -> None:
    BUILT.clear()
    engine = Engine(project, registry=counted_registry())
    try:
        run_id = engine.submit(RunRequest("test.counted", config={"steps": 3}))
        assert engine.wait(run_id, WAIT) == "completed"
    finally:
        engine.shutdown()
    assert BUILT == [3]
    assert project.run(run_id).config["steps"] == 3


# -- composed configs ---------------------------------------------------------------------------


@dataclasses.dataclass
class SetupPart:
    steps: int = param(10, "Step budget.", range=(1, 100))


@dataclasses.dataclass
class EvalPart:
    CONFIG_VERSION: ClassVar[int] = 2
    eval_at: int = param(5, "Evaluate at this step.", range=(0, 100))


def _composed() -> type:
    @dataclasses.dataclass
    class Budget:
        budget: int = param(10, "Budget.", range=(1, 100))
        eval_at: int = param(5, "Evaluate at.", range=(0, 100))

        def __post_init__(self) -> None:
            if self.eval_at > self.budget:
                raise ConfigError(f"eval_at {self.eval_at} is past the budget", "eval_at")

    @dataclasses.dataclass
    class Method:
        lr: float = param(0.1, "Learning rate.", range=(0.0, 1.0))
        names: list[str] = param(["a"], "Names.")

        def __post_init__(self) -> None:
            self.names = [n.strip() for n in self.names]

        def doubled(self) -> float:
            return 2 * self.lr

    return compose_config("Composed", "A composed test config.", Budget, Method)


def test_a_composed_config_remembers_its_parts() -> None:
    composed = _composed()
    budget_cls, method_cls = config_parts(composed)
    cfg = composed(budget=20, eval_at=3, lr=0.25)
    method = part(cfg, method_cls)
    assert isinstance(method, method_cls) and method.doubled() == 0.5
    assert part(cfg, budget_cls).budget == 20
    assert part(method, method_cls) is method
    with pytest.raises(LookupError, match="has no part SetupPart"):
        part(cfg, SetupPart)


def test_a_composed_config_runs_its_parts_checks_at_submit(project: Project) -> None:
    composed = _composed()
    reg = Registry()
    spec = reg.add_job(
        JobSpec(
            name="test.composed",
            kind="experiment",
            family="test",
            title="composed",
            description="composed config",
            config=composed,
            entry="tests.unit.fixture_jobs:steps_job",
            model_heavy=False,
        )
    )
    # a part's normalisation is handed back to the composed config
    assert spec.validate({"names": [" x "]}).names == ["x"]
    engine = Engine(project, registry=reg)
    try:
        with pytest.raises(ConfigError, match="eval_at 50 is past the budget") as info:
            engine.submit(RunRequest("test.composed", config={"eval_at": 50}))
        assert info.value.field == "eval_at"
    finally:
        engine.shutdown()
    assert project.runs() == []


def test_a_composed_config_takes_its_parts_largest_version() -> None:
    composed = compose_config("V", "doc", SetupPart, EvalPart)
    assert composed.CONFIG_VERSION == 2
    assert compose_config("V", "doc", SetupPart, version=5).CONFIG_VERSION == 5
    assert "CONFIG_VERSION" not in {f.name for f in dataclasses.fields(composed)}


PARTS_SEEN: list[Any] = []


def part_job(ctx: Any) -> None:
    """Asks the context for its config's method part (a job never splits dicts)."""
    PARTS_SEEN.append(ctx.part(config_parts(ctx.config)[1]))


def test_a_job_context_hands_out_a_typed_part(project: Project) -> None:
    composed = _composed()
    reg = Registry()
    reg.add_job(
        JobSpec(
            name="test.part",
            kind="experiment",
            family="test",
            title="part",
            description="asks for a part",
            config=composed,
            entry=f"{__name__}:part_job",
            model_heavy=False,
        )
    )
    PARTS_SEEN.clear()
    engine = Engine(project, registry=reg)
    try:
        run_id = engine.submit(RunRequest("test.part", config={"lr": 0.5}))
        assert engine.wait(run_id, WAIT) == "completed"
    finally:
        engine.shutdown()
    (method,) = PARTS_SEEN
    assert type(method).__name__ == "Method" and method.doubled() == 1.0
