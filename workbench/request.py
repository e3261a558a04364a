"""A run request: what to run, on what, with which seed and config (no Qt, no torch).

:class:`RunRequest` is the one shape of ``{job, seed, model, dataset, config}`` that the CLI
(``run``, ``export``, a rerun), the GUI (the job builder, export, load into the builder) and the
demo build and hand to :meth:`workbench.jobs.Engine.submit`, which validates it once.

A run file (what ``workbench export`` writes and ``workbench run`` reads) is the request as YAML
(or JSON for a ``.json`` file)::

    job: classifier.train_mlp
    seed: 0
    model: null          # a project model name, a built-in model or a folder
    dataset: digits
    config: {epochs: 30}
    config_version: 1    # the version of the job's config it was written with

A file without ``config_version`` (written before versions existed) is version 1; the engine
migrates an older config to the job's current version
(:meth:`workbench.registry.JobSpec.migrate_config`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.config import ConfigError, FieldSpec, check_seed
from workbench.files import FileCheckError, read_text_file

__all__ = [
    "CONFIG_VERSION_KEY",
    "RUN_FILE_KEYS",
    "RUN_FILE_MAX_BYTES",
    "RequestError",
    "RunRequest",
]

RUN_FILE_KEYS = ("job", "seed", "model", "dataset", "config", "config_version")
RUN_FILE_MAX_BYTES = 4 * 1024 * 1024
# where a run records the version of its job's config (in the run's ``versions`` JSON)
CONFIG_VERSION_KEY = "config_version"
OVERRIDE_TOP_KEYS = ("seed", "model", "dataset")  # the rest of KEY=VALUE set config fields
_TEXT_TYPES = ("str", "path", "list[str]")


class RequestError(ValueError):
    """A run file or an override that cannot be read (one line, naming what is wrong)."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_config_version(value: Any, where: str = "config_version") -> int:
    """``value`` as a config version (a positive integer)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RequestError(f"{where} must be a positive integer, got {_short(value)}")
    return value


@dataclass(frozen=True)
class RunRequest:
    """A run to submit.  ``config`` holds the user's values (validated at submit, once);
    ``config_version`` is the version of the job's config they were written for (``None``: the
    job's current version, what the GUI's form and a new file hold)."""

    job: str
    seed: int = 0
    model: str | None = None
    dataset: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    config_version: int | None = None

    # -- building --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, where: str = "run config") -> RunRequest:
        """A request from a run file's mapping; every problem is one :class:`RequestError`.
        A mapping without ``config_version`` is version 1 (files from before versions)."""
        if not isinstance(data, Mapping):
            raise RequestError(f"{where}: expected a mapping with keys {', '.join(RUN_FILE_KEYS)}")
        unknown = sorted((k for k in data if k not in RUN_FILE_KEYS), key=repr)
        if unknown:
            raise RequestError(
                f"{where}: unknown key {_short(unknown[0])}; a run config has "
                f"{', '.join(RUN_FILE_KEYS)}"
            )
        if not data.get("job"):
            raise RequestError(f"{where}: 'job' is missing; `workbench jobs` lists the jobs")
        if not isinstance(data["job"], str):
            raise RequestError(f"{where}: 'job' must be a job name, got {_short(data['job'])}")
        if data.get("config") is not None and not isinstance(data["config"], Mapping):
            raise RequestError(f"{where}: 'config' must be a mapping of field names to values")
        for key in ("model", "dataset"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise RequestError(
                    f"{where}: {key!r} must be a name or a path, got {_short(data[key])}"
                )
        try:
            seed = check_seed(data.get("seed", 0), f"{where}: 'seed'")
        except ConfigError as exc:
            raise RequestError(str(exc)) from None
        version = data.get("config_version")
        return cls(
            job=data["job"],
            seed=seed,
            model=data.get("model"),
            dataset=data.get("dataset"),
            config=dict(data.get("config") or {}),
            config_version=1
            if version is None
            else check_config_version(version, f"{where}: 'config_version'"),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> RunRequest:
        """Read a run file (YAML, or JSON for ``.json``): a regular UTF-8 file of at most
        4 MiB.  Every problem is one :class:`RequestError`."""
        path = Path(path)
        if not path.exists():
            raise RequestError(f"config file {path} does not exist")
        try:
            text = read_text_file(path, max_bytes=RUN_FILE_MAX_BYTES, what="config file")
        except FileCheckError as exc:
            raise RequestError(str(exc)) from None
        fmt = "JSON" if path.suffix == ".json" else "YAML"
        try:
            if path.suffix == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:
            reason = " ".join(str(exc).split())[:300]
            raise RequestError(f"{path} is not valid {fmt}: {reason}") from None
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_record(cls, record: Any) -> RunRequest:
        """The request that reruns a stored run (a :class:`workbench.store.RunRecord`): its full
        config, seed and inputs, and the config version it was recorded with (1 when none)."""
        versions = record.versions if isinstance(record.versions, Mapping) else {}
        try:
            version = check_config_version(versions.get(CONFIG_VERSION_KEY, 1))
        except RequestError:
            version = 1
        return cls(
            job=record.job,
            seed=record.seed,
            model=record.model,
            dataset=record.dataset,
            config=dict(record.config or {}),
            config_version=version,
        )

    def replace(self, **changes: Any) -> RunRequest:
        return dataclasses.replace(self, **changes)

    # -- writing ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The run file's mapping (``config_version`` only when known)."""
        out: dict[str, Any] = {
            "job": self.job,
            "seed": self.seed,
            "model": self.model,
            "dataset": self.dataset,
            "config": dict(self.config),
        }
        if self.config_version is not None:
            out["config_version"] = self.config_version
        return out

    def to_text(self, fmt: str = "yaml") -> str:
        """The run file as YAML (``fmt="yaml"``) or JSON (``"json"``)."""
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2)
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_file(self, path: str | Path) -> Path:
        """Write the run file: JSON for a ``.json`` path, else YAML."""
        path = Path(path)
        text = self.to_text("json" if path.suffix.lower() == ".json" else "yaml")
        path.write_text(text if text.endswith("\n") else text + "\n")
        return path

    # -- overrides -------------------------------------------------------------------------
    def apply_overrides(
        self,
        overrides: list[str],
        fields: Mapping[str, FieldSpec] | Callable[[str], Mapping[str, FieldSpec]] | None = None,
    ) -> RunRequest:
        """This request with ``KEY=VALUE`` overrides applied (the CLI's ``run`` arguments).

        ``seed``, ``model`` and ``dataset`` replace the request's value; ``job`` is refused
        (change the file); any other key, or ``config.KEY``, replaces that field of the job's
        config (a list is replaced, never merged).  Values are YAML scalars or flow lists
        (``lr=1e-3``, ``methods=[ga,rl]``); a text field (per ``fields``, the job's schema by
        name, or a function of the job name returning it) keeps the text as typed
        (``model_name=yes`` is ``'yes'``).  Nothing is validated here: the engine validates the
        result exactly like a config file."""
        if callable(fields):
            fields = fields(self.job)
        fields = fields or {}
        seed, model, dataset = self.seed, self.model, self.dataset
        config = dict(self.config)
        for item in overrides:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise RequestError(
                    f"override {_short(item)}: expected KEY=VALUE (e.g. epochs=5, "
                    "config.lr=1e-3, seed=3)"
                )
            if key == "job":
                raise RequestError(
                    f"override {key}={raw}: the job cannot be overridden; change 'job' in the "
                    "config file (or export another run's config)"
                )
            if key == "config":
                raise RequestError(
                    f"override {key}=...: set config fields one at a time: config.FIELD=VALUE"
                )
            if key == "seed":
                try:
                    seed = check_seed(_parse_value(key, raw, None), "override seed")
                except ConfigError as exc:
                    raise RequestError(str(exc)) from None
            elif key in ("model", "dataset"):
                text = raw.strip()
                value = None if text in ("", "null", "~") else text
                if key == "model":
                    model = value
                else:
                    dataset = value
            else:
                name = key.removeprefix("config.")
                if not name:
                    raise RequestError(
                        f"override {_short(item)}: name the config field: config.FIELD=VALUE"
                    )
                config[name] = _parse_value(key, raw, fields.get(name))
        return self.replace(seed=seed, model=model, dataset=dataset, config=config)


def _parse_value(key: str, raw: str, spec: FieldSpec | None) -> Any:
    """An override's value: YAML (a scalar or a flow list); text fields keep their text."""
    import yaml

    text = raw.strip()
    textual = spec is not None and (
        spec.type in _TEXT_TYPES
        or (spec.type == "choice" and all(isinstance(c, str) for c in spec.choices or ()))
    )
    if textual and text in ("null", "~"):
        return None
    try:
        if textual:  # every scalar stays a string: 'yes', '007', 'null-model'
            return yaml.load(text, Loader=yaml.BaseLoader) if text else ""
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise RequestError(
            f"override {key}: {_short(raw)} is not a valid value ({reason})"
        ) from None
