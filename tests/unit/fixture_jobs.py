"""Test-only jobs for the engine tests, registered in a private :class:`Registry` (never the app's).

Jobs coordinate with the tests through :class:`Gate` objects (``threading.Event`` pairs) looked up by
the ``key`` config field, so tests synchronise on events instead of sleeping.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from workbench.artifacts import Table, Text
from workbench.config import param
from workbench.registry import DatasetSpec, JobSpec, Registry

GATE_TIMEOUT = 30.0


class Gate:
    """``started`` is set by the job when it begins; the job then waits for ``release``."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()


GATES: dict[str, Gate] = {}
RAN: set[str] = set()  # keys of runs whose job function was entered
TIMELINE: list[tuple[str, str]] = []  # ("start" | "end", key), in the order things happened
_timeline_lock = threading.Lock()


def _mark(event: str, key: str) -> None:
    with _timeline_lock:
        TIMELINE.append((event, key))


def reset() -> None:
    GATES.clear()
    RAN.clear()
    with _timeline_lock:
        TIMELINE.clear()


@dataclass
class StepsConfig:
    """Config shared by the fixture jobs."""

    steps: int = param(5, "Steps to run.", range=(0, 1_000_000))
    fail_at: int = param(-1, "Raise at this step (-1: never).", range=(-1, 1_000_000))
    key: str = param("", "Name of the run for the test's bookkeeping (and of its Gate).")


@dataclass
class HoldConfig(StepsConfig):
    """The counter job's config with a step to hold at (a gate that works across processes)."""

    hold_at: int = param(
        -1, "Wait for a cancel before this step, unless resuming (-1: never).", range=(-1, 10**6)
    )


def steps_job(ctx: Any) -> dict[str, float]:
    """Two metrics per step, an optional failure, two artifacts and a final metric."""
    cfg: StepsConfig = ctx.config
    RAN.add(cfg.key)
    for step in range(cfg.steps):
        ctx.check()
        if step == cfg.fail_at:
            raise RuntimeError(f"fixture failure at step {step}")
        ctx.metric("loss", 1.0 / (step + 1), step)
        ctx.metric("acc", step / cfg.steps, step)
        ctx.progress(step + 1, cfg.steps)
    ctx.log("all steps done")
    ctx.artifact("notes", Text("all steps done", title="Notes"))
    ctx.artifact("table", Table(["step", "loss"], [[0, 1.0], [1, 0.5]]))
    return {"score": 0.5}


def gate_job(ctx: Any) -> None:
    """Mark start, wait until the test releases the gate, mark end."""
    key = ctx.config.key
    RAN.add(key)
    gate = GATES[key]
    _mark("start", key)
    gate.started.set()
    if not gate.release.wait(GATE_TIMEOUT):
        raise TimeoutError(f"gate {key} was never released")
    _mark("end", key)


def spin_job(ctx: Any) -> None:
    """Loop until cancelled (fails if nobody cancels it within a bounded number of steps)."""
    RAN.add(ctx.config.key)
    for step in range(100_000):
        ctx.check()
        ctx.metric("tick", step, step)
    raise RuntimeError("spin_job was never cancelled")


def wait_cancel_job(ctx: Any) -> None:
    """Reports one metric, then waits on its cancel token (works in any process: a remote run's
    token is set by its cancel file or a signal); fails if nobody cancels it."""
    ctx.metric("alive", 1.0, 0)
    ctx.log("waiting for a cancel")
    ctx.flush()
    if not ctx.cancel_token.wait(GATE_TIMEOUT * 2):
        raise TimeoutError("wait_cancel_job was never cancelled")
    ctx.check()


def counter_job(ctx: Any) -> dict[str, float]:
    """A resumable job: sums step**2, checkpointing the running total (JSON) after every step."""
    cfg: StepsConfig = ctx.config
    RAN.add(cfg.key)
    start, total = 0, 0.0
    if ctx.resume is not None:
        state = json.loads(Path(ctx.resume.path).read_text())
        start, total = state["step"], state["total"]
        assert start == ctx.resume.step
    ckpt = ctx.checkpoint_dir / "state.json"
    for step in range(start, cfg.steps):
        ctx.check()
        while (
            step == getattr(cfg, "hold_at", -1) and ctx.resume is None
        ):  # polls: it may run in another process
            ctx.check()
            time.sleep(0.005)
        total += step * step
        ctx.metric("total", total, step + 1)
        ckpt.write_text(json.dumps({"step": step + 1, "total": total}))
        ctx.record_checkpoint(ckpt, step + 1)
    return {"final_total": total}


def pid_job(ctx: Any) -> dict[str, float]:
    """Reports the process it runs in, then ``steps`` metrics (for the isolated-run tests)."""
    ctx.metric("pid", float(os.getpid()), 0)
    for step in range(ctx.config.steps):
        ctx.metric("value", float(step * step), step)
    ctx.log("pid job done")
    return {"steps_done": float(ctx.config.steps)}


def exit_job(ctx: Any) -> None:
    """Records a metric, then calls ``sys.exit`` (a run that did not complete)."""
    ctx.metric("before_exit", 1.0, 0)
    sys.exit(3)


def many_metrics_job(ctx: Any) -> None:
    """Reports ``steps`` metrics as fast as it can (for the batching test)."""
    for step in range(ctx.config.steps):
        ctx.metric("m", float(step), step)


def block_job(ctx: Any) -> None:
    """Reports one metric, then blocks forever (the interrupted-run test kills its process).

    The metric's event can reach the parent before the metric is written (events travel as soon
    as they happen; rows are written in batches), so the job then reports progress 1.0, which is
    emitted only after a flush: a test that kills the job once it sees that event knows the metric
    is in the catalogue."""
    ctx.metric("alive", 1.0, 0)
    ctx.flush()
    ctx.progress(1.0, text="alive; blocking")
    threading.Event().wait()


def naming_job(ctx: Any) -> None:
    """Trusts its config for a model name (declares no ``name=True``): the engine must refuse a
    name that would leave the project at ``ctx.unique_model_name``."""
    name = ctx.unique_model_name(ctx.config.key)
    folder = ctx.project.root / "models" / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    ctx.register_model(name, "test.kind", folder)


# -- a config that renamed a field in version 2 (the config-version tests) ---------------------


@dataclass
class WidthConfigV1:
    """Version 1: the resumable counter with a ``width``."""

    steps: int = param(4, "Steps to run.", range=(0, 1000))
    fail_at: int = param(-1, "Raise at this step (-1: never).", range=(-1, 1000))
    width: int = param(3, "How wide (renamed 'size' in version 2).", range=(1, 100))


@dataclass
class SizeConfigV2:
    """Version 2: ``width`` is now ``size``."""

    CONFIG_VERSION: ClassVar[int] = 2
    steps: int = param(4, "Steps to run.", range=(0, 1000))
    fail_at: int = param(-1, "Raise at this step (-1: never).", range=(-1, 1000))
    size: int = param(3, "How wide.", range=(1, 100))


def migrate_width(version: int, config: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: ``width`` became ``size``."""
    if version == 1 and "width" in config:
        config["size"] = config.pop("width")
    return config


def sized_job(ctx: Any) -> dict[str, float]:
    """Checkpoints its step; reports the width (v1) or size (v2) it got, and fails at
    ``fail_at`` unless resuming."""
    cfg = ctx.config
    start = ctx.resume.step if ctx.resume is not None else 0
    ckpt = ctx.checkpoint_dir / "state.json"
    for step in range(start, cfg.steps):
        ctx.check()
        if step == cfg.fail_at and ctx.resume is None:
            raise RuntimeError(f"fixture failure at step {step}")
        ckpt.write_text(json.dumps({"step": step + 1}))
        ctx.record_checkpoint(ckpt, step + 1)
    return {"size": float(getattr(cfg, "size", getattr(cfg, "width", -1)))}


def sized_registry(version: int) -> Registry:
    """A registry with ``test.sized`` at config ``version`` 1 (``width``: the old app) or 2
    (``size``, with the migration from 1: the new app)."""
    reg = Registry()
    config: type = WidthConfigV1 if version == 1 else SizeConfigV2
    reg.add_job(
        JobSpec(
            name="test.sized",
            kind="experiment",
            family="test",
            title="sized",
            description="fixture job sized_job",
            config=config,
            entry="tests.unit.fixture_jobs:sized_job",
            model_heavy=False,
            supports_resume=True,
            migrate=None if version == 1 else "tests.unit.fixture_jobs:migrate_width",
        )
    )
    return reg


def _job(
    name: str, fn: str, *, heavy: bool = True, resume: bool = False, config: type = StepsConfig
) -> JobSpec:
    return JobSpec(
        name=name,
        kind="experiment",
        family="test",
        title=name,
        description=f"fixture job {fn}",
        config=config,
        entry=f"tests.unit.fixture_jobs:{fn}",
        model_heavy=heavy,
        supports_resume=resume,
    )


def make_registry() -> Registry:
    """A private registry with every fixture job and one built-in dataset, ``toy``."""
    reg = Registry()
    reg.add_job(_job("test.steps", "steps_job", heavy=False))
    reg.add_job(_job("test.heavy_gate", "gate_job", heavy=True))
    reg.add_job(_job("test.light_gate", "gate_job", heavy=False))
    reg.add_job(_job("test.spin", "spin_job", heavy=False))
    reg.add_job(_job("test.wait_cancel", "wait_cancel_job", heavy=True))
    reg.add_job(_job("test.counter", "counter_job", heavy=False, resume=True))
    reg.add_job(
        _job("test.counter_hold", "counter_job", heavy=False, resume=True, config=HoldConfig)
    )
    reg.add_job(_job("test.hold", "counter_job", heavy=False, config=HoldConfig))
    reg.add_job(
        _job("test.heavy_counter", "counter_job", heavy=True, resume=True, config=HoldConfig)
    )
    reg.add_job(_job("test.exit", "exit_job", heavy=False))
    reg.add_job(_job("test.pid", "pid_job", heavy=False))
    reg.add_job(_job("test.many_metrics", "many_metrics_job", heavy=False))
    reg.add_job(_job("test.block", "block_job", heavy=False))
    reg.add_job(_job("test.block_resumable", "block_job", heavy=False, resume=True))
    reg.add_job(_job("test.naming", "naming_job", heavy=False))
    reg.add_dataset(
        DatasetSpec(name="toy", family="test", title="Toy", description="A toy dataset.")
    )
    return reg
