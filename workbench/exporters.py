"""Export a model a run produced in a format other tools load (issue 17 part 5).

The core keeps one small table, keyed by *model kind* (``llm.causal``, ``diffusion.pipeline``,
...) and then by *format* (``hf``, ``single-file``, ``safetensors``, ...), of
:class:`ExporterSpec` rows. Each family fills it from its plugin, one line per format::

    registry.add_exporter(
        ExporterSpec(
            kind="llm.causal",
            format="hf",
            entry="backends.llm.export:export_hf",
            title="Hugging Face folder (save_pretrained) with a model card",
        )
    )

The first format a kind registers is its default. ``entry`` is ``"module:function"``, imported
only when an export runs (the core never imports torch); the function takes an
:class:`ExportSource` and returns the path it wrote (a folder or a file under
``source.out``). :func:`export_model` picks the model (the one a run produced, or a project model
by name), checks the destination and calls the exporter; every refusal is an
:class:`ExportError` (a ``ValueError``) whose message names what to do. ``workbench export-model``
is its command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ExportError",
    "ExportSource",
    "ExporterSpec",
    "export_model",
    "model_card",
    "run_card_facts",
]


class ExportError(ValueError):
    """An export that cannot be done: the message says why and what to do."""


@dataclass(frozen=True)
class ExporterSpec:
    """One way to export one kind of model: ``entry(source: ExportSource) -> Path``."""

    kind: str
    format: str
    entry: str
    title: str
    description: str = ""


@dataclass(frozen=True)
class ExportSource:
    """What an exporter gets: the model folder, the run that made it (``None`` for a model the
    user added), that run's final metrics, where to write, and ``--option KEY=VALUE`` pairs."""

    model_name: str
    model_path: Path
    kind: str
    family: str
    out: Path
    run: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)


def run_card_facts(source: ExportSource) -> dict[str, Any]:
    """The facts a model card states about the run (method, job, seed, config, metrics)."""
    run = source.run or {}
    return {
        "model": source.model_name,
        "kind": source.kind,
        "run": run.get("id"),
        "job": run.get("job"),
        "method": run.get("method"),
        "seed": run.get("seed"),
        "base model": run.get("model"),
        "dataset": run.get("dataset"),
        "config": run.get("config") or {},
        "versions": run.get("versions") or {},
        "device": run.get("device"),
        "metrics": dict(source.metrics),
    }


def _cell(value: Any) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def model_card(source: ExportSource, *, library: str, what: str, tags: tuple[str, ...] = ()) -> str:
    """A model card (``README.md``, Hugging Face layout: YAML front matter, then Markdown) stating
    what the model is (``what``), and the run that made it: job, method, seed, base model,
    dataset, the whole config, the run's final metrics and the library versions."""
    import json

    facts = run_card_facts(source)
    tag_lines = "".join(f"  - {t}\n" for t in ("unlearning-workbench", *tags))
    lines = [
        "---",
        f"library_name: {library}",
        "tags:",
        tag_lines.rstrip("\n"),
        "---",
        "",
        f"# {source.model_name}",
        "",
        what,
        "",
    ]
    if source.run is None:
        lines += [
            "This model was added to the project by the user; no run of the workbench made it.",
            "",
        ]
    else:
        lines += [
            "## How it was made",
            "",
            "| | |",
            "|---|---|",
            f"| run | {_cell(facts['run'])} |",
            f"| job | `{_cell(facts['job'])}` |",
            f"| method | {_cell(facts['method'])} |",
            f"| seed | {_cell(facts['seed'])} |",
            f"| base model | {_cell(facts['base model'])} |",
            f"| dataset | {_cell(facts['dataset'])} |",
            f"| device | {_cell(facts['device'])} |",
            "",
            "### Config",
            "",
            "```json",
            json.dumps(facts["config"], indent=2, sort_keys=True, default=str),
            "```",
            "",
            "### Metrics of the run (last recorded value of each)",
            "",
        ]
        if facts["metrics"]:
            lines += ["| metric | value |", "|---|---|"]
            lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(facts["metrics"].items())]
        else:
            lines.append("The run recorded no metrics.")
        lines.append("")
        if facts["versions"]:
            lines += ["### Library versions", ""]
            lines += [f"- {k}: {_cell(v)}" for k, v in sorted(facts["versions"].items())]
            lines.append("")
    return "\n".join(lines)


def _pick_model(project: Any, run_id: int | None, model: str | None) -> dict[str, Any]:
    models = project.models()
    if model is not None:
        row = next((m for m in models if m["name"] == model), None)
        if row is None:
            known = ", ".join(m["name"] for m in models) or "none"
            raise ExportError(f"the project has no model named {model!r}; its models: {known}")
        if run_id is not None and row.get("source_run") != run_id:
            raise ExportError(f"model {model!r} was not produced by run {run_id}")
        return row
    made = [m for m in models if m.get("source_run") == run_id]
    if not made:
        raise ExportError(
            f"run {run_id} produced no model (a completed unlearning or training run saves one); "
            "nothing to export"
        )
    if len(made) > 1:
        names = ", ".join(m["name"] for m in made)
        raise ExportError(f"run {run_id} produced several models ({names}); pick one with --model")
    return made[0]


def _check_out(out: Path) -> None:
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        raise ExportError(
            f"{out} already exists and is not empty; give a new or empty destination "
            "(an export never overwrites files)"
        )


def export_model(
    project: Any,
    registry: Any,
    out: str | Path,
    *,
    run_id: int | None = None,
    model: str | None = None,
    format: str | None = None,
    options: Mapping[str, str] | None = None,
) -> Path:
    """Export the model run ``run_id`` produced (or the project model ``model``) to ``out``
    through the exporter registered for its kind and ``format`` (default: the kind's first)."""
    from workbench.registry import resolve_entry

    if run_id is None and model is None:
        raise ExportError("give the run whose model to export, or a model name (--model)")
    row = _pick_model(project, run_id, model)
    kind = row["kind"]
    formats = registry.exporters.get(kind, {})
    if not formats:
        known = ", ".join(sorted(registry.exporters)) or "none"
        raise ExportError(
            f"models of kind {kind!r} cannot be exported yet; kinds with an exporter: {known}"
        )
    fmt = format or next(iter(formats))
    if fmt not in formats:
        raise ExportError(
            f"{kind} models export as {', '.join(formats)}; there is no format {fmt!r}"
        )
    model_path = project.abspath(row["path"])
    if not model_path.exists():
        raise ExportError(f"model {row['name']!r}: its folder {model_path} is missing")
    out_path = Path(out).expanduser().resolve()
    _check_out(out_path)
    run: dict[str, Any] | None = None
    metrics: dict[str, float] = {}
    source_run = row.get("source_run")
    if source_run is not None:
        record = project.run(int(source_run))
        run = {
            "id": record.id,
            "job": record.job,
            "method": record.method,
            "seed": record.seed,
            "model": record.model,
            "dataset": record.dataset,
            "config": record.config,
            "versions": record.versions,
            "device": record.device,
            "status": record.status,
        }
        metrics = project.final_metrics(record.id)
    source = ExportSource(
        model_name=row["name"],
        model_path=model_path,
        kind=kind,
        family=row["family"],
        out=out_path,
        run=run,
        metrics=metrics,
        options=dict(options or {}),
    )
    written = resolve_entry(formats[fmt].entry)(source)
    return Path(written)
