"""Fuzz tests (issue 10): random and mutated inputs against the CLI, the validation and the store.

Invariant for every example: the command exits 0, 1 or 2; a failure is one line on stderr; never a
traceback; nothing is written outside the project folder; and a catalogue that passed
``PRAGMA integrity_check`` before the command passes it afterwards (a damaged one is left
byte-for-byte untouched).

Budget: the ``ci`` profile (default, what ``make test`` runs) keeps the module under ~30 s;
``WORKBENCH_FUZZ=large`` selects a profile with many more examples (``WORKBENCH_FUZZ_EXAMPLES``
sets how many per test), for a long run by hand.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit import fixture_jobs as fj
from workbench import cli
from workbench.config import ConfigError, schema_of
from workbench.files import check_name
from workbench.jobs import Engine
from workbench.registry import Registry, get_registry
from workbench.store import Project

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "large",
    max_examples=int(os.environ.get("WORKBENCH_FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = "large" if os.environ.get("WORKBENCH_FUZZ") == "large" else "ci"
FUZZ = settings.get_profile(PROFILE)
EXAMPLES: dict[str, int] = {}  # test name -> examples run (printed with -s)


def noop_job(ctx: Any) -> dict[str, float]:
    """Stands in for a real job's body: the config was validated by the real config class."""
    ctx.metric("x", 1.0, 0)
    return {"done": 1.0}


def fuzz_registry() -> Registry:
    """The fixture jobs plus every real job with its real config, datasets and model kinds, but a
    no-op body (so a config that validates costs milliseconds, not a training)."""
    real = get_registry()
    reg = fj.make_registry()
    for spec in real.jobs.values():
        reg.add_job(dataclasses.replace(spec, entry="tests.unit.test_fuzz:noop_job"))
    reg.model_kinds.update(real.model_kinds)
    reg.datasets.update(real.datasets)
    reg.device_probe = None  # availability is tested on its own; here cuda passes validation
    return reg


REGISTRY = fuzz_registry()


@contextlib.contextmanager
def sandbox() -> Iterator[Path]:
    """A fresh folder per example (hypothesis reuses function-scoped fixtures)."""
    folder = Path(tempfile.mkdtemp(prefix="wbfuzz-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse: a name that looks like an option
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def snapshot(root: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def integrity_ok(catalogue: Path) -> bool:
    try:
        conn = sqlite3.connect(f"file:{catalogue}?mode=ro", uri=True)
        conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
        try:
            return conn.execute("pragma integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()
    except (sqlite3.DatabaseError, UnicodeDecodeError):  # the message of a damaged schema
        return False


def check_outcome(code: int, err: str) -> None:
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    if code != 0:
        assert len(lines) == 1, err
    else:
        assert len(lines) <= 1 and all(ln.startswith("warning:") for ln in lines), err


def check_nothing_outside(box: Path, project: Path, before: dict[Path, tuple[int, int]]) -> None:
    after = snapshot(box)
    changed = {p for p in after if before.get(p) != after[p]}
    outside = {p for p in changed if not p.is_relative_to(project)}
    assert outside == set(), outside


@pytest.fixture(autouse=True)
def _fuzz_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_engine", lambda project: Engine(project, registry=REGISTRY))


# -- strategies --------------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "../../../../elsewhere/x",
            "/tmp/wbfuzz-abs",
            "..",
            ".",
            "a/b",
            "cuda",
            "cpu",
            "/dev/zero",
            "digits",
            "image-folder",
            "",
            " ",
            "\x00",
            "1e9",
            "-5",
            "0",
        ]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
# real jobs (no-op bodies) and the fixture jobs that end by themselves (test.block and the gate
# jobs wait for a test to release them, test.spin for a cancel: not inputs a fuzzer should pick)
JOB_NAMES = sorted(
    name
    for name in REGISTRY.jobs
    if not name.startswith("test.") or name in ("test.steps", "test.exit", "test.naming")
)


def _default_config(job: str) -> dict[str, Any]:
    return {f.name: f.default for f in schema_of(REGISTRY.jobs[job].config)}


@st.composite
def run_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A run file: a real job's defaults with some fields mutated, or random structure."""
    job = draw(st.sampled_from(JOB_NAMES + ["nope", ""]))
    config: Any = _default_config(job) if job in REGISTRY.jobs else {}
    if isinstance(config, dict) and config:
        for name in draw(st.lists(st.sampled_from(sorted(config)), max_size=3, unique=True)):
            config[name] = draw(VALUES)
    if draw(st.booleans()):
        config[draw(st.text(max_size=10))] = draw(VALUES)
    request: dict[str, Any] = {
        "job": job if draw(st.integers(0, 9)) else draw(VALUES),
        "seed": draw(st.one_of(st.integers(0, 2**32 - 1), VALUES)),
        "dataset": draw(st.sampled_from([None, "digits", "toy", "image-folder", "nope"])),
        "model": draw(st.sampled_from([None, "digits-mlp", "/no/such", "../../x"])),
        "config": config if draw(st.integers(0, 9)) else draw(VALUES),
    }
    if draw(st.integers(0, 9)) == 0:
        request[draw(st.text(max_size=6))] = draw(VALUES)
    return request


# -- random and mutated run configs against `workbench run` ------------------------------------


@FUZZ
@given(request=run_requests(), as_yaml=st.booleans())
def test_fuzz_run_configs(request: dict[str, Any], as_yaml: bool) -> None:
    EXAMPLES["run_configs"] = EXAMPLES.get("run_configs", 0) + 1
    with sandbox() as box:
        project = box / "project"
        config = box / ("run.yaml" if as_yaml else "run.json")
        if as_yaml:
            import yaml

            try:
                config.write_text(yaml.safe_dump(request))
            except (yaml.YAMLError, UnicodeEncodeError):
                return
        else:
            try:
                config.write_text(json.dumps(request))
            except (ValueError, UnicodeEncodeError):
                return
        before = snapshot(box)
        code, _, err = run_cli("run", str(config), "--project", str(project), "--quiet")
        check_outcome(code, err)
        check_nothing_outside(box, project, before)
        if (project / "workbench.sqlite").exists():
            assert integrity_ok(project / "workbench.sqlite")


@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".json", ".yaml", ""]))
def test_fuzz_run_file_bytes(data: bytes, suffix: str) -> None:
    EXAMPLES["run_file_bytes"] = EXAMPLES.get("run_file_bytes", 0) + 1
    with sandbox() as box:
        project = box / "project"
        config = box / f"run{suffix}"
        config.write_bytes(data)
        before = snapshot(box)
        code, _, err = run_cli("run", str(config), "--project", str(project), "--quiet")
        check_outcome(code, err)
        check_nothing_outside(box, project, before)


@FUZZ
@given(job=st.sampled_from(sorted(get_registry().jobs)), data=st.data())
def test_fuzz_validation_of_every_real_job(job: str, data: st.DataObject) -> None:
    """Mutated configs of every registered job: a ConfigError (one line) or a valid config."""
    EXAMPLES["validation"] = EXAMPLES.get("validation", 0) + 1
    spec = get_registry().jobs[job]
    config = _default_config(job)
    for name in data.draw(st.lists(st.sampled_from(sorted(config)), max_size=4, unique=True)):
        config[name] = data.draw(VALUES)
    try:
        spec.validate(config)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc)


# -- random bytes, truncations and page damage against opening a catalogue ----------------------


_BASE: list[bytes] = []


def base_catalogue() -> bytes:
    """A catalogue with two completed runs, their metrics, artifacts and logs, and a queued run
    (built once per session; kept out of hypothesis' reprs)."""
    if _BASE:
        return _BASE[0]
    with sandbox() as box:
        _BASE.append(_build_base(box / "project"))
    return _BASE[0]


def _build_base(root: Path) -> bytes:
    project = Project.create(root)
    engine = Engine(project, registry=REGISTRY)
    for steps in (3, 2):
        engine.wait(engine.submit("test.steps", {"steps": steps}), 30)
    project.create_run(job="j", kind="train", family="f", method="m", config={}, seed=0)
    engine.shutdown()
    project.close()
    return (root / "workbench.sqlite").read_bytes()


@st.composite
def damaged_catalogues(draw: st.DrawFn, base: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "pages", "bytes", "random", "header"]))
    data = bytearray(base)
    page = 4096
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data)))])
    if kind == "random":
        return draw(st.binary(max_size=9000))
    if kind == "header":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, 99))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "pages":
        pages = len(data) // page
        for _ in range(draw(st.integers(1, 3))):
            n = draw(st.integers(1, max(1, pages - 1)))
            fill = draw(st.sampled_from([b"\x00", b"\xff", b"\xab"]))
            start = n * page + draw(st.integers(0, page - 64))
            end = start + draw(st.integers(1, page))
            data[start:end] = fill * (min(end, len(data)) - start)
        return bytes(data)
    for _ in range(draw(st.integers(1, 20))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@FUZZ
@given(data=st.data())
def test_fuzz_damaged_catalogues(data: st.DataObject) -> None:
    EXAMPLES["catalogues"] = EXAMPLES.get("catalogues", 0) + 1
    damaged = data.draw(damaged_catalogues(base_catalogue()))
    with sandbox() as box:
        project = box / "project"
        project.mkdir()
        catalogue = project / "workbench.sqlite"
        catalogue.write_bytes(damaged)
        was_ok = integrity_ok(catalogue)
        original = catalogue.read_bytes()  # integrity_check may not write, but be exact
        config = box / "run.json"
        config.write_text(json.dumps({"job": "test.steps", "config": {"steps": 2}}))
        before = snapshot(box)
        for args in (
            ("runs", "--project", str(project)),
            ("runs", "--project", str(project), "--json"),
            ("show", "1", "--project", str(project)),
            ("export", "1", "--project", str(project)),
            ("run", str(config), "--project", str(project), "--quiet"),
            ("resume", "2", "--project", str(project)),
        ):
            code, _, err = run_cli(*args)
            check_outcome(code, err)
        check_nothing_outside(box, project, before)
        if was_ok:
            assert integrity_ok(catalogue)
        else:
            assert catalogue.read_bytes() == original, "a damaged catalogue was written"


# -- random strings as names and paths ---------------------------------------------------------

NAMES = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="./\\:~ \x00abc-_", max_size=12),
    st.sampled_from(["..", ".", "../x", "/abs", "a/../../b", "~", "c:\\x", "x" * 300, "con"]),
)


@FUZZ
@given(name=NAMES)
def test_fuzz_model_names(name: str) -> None:
    """A random model_name: refused with a ConfigError, or the model lands in models/<name>."""
    EXAMPLES["names"] = EXAMPLES.get("names", 0) + 1
    with sandbox() as box:
        root = box / "project"
        project = Project.create(root)
        engine = Engine(project, registry=REGISTRY)
        before = snapshot(box)
        try:
            run_id = engine.submit("test.naming", {"key": name})
        except ConfigError as exc:
            assert "\n" not in str(exc)
        else:
            status = engine.wait(run_id, 30)
            try:
                check_name(name)
                plain = True
            except ValueError:
                plain = False
            assert status == ("completed" if plain else "failed"), (name, status)
            if plain:
                assert (root / "models" / name / "config.json").is_file()
        engine.shutdown()
        project.close()
        check_nothing_outside(box, root, before)
        assert integrity_ok(root / "workbench.sqlite")


@FUZZ
@given(name=NAMES, path=NAMES)
def test_fuzz_cli_names_and_paths(name: str, path: str) -> None:
    """Random strings as the names and paths of new, add-model, add-dataset, show and resume."""
    EXAMPLES["cli_names"] = EXAMPLES.get("cli_names", 0) + 1
    if "\x00" in name + path:  # argv cannot carry NUL
        name, path = name.replace("\x00", ""), path.replace("\x00", "")
    with sandbox() as box:
        root = box / "project"
        Project.create(root).close()
        cwd = os.getcwd()
        os.chdir(box)  # relative paths land in the sandbox
        try:
            before = snapshot(box)
            for args in (
                ("add-model", name, path, "--project", str(root)),
                ("add-dataset", name, path, "--project", str(root)),
                ("add-dataset", name, path, "--kind", name or "x", "--project", str(root)),
                ("show", name, "--project", str(root)),
                ("resume", path, "--project", str(root)),
            ):
                code, _, err = run_cli(*args)
                check_outcome(code, err)
            check_nothing_outside(box, root, before)
            relative = Path(path.lstrip("/\\~") or "p")
            if ".." not in relative.parts:  # `new` makes what it is told: keep it in the sandbox
                code, _, err = run_cli("new", str(box / "new" / relative))
                check_outcome(code, err)
        finally:
            os.chdir(cwd)
        assert integrity_ok(root / "workbench.sqlite")


@pytest.fixture(scope="module", autouse=True)
def _report_examples() -> Iterator[None]:
    yield
    print(f"\nfuzz profile {PROFILE} (max_examples={FUZZ.max_examples}): examples run {EXAMPLES}")
