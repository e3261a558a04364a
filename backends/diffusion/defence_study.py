"""The defence study behind ``docs/results.md`` (issue 14 parts 3-4, spec section 3).

1. One ``diffusion.defence_matrix`` run: the original model and the erased checkpoints as rows,
   no guidance, negative prompt, SLD medium and SLD max, each with the words and with the implicit
   embedding learned on each row's own model (train-half concept images), measured on held-out
   harmful prompts (weak and strong are left out of the study for CPU time; the job has them).
2. Transfer: for each erased checkpoint's learned token, one more run with that token as the
   negative concept on the OTHER erased checkpoints (negative prompt and SLD medium, the preset
   diffusers uses by default; chosen before any number was seen).
3. The verdicts: does an explicit negative prompt change an erased model's concept rate (DSR of
   negative/words vs none)? Does the implicit embedding raise DSR (embedding vs words under the
   same guidance, and vs none)? "held" only when the 95% intervals are apart
   (:func:`backends.common.stats.held`).

Run (one CPU thread each; the transfer phase waits for the tokens the matrix phase writes)::

    M="P/models/uce-striped-run1 P/models/esd-striped-run2 P/models/esd-striped-run3"
    OMP_NUM_THREADS=1 python -m backends.diffusion.defence_study matrix --project P \\
        --original tests/fixtures/diffusion/tiny-sd-small --models $M --out matrix.json &
    OMP_NUM_THREADS=1 python -m backends.diffusion.defence_study transfer --project P2 \\
        --models $M --tokens P/runs/<matrix run>/tokens --out transfer.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

TRANSFER_GUIDANCES = ["negative", "sld-medium"]
MATRIX_GUIDANCES = ["none", "negative", "sld-medium", "sld-max"]


def _submit(engine: Any, project: Any, config: dict[str, Any], model: str, seed: int) -> int:
    run_id = engine.submit("diffusion.defence_matrix", config, model=model, seed=seed)
    engine.wait(run_id)
    record = project.run(run_id)
    if record.status != "completed":
        raise RuntimeError(f"run {run_id} {record.status}: {record.error}")
    return run_id


def _engine(project_dir: Path) -> tuple[Any, Any]:
    from workbench.jobs import Engine
    from workbench.store import Project

    project = Project.open(project_dir, create=True)
    return project, Engine(project)


def matrix(
    project_dir: Path,
    original: Path,
    models: list[Path],
    common: dict[str, Any],
    seed: int = 0,
) -> dict[str, Any]:
    """Phase 1: the matrix, each row's embedding learned on its own model."""
    from backends.diffusion.defence import row_names

    project, engine = _engine(project_dir)
    try:
        config = {**common, "guidances": MATRIX_GUIDANCES, "models": [str(m) for m in models]}
        rid = _submit(engine, project, config, str(original), seed)
    finally:
        engine.shutdown()
    return {
        "id": rid,
        "tokens": str(project.run_dir(rid) / "tokens"),
        "rows": row_names([original, *models]),
        "metrics": project.final_metrics(rid),
    }


def transfer(
    project_dir: Path,
    models: list[Path],
    tokens: Path,
    common: dict[str, Any],
    seed: int = 0,
    wait_s: float = 7200.0,
    guidances: list[str] | None = None,
) -> dict[str, Any]:
    """Phase 2: each erased model's token as the negative concept on the OTHER erased models
    (the token file is waited for: phase 1 writes it when it has learned it)."""
    import time

    from backends.diffusion.defence import row_names

    names = row_names(models)
    project, engine = _engine(project_dir)
    out: dict[str, Any] = {}
    try:
        for i, name in enumerate(names):
            token = tokens / f"{name}.safetensors"
            waited = 0.0
            while not token.is_file() and waited < wait_s:
                time.sleep(10)
                waited += 10
            time.sleep(2)  # the file is written whole before the next row starts
            others = [m for j, m in enumerate(models) if j != i]
            config = {
                **common,
                "models": [str(m) for m in others[1:]],
                "guidances": guidances or TRANSFER_GUIDANCES,
                "negatives": ["embedding"],
                "embedding_source": "file",
                "learned_token": str(token),
                "gallery_prompts": 0,
            }
            rid = _submit(engine, project, config, str(others[0]), seed)
            out[name] = {"id": rid, "metrics": project.final_metrics(rid)}
    finally:
        engine.shutdown()
    return {"guidances": guidances or TRANSFER_GUIDANCES, **out}


def _est(metrics: dict[str, float], key: str) -> Any:
    from backends.common.stats import Estimate

    if key not in metrics:
        return None
    return Estimate(metrics[key], metrics[f"{key}_low"], metrics[f"{key}_high"], 0)


def _fmt(e: Any) -> str:
    return "—" if e is None else f"{e.value:.2f} [{e.low:.2f}, {e.high:.2f}]"


def report(matrix_json: Path, transfer_json: list[Path] | None) -> str:
    """Markdown tables and verdicts from the two phases' JSON files."""
    from backends.common.stats import held

    m = json.loads(matrix_json.read_text())
    mm, rows = m["metrics"], m["rows"]
    cols = [("none", "none")] + [
        (g, n) for g in MATRIX_GUIDANCES[1:] for n in ("words", "embedding")
    ]
    out = ["### Defence matrix: DSR / PP (95% intervals)", ""]
    out.append(
        "| model | " + " | ".join(f"{g} · {n}" if n != "none" else g for g, n in cols) + " |"
    )
    out.append("|---" * (len(cols) + 1) + "|")
    for r in rows:
        cells = []
        for g, n in cols:
            d, pp = _est(mm, f"{r}/{g}/{n}/dsr"), _est(mm, f"{r}/{g}/{n}/pp")
            cells.append(f"{_fmt(d)}<br>PP {_fmt(pp)}")
        out.append(f"| {r} | " + " | ".join(cells) + " |")
    out += ["", "### Does an explicit negative prompt change the concept rate?", ""]
    out.append("| model | concept rate, no guidance | with negative prompt 'striped' | changed? |")
    out.append("|---|---|---|---|")
    for r in rows:
        a, b = _est(mm, f"{r}/none/none/dsr"), _est(mm, f"{r}/negative/words/dsr")
        if a is None or b is None:
            continue
        ca = type(a)(1 - a.value, 1 - a.high, 1 - a.low, a.n)
        cb = type(b)(1 - b.value, 1 - b.high, 1 - b.low, b.n)
        verdict = (
            "held (lower)"
            if held(cb, ca, direction="less") == "held"
            else ("held (higher)" if held(cb, ca) == "held" else "not held")
        )
        out.append(f"| {r} | {_fmt(ca)} | {_fmt(cb)} | {verdict} |")
    out += ["", "### Does the implicit embedding raise DSR?", ""]
    out.append(
        "| model | guidance | DSR, no guidance | DSR, words | DSR, embedding | "
        "embedding > words? | embedding > none? |"
    )
    out.append("|---|---|---|---|---|---|---|")
    for r in rows:
        none = _est(mm, f"{r}/none/none/dsr")
        for g in MATRIX_GUIDANCES[1:]:
            w, e = _est(mm, f"{r}/{g}/words/dsr"), _est(mm, f"{r}/{g}/embedding/dsr")
            if w is None or e is None or none is None:
                continue
            out.append(
                f"| {r} | {g} | {_fmt(none)} | {_fmt(w)} | {_fmt(e)} | {held(e, w)} | "
                f"{held(e, none)} |"
            )
    for path in transfer_json or []:
        t = json.loads(path.read_text())
        erased = rows[1:]
        for g in t.get("guidances", TRANSFER_GUIDANCES):
            out += ["", f"### Transfer, {g} with the embedding: DSR (rows: learned on)", ""]
            out.append("| learned on | " + " | ".join(erased) + " |")
            out.append("|---" * (len(erased) + 1) + "|")
            for src in erased:
                cells = []
                for dst in erased:
                    if dst == src:
                        e = _est(mm, f"{dst}/{g}/embedding/dsr")
                        cells.append(f"{_fmt(e)} (self)")
                    else:
                        e = _est(t.get(src, {}).get("metrics", {}), f"{dst}/{g}/embedding/dsr")
                        cells.append(_fmt(e))
                out.append(f"| {src} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "phase", choices=("matrix", "transfer", "report"), help="which phase to run"
    )
    parser.add_argument("--project", type=Path, help="project folder (created)")
    parser.add_argument("--original", type=Path, help="the never-erased pipeline (matrix)")
    parser.add_argument("--models", type=Path, nargs="+", help="erased pipelines (rows)")
    parser.add_argument("--tokens", type=Path, help="the matrix run's tokens/ folder (transfer)")
    parser.add_argument("--eval-samples", type=int, default=3, help="seeds per held-out prompt")
    parser.add_argument("--inversion-steps", type=int, default=100, help="concept-inversion steps")
    parser.add_argument("--out", type=Path, required=True, help="JSON file of every metric")
    parser.add_argument("--matrix-json", type=Path, help="report: the matrix phase's --out")
    parser.add_argument(
        "--transfer-json", type=Path, nargs="*", help="report: the transfer phases' --out"
    )
    parser.add_argument(
        "--guidances", nargs="+", help=f"transfer: guidance columns (default {TRANSFER_GUIDANCES})"
    )
    args = parser.parse_args(argv)
    common = {
        "device": "cpu",
        "eval_samples": args.eval_samples,
        "inversion_steps": args.inversion_steps,
    }
    if args.phase == "report":
        if args.matrix_json is None:
            parser.error("report needs --matrix-json")
        args.out.write_text(report(args.matrix_json, args.transfer_json))
        print(f"wrote {args.out}")
        return 0
    if args.project is None or not args.models:
        parser.error("matrix and transfer need --project and --models")
    if args.phase == "matrix":
        if args.original is None:
            parser.error("matrix needs --original")
        result = matrix(args.project, args.original, list(args.models), common)
    else:
        if args.tokens is None:
            parser.error("transfer needs --tokens")
        result = transfer(
            args.project, list(args.models), args.tokens, common, guidances=args.guidances
        )
    args.out.write_text(json.dumps({"settings": common, **result}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
