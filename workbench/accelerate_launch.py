"""Multi-GPU runs through ``accelerate launch`` (issue 18 part 4): the command, the ranks' roles.

A run asks for GPUs with its config's ``gpus`` field (the LLM unlearning jobs have one).
``workbench run CONFIG gpus=N`` (or ``--gpus N``) with N > 1 re-executes itself as
:func:`job_command` builds it::

    python -m accelerate.commands.launch --multi_gpu --num_processes N --num_machines 1 \\
        -m workbench.cli run CONFIG ... --project P

(the module form, so it does not need the ``accelerate`` script on ``PATH``), with
:data:`CHILD_ENV` set so that the launched processes run the job instead of launching again.
accelerate (torchrun underneath) starts N processes with ``RANK`` / ``WORLD_SIZE`` /
``LOCAL_RANK``; :func:`launch_rank` reads them.

- Rank 0 submits and records the run in the project as a one-process run would (the SQLite
  catalogue has one writer).
- Every other rank runs the same job in a throw-away project (:func:`scratch_project`, a
  temporary folder) that knows the real project's model and dataset by the same names; its
  records and files are deleted when it ends.
- The training loop (:mod:`backends.llm.methods.common`) wraps the model in DDP through
  ``accelerator.prepare_model`` and gives each rank its shard of every batch; DDP averages the
  gradients. Nothing here is a hand-written DDP.

No torch import here (the ``workbench`` layer never imports it): the machine's GPU count comes
from :data:`GPU_COUNT_PROBE`, a function of the backends resolved by name.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

CHILD_ENV = "WORKBENCH_ACCELERATE_CHILD"  # set in the launched processes: run, do not relaunch
GPU_COUNT_PROBE = "backends.common.devices:gpu_count"
LAUNCH_MODULE = "accelerate.commands.launch"
LAUNCH_STOP_SECONDS = 30.0  # after Ctrl-C, how long the launched processes get to stop
MIXED_PRECISION = ("no", "fp16", "bf16", "fp8")  # accelerate launch --mixed_precision choices
# the launcher's rank variables: torchrun's, then MPI's (accelerate reads the same ones)
RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
WORLD_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def gpu_count() -> int:
    """The number of CUDA GPUs this machine has (0 without torch or CUDA)."""
    from workbench.registry import resolve_entry

    try:
        return int(resolve_entry(GPU_COUNT_PROBE)())
    except ImportError:
        return 0


def check_gpus(gpus: int, available: int | None = None, *, field: str = "gpus") -> None:
    """Raise ``ValueError`` naming ``field`` unless ``gpus`` GPUs can be had here.

    ``available`` is the machine's GPU count (``None``: ask :func:`gpu_count`, which needs torch
    only when ``gpus`` > 1). One GPU (or the CPU) is always possible: the ``device`` field
    says which."""
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f"config field {field!r}: must be a whole number >= 1, got {gpus!r}")
    if gpus == 1:
        return
    have = gpu_count() if available is None else available
    if have == 0:
        raise ValueError(
            f"config field {field!r}: {gpus} GPUs were asked for but this machine has no usable "
            f"CUDA GPU; set {field}=1"
        )
    if gpus > have:
        raise ValueError(
            f"config field {field!r}: {gpus} GPUs were asked for but this machine has {have}; "
            f"set {field} to at most {have}"
        )


def job_command(
    inner: list[str],
    gpus: int,
    *,
    python: str = sys.executable,
    main_port: int | None = None,
    mixed_precision: str | None = None,
    available: int | None = None,
) -> list[str]:
    """The command that runs ``inner`` (a module and its arguments, e.g.
    ``["workbench.cli", "run", CFG, "--project", P]``) on ``gpus`` GPUs.

    One GPU: ``[python, "-m", *inner]``. More: ``python -m accelerate.commands.launch
    --multi_gpu --num_processes N --num_machines 1 [--main_process_port PORT]
    [--mixed_precision X] -m *inner``. ``ValueError`` for ``gpus`` < 1, for more GPUs than the
    machine has (``available``, else :func:`gpu_count`), for an empty ``inner``, a port outside
    1..65535 or an unknown precision."""
    if not inner:
        raise ValueError("job_command needs the module to run (inner is empty)")
    check_gpus(gpus, available)
    if gpus == 1:
        return [python, "-m", *inner]
    if getattr(sys, "frozen", False):  # the desktop bundle: its executable is no Python
        raise ValueError(
            "gpus: runs on several GPUs need a Python install with accelerate; the desktop "
            "bundle cannot start `accelerate launch`. Run it from a source install "
            "(`make install`, then `.venv/bin/workbench run ... gpus=N`) or set gpus to 1"
        )
    cmd = [python, "-m", LAUNCH_MODULE, "--multi_gpu", "--num_processes", str(gpus)]
    cmd += ["--num_machines", "1"]
    if main_port is not None:
        if isinstance(main_port, bool) or not 0 < main_port < 65536:
            raise ValueError(f"main_port must be a TCP port (1..65535), got {main_port!r}")
        cmd += ["--main_process_port", str(main_port)]
    if mixed_precision is not None:
        if mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, "
                f"got {mixed_precision!r}"
            )
        cmd += ["--mixed_precision", mixed_precision]
    return [*cmd, "-m", *inner]


def _env_int(names: Sequence[str], default: int) -> int:
    for name in names:
        value = os.environ.get(name, "")
        if value.strip().lstrip("-").isdigit():
            return int(value)
    return default


def launch_rank() -> tuple[int, int]:
    """``(rank, world size)`` of this process in a launch (``(0, 1)`` outside one)."""
    return _env_int(RANK_VARS, 0), max(1, _env_int(WORLD_VARS, 1))


def is_launched_child() -> bool:
    """True inside the processes a multi-GPU ``workbench run`` launched (they must not launch
    again) or any multi-process launch (``WORLD_SIZE`` > 1)."""
    return os.environ.get(CHILD_ENV) == "1" or launch_rank()[1] > 1


def without_gpus_flag(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--gpus N`` / ``--gpus=N`` (the launched processes get the count as the
    ``gpus=N`` config override instead, so that the recorded run says how it ran)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--gpus":
            skip = True
        elif not arg.startswith("--gpus="):
            out.append(arg)
    return out


def requested_gpus(request: Any) -> int:
    """The ``gpus`` a run request asks for (1 when its job has no such field, or when its config
    does not validate: the ordinary submit then reports why)."""
    from workbench.config import ConfigError
    from workbench.registry import get_registry

    try:
        spec = get_registry().job(request.job)
        typed = spec.validate(spec.migrate_config(request.config, request.config_version))
    except (LookupError, ConfigError, ValueError):
        return 1
    gpus = getattr(typed, "gpus", 1)
    return gpus if isinstance(gpus, int) else 1


def check_request(project: Any, request: Any) -> None:
    """Every submit-time check of ``request`` against ``project`` (config, devices, GPUs, model,
    dataset, the job's own check) without recording a run: what the launching process runs so
    that bad input is one error before any process starts. Raises what ``Engine.submit`` does."""
    from workbench.jobs import Engine

    engine = Engine(project)
    try:
        spec = engine.registry.job(request.job)
        typed = spec.validate(spec.migrate_config(request.config, request.config_version))
        engine.check_devices(typed)
        model = engine.resolve_model(request.model, spec)
        dataset = engine.resolve_dataset(request.dataset, spec)
        engine.check_inputs(spec, typed, model, dataset)
    finally:
        engine.shutdown()


def launch(inner: list[str], gpus: int, *, main_port: int | None = None) -> int:
    """Run ``inner`` through :func:`job_command` with :data:`CHILD_ENV` set; wait, and return
    its exit code. The command is printed to stderr first (what to rerun by hand). On Ctrl-C
    (which the launched processes get too) it waits up to :data:`LAUNCH_STOP_SECONDS` for them
    to stop, then kills the launcher, and re-raises."""
    cmd = job_command(inner, gpus, main_port=main_port)
    sys.stderr.write("launching: " + " ".join(cmd) + "\n")
    sys.stderr.flush()
    env = {**os.environ, CHILD_ENV: "1"}
    child = subprocess.Popen(cmd, env=env)
    try:
        return child.wait()
    except KeyboardInterrupt:  # the launched processes got the same Ctrl-C: let them stop
        try:
            child.wait(timeout=LAUNCH_STOP_SECONDS)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            child.kill()
        raise


@contextlib.contextmanager
def scratch_project(
    real_root: str | os.PathLike[str], model: str | None, dataset: str | None
) -> Iterator[Any]:
    """A throw-away project for a rank other than 0: a temporary folder (deleted on exit) with
    the real project's ``model`` and ``dataset`` entries copied under the same names (pointing
    at the real files), so the same request resolves to the same inputs.

    The real catalogue is only read, through a read-only connection (no migration, no
    interrupted-run marking: rank 0 owns it)."""
    from workbench.store import CATALOGUE, Project

    with tempfile.TemporaryDirectory(prefix="workbench-rank-") as tmp:
        scratch = Project.create(Path(tmp) / "project")
        try:
            root = Path(real_root)
            if (root / CATALOGUE).is_file():
                real = Project(root)
                real.read_only_reason = "a launched rank other than 0 only reads the project"
                try:
                    row = real.model(model) if model else None
                    if row is not None:
                        scratch.add_model(
                            row["name"],
                            row["family"],
                            row["kind"],
                            str(real.abspath(row["path"])) if row["path"] else "",
                            builtin=bool(row["builtin"]),
                            meta=row["meta"],
                        )
                    for ds in real.datasets() if dataset else []:
                        if ds["name"] == dataset:
                            scratch.add_dataset(
                                ds["name"],
                                ds["family"],
                                ds["kind"],
                                str(real.abspath(ds["path"])) if ds["path"] else "",
                                builtin=bool(ds["builtin"]),
                                meta=ds["meta"],
                            )
                finally:
                    real.close()
            yield scratch
        finally:
            scratch.close()
