"""The defence study behind ``docs/results-h14b.md`` (issue 14 parts 3-4, spec section 3).

1. One ``diffusion.defence_matrix`` run: the original model and the erased checkpoints as rows,
   every guidance x negative concept as columns, the implicit embedding learned on each row's own
   model (train-half concept images), measured on held-out harmful prompts.
2. Transfer: for each erased checkpoint's learned token, one more run with that token as the
   negative concept on every erased checkpoint (negative prompt and SLD medium, the preset
   diffusers uses by default; chosen before any number was seen).
3. The verdicts: does an explicit negative prompt change an erased model's concept rate (DSR of
   negative/words vs none)? Does the implicit embedding raise DSR (embedding vs words under the
   same guidance, and vs none)? "held" only when the 95% intervals are apart
   (:func:`backends.common.stats.held`).

Run (one CPU thread, about 25 minutes on a quiet 2-core machine)::

    OMP_NUM_THREADS=1 python -m backends.diffusion.defence_study --project P \\
        --original tests/fixtures/diffusion/tiny-sd-small \\
        --models P/models/uce-striped-run1 P/models/esd-striped-run2 P/models/esd-striped-run3 \\
        --out docs/results-h14b.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

TRANSFER_GUIDANCES = ["negative", "sld-medium"]


def _submit(engine: Any, project: Any, config: dict[str, Any], model: str, seed: int) -> int:
    run_id = engine.submit("diffusion.defence_matrix", config, model=model, seed=seed)
    engine.wait(run_id)
    record = project.run(run_id)
    if record.status != "completed":
        raise RuntimeError(f"run {run_id} {record.status}: {record.error}")
    return run_id


def study(
    project_dir: Path,
    original: Path,
    models: list[Path],
    *,
    eval_samples: int = 4,
    inversion_steps: int = 150,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the matrix and the transfer runs; every metric of every run, by run."""
    from backends.diffusion.defence import row_names
    from workbench.jobs import Engine
    from workbench.store import Project

    project = Project.open(project_dir, create=True)
    engine = Engine(project)
    common = {"device": "cpu", "eval_samples": eval_samples, "inversion_steps": inversion_steps}
    out: dict[str, Any] = {"settings": {**common, "seed": seed}, "runs": {}}
    try:
        main = _submit(
            engine,
            project,
            {**common, "models": [str(m) for m in models]},
            str(original),
            seed,
        )
        out["runs"]["matrix"] = {"id": main, "metrics": project.final_metrics(main)}
        names = row_names([original, *models])[1:]
        tokens = project.run_dir(main) / "tokens"
        out["transfer"] = {}
        for name in names:
            rid = _submit(
                engine,
                project,
                {
                    **common,
                    "models": [str(m) for m in models[1:]],
                    "guidances": TRANSFER_GUIDANCES,
                    "negatives": ["embedding"],
                    "embedding_source": "file",
                    "learned_token": str(tokens / f"{name}.safetensors"),
                    "gallery_prompts": 0,
                },
                str(models[0]),
                seed,
            )
            out["transfer"][name] = {"id": rid, "metrics": project.final_metrics(rid)}
    finally:
        engine.shutdown()
    out["rows"] = row_names([original, *models])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, required=True, help="project folder (created)")
    parser.add_argument("--original", type=Path, required=True, help="the never-erased pipeline")
    parser.add_argument(
        "--models", type=Path, nargs="+", required=True, help="erased pipelines (rows)"
    )
    parser.add_argument("--eval-samples", type=int, default=4, help="seeds per held-out prompt")
    parser.add_argument("--inversion-steps", type=int, default=150, help="concept-inversion steps")
    parser.add_argument("--out", type=Path, required=True, help="JSON file of every metric")
    args = parser.parse_args(argv)
    result = study(
        args.project,
        args.original,
        list(args.models),
        eval_samples=args.eval_samples,
        inversion_steps=args.inversion_steps,
    )
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
