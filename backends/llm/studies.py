"""The numbers behind ``docs/results.md`` for the LLM family:
``python -m backends.llm.studies report --project DIR``.

Runs, through the same engine as the app, every unlearning method on the built-in tiny GPT (the
default forget set: the first person of its universe and their co-occurrence neighbourhood), then
SKeB probing of the original and of the NPO-unlearned model over the four framings, the attention
sinks of the original, and the rule judge on the 40 hand-labelled answers, and prints markdown
tables. Every recall or rate is k/n with its exact 95% interval (``backends.common.stats.rate``),
every AUC and PrivLeak a bootstrap interval; a "held" verdict needs non-overlapping intervals (or a
difference interval that excludes 0). The membership attacks' members are the forget facts and
their non-members the universe's never-trained facts; PrivLeak is measured against the model
retrained without the forget set (shipped for this forget set, else trained once and cached in the
project). Every run stays in the project for a look in the GUI;
``python -m backends.llm.studies tables --project DIR`` prints the tables again from the runs already
there, and ``... judge`` only the judge's confusion table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from workbench.paths import REPO_ROOT

FRAMINGS = ("original", "emotional", "logical", "authority")
JUDGE_CASES = REPO_ROOT / "tests" / "fixtures" / "llm" / "judge_cases.json"


def _run(engine: Any, job: str, config: dict[str, Any], model: str, seed: int) -> int:
    run_id = engine.submit(job, config, seed=seed, model=model)
    status = engine.wait(run_id)
    if status != "completed":
        raise RuntimeError(f"{job} run {run_id} ended {status}: {engine.project.run(run_id).error}")
    return run_id


def _est(m: dict[str, float], key: str, fmt: str = "{:.2f}") -> str:
    if key not in m:
        return "n/a"
    text = fmt.format(m[key])
    if f"{key}_low" in m:
        text += f" [{fmt.format(m[f'{key}_low'])}, {fmt.format(m[f'{key}_high'])}]"
    return text


def _recall(m: dict[str, float], key: str) -> str:
    if key not in m:
        return "n/a"
    k = round(m[key] * m[f"{key}_n"])
    return f"{k}/{m[f'{key}_n']:.0f} = {_est(m, key)}"


def _estimate(m: dict[str, float], key: str) -> Any:
    from backends.common.stats import Estimate

    return Estimate(m[key], m[f"{key}_low"], m[f"{key}_high"], int(m.get(f"{key}_n", 0)))


def judge_confusion() -> list[str]:
    """The rule judge's confusion table on the 40 hand-labelled answers."""
    from backends.llm.skeb.judge import FACTUAL, HALLUCINATED, NON_FACTUAL, RuleJudge
    from backends.llm.universe import Universe, UniverseConfig

    u = Universe.generate(UniverseConfig())
    judge = RuleJudge(u.triples(), u.entity_names(), u.aliases())
    labels = (FACTUAL, NON_FACTUAL, HALLUCINATED)
    table = {(e, g): 0 for e in labels for g in labels}
    cases = json.loads(JUDGE_CASES.read_text())["cases"]
    for c in cases:
        r = judge.judge(c["answer"], subject=c["subject"], relation=c["relation"], short=c["short"])
        table[(c["expected"], r.labels[0] if r.labels else NON_FACTUAL)] += 1
    right = sum(table[(x, x)] for x in labels)
    lines = [
        f"Rule judge on {len(cases)} hand-labelled answers ({JUDGE_CASES.name}): "
        f"{right}/{len(cases)} agree.",
        "",
        "| expected \\ judged | " + " | ".join(labels) + " |",
        "|---" * 4 + "|",
    ]
    lines += [f"| {e} | " + " | ".join(str(table[(e, g)]) for g in labels) + " |" for e in labels]
    return lines


def _auc_verdict(m: dict[str, float], r: dict[str, float], key: str = "min_k_mia_auc") -> str:
    """Unlearned vs retrained AUC by the one "held" rule (non-overlapping intervals)."""
    from backends.common.stats import held

    if key not in m or key not in r:
        return "n/a"
    if held(_estimate(m, key), _estimate(r, key)) == "held":
        return "leaks: AUC above retrained (held)"
    if held(_estimate(m, key), _estimate(r, key), direction="less") == "held":
        return "over-unlearned: AUC below retrained (held)"
    return "not told apart from retrained (intervals overlap)"


def render(project: Any, ids: dict[str, int]) -> list[str]:
    """The tables of the runs ``ids`` (``{"unlearn/<method>", "skeb/original", "skeb/npo",
    "attention"}`` -> run id) of ``project``."""
    from backends.common.stats import held, rate
    from backends.llm.methods import METHODS

    def split(m: dict[str, float], prefix: str) -> dict[str, float]:
        return {k[len(prefix) :]: v for k, v in m.items() if k.startswith(prefix)}

    lines = [
        "| method (run) | forget recall before → after | forget drop held? | retain recall "
        "after | paraphrase recall after | retain perplexity before → after | "
        "Min-K AUC after | Min-K AUC vs retrained | PrivLeak (Min-K) | PrivLeak (LOSS) |",
        "|---" * 10 + "|",
    ]
    first: dict[str, float] = {}
    for name, info in METHODS.items():
        run_id = ids[f"unlearn/{name}"]
        m = project.final_metrics(run_id)
        first = first or m
        b, r = split(m, "before/"), split(m, "retrained/")
        drop = held(_estimate(b, "forget_recall"), _estimate(m, "forget_recall"))
        lines.append(
            f"| {info.title} ({run_id}) | {_recall(b, 'forget_recall')} → "
            f"{_recall(m, 'forget_recall')} | {drop} | {_recall(m, 'retain_recall')} | "
            f"{_recall(m, 'paraphrase_recall')} | {b['retain_perplexity']:.2f} → "
            f"{m['retain_perplexity']:.3g} | {_est(m, 'min_k_mia_auc')} | "
            f"{_auc_verdict(m, r)} | {_est(m, 'privleak_min_k')} | {_est(m, 'privleak_loss')} |"
        )
    b, r = split(first, "before/"), split(first, "retrained/")
    lines += [
        "",
        "Membership attacks (members: the forget facts; non-members: the never-trained facts), "
        "per fact (mean over its training sentences):",
        "",
        "| model | forget recall | Min-K AUC | LOSS AUC | PrivLeak (Min-K) | PrivLeak (LOSS) |",
        "|---" * 6 + "|",
        f"| original (positive control) | {_recall(b, 'forget_recall')} | "
        f"{_est(b, 'min_k_mia_auc')} | {_est(b, 'loss_mia_auc')} | "
        f"{_est(b, 'privleak_min_k')} | {_est(b, 'privleak_loss')} |",
        f"| retrained without the forget set | {_recall(r, 'forget_recall')} | "
        f"{_est(r, 'min_k_mia_auc')} | {_est(r, 'loss_mia_auc')} | 0 (by definition) | "
        "0 (by definition) |",
    ]
    lines += [
        "",
        "SKeB (answers judged by the rule judge against the asked fact): factual "
        "recall, then hallucinated answers, k/n per framing:",
        "",
        "| model (run) | "
        + " | ".join(f"{f} recall" for f in FRAMINGS)
        + " | "
        + " | ".join(f"{f} hallucinated" for f in FRAMINGS)
        + " | prompts cut to fit |",
        "|---" * (2 * len(FRAMINGS) + 2) + "|",
    ]
    skeb: dict[str, Any] = {}
    for label, key in (("original tiny GPT", "skeb/original"), ("after NPO", "skeb/npo")):
        run_id = ids[key]
        m = project.final_metrics(run_id)
        cells, halluc = [], []
        for f in FRAMINGS:
            n = int(m[f"{f}/n"])
            est = rate(round(m[f"{f}/recall"] * n / 100), n)
            skeb[f"{label}/{f}"] = est
            cells.append(f"{round(est.value * n)}/{n} = {est}")
            # a base model's answer is one sentence: the sentence share is the answer share
            h = rate(round(m[f"{f}/hallucinated"] * n / 100), n)
            halluc.append(f"{round(h.value * n)}/{n} = {h}")
        lines.append(
            f"| {label} ({run_id}) | "
            + " | ".join(cells + halluc)
            + f" | {m.get('prompts_cut_to_fit', 0):.0f} |"
        )
    verdicts = [
        f"{f}: {held(skeb[f'original tiny GPT/{f}'], skeb[f'after NPO/{f}'])}" for f in FRAMINGS
    ]
    persuaded = [
        f"{f}: {held(skeb[f'after NPO/{f}'], skeb['after NPO/original'])}" for f in FRAMINGS[1:]
    ]
    lines += [
        "",
        "NPO lowers SKeB recall (original > after NPO): " + "; ".join(verdicts),
        "",
        "A framing recovers recall after NPO (framing > original framing): " + "; ".join(persuaded),
    ]
    run_id = ids["attention"]
    m = project.final_metrics(run_id)
    lines += [
        "",
        f"Attention (run {run_id}, one prompt: the first QA prompt): mean sink "
        f"mass {m['mean_sink_mass']:.3f}, sink heads {m['sink_ratio']:.3f} of "
        "all heads (sink mass > 0.3).",
    ]
    return lines


def report(project_dir: Path, seed: int = 0, max_questions: int = 40, device: str = "cpu") -> str:
    from backends.llm.methods import METHODS
    from workbench.jobs import Engine
    from workbench.store import Project

    with Project.open(project_dir, create=True) as project:
        engine = Engine(project)
        ids: dict[str, int] = {}
        try:
            for name in METHODS:
                ids[f"unlearn/{name}"] = _run(
                    engine, f"llm.unlearn.{name}", {"device": device}, "tiny-gpt", seed
                )
            config = {"device": device, "max_questions": max_questions}
            ids["skeb/original"] = _run(engine, "llm.skeb", config, "tiny-gpt", seed)
            npo = f"npo-run{ids['unlearn/npo']}"
            ids["skeb/npo"] = _run(engine, "llm.skeb", config, npo, seed)
            ids["attention"] = _run(engine, "llm.attention", {"device": device}, "tiny-gpt", seed)
        finally:
            engine.shutdown()
        lines = render(project, ids)
    return "\n".join([*lines, "", *judge_confusion()])


def tables(project_dir: Path) -> str:
    """The report's tables from the completed runs already in ``project_dir`` (the latest of
    each job), without running anything."""
    from backends.llm.methods import METHODS
    from workbench.store import Project

    with Project.open(project_dir) as project:
        runs = [r for r in project.runs(status=["completed"])]
        latest = lambda job, ok=lambda r: True: max(  # noqa: E731
            (r.id for r in runs if r.job == job and ok(r)), default=None
        )
        ids = {f"unlearn/{n}": latest(f"llm.unlearn.{n}") for n in METHODS}
        ids["skeb/original"] = latest("llm.skeb", lambda r: r.model == "tiny-gpt")
        ids["skeb/npo"] = latest("llm.skeb", lambda r: str(r.model).startswith("npo-run"))
        ids["attention"] = latest("llm.attention")
        missing = sorted(k for k, v in ids.items() if v is None)
        if missing:
            raise ValueError(f"{project_dir}: no completed run for {', '.join(missing)}")
        lines = render(project, ids)  # type: ignore[arg-type]
    return "\n".join([*lines, "", *judge_confusion()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("study", choices=["report", "tables", "judge"])
    parser.add_argument("--project", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-questions", type=int, default=40)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.study == "judge":
        print("\n".join(judge_confusion()))
        return
    if args.project is None:
        parser.error(f"{args.study} needs --project")
    if args.study == "tables":
        print(tables(args.project))
        return
    print(report(args.project, args.seed, args.max_questions, args.device))


if __name__ == "__main__":
    main()
