"""What the desktop bundle carries: read by ``packaging/workbench.spec`` (PyInstaller) and by the
unit test that checks the lists without building (``tests/unit/test_packaging.py``).

The folder ``packaging/`` has no ``__init__.py`` and is never put on ``sys.path`` (the PyPI
``packaging`` library must stay importable): the spec and the test load this file by its path.

- Data: the whole ``resources/`` folder (built-in models, run configs, icons, SKeB framings) lands
  at ``<bundle>/_internal/resources``, which is where ``workbench.paths`` looks when frozen
  (``workbench/paths.py``'s parent's parent is the bundle's ``_internal`` folder), plus the
  ``package-data`` files of our packages (``pyproject.toml``: json, yaml, png, svg).
- Code: every module of ``workbench``, ``ui`` and ``backends``: jobs are named by dotted path and
  imported when they run, plugins and the GUI are found as entry points, so PyInstaller's import
  scan sees none of them.  ``transformers`` and ``diffusers`` import their classes lazily
  (``_LazyModule``): the model families a user may add (any causal LM, image classifier, SD-1.x
  pipeline part) are collected whole; conversion scripts are not.
- Metadata: the dist-info of ``unlearning-workbench`` (its entry points: the plugins and the GUI
  frontend; without it the registry falls back to ``workbench.registry.BUILTIN_PLUGINS`` and the
  CLI to ``ui.app:main``) and of the libraries whose versions a run records.
- Excluded: what only development, remote launchers or other frameworks need.
"""

from __future__ import annotations

from pathlib import Path

from workbench.versions import TRACKED_PACKAGES

ROOT = Path(__file__).resolve().parent.parent
NAME = "unlearning-workbench"  # the bundle's folder under dist/
EXE = "workbench"  # the executable in it: the CLI, `workbench gui [PATH]` opens the app
ENTRY = ROOT / "packaging" / "workbench_entry.py"
ICON = ROOT / "resources" / "icons" / "workbench.svg"
HOOKS = ROOT / "packaging" / "hooks"  # our PyInstaller hooks: run-time hooks that keep starts fast

# (source relative to ROOT, destination folder inside the bundle)
DATA_DIRS = (("resources", "resources"),)
# our packages: every submodule, and their package-data files
OWN_PACKAGES = ("workbench", "ui", "backends")
PACKAGE_DATA_SUFFIXES = (".json", ".yaml", ".png", ".svg")

# dist-info folders the bundle carries, each with those of its requirements (those installed; the
# first is required)
METADATA = (
    *TRACKED_PACKAGES,  # the versions every run records (workbench/versions.py), then the rest
    "pyqtgraph",
    "accelerate",
    "torchmetrics",
    "datasets",
    "huggingface-hub",
    "tokenizers",
    "rouge-score",
    "pillow",
    "pyyaml",
)

# packages imported lazily at run time (importlib.import_module of a dotted name)
LAZY_PACKAGES = ("transformers", "diffusers", "peft", "torchmetrics")
# diffusers' pipelines: only what loads an SD-1.x folder (model_index.json names these)
DIFFUSERS_PIPELINES = ("stable_diffusion",)

EXCLUDES = (
    # development only
    "pytest",
    "_pytest",
    "pytestqt",
    "hypothesis",
    "mypy",
    "ruff",
    "importlinter",
    "grimp",
    "IPython",
    "jupyter",
    "notebook",
    # remote launchers (local runs only in the bundle) and their servers
    "ray",
    "submitit",
    "grpc",
    # other frameworks and GUI toolkits that optional imports of the libraries name
    "tensorflow",
    "keras",
    "jax",
    "jaxlib",
    "flax",
    "tkinter",
    "matplotlib",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "torchaudio",
    "triton",
    "deepspeed",
    "bitsandbytes",
    "wandb",
    "tensorboard",
)


def keep_module(name: str) -> bool:
    """Whether a submodule of a lazy package goes into the bundle: not conversion scripts, tests
    or command-line tools, and of diffusers' pipelines only those in :data:`DIFFUSERS_PIPELINES`
    (and the modules directly in ``diffusers.pipelines``)."""
    parts = name.split(".")
    if any(p.startswith("convert_") or p in ("tests", "testing", "commands") for p in parts):
        return False
    if parts[:2] == ["diffusers", "pipelines"] and len(parts) > 3:
        return parts[2] in DIFFUSERS_PIPELINES
    return True


def package_data(root: Path = ROOT) -> list[tuple[str, str]]:
    """``(file, destination folder)`` of each package-data file of :data:`OWN_PACKAGES`."""
    out = []
    for package in OWN_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.suffix in PACKAGE_DATA_SUFFIXES and "__pycache__" not in path.parts:
                out.append((str(path), str(path.parent.relative_to(root))))
    return out


def data_files(root: Path = ROOT) -> list[tuple[str, str]]:
    """The ``datas`` of the Analysis: the resource folders and the package data."""
    return [(str(root / src), dest) for src, dest in DATA_DIRS] + package_data(root)


def bundle_dir(dist: Path = ROOT / "dist") -> Path:
    """The built one-folder bundle."""
    return dist / NAME


def executable(dist: Path = ROOT / "dist") -> Path:
    """The bundle's ``workbench`` executable."""
    return bundle_dir(dist) / EXE
