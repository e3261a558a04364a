"""The attack matrix on real classifier runs (issue 18 test): two unlearned digits MLPs x three
attacks give six child runs whose headline numbers equal those of each attack run alone with the
same seed.  Small budgets; end to end, so it is slow."""

from __future__ import annotations

import pytest

from workbench.jobs import Engine
from workbench.store import Project

UNLEARN = {
    "train_epochs": 5,
    "epochs": 1,
    "attacks": ["svc_mia"],
    "n_bootstrap": 20,
    "device": "cpu",
}
ATTACKS = ("classifier.attack.svc_mia", "classifier.attack.umia", "classifier.attack.mia_nn")
SETTINGS = {"n_bootstrap": 50, "references": 2}  # fields of every classifier attack's config
HEADLINES = {"svc_mia": "svc_mia_efficacy", "umia": "umia_auc", "mia_nn": "mia_nn_gap"}


@pytest.mark.slow
def test_two_classifier_runs_by_three_attacks_equal_the_attacks_run_alone(
    project: Project,
) -> None:
    engine = Engine(project)
    try:
        runs = []
        for method in ("ga", "ft"):
            run = engine.submit(f"classifier.unlearn.{method}", UNLEARN, seed=2, dataset="digits")
            assert engine.wait(run, 600) == "completed", project.run(run).status_text
            runs.append(run)
        overrides = [f"{a}:{k}={v}" for a in ATTACKS for k, v in SETTINGS.items()]
        config = {"runs": runs, "attacks": list(ATTACKS), "overrides": overrides}
        parent = engine.submit("attack_matrix", config, seed=5)
        assert engine.wait(parent, 600) == "completed", project.run(parent).status_text
        children = [r for r in project.runs() if r.parent_id == parent]
        assert sorted((r.job, r.model) for r in children) == sorted(
            (a, m["name"]) for a in ATTACKS for m in project.models() if m["source_run"] in runs
        )
        matrix = project.final_metrics(parent)
        for child in children:
            alone = engine.submit(child.job, SETTINGS, seed=5, model=child.model, dataset="digits")
            assert engine.wait(alone, 600) == "completed"
            attack = child.job.rsplit(".", 1)[-1]
            head = HEADLINES[attack]
            source = next(m["source_run"] for m in project.models() if m["name"] == child.model)
            mine = project.final_metrics(alone)
            for suffix in ("", "_low", "_high"):
                key = f"run{source}/{child.job}/{head}{suffix}"
                assert matrix[key] == mine[head + suffix], key
            assert (
                matrix[f"run{source}/{child.job}/{head}_reference"] == (mine[f"reference/{head}"])
            )
    finally:
        engine.shutdown()
