"""``docs/architecture.md`` "Adding a family", followed step by step for a toy family in this file.

The toy family's model is a vector of numbers in a folder (``vector.json``); its one method,
``shrink``, multiplies the forget entry by ``1 - rate`` once per epoch. The family is a plugin
(``register`` below) that the registry loads by module name; its unlearn job is the shared
template (``backends/common/unlearn_job.py``) with the family's hooks, run by the real engine.
Nothing outside this file changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.common import fields
from backends.common.method import Hooks, MethodResult
from backends.common.methods import MethodInfo, unlearn_jobs
from backends.common.unlearn_job import UnlearnSteps, run_unlearn_job
from workbench.artifacts import Table
from workbench.config import param
from workbench.jobs import Engine
from workbench.registry import DatasetSpec, ModelKindSpec, Registry
from workbench.store import Project

VECTOR = "vector.json"


# -- 2. a model kind: a light folder check that says what is wrong ---------------------------------
def check_vector_folder(path: str) -> None:
    if not (Path(path) / VECTOR).is_file():
        raise ValueError(f"{path} has no {VECTOR}; a toy model is a folder with one")


# -- 4. a method: its config (shared fields from backends/common/fields.py) and its function --------
@dataclass
class ShrinkConfig:
    """Shrink the forget entry towards 0."""

    epochs: int = fields.epochs(3, "Times the forget entry is shrunk.")
    rate: float = param(0.5, "Fraction taken off per epoch.", range=(0.0, 1.0))


@dataclass
class ToyData:
    """The toy family's data object: which entry to forget."""

    forget: int


def unlearn(
    model: list[float], data: ToyData, cfg: ShrinkConfig, hooks: Hooks, *, seed: int
) -> MethodResult:
    """Edit ``model`` in place: the forget entry times ``1 - rate``, once per epoch."""
    for epoch in range(cfg.epochs):
        hooks.check()
        model[data.forget] *= 1.0 - cfg.rate
        hooks.metric("shrink/value", model[data.forget], epoch)
        hooks.progress((epoch + 1) / cfg.epochs, f"epoch {epoch + 1}")
    return MethodResult({"epochs": float(cfg.epochs)})


# the catalogue: ``catalogue("backends.toy.methods", rows)`` builds these from one row per
# ``methods/<name>.py``; in a test file the entry point is written out
METHODS = {
    "shrink": MethodInfo(
        "shrink",
        "Shrink",
        "Shrink the forget entry.",
        ShrinkConfig,
        f"{__name__}:unlearn",
        "none (a test)",
    ),
}


# -- 5. the jobs' config parts ---------------------------------------------------------------------
@dataclass
class ToySetupConfig:
    """What to forget."""

    forget: int = param(0, "Index of the entry to forget.", range=(0, 1000))


# -- 6. the unlearn job: the template with the family's hooks --------------------------------------
def run_unlearn(ctx: Any) -> dict[str, float]:
    setup = ctx.part(ToySetupConfig)
    info = METHODS[ctx.spec.method]

    def load() -> tuple[list[float], ToyData]:
        vector = json.loads((Path(ctx.model.path) / VECTOR).read_text())
        return vector, ToyData(setup.forget)

    def before(model: list[float]) -> float:
        ctx.metric("before/forget_value", model[setup.forget])
        return model[setup.forget]

    def after(model: list[float], _before: float, result: MethodResult, seconds: float) -> float:
        ctx.metric("forget_value", model[setup.forget])
        return model[setup.forget]

    def save(model: list[float]) -> None:
        name = ctx.unique_model_name(f"toy-{info.name}")
        folder = ctx.model_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / VECTOR).write_text(json.dumps(model))
        ctx.register_model(name, "toy.vector", folder)

    def artifacts(before_value: float, after_value: float) -> None:
        ctx.artifact(
            "forget",
            Table(
                ["model", "forget value"], [["original", before_value], ["unlearned", after_value]]
            ),
        )

    steps = UnlearnSteps(load, before, after, save, artifacts)
    return run_unlearn_job(ctx, steps, info, ctx.part(info.config), checkpoint_every=None)


# -- 1. the plugin: light, ``register(registry)`` ---------------------------------------------------
def register(registry: Registry) -> None:
    registry.add_model_kind(
        ModelKindSpec(
            name="toy.vector",
            family="toy",
            title="Toy vector",
            description="A folder with vector.json.",
            check=f"{__name__}:check_vector_folder",
        )
    )
    # -- 3. a built-in dataset
    registry.add_dataset(
        DatasetSpec(
            name="toy-points", family="toy", title="Toy points", description="Made by the family."
        )
    )
    for job in unlearn_jobs(
        "toy",
        METHODS,
        entry=f"{__name__}:run_unlearn",
        title="Unlearn: {title}",
        description="{description}",
        config_name="ToyUnlearn{config}",
        config_doc="{title}",
        before=(ToySetupConfig,),
        needs_model="toy",
        needs_dataset="toy",
    ):
        registry.add_job(job)


# -- 7. the test: the family's job through the real engine -----------------------------------------
def test_a_toy_family_added_as_the_walkthrough_says_runs_its_unlearn_job(
    project: Project, tmp_path: Path
) -> None:
    registry = Registry()
    registry.load_plugins([__name__])
    assert not registry.plugin_errors, registry.plugin_errors
    assert "toy.unlearn.shrink" in registry.jobs
    model = tmp_path / "toy-model"
    model.mkdir()
    (model / VECTOR).write_text(json.dumps([8.0, 2.0, 5.0]))
    engine = Engine(project, registry=registry)
    try:
        run_id = engine.submit(
            "toy.unlearn.shrink",
            {"forget": 2, "epochs": 3, "rate": 0.5},
            seed=1,
            model=str(model),
            dataset="toy-points",
        )
        assert engine.wait(run_id, 60) == "completed", project.run(run_id).error
    finally:
        engine.shutdown()
    final = project.final_metrics(run_id)
    assert final["before/forget_value"] == 5.0
    assert final["forget_value"] == 5.0 * 0.5**3  # three epochs of shrinking by half
    assert project.metric_series(run_id)["shrink/value"] == ([0, 1, 2], [2.5, 1.25, 0.625])
    saved = project.model("toy-shrink")
    assert saved is not None and saved["source_run"] == run_id
    assert json.loads((project.abspath(saved["path"]) / VECTOR).read_text()) == [8.0, 2.0, 0.625]
    assert [a["kind"] for a in project.artifacts(run_id)] == ["table"]
