"""The registry: which jobs, model kinds and datasets the installed backends offer.

Backends are plugins.  Each plugin is a *light* module (it must not import torch, Qt or any other
heavy library at module level) exposing ``register(registry)``.  Plugins are found through the
``unlearning_workbench.plugins`` entry-point group, falling back to :data:`BUILTIN_PLUGINS` when the
package metadata is not installed (running from a source checkout).

A job is declared by name with its config dataclass and the dotted path of its entry function
(``"backends.classifier.train_mlp:run"``), which is imported only when the job runs.  Listing
jobs, building forms and validating configs therefore never import torch.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from workbench.config import ConfigError, FieldSpec, config_version, schema_of, validate
from workbench.exporters import ExporterSpec
from workbench.files import FileCheckError, read_json_file

__all__ = [
    "JOB_KINDS",
    "BUILTIN_PLUGINS",
    "Headline",
    "JobSpec",
    "ModelKindSpec",
    "DatasetSpec",
    "DemoSpec",
    "Registry",
    "add_dataset_to_project",
    "add_model_to_project",
    "RegistryError",
    "get_registry",
    "verify_image_files",
    "verify_model_folder",
    "verify_safetensors",
]

DEVICE_PROBE = "backends.common.devices:check_device"
MODEL_CONFIG_MAX_BYTES = 4 * 1024 * 1024
SAFETENSORS_HEADER_MAX_BYTES = 100 * 1024 * 1024
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
IMAGE_SAMPLE_PER_FOLDER = 8
IMAGE_SAMPLE_MAX = 256
_DTYPE_BYTES = {  # bytes per element of each safetensors dtype
    **dict.fromkeys(("BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3"), 1),
    **dict.fromkeys(("I16", "U16", "F16", "BF16"), 2),
    **dict.fromkeys(("I32", "U32", "F32"), 4),
    **dict.fromkeys(("I64", "U64", "F64"), 8),
}


def verify_safetensors(path: str | Path) -> None:
    """Check a safetensors file's header without loading it: the header length, that the header is
    a JSON object of tensors whose dtype, shape and byte ranges fit the file.  ``ValueError``
    naming the file and the problem otherwise."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError(f"weights {path} are unreadable: the file is too short")
            n = int.from_bytes(head, "little")
            if n > SAFETENSORS_HEADER_MAX_BYTES or 8 + n > size:
                raise ValueError(f"weights {path} are unreadable: bad header length {n}")
            raw = fh.read(n)
    except OSError as exc:
        raise ValueError(f"weights {path} cannot be read ({exc.strerror or exc})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError(f"weights {path} are unreadable: the header is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError(f"weights {path} are unreadable: the header is not a JSON object")
    data_size = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            width = _DTYPE_BYTES[dtype]
            count = math.prod(int(d) for d in shape)
            ok = (
                all(isinstance(d, int) and d >= 0 for d in shape)
                and isinstance(start, int)
                and isinstance(end, int)
                and 0 <= start <= end <= data_size
                and end - start == count * width
            )
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                f"weights {path} are unreadable: tensor {str(name)[:60]!r} has a malformed entry "
                "or lies past the end of the file"
            )


def verify_model_folder(path: str | Path, required_keys: Iterable[str] = ()) -> None:
    """Generic checks of a model folder before it is added or used: ``config.json`` (when present)
    is a UTF-8 JSON object of bounded size holding ``required_keys``, and every safetensors file
    (top level and one folder down, as in a pipeline) has a readable header."""
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    required = list(required_keys)
    config = folder / "config.json"
    if config.exists() or required:
        try:
            data = read_json_file(
                config, max_bytes=MODEL_CONFIG_MAX_BYTES, what="model config", expect=dict
            )
        except FileCheckError as exc:
            raise ValueError(str(exc)) from None
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f"model config {config} lacks the key(s) {', '.join(missing)}")
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*/*.safetensors"))
    for file in files[:512]:
        verify_safetensors(file)


def verify_image_files(path: str | Path) -> int:
    """Decode a sample of the images under a dataset folder (the first few of each folder, at most
    :data:`IMAGE_SAMPLE_MAX`); ``ValueError`` naming the first that does not decode.  Returns how
    many were decoded."""
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        return 0
    folders = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    sample: list[Path] = []
    for folder in folders:
        images = sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        sample.extend(images[:IMAGE_SAMPLE_PER_FOLDER])
        if len(sample) >= IMAGE_SAMPLE_MAX:
            break
    for file in sample[:IMAGE_SAMPLE_MAX]:
        try:
            with Image.open(file) as im:
                im.load()
        except Exception as exc:  # Pillow raises many types for a broken file
            reason = " ".join(str(exc).split())[:120] or type(exc).__name__
            raise ValueError(f"image {file} does not decode ({reason})") from None
    return min(len(sample), IMAGE_SAMPLE_MAX)


JOB_KINDS = ("unlearn", "attack", "evaluate", "train", "finetune", "generate", "experiment")
BUILTIN_PLUGINS = (
    "backends.classifier.plugin",
    "backends.llm.plugin",
    "backends.diffusion.plugin",
    "workbench.attack_matrix",  # the cross-family attack matrix (issue 18)
)
ENTRY_POINT_GROUP = "unlearning_workbench.plugins"


class RegistryError(LookupError):
    """An unknown job, model kind or dataset, or a plugin that failed to load."""


def resolve_entry(dotted: str) -> Any:
    """Import ``"module:attribute"`` and return the attribute."""
    module_name, _, attr = dotted.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise RegistryError(f"{module_name} has no attribute {attr!r}") from exc


@dataclass(frozen=True)
class Headline:
    """An attack's headline number, what the attack matrix shows (``workbench.attack_matrix``).

    ``metric`` is the name the attack run records (its value at the last step is read);
    ``{field}`` in it is filled from the run's config (``erased/pooled/{metric}``).
    ``higher_leaks``: a higher value means more leakage.  ``low`` / ``high`` name the recorded
    ends of its 95% interval (default ``<metric>_low`` / ``<metric>_high``); ``reference`` names
    what the run records for the retrained / never-learned model, where the family has one."""

    metric: str
    higher_leaks: bool = True
    low: str = ""
    high: str = ""
    reference: str = ""
    title: str = ""


@dataclass(frozen=True)
class JobSpec:
    """A runnable job: an unlearning method, attack, evaluation, training, fine-tune or generation.

    ``entry`` is ``"module:function"``; the function takes a :class:`workbench.jobs.JobContext`
    and returns a dict of final metrics (or ``None``).  ``model_heavy`` jobs share the engine's
    heavy-job slot (one at a time by default).  ``needs_model``/``needs_dataset`` name the model
    family or dataset family the job expects (``None``: takes none); with ``model_optional`` the
    model may be left out (a classifier unlearning job then trains its own original).
    ``submit_check`` checks what depends on the chosen model and dataset at submit.
    """

    name: str
    kind: str
    family: str
    title: str
    description: str
    config: type
    entry: str
    method: str = ""
    model_heavy: bool = True
    supports_resume: bool = False
    needs_model: str | None = None
    needs_dataset: str | None = None
    # the job can also run without a model (it then trains its own); the GUI offers "(none)"
    model_optional: bool = False
    # "module:function" run at submit, before the run is created: ``fn(config, model, dataset)``
    # gets the typed config and the resolved model and dataset (``workbench.jobs.ResolvedRef`` or
    # None) and raises ``ConfigError(message, field)`` (or ``ValueError``) for what the job would
    # refuse at run time (a class index past the dataset's classes, a layer the model lacks).
    # It must stay light (no torch): the GUI calls it on its thread.
    submit_check: str | None = None
    # "module:function"(version, config dict) -> config dict: brings a config written for
    # ``version`` to ``version + 1``; the engine applies it step by step up to the config class's
    # ``CONFIG_VERSION`` when it resumes or reruns an older run (a renamed field, say)
    migrate: str | None = None
    # former names of this job (``diffusion.erase.esd`` for ``diffusion.unlearn.esd``):
    # :meth:`Registry.job` resolves them, so runs and run files that record an old name still
    # show, resume and rerun; listings show the canonical name
    aliases: tuple[str, ...] = ()
    # an attack: the model kinds (``classifier.mlp``) or whole families (``llm``) it can run on;
    # the attack matrix offers it only for runs whose model is one of them
    applies_to: tuple[str, ...] = ()
    # an attack: its headline number for the attack matrix (None: the matrix does not offer it)
    headline: Headline | None = None

    def __post_init__(self) -> None:
        if self.kind not in JOB_KINDS:
            raise RegistryError(f"job {self.name!r}: kind {self.kind!r} is not one of {JOB_KINDS}")
        schema_of(self.config)  # fails early on a malformed config class
        config_version(self.config)

    @property
    def config_version(self) -> int:
        """The version of this job's config (its class's ``CONFIG_VERSION``, 1 by default)."""
        return config_version(self.config)

    def migrate_config(self, values: Any, version: int | None) -> Any:
        """``values``, written for config ``version`` (``None``: the current one), brought to
        the current version with the job's ``migrate`` hook, one version at a time.

        A version newer than this app knows, or an older one without a hook, is a
        :class:`ConfigError` that says what to do."""
        current = self.config_version
        if version is None or version == current or not isinstance(values, Mapping):
            return values
        if version > current:
            raise ConfigError(
                f"job {self.name}: this config is version {version}, made by a newer version "
                f"of the workbench (this one knows up to version {current}); update the "
                "workbench to run it"
            )
        if not self.migrate:
            raise ConfigError(
                f"job {self.name}: this config is version {version} and the job's config is "
                f"version {current}, but the job has no migration; export a fresh config"
            )
        try:
            step = resolve_entry(self.migrate)
        except (ImportError, LookupError) as exc:
            raise ConfigError(
                f"job {self.name}: its config migration cannot load ({exc})"
            ) from None
        out = dict(values)
        for v in range(version, current):
            try:
                out = step(v, dict(out))
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(
                    f"job {self.name}: migrating its config from version {v} to {v + 1} "
                    f"failed ({type(exc).__name__}: {exc})"
                ) from None
            if not isinstance(out, Mapping):
                raise ConfigError(
                    f"job {self.name}: its config migration from version {v} returned "
                    f"{type(out).__name__}, not a mapping"
                )
        return out

    @property
    def schema(self) -> list[FieldSpec]:
        return schema_of(self.config)

    def validate(self, values: Mapping[str, Any] | None) -> Any:
        return validate(self.config, values, job=self.name)

    def load_entry(self) -> Callable[..., Any]:
        return resolve_entry(self.entry)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "family": self.family,
            "method": self.method or self.name.rsplit(".", 1)[-1],
            "title": self.title,
            "description": self.description,
            "model_heavy": self.model_heavy,
            "supports_resume": self.supports_resume,
            "needs_model": self.needs_model,
            "model_optional": self.model_optional,
            "needs_dataset": self.needs_dataset,
            "config_version": self.config_version,
            "aliases": list(self.aliases),
            "applies_to": list(self.applies_to),
            "headline": None if self.headline is None else self.headline.__dict__.copy(),
            "config": [f.to_json() for f in self.schema],
        }


@dataclass(frozen=True)
class ModelKindSpec:
    """A kind of model a family can load (e.g. a torch MLP folder, an HF image classifier).

    ``check`` is ``"module:function"`` taking a path and raising ``ValueError`` with a readable
    message when the folder is not of this kind; it is imported lazily and must stay light.
    ``builtin`` lists ``(name, path)`` pairs of models shipped with the app.
    """

    name: str
    family: str
    title: str
    description: str
    check: str | None = None
    builtin: tuple[tuple[str, str], ...] = ()
    # keys config.json must hold for this kind to load (checked when the model is added or used)
    required_keys: tuple[str, ...] = ()

    def check_path(self, path: str, *, allow_pickle: bool = False) -> None:
        """Run the kind's check; ``allow_pickle`` reaches a check that takes it (a pickle-only
        folder then passes: the family reads it with ``torch.load(weights_only=True)``)."""
        if self.check:
            _run_check(self.check, path, allow_pickle=allow_pickle)

    def accepts_pickle(self) -> bool:
        """Whether this kind's loader honours a model's ``allow_pickle`` (its check takes it)."""
        if not self.check:
            return False
        return "allow_pickle" in inspect.signature(resolve_entry(self.check)).parameters

    def verify(self, path: str) -> None:
        """Generic checks beyond the kind's own: config keys, safetensors headers (a single
        ``.safetensors`` file, for a kind whose check accepts one: its header)."""
        if Path(path).is_file():
            verify_safetensors(path)
            return
        verify_model_folder(path, self.required_keys)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset a family knows.  ``builtin`` datasets need no path (scikit-learn digits); the
    others are *kinds* of user dataset (an image folder) whose ``check`` validates a folder
    before it is added to a project."""

    name: str
    family: str
    title: str
    description: str
    builtin: bool = True
    info: dict[str, Any] = field(default_factory=dict)
    check: str | None = None  # for a user dataset kind: "module:function" raising ValueError
    # "module:function"(path or None, per_class) -> {"examples", "classes": [(name, n)],
    # "samples": [(label, image array)]}: what the details dialog shows, imported lazily
    preview: str | None = None

    def check_path(self, path: str) -> None:
        if self.check:
            _run_check(self.check, path)


def _run_check(check: str, path: str, *, allow_pickle: bool = False) -> None:
    """Run a backend's folder check; anything it raises becomes a ``ValueError`` naming it.
    ``allow_pickle`` is passed only when set, to a check that takes it."""
    try:
        fn = resolve_entry(check)
        if allow_pickle and "allow_pickle" in inspect.signature(fn).parameters:
            fn(path, allow_pickle=True)
        else:
            fn(path)
    except ValueError:
        raise
    except OSError as exc:
        raise ValueError(f"{path} cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # a check that trips over a malformed folder
        raise ValueError(f"{path} is malformed ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class DemoSpec:
    """What ``workbench demo --family F`` runs: a list of run requests, each a dict of
    :class:`workbench.request.RunRequest` fields (``job``, ``config``, ``seed``, ``model``,
    ``dataset``; the same shape as a CLI config file, at the job's current config version)."""

    family: str
    title: str
    runs: tuple[dict[str, Any], ...]


class Registry:
    """Holds the specs contributed by plugins.  Use :func:`get_registry` for the shared one."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobSpec] = {}
        self.aliases: dict[str, str] = {}  # a job's former name -> its canonical name
        self.model_kinds: dict[str, ModelKindSpec] = {}
        self.datasets: dict[str, DatasetSpec] = {}
        self.demos: dict[str, DemoSpec] = {}
        # model kind -> format -> how to export it (the first format of a kind is its default)
        self.exporters: dict[str, dict[str, ExporterSpec]] = {}
        self.plugin_errors: list[str] = []
        # "module:function" raising ValueError when a device (e.g. "cuda") is not available
        self.device_probe: str | Callable[[str], None] | None = DEVICE_PROBE

    def check_device(self, device: str) -> None:
        """Raise ``ValueError`` when ``device`` is not available on this machine."""
        probe = self.device_probe
        if probe is None:
            return
        fn = resolve_entry(probe) if isinstance(probe, str) else probe
        fn(device)

    # -- registration ---------------------------------------------------------------------
    def add_job(self, spec: JobSpec) -> JobSpec:
        for name in (spec.name, *spec.aliases):
            if name in self.jobs or name in self.aliases:
                raise RegistryError(f"job {name!r} is registered twice")
        self.jobs[spec.name] = spec
        self.aliases.update(dict.fromkeys(spec.aliases, spec.name))
        return spec

    def add_model_kind(self, spec: ModelKindSpec) -> ModelKindSpec:
        self.model_kinds[spec.name] = spec
        return spec

    def add_dataset(self, spec: DatasetSpec) -> DatasetSpec:
        self.datasets[spec.name] = spec
        return spec

    def add_demo(self, spec: DemoSpec) -> DemoSpec:
        self.demos[spec.family] = spec
        return spec

    def add_exporter(self, spec: ExporterSpec) -> ExporterSpec:
        """One export format of one model kind (:mod:`workbench.exporters`)."""
        formats = self.exporters.setdefault(spec.kind, {})
        if spec.format in formats:
            raise RegistryError(f"exporter {spec.kind}/{spec.format} is registered twice")
        formats[spec.format] = spec
        return spec

    def load_plugins(self, names: Iterable[str] | None = None) -> None:
        """Import each plugin module and call its ``register(self)``.

        A plugin that fails to import is recorded in :attr:`plugin_errors` instead of taking the
        application down; the GUI shows these.
        """
        for name in names if names is not None else discover_plugins():
            try:
                importlib.import_module(name).register(self)
            except Exception as exc:  # a broken plugin must not stop the app
                self.plugin_errors.append(f"plugin {name}: {type(exc).__name__}: {exc}")

    # -- lookup ---------------------------------------------------------------------------
    def canonical_job(self, name: str) -> str:
        """The current name of job ``name``: itself, or the job it is a former name of."""
        return self.aliases.get(name, name)

    def find_job(self, name: str) -> JobSpec | None:
        """The job named ``name`` (or formerly named so), or ``None``."""
        return self.jobs.get(self.canonical_job(name))

    def job(self, name: str) -> JobSpec:
        """The job named ``name``, or formerly named so (:attr:`JobSpec.aliases`)."""
        spec = self.find_job(name)
        if spec is None:
            known = ", ".join(sorted(self.jobs)) or "none"
            raise RegistryError(f"unknown job {name!r}; known jobs: {known}")
        return spec

    def model_kind(self, name: str) -> ModelKindSpec:
        try:
            return self.model_kinds[name]
        except KeyError:
            known = ", ".join(sorted(self.model_kinds)) or "none"
            raise RegistryError(f"unknown model kind {name!r}; known kinds: {known}") from None

    def dataset(self, name: str) -> DatasetSpec:
        try:
            return self.datasets[name]
        except KeyError:
            known = ", ".join(sorted(self.datasets)) or "none"
            raise RegistryError(f"unknown dataset {name!r}; known datasets: {known}") from None

    def validate_job_config(self, job: str, values: Mapping[str, Any] | None) -> Any:
        return self.job(job).validate(values)

    def to_json(self) -> dict[str, Any]:
        return {
            "jobs": [self.jobs[n].to_json() for n in sorted(self.jobs)],
            "model_kinds": [
                {"name": m.name, "family": m.family, "title": m.title, "description": m.description}
                for m in self.model_kinds.values()
            ],
            "datasets": [
                {"name": d.name, "family": d.family, "title": d.title, "builtin": d.builtin}
                for d in self.datasets.values()
            ],
            "plugin_errors": list(self.plugin_errors),
        }


def add_dataset_to_project(
    project: Any, registry: Registry, kind: str, name: str, path: str
) -> int:
    """Check ``path`` against dataset kind ``kind`` and add it to the project as ``name``.

    Raises ``ValueError`` with the reason when the folder is not of that kind (nothing is added).
    """
    spec = registry.dataset(kind)
    if spec.builtin:
        raise ValueError(f"{kind} is a built-in dataset; it needs no folder")
    if not name.strip():
        raise ValueError("give the dataset a name")
    if name in registry.datasets:
        raise ValueError(f"{name!r} is the name of a built-in dataset; choose another name")
    if not Path(path).exists():
        raise ValueError(f"{path} does not exist")
    spec.check_path(path)
    verify_image_files(path)
    return project.add_dataset(name, spec.family, spec.name, path)


def add_model_to_project(
    project: Any, registry: Registry, name: str, path: str, *, allow_pickle: bool = False
) -> tuple[int, str]:
    """Add a model folder under ``name``, with the first registered model kind that accepts it.

    ``allow_pickle`` (off by default; ``add-model --allow-pickle``) lets a kind whose loader
    supports it accept pickle-only weights, read with ``torch.load(weights_only=True)``; it is
    stored with the model (``meta["allow_pickle"]``).  Returns (id, kind).  Raises
    ``ValueError`` listing why each kind refused the folder.
    """
    if not name.strip():
        raise ValueError("give the model a name")
    folder = Path(path)
    if not folder.exists():
        raise ValueError(f"{path} does not exist")
    if not folder.is_dir():
        if folder.suffix != ".safetensors":
            raise ValueError(
                f"{path} is a file; a model is a folder with config.json and weights (or a "
                "single-file .safetensors checkpoint beside its config files)"
            )
        verify_safetensors(folder)  # a single-file checkpoint: a kind's check finds its config
    else:
        verify_model_folder(folder)  # config.json an object, safetensors headers readable
    from workbench.catalog import KindNotDetected, detect_model_kind

    try:
        kind = detect_model_kind(registry, path, checked_only=True, allow_pickle=allow_pickle)
    except KindNotDetected as exc:
        reasons = "; ".join(exc.reasons)
        raise ValueError(f"{path} is not a model the workbench can load ({reasons})") from None
    meta = {"allow_pickle": True} if allow_pickle and kind.accepts_pickle() else {}
    return project.add_model(name, kind.family, kind.name, path, meta=meta), kind.name


def discover_plugins() -> list[str]:
    """Plugin module names from entry points, or the built-in list from a source checkout."""
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
        names = [ep.value.split(":")[0] for ep in eps]
    except Exception:
        names = []
    for builtin in BUILTIN_PLUGINS:
        if builtin not in names:
            names.append(builtin)
    return names


_registry: Registry | None = None
_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, with every discovered plugin loaded once."""
    global _registry
    with _lock:
        if _registry is None:
            reg = Registry()
            reg.load_plugins()
            _registry = reg
        return _registry
