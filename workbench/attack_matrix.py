"""The attack matrix (issue 18 part 1): every chosen attack on every chosen unlearned run, as one
parent run with one child run per (run, attack).

- **Which attacks apply.**  An attack job declares the model kinds (or whole families) it can run
  on (:attr:`JobSpec.applies_to <workbench.registry.JobSpec.applies_to>`) and its headline number
  (:class:`~workbench.registry.Headline`: metric, direction, interval, reference), one line per
  attack in its family's plugin (:func:`declare_attack`).  :func:`applicable` is the one rule: an
  attack is offered for a run only when the model the run produced is of a kind it names; the
  matrix never plans a cell that cannot run.
- **Children.**  Each cell is a :class:`~workbench.request.RunRequest` for the attack job exactly
  as a user would submit it alone: the run's model (the one it produced) and dataset, the attack's
  default config plus the matrix's ``overrides``, and the matrix's seed.  The engine runs it as a
  child run (``parent_id``) with :meth:`Engine.run_child <workbench.jobs.Engine.run_child>`, so it
  is recorded, validated and seeded as a standalone run is.
- **Recording.**  The parent records ``run<id>/<attack>/<metric>`` (the headline's metric name
  with its ``{field}`` filled from the child's config: :func:`headline_metric`; plus ``_low`` /
  ``_high`` and ``_reference`` where the child recorded them), and a ``leakage_matrix`` artifact
  (:class:`~workbench.leakage_matrix.LeakageMatrix`) with a long-form table.

Attacks are reached through the registry only; this module imports no backend.
"""

from __future__ import annotations

import dataclasses
import math
import string
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.config import ConfigError, param, to_dict
from workbench.registry import Headline, JobSpec, Registry, RegistryError
from workbench.request import RunRequest

if TYPE_CHECKING:
    from workbench.jobs import JobContext
    from workbench.store import Project

__all__ = [
    "AttackMatrixConfig",
    "Cell",
    "MATRIX_JOB",
    "applicable",
    "attack_jobs",
    "declare_attack",
    "headline_metric",
    "headline_of",
    "plan",
    "register",
    "run_matrix",
]

MATRIX_JOB = "attack_matrix"
CROSS_FAMILY = "any"  # the matrix's family: it takes runs of every family


def declare_attack(
    registry: Registry, job: str, applies_to: Iterable[str], headline: Headline
) -> JobSpec:
    """Give the registered attack ``job`` the model kinds it applies to and its headline (one
    line per attack in a family's plugin, after the job is registered)."""
    spec = registry.job(job)
    if spec.kind != "attack":
        raise RegistryError(f"job {job!r} is a {spec.kind} job, not an attack")
    new = dataclasses.replace(spec, applies_to=tuple(applies_to), headline=headline)
    registry.jobs[spec.name] = new
    return new


def applicable(spec: JobSpec, model_kind: str) -> bool:
    """Whether attack ``spec`` can run on a model of kind ``model_kind`` (``classifier.mlp``):
    it names the kind, or its family (the part before the first dot)."""
    family = model_kind.split(".", 1)[0]
    return spec.headline is not None and any(a in (model_kind, family) for a in spec.applies_to)


def attack_jobs(registry: Registry, model_kind: str | None = None) -> list[JobSpec]:
    """The attacks the matrix can run (those with a headline), sorted by name; only those that
    apply to ``model_kind`` when it is given."""
    out = [
        s
        for s in registry.jobs.values()
        if s.kind == "attack" and s.headline is not None and s.applies_to
    ]
    if model_kind is not None:
        out = [s for s in out if applicable(s, model_kind)]
    return sorted(out, key=lambda s: s.name)


@dataclass
class AttackMatrixConfig:
    """Every chosen attack on every chosen unlearned run (one child run per pair)."""

    runs: list[int] = param(
        [],
        "Ids of finished unlearning runs (any family), comma separated: the matrix's rows.",
        range=(1, None),
        length=(0, 1000),
    )
    attacks: list[str] = param(
        [],
        "Attack jobs (e.g. classifier.attack.umia), comma separated: the columns. Empty: every "
        "attack that applies to at least one of the runs' models. A run gets only the attacks "
        "that apply to its model's kind.",
    )
    overrides: list[str] = param(
        [],
        "Attack settings that differ from their defaults, as job:field=value "
        "(e.g. classifier.attack.mia_nn:references=4), comma separated.",
    )


@dataclass(frozen=True)
class Cell:
    """One planned child: ``run`` (the unlearned run) x ``attack`` (its job), as a request."""

    run: int
    label: str
    model_kind: str
    attack: str
    request: RunRequest


def _produced_model(project: Project, run_id: int) -> dict[str, Any] | None:
    """The (last) model run ``run_id`` registered in the project."""
    rows = [m for m in project.models() if m.get("source_run") == run_id]
    return rows[-1] if rows else None


def _row_label(record: Any) -> str:
    return f"run {record.id} · {record.method or record.job}"


def parse_overrides(items: Iterable[str], attacks: Iterable[str]) -> dict[str, dict[str, str]]:
    """``["job:field=value", ...]`` as ``{job: {field: value}}``; each names a chosen attack."""
    known = set(attacks)
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        job, colon, name = key.strip().rpartition(":")
        if not sep or not colon or not name.strip() or not job:
            raise ConfigError(
                f"override {item!r} is not of the form job:field=value "
                "(e.g. classifier.attack.mia_nn:references=4)",
                "overrides",
            )
        if job not in known:
            raise ConfigError(
                f"override {item!r} names {job!r}, which is not among the matrix's attacks "
                f"({', '.join(sorted(known)) or 'none'})",
                "overrides",
            )
        out.setdefault(job, {})[name.strip()] = value.strip()
    return out


def plan(
    project: Project, registry: Registry, cfg: AttackMatrixConfig, seed: int
) -> tuple[list[Cell], list[str]]:
    """The matrix's cells (rows in the order given, attacks by name) and notes on what was left
    out.  ``ConfigError`` (naming the field) for a run that is not a finished unlearning run with
    a model, an unknown attack, or an attack that applies to none of the runs."""
    if not cfg.runs:
        raise ConfigError("choose at least one unlearned run", "runs")
    rows: list[tuple[Any, dict[str, Any]]] = []
    for run_id in dict.fromkeys(cfg.runs):
        try:
            record = project.run(run_id)
        except Exception:
            raise ConfigError(f"run {run_id} is not in this project", "runs") from None
        if record.kind != "unlearn":
            raise ConfigError(f"run {run_id} is a {record.job} run, not an unlearning run", "runs")
        if record.status != "completed":
            raise ConfigError(
                f"run {run_id} is {record.status}; only a completed unlearning run has a model "
                "to attack",
                "runs",
            )
        model = _produced_model(project, run_id)
        if model is None:
            raise ConfigError(f"run {run_id} registered no model to attack", "runs")
        rows.append((record, model))
    chosen: list[JobSpec] = []
    for name in dict.fromkeys(cfg.attacks):
        spec = registry.find_job(name)
        if spec is None or spec.kind != "attack" or spec.headline is None:
            known = ", ".join(s.name for s in attack_jobs(registry)) or "none"
            raise ConfigError(
                f"{name!r} is not an attack the matrix can run; known: {known}", "attacks"
            )
        chosen.append(spec)
    if not chosen:  # every attack that applies to one of the runs
        kinds = {m["kind"] for _, m in rows}
        chosen = [s for s in attack_jobs(registry) if any(applicable(s, k) for k in kinds)]
    notes: list[str] = []
    for spec in chosen:
        if not any(applicable(spec, m["kind"]) for _, m in rows):
            have = ", ".join(sorted({m["kind"] for _, m in rows}))
            raise ConfigError(
                f"attack {spec.name} applies to {', '.join(spec.applies_to)}, not to the runs' "
                f"models ({have})",
                "attacks",
            )
    overrides = parse_overrides(cfg.overrides, [s.name for s in chosen])
    cells: list[Cell] = []
    for record, model in rows:
        for spec in sorted(chosen, key=lambda s: s.name):
            if not applicable(spec, model["kind"]):
                notes.append(
                    f"{spec.name} does not apply to run {record.id}'s {model['kind']} model"
                )
                continue
            config = to_dict(spec.validate(overrides.get(spec.name, {})))
            request = RunRequest(
                spec.name,
                seed,
                model["name"],
                record.dataset,
                config,
                spec.config_version,
            )
            cells.append(Cell(record.id, _row_label(record), model["kind"], spec.name, request))
    return cells, notes


def _filled(template: str, config: Mapping[str, Any]) -> str:
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    return template.format(**{f: config.get(f, "") for f in fields}) if fields else template


def headline_metric(spec: JobSpec, config: Mapping[str, Any]) -> str:
    """The name the child records its headline under: the headline's metric with ``{field}``
    filled from the child's config (``erased/pooled/{metric}`` ->
    ``erased/pooled/concept_rate/explicit``)."""
    assert spec.headline is not None
    return _filled(spec.headline.metric, config)


def headline_of(
    spec: JobSpec, config: Mapping[str, Any], metrics: Mapping[str, float]
) -> dict[str, float]:
    """The child's headline: ``value``, ``low``, ``high``, ``reference`` (NaN where it did not
    record one).  ``{field}`` in a headline name is filled from the child's config."""
    h = spec.headline
    assert h is not None

    def name(template: str) -> str:
        return _filled(template, config)

    metric = headline_metric(spec, config)
    keys = {
        "value": metric,
        "low": name(h.low) if h.low else f"{metric}_low",
        "high": name(h.high) if h.high else f"{metric}_high",
        "reference": name(h.reference) if h.reference else "",
    }
    return {k: float(metrics.get(v, math.nan)) if v else math.nan for k, v in keys.items()}


def run_matrix(ctx: JobContext) -> dict[str, float]:
    """The ``attack_matrix`` job: plan, run every cell as a child run, record the headlines."""
    from workbench.artifacts import Table
    from workbench.jobs import EngineError
    from workbench.leakage_matrix import LeakageMatrix

    cfg: AttackMatrixConfig = ctx.config
    if not hasattr(ctx.engine, "run_child"):  # not in an isolated child process: never heavy
        raise RuntimeError("the attack matrix runs on the engine that owns the project")
    registry = ctx.engine.registry
    cells, notes = plan(ctx.project, registry, cfg, ctx.seed)
    for note in notes:
        ctx.log(note)
    rows = list(dict.fromkeys((c.run, c.label) for c in cells))
    columns = sorted({c.attack for c in cells})
    r_of = {run: i for i, (run, _) in enumerate(rows)}
    c_of = {a: j for j, a in enumerate(columns)}
    shape = (len(rows), len(columns))
    grids = {k: [[math.nan] * shape[1] for _ in range(shape[0])] for k in ("v", "lo", "hi", "ref")}
    children = [[math.nan] * shape[1] for _ in range(shape[0])]
    failed: list[str] = []
    started = time.perf_counter()
    for n, cell in enumerate(cells):
        ctx.check()
        ctx.progress(n, len(cells), f"run {cell.run}: {cell.attack}")
        r, c = r_of[cell.run], c_of[cell.attack]
        try:
            child, status = ctx.engine.run_child(cell.request, ctx)
        except (ConfigError, EngineError) as exc:  # refused at submit (a model removed since)
            failed.append(f"run {cell.run} x {cell.attack}: refused ({exc})")
            ctx.log(failed[-1], level="warning")
            continue
        ctx.check()  # a cancelled parent stops here (the child was cancelled with it)
        children[r][c] = child
        if status != "completed":
            failed.append(f"run {cell.run} x {cell.attack}: child run {child} {status}")
            ctx.log(failed[-1], level="warning")
            continue
        spec = registry.job(cell.attack)
        found = headline_of(spec, cell.request.config, ctx.project.final_metrics(child))
        for key, grid in (("value", "v"), ("low", "lo"), ("high", "hi"), ("reference", "ref")):
            grids[grid][r][c] = found[key]
        base = f"run{cell.run}/{cell.attack}/{headline_metric(spec, cell.request.config)}"
        suffix = {"value": "", "low": "_low", "high": "_high", "reference": "_reference"}
        ctx.metrics({base + suffix[k]: v for k, v in found.items() if math.isfinite(v)}, step=0)
    specs = [registry.job(a) for a in columns]
    # a column is one attack with one config (its defaults and the overrides): its metric name
    configs = {c.attack: c.request.config for c in cells}
    matrix = LeakageMatrix(
        rows=[label for _, label in rows],
        row_runs=[run for run, _ in rows],
        columns=columns,
        values=grids["v"],
        lows=grids["lo"],
        highs=grids["hi"],
        references=grids["ref"],
        child_runs=children,
        column_titles=[
            (s.headline.title if s.headline and s.headline.title else s.title) for s in specs
        ],
        metrics=[headline_metric(s, configs[s.name]) if s.headline else "" for s in specs],
        higher_leaks=[bool(s.headline.higher_leaks) if s.headline else True for s in specs],
        notes=notes + failed,
        title=f"Attack matrix: {len(rows)} unlearned run(s) x {len(columns)} attack(s), "
        f"seed {ctx.seed}",
    )
    ctx.artifact("leakage_matrix", matrix)
    header, long_rows = matrix.table()
    ctx.artifact("leakage table", Table(header, long_rows, title=matrix.title))
    ctx.log(
        f"{len(cells)} child run(s) in {time.perf_counter() - started:.1f} s"
        + (f"; {len(failed)} did not complete" if failed else "")
    )
    if failed and len(failed) == len(cells):
        raise RuntimeError("no child run completed: " + "; ".join(failed))
    return {}


def register(registry: Registry) -> None:
    """The matrix job (a light plugin module of the core: it names no backend)."""
    registry.add_job(
        JobSpec(
            name=MATRIX_JOB,
            kind="experiment",
            family=CROSS_FAMILY,
            method="attack_matrix",
            title="Attack matrix: which unlearned model leaks, to which attack",
            description="Every chosen attack on every chosen finished unlearning run (any "
            "family), one child run per pair with the attack's own job, seed and defaults; a "
            "heat-table of each attack's headline number with its 95% interval, coloured by the "
            "distance from the retrained / never-learned reference.",
            config=AttackMatrixConfig,
            entry="workbench.attack_matrix:run_matrix",
            model_heavy=False,  # it only runs children, which take the heavy slot themselves
        )
    )
