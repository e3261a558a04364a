"""The numbers behind ``docs/results.md`` for the LLM family:
``python -m backends.llm.studies report --project DIR``.

Runs, through the same engine as the app, every unlearning method on the built-in tiny GPT (the
default forget set: the first person of its universe and their co-occurrence neighbourhood), then
SKeB probing of the original and of the NPO-unlearned model over the four framings, and prints
markdown tables.  Every run stays in the project for a look in the GUI.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

FRAMINGS = ("original", "emotional", "logical", "authority")


def _run(engine: Any, job: str, config: dict[str, Any], model: str, seed: int) -> int:
    run_id = engine.submit(job, config, seed=seed, model=model)
    status = engine.wait(run_id)
    if status != "completed":
        raise RuntimeError(f"{job} run {run_id} ended {status}: {engine.project.run(run_id).error}")
    return run_id


def report(project_dir: Path, seed: int = 0, max_questions: int = 40) -> str:
    from backends.llm.methods import METHODS
    from workbench.jobs import Engine
    from workbench.store import Project

    lines = []
    with Project.open(project_dir, create=True) as project:
        engine = Engine(project)
        try:
            lines += [
                "| method | forget recall (before → after) | retain recall | paraphrase recall | "
                "retain perplexity | LOSS MIA AUC | Min-K% MIA AUC |",
                "|---|---|---|---|---|---|---|",
            ]
            unlearned = {}
            for name, info in METHODS.items():
                run_id = _run(engine, f"llm.unlearn.{name}", {"device": "cpu"}, "tiny-gpt", seed)
                m = project.final_metrics(run_id)
                unlearned[name] = f"{name}-run{run_id}"

                def pair(key: str, m: dict[str, float] = m) -> str:
                    return f"{m[f'before/{key}']:.3f} → {m[key]:.3f}" if key in m else "n/a"

                lines.append(
                    f"| {info.title} (run {run_id}) | {pair('forget_recall')} | "
                    f"{pair('retain_recall')} | {pair('paraphrase_recall')} | "
                    f"{pair('retain_perplexity')} | {pair('loss_mia_auc')} | "
                    f"{pair('min_k_mia_auc')} |"
                )
            lines += ["", "| model | " + " | ".join(f"{f} recall" for f in FRAMINGS)
                      + " | prompts cut to fit |", "|---" * (len(FRAMINGS) + 2) + "|"]  # fmt: skip
            config = {"device": "cpu", "max_questions": max_questions}
            for label, model in (
                ("original tiny GPT", "tiny-gpt"),
                ("after NPO", unlearned["npo"]),
            ):
                run_id = _run(engine, "llm.skeb", config, model, seed)
                m = project.final_metrics(run_id)
                cells = [f"{m.get(f'{f}/recall', float('nan')):.1f}%" for f in FRAMINGS]
                lines.append(
                    f"| {label} (run {run_id}) | " + " | ".join(cells)
                    + f" | {m.get('prompts_cut_to_fit', 0):.0f} |"
                )  # fmt: skip
            run_id = _run(engine, "llm.attention", {"device": "cpu"}, "tiny-gpt", seed)
            m = project.final_metrics(run_id)
            lines += ["", f"Attention (run {run_id}): mean sink mass {m['mean_sink_mass']:.3f}, "
                          f"sink-head ratio {m['sink_ratio']:.3f} (threshold 0.3)."]  # fmt: skip
        finally:
            engine.shutdown()
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("study", choices=["report"])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-questions", type=int, default=40)
    args = parser.parse_args()
    print(report(args.project, args.seed, args.max_questions))


if __name__ == "__main__":
    main()
