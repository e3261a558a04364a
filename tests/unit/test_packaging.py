"""Issue 18 part 5, the desktop package, without building it: what the PyInstaller spec collects
exists, the entry script is the CLI, the plugins' static fallback equals the entry points the
bundle's metadata declares, and the desktop entry (as installed, for a bundle or a checkout) hands
one local path to ``workbench gui``.

Building and starting the bundle itself is ``make package`` (``packaging/check_bundle.py``).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from workbench import __version__, cli
from workbench.jobs import heavy_jobs
from workbench.paths import BUILTIN_MODELS, CONFIGS, ICON, RESOURCES
from workbench.registry import BUILTIN_PLUGINS
from workbench.store import Project

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
INSTALL = PACKAGING / "install-desktop-entry.sh"


def _bundle() -> ModuleType:
    spec = importlib.util.spec_from_file_location("workbench_bundle", PACKAGING / "bundle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bundle_carries_the_resources_the_app_reads_where_it_reads_them() -> None:
    bundle = _bundle()
    datas = bundle.data_files()
    for source, _ in datas:
        assert Path(source).exists(), source
    # workbench.paths finds resources beside the workbench package's parent: the bundle's
    # _internal folder when frozen, so the destination must be the same relative folder
    dest = {Path(source): dest for source, dest in datas}
    assert dest[RESOURCES] == str(RESOURCES.relative_to(ROOT))
    for shipped in (BUILTIN_MODELS, CONFIGS, ICON):
        assert shipped.is_relative_to(RESOURCES) and shipped.exists()
    models = {p.name for p in BUILTIN_MODELS.iterdir() if p.is_dir()}
    assert {"digits-mlp", "tiny-gpt", "tiny-sd"} <= models
    # package data (pyproject's package-data patterns) keeps its package-relative folder
    for source, folder in bundle.package_data():
        assert Path(source).parent == ROOT / folder
        assert folder.split("/")[0] in bundle.OWN_PACKAGES


def test_the_spec_and_build_script_name_the_same_bundle() -> None:
    bundle = _bundle()
    spec = (PACKAGING / "workbench.spec").read_text()
    compile(spec, "workbench.spec", "exec")  # PyInstaller execs it as Python
    assert "bundle.py" in spec and "copy_metadata" in spec and "collect_submodules" in spec
    build = (PACKAGING / "build.sh").read_text()
    assert f"dist/{bundle.NAME}" in build and "packaging/workbench.spec" in build
    assert bundle.executable(ROOT / "dist") == ROOT / "dist" / "unlearning-workbench" / "workbench"
    assert bundle.ENTRY.exists() and bundle.ICON == ICON
    for package in bundle.OWN_PACKAGES:
        assert (ROOT / package / "__init__.py").exists()
    # what a run records and the app shows as versions is carried as metadata
    from workbench.versions import TRACKED_PACKAGES

    assert set(TRACKED_PACKAGES) <= set(bundle.METADATA)
    assert bundle.METADATA[0] == "unlearning-workbench"


def test_our_run_time_hooks_replace_the_slow_stock_ones() -> None:
    """packaging/hooks/rthooks.dat names a hook file that exists for each module it overrides, and
    the spec passes the folder to the Analysis (the first definition of a module's hooks wins)."""
    bundle = _bundle()
    table = ast.literal_eval((bundle.HOOKS / "rthooks.dat").read_text())
    assert {"nltk", "setuptools"} <= set(table)
    for files in table.values():
        for name in files:
            hook = bundle.HOOKS / "rthooks" / name
            assert hook.is_file()
            assert "import" not in hook.read_text()  # a start imports nothing for it
    assert "hookspath=[str(bundle.HOOKS)]" in (PACKAGING / "workbench.spec").read_text()


def test_lazy_packages_keep_their_models_and_drop_scripts_and_foreign_pipelines() -> None:
    keep = _bundle().keep_module
    assert keep("transformers.models.gpt2.modeling_gpt2")
    assert keep("transformers.models.auto.modeling_auto")
    assert keep("diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion")
    assert keep("diffusers.pipelines.pipeline_utils")
    assert keep("diffusers.models.unets.unet_2d_condition")
    assert not keep("transformers.models.gpt2.convert_gpt2_original_tf_checkpoint_to_pytorch")
    assert not keep("diffusers.pipelines.kandinsky.pipeline_kandinsky")
    assert not keep("transformers.commands.chat")
    assert not keep("torchmetrics.utilities.testing")


def test_the_static_plugin_table_matches_the_entry_points_the_bundle_carries() -> None:
    """When the frozen app lacks the dist-info, the registry and the CLI fall back to tables that
    must name what pyproject declares."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    plugins = project["entry-points"]["unlearning_workbench.plugins"]
    assert set(plugins.values()) <= set(BUILTIN_PLUGINS)  # (plus core plugins, always loaded)
    frontends = project["entry-points"]["unlearning_workbench.frontends"]
    assert frontends == {"gui": "ui.app:main"}  # cli._frontend's default
    assert project["scripts"]["workbench"] == "workbench.cli:main"


def test_the_isolation_switch_runs_heavy_jobs_the_guis_way(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``WORKBENCH_ISOLATE=1``: the CLI's engine runs model-heavy jobs in a child process, as the
    GUI does, so the bundle check can start that process from the frozen app."""
    monkeypatch.setenv(cli.ISOLATE_ENV, "1")
    engine = cli._engine(project)
    assert engine.isolate is heavy_jobs
    engine.shutdown()
    monkeypatch.setenv(cli.ISOLATE_ENV, "0")
    engine = cli._engine(project)
    assert engine.isolate is None
    engine.shutdown()


def test_the_entry_script_is_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, str(PACKAGING / "workbench_entry.py"), "--version"],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"workbench {__version__}"


# -- the desktop entry --------------------------------------------------------------------------


def _install(tmp_path: Path, script: Path, *args: str) -> Path:
    data = tmp_path / "share"
    env = os.environ | {"XDG_DATA_HOME": str(data), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        ["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return data


def _exec_argv(entry: Path, file: str) -> list[str]:
    """The command a launcher runs for ``entry`` handed ``file`` (spec: %f is one local path;
    arguments are quoted as in a shell, which shlex follows for what the script writes)."""
    lines = entry.read_text().splitlines()
    exec_line = next(x for x in lines if x.startswith("Exec=")).removeprefix("Exec=")
    return [file if arg == "%f" else arg for arg in shlex.split(exec_line)]


def _fake_bundle(folder: Path) -> Path:
    """A bundle's layout: the executable, the entry and script beside it, the icon in _internal."""
    (folder / "_internal" / "resources" / "icons").mkdir(parents=True)
    shutil.copy(ICON, folder / "_internal" / "resources" / "icons")
    for name in ("unlearning-workbench.desktop", "install-desktop-entry.sh"):
        shutil.copy(PACKAGING / name, folder)
    exe = folder / "workbench"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return exe


@pytest.mark.parametrize("folder", ["unlearning-workbench", "My Apps/unlearning workbench"])
def test_installed_entry_of_a_bundle_runs_its_executable_on_the_path_handed(
    tmp_path: Path, folder: str
) -> None:
    exe = _fake_bundle(tmp_path / folder)
    data = _install(tmp_path, exe.parent / "install-desktop-entry.sh")
    entry = data / "applications" / "unlearning-workbench.desktop"
    assert (data / "icons/hicolor/scalable/apps/unlearning-workbench.svg").read_bytes() == (
        ICON.read_bytes()
    )
    project = tmp_path / "a project"
    project.mkdir()
    argv = _exec_argv(entry, str(project))
    assert argv[0] == str(exe)  # the bundle's executable, even from a folder with spaces
    assert cli.parse_args(argv[1:]).path == str(project)  # `gui PATH`: that folder opens
    text = entry.read_text()
    assert f"TryExec={exe}\n" in text and text.count("Exec=") == 2  # Exec and TryExec
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True)
        assert check.returncode == 0, check.stdout
    _install(tmp_path, exe.parent / "install-desktop-entry.sh", "--uninstall")
    assert not entry.exists()


def test_installed_entry_of_a_checkout_without_venv_runs_workbench_on_path(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "resources" / "icons").mkdir(parents=True)
    shutil.copy(ICON, checkout / "resources" / "icons")
    shutil.copytree(PACKAGING, checkout / "packaging")
    data = _install(tmp_path, checkout / "packaging" / "install-desktop-entry.sh")
    entry = data / "applications" / "unlearning-workbench.desktop"
    assert _exec_argv(entry, "/p") == ["workbench", "gui", "/p"]
    assert "TryExec" not in entry.read_text()
    # the menu with no file: %f expands to nothing, and the app reopens the most recent project
    assert _exec_argv(entry, "")[:2] == ["workbench", "gui"]
    assert cli.parse_args(["gui"]).path is None


def test_the_entry_hands_one_local_path() -> None:
    """%f: one local file or folder (%F would hand several, %u/%U file:// URLs, which `gui` does
    not take); the catalogue's MIME types make file managers offer it for a workbench.sqlite."""
    text = (PACKAGING / "unlearning-workbench.desktop").read_text()
    assert "Exec=workbench gui %f\n" in text
    assert "application/vnd.sqlite3;" in text
    assert "inode/directory" not in text  # it must not become the default folder opener
