"""The registry: adding and looking up specs, its JSON, light listing, and broken plugins."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.unit.fixture_jobs import StepsConfig, make_registry
from workbench.config import ConfigError
from workbench.registry import DatasetSpec, JobSpec, ModelKindSpec, Registry, RegistryError

REPO = Path(__file__).resolve().parents[2]


def _spec(name: str = "test.job", **kw: object) -> JobSpec:
    fields: dict = {
        "name": name,
        "kind": "train",
        "family": "test",
        "title": "A job",
        "description": "Does things.",
        "config": StepsConfig,
        "entry": "tests.unit.fixture_jobs:steps_job",
    }
    fields.update(kw)
    return JobSpec(**fields)


def test_add_and_lookup() -> None:
    reg = Registry()
    spec = reg.add_job(_spec())
    assert reg.job("test.job") is spec
    kind = reg.add_model_kind(ModelKindSpec("k", "test", "Kind", "A kind."))
    assert reg.model_kind("k") is kind
    ds = reg.add_dataset(DatasetSpec("d", "test", "D", "A dataset."))
    assert reg.dataset("d") is ds
    assert spec.load_entry().__name__ == "steps_job"


def test_unknown_names_list_the_known_ones() -> None:
    reg = make_registry()
    with pytest.raises(RegistryError) as info:
        reg.job("test.nope")
    message = str(info.value)
    assert "'test.nope'" in message
    for name in ("test.steps", "test.counter", "test.spin"):
        assert name in message
    with pytest.raises(RegistryError, match="known datasets: toy"):
        reg.dataset("mnist")
    with pytest.raises(RegistryError, match="known kinds: none"):
        reg.model_kind("x")
    with pytest.raises(RegistryError, match="known jobs: none"):
        Registry().job("a")


def test_duplicate_job_and_bad_kind_are_refused() -> None:
    reg = Registry()
    reg.add_job(_spec())
    with pytest.raises(RegistryError, match="registered twice"):
        reg.add_job(_spec())
    with pytest.raises(RegistryError, match="kind 'dance' is not one of"):
        _spec("x", kind="dance")


def test_malformed_config_class_fails_at_registration() -> None:
    from dataclasses import dataclass

    @dataclass
    class NoHelp:
        n: int = 1

    with pytest.raises(TypeError, match="no help text"):
        _spec(config=NoHelp)


def test_validate_job_config() -> None:
    reg = make_registry()
    cfg = reg.validate_job_config("test.steps", {"steps": "4"})
    assert cfg.steps == 4
    with pytest.raises(ConfigError, match="test.steps config"):
        reg.validate_job_config("test.steps", {"steps": -3})


def test_bad_entry_attribute() -> None:
    spec = _spec(entry="tests.unit.fixture_jobs:no_such_function")
    with pytest.raises(RegistryError, match="has no attribute 'no_such_function'"):
        spec.load_entry()


def test_to_json_shape() -> None:
    reg = make_registry()
    reg.add_model_kind(ModelKindSpec("k", "test", "Kind", "A kind.", check="x:y"))
    data = reg.to_json()
    assert set(data) >= {"jobs", "model_kinds", "datasets", "plugin_errors"}
    names = [j["name"] for j in data["jobs"]]
    assert names == sorted(names) and "test.steps" in names
    job = next(j for j in data["jobs"] if j["name"] == "test.counter")
    assert job["kind"] == "experiment" and job["family"] == "test"
    assert job["method"] == "counter"
    assert job["supports_resume"] is True and job["model_heavy"] is False
    assert job["needs_model"] is None and job["needs_dataset"] is None
    assert [f["name"] for f in job["config"]] == ["steps", "fail_at", "key"]
    assert job["config"][0] == {
        "name": "steps",
        "type": "int",
        "default": 5,
        "help": "Steps to run.",
        "optional": False,
        "range": [0, 1_000_000],
    }
    assert data["model_kinds"] == [
        {"name": "k", "family": "test", "title": "Kind", "description": "A kind."}
    ]
    assert data["datasets"] == [{"name": "toy", "family": "test", "title": "Toy", "builtin": True}]
    assert data["plugin_errors"] == []
    json.dumps(data)  # JSON-able as is


def _run_python(code: str, *, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    paths = [str(REPO)] + ([str(extra_path)] if extra_path else [])
    env = {"PYTHONPATH": ":".join(paths), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )


def test_listing_the_real_registry_does_not_import_torch() -> None:
    out = _run_python(
        """
        import json, sys
        from workbench.registry import get_registry
        reg = get_registry()
        data = reg.to_json()
        reg.job("classifier.train_mlp").schema
        reg.validate_job_config("classifier.train_mlp", {"epochs": "2", "hidden": "8,4"})
        print(json.dumps({
            "torch": "torch" in sys.modules,
            "heavy": sorted(m for m in ("torch", "PySide6", "transformers", "sklearn")
                            if m in sys.modules),
            "jobs": [j["name"] for j in data["jobs"]],
            "errors": data["plugin_errors"],
        }))
        """
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["torch"] is False
    assert result["heavy"] == []
    assert "classifier.train_mlp" in result["jobs"]
    assert result["errors"] == []


def test_broken_plugin_is_recorded_and_the_others_load(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "wb_broken_plugin.py").write_text(
        "raise ImportError('needs a library that is missing')\n"
    )
    (plugins / "wb_bad_register.py").write_text(
        "def register(registry):\n    raise RuntimeError('register exploded')\n"
    )
    (plugins / "wb_good_plugin.py").write_text(
        textwrap.dedent(
            """
            from workbench.registry import DatasetSpec

            def register(registry):
                registry.add_dataset(DatasetSpec("good-data", "test", "Good", "Loaded fine."))
            """
        )
    )
    out = _run_python(
        """
        import json
        from workbench.registry import Registry
        reg = Registry()
        reg.load_plugins(["wb_broken_plugin", "wb_bad_register", "wb_good_plugin",
                          "backends.classifier.plugin", "wb_not_installed"])
        print(json.dumps({"errors": reg.plugin_errors, "datasets": sorted(reg.datasets),
                          "jobs": sorted(reg.jobs), "json_errors": reg.to_json()["plugin_errors"]}))
        """,
        extra_path=plugins,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    errors = result["errors"]
    assert len(errors) == 3
    assert "wb_broken_plugin" in errors[0] and "needs a library that is missing" in errors[0]
    assert "wb_bad_register" in errors[1] and "register exploded" in errors[1]
    assert "wb_not_installed" in errors[2]
    assert result["json_errors"] == errors
    assert {"digits", "good-data"} <= set(result["datasets"])
    assert "classifier.train_mlp" in result["jobs"]
