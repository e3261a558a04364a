"""Check that the built desktop bundle starts (``make package`` runs it after packaging/build.sh).

    python packaging/check_bundle.py [--dist DIR] [--jobs] [--repeat N] [--json FILE]

From a scratch folder, with no PYTHONPATH and a private HOME (nothing of this checkout can help):

1. ``workbench --version`` prints this checkout's version;
2. ``workbench jobs --json`` lists the jobs of all three families (plugins found when frozen);
3. ``workbench new P`` then ``QT_QPA_PLATFORM=offscreen workbench gui P`` with the app's startup
   probe (``WORKBENCH_STARTUP_PROBE=1``: it prints its start time and the project it opened, then
   quits) exits 0 having opened P;
4. with ``--jobs``: one small run of each family through the bundle's torch, transformers and
   diffusers (a digits MLP for 2 epochs, a 2-step image from the built-in tiny-sd, 2 SKeB questions
   to the built-in tiny-gpt), the last two in a child process as the GUI runs them: minutes.

``--repeat N`` times ``--version`` and the gui open-and-close N times and reports the medians (what
docs/results-packaging.md records).  Exit code 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "resources" / "configs"
FAMILIES = ("classifier", "llm", "diffusion")
# (config, overrides, isolated): one small run per family; an isolated one runs in a spawned child
# process as the GUI runs heavy jobs (WORKBENCH_ISOLATE=1), which a frozen app must be able to start
SMALL_RUNS = (
    (CONFIGS / "classifier" / "train-mlp.yaml", ["epochs=2"], False),
    (
        CONFIGS / "diffusion" / "generate.yaml",
        ["max_prompts=1", "samples_per_prompt=1", "sampling_steps=2", "prompt_sets=[benign]"],
        True,
    ),
    (CONFIGS / "llm" / "skeb.yaml", ["max_questions=2", "framings=[original]"], True),
)


def _bundle_module():  # packaging/bundle.py, loaded by path (packaging/ is not a package)
    spec = importlib.util.spec_from_file_location("workbench_bundle", ROOT / "packaging/bundle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _version() -> str:
    text = (ROOT / "workbench" / "__init__.py").read_text()
    return text.split('__version__ = "', 1)[1].split('"', 1)[0]


class Checker:
    def __init__(self, exe: Path, scratch: Path) -> None:
        self.exe = exe
        self.scratch = scratch
        self.failures: list[str] = []
        home = scratch / "home"
        home.mkdir()
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "WORKBENCH_PROJECT", "DISPLAY")
            and not k.startswith(("WAYLAND_", "VIRTUAL_ENV"))
        } | {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "HF_HUB_OFFLINE": "1",
            "QT_QPA_PLATFORM": "offscreen",
        }

    def run(
        self, *args: str, timeout: float = 300, **env: str
    ) -> tuple[subprocess.CompletedProcess[str], float]:
        start = time.perf_counter()
        out = subprocess.run(
            [str(self.exe), *args],
            cwd=self.scratch,
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return out, time.perf_counter() - start

    def check(
        self, ok: bool, what: str, out: subprocess.CompletedProcess[str] | None = None
    ) -> bool:
        print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            self.failures.append(what)
            if out is not None:
                print(
                    f"  exit {out.returncode}\n  stdout: {out.stdout[-2000:]}\n  stderr: {out.stderr[-4000:]}"
                )
        return ok

    def version(self) -> float:
        out, seconds = self.run("--version")
        want = f"workbench {_version()}"
        self.check(
            out.returncode == 0 and out.stdout.strip() == want, f"--version prints {want!r}", out
        )
        return seconds

    def registry(self) -> None:
        out, _ = self.run("jobs", "--json")
        try:
            jobs = json.loads(out.stdout)["jobs"]
            names = {j["name"] for j in jobs}
            families = {j["family"] for j in jobs}
        except (ValueError, KeyError, TypeError):
            names, families = set(), set()
        self.check(
            out.returncode == 0 and set(FAMILIES) <= families,
            f"jobs --json lists the {', '.join(FAMILIES)} plugins ({len(names)} jobs)",
            out,
        )

    def new_project(self, name: str) -> Path:
        project = self.scratch / name
        out, _ = self.run("new", str(project))
        self.check(out.returncode == 0, f"new {name}", out)
        return project

    def gui(self, project: Path) -> float:
        out, seconds = self.run("gui", str(project), timeout=180, WORKBENCH_STARTUP_PROBE="1")
        probes = [json.loads(x) for x in out.stdout.splitlines() if "startup_probe_s" in x]
        opened = probes[-1].get("project") if probes else None
        self.check(
            out.returncode == 0 and opened == str(project.resolve()),
            f"gui PATH (offscreen) opened {project.name} and closed, exit 0",
            out,
        )
        return seconds

    def jobs(self, project: Path) -> None:
        for config, overrides, isolated in SMALL_RUNS:
            out, seconds = self.run(
                "run",
                str(config),
                *overrides,
                "--project",
                str(project),
                "--quiet",
                timeout=900,
                WORKBENCH_ISOLATE="1" if isolated else "0",
            )
            done = out.returncode == 0 and "completed" in out.stdout
            where = "in a child process" if isolated else "in process"
            name = f"{config.parent.name}/{config.name}"
            self.check(done, f"run {name} {where} ({seconds:.0f} s)", out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dist", type=Path, default=ROOT / "dist", help="PyInstaller's dist folder"
    )
    parser.add_argument("--jobs", action="store_true", help="also run one small job per family")
    parser.add_argument("--repeat", type=int, default=1, help="time the starts N times (median)")
    parser.add_argument("--json", type=Path, help="write the timings and sizes here")
    args = parser.parse_args(argv)
    bundle = _bundle_module()
    exe = bundle.executable(args.dist)
    if not exe.is_file():
        print(f"FAIL no bundle at {exe}: run packaging/build.sh first")
        return 1
    with tempfile.TemporaryDirectory(prefix="workbench-bundle-check-") as tmp:
        checker = Checker(exe, Path(tmp))
        version_s = [checker.version() for _ in range(args.repeat)]
        checker.registry()
        project = checker.new_project("project")
        gui_s = [checker.gui(project) for _ in range(args.repeat)]
        if args.jobs:
            checker.jobs(checker.new_project("runs"))
    summary = {
        "bundle": str(exe.parent),
        "version_s": [round(s, 2) for s in version_s],
        "version_median_s": round(statistics.median(version_s), 2),
        "gui_open_close_s": [round(s, 2) for s in gui_s],
        "gui_open_close_median_s": round(statistics.median(gui_s), 2),
        "failures": checker.failures,
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if checker.failures else 0


if __name__ == "__main__":
    sys.exit(main())
