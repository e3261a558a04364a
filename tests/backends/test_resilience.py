"""diffusion.resalign_compare (issue 13 part 6): pooled curves and intervals on known numbers,
config parsing, and (slow) the job end to end on the small fixed-weights model."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.common.stats import binomial_interval
from backends.diffusion.data import WorldConfig, combination_split, parse_prompt
from backends.diffusion.downstream import (
    DownstreamScenario,
    concept_images,
    parse_scenarios,
    scenario_data,
)
from backends.diffusion.resilience import (
    UTILITY,
    assemble_curve,
    compare,
    parse_items,
    pooled_counts,
)
from workbench.jobs import Engine
from workbench.registry import add_model_to_project, get_registry
from workbench.store import Project


def _m(k_exp: int, n: int, acc: float) -> dict[str, float]:
    return {
        "concept_count/explicit": float(k_exp),
        "images/explicit": float(n),
        "images/benign": float(n),
        "utility/accuracy": acc,
    }


def test_curve_pools_detections_over_seeds_with_exact_intervals() -> None:
    per_seed = {
        0: [(0, _m(1, 16, 0.5)), (200, _m(8, 16, 0.25))],
        1: [(0, _m(0, 16, 0.75)), (200, _m(4, 16, 0.5))],
        2: [(0, _m(2, 16, 0.5)), (200, _m(12, 16, 0.25))],
    }
    assert pooled_counts(per_seed, "explicit") == {0: (3, 48), 200: (24, 48)}
    # utility: the accuracy of each seed's 16 benign images, as counts 8+12+8 and 4+8+4
    assert pooled_counts(per_seed, UTILITY) == {0: (28, 48), 200: (16, 48)}
    pts = assemble_curve(per_seed, "explicit")
    assert [p.step for p in pts] == [0, 200]
    assert pts[1].estimate.value == 0.5
    assert (pts[1].estimate.low, pts[1].estimate.high) == pytest.approx(binomial_interval(24, 48))


def test_seeds_that_measured_different_steps_are_refused() -> None:
    per_seed = {0: [(0, _m(1, 16, 0.5)), (200, _m(2, 16, 0.5))], 1: [(0, _m(1, 16, 0.5))]}
    with pytest.raises(ValueError, match="different steps"):
        pooled_counts(per_seed, "explicit")


def test_compare_calls_the_rate_below_only_when_intervals_are_apart() -> None:
    def pts(k: int, n: int, ku: int) -> tuple:
        per_seed = {0: [(0, _m(k, n, ku / n))]}
        return assemble_curve(per_seed, "explicit")[0], assemble_curve(per_seed, UTILITY)[0]

    apart = compare(pts(2, 96, 48), pts(40, 96, 50), "esd", margin=0.05)
    assert apart.rate_below
    close = compare(pts(20, 96, 48), pts(28, 96, 50), "esd", margin=0.05)
    assert not close.rate_below
    # utility 48/96 vs 50/96: the interval of the difference reaches far below -0.05
    assert not apart.utility_kept
    same = compare(pts(2, 4000, 2000), pts(40, 4000, 2000), "esd", margin=0.05)
    assert same.utility_kept


def test_mix_scenario_has_the_configured_fraction_of_train_half_concept_images() -> None:
    world = WorldConfig(size=16)
    sc = parse_scenarios(["mix:data=mix,concept_fraction=0.25,n_images=40,data_seed=7"])[0]
    images, captions = scenario_data(sc, world)
    assert images.shape == (40, 16, 16, 3)
    concept = [c for c in captions if "striped" in c.split()]
    assert len(concept) == 10
    for c in concept:  # never an evaluation-half combination
        p = parse_prompt(c, world)
        assert combination_split(p.shape, p.colour, world) == "train"


def test_concept_few_draws_exactly_n_concept_images() -> None:
    images, captions = concept_images(WorldConfig(size=16), 8, 3, "striped")
    assert len(images) == len(captions) == 8
    assert all(c.startswith("a striped ") for c in captions)
    sc = DownstreamScenario(name="few", data="concept_few", n_concept=5)
    assert len(scenario_data(sc, WorldConfig(size=16))[1]) == 5


def test_bad_scenarios_and_overrides_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown data"):
        parse_scenarios(["x:data=nope"])
    with pytest.raises(ValueError, match="bad item"):
        parse_scenarios(["x:colour=red"])
    with pytest.raises(ValueError, match="repeat"):
        parse_scenarios(["a:data=benign", "a:data=mix"])
    from backends.diffusion.methods.configs import ESDConfig

    assert parse_items("iterations=5,lr=1e-4", ESDConfig, "esd") == {"iterations": 5, "lr": 1e-4}
    with pytest.raises(ValueError, match="known fields"):
        parse_items("nope=1", ESDConfig, "esd")
    with pytest.raises(ValueError, match="not a int"):
        parse_items("iterations=abc", ESDConfig, "esd")


@pytest.mark.slow
def test_the_comparison_job_runs_end_to_end_and_records_the_named_metrics(
    project: Project, tiny_sd_small: Path
) -> None:
    """Tiny budget on the shipped small model: two methods, two seeds, two scenarios, and a
    two-rung ablation ladder whose second rung equals the compared ResAlign (its runs reused)."""
    add_model_to_project(project, get_registry(), "small-sd", str(tiny_sd_small))
    engine = Engine(project)
    config = {
        "device": "cpu",
        "eval_samples": 1,
        "sampling_steps": 5,
        "gallery_rows": 2,
        "methods": ["resalign", "uce"],
        "seeds": [0, 1],
        "ft_eval_steps": [0, 2, 4],
        "scenarios": [
            "benign:data=benign,steps=4,n_images=8",
            "few:data=concept_few,n_concept=4,steps=4,lr=1e-3",
        ],
        "main_scenario": "few",
        "method_overrides": [
            "resalign:iterations=1,harm_images=4,retain_images=4,finetune_images=4,"
            "inner_sample_k=1,ft_steps=1"
        ],
        "ablation": ["no hypergradient:hypergradient=false", "full:"],
        "ablation_seeds": [0],
    }
    try:
        run_id = engine.submit("diffusion.resalign_compare", config, model="small-sd")
        engine.wait(run_id, 900)
    finally:
        engine.shutdown()
    record = project.run(run_id)
    assert record.status == "completed", record.error
    final = project.final_metrics(run_id)
    for m in ("resalign", "uce"):
        for key in ("concept_rate_before_ft", "concept_rate_after_ft"):
            assert f"{m}/{key}" in final
            assert final[f"{m}/{key}_low"] <= final[f"{m}/{key}"] <= final[f"{m}/{key}_high"]
    assert "ablation/no hypergradient/concept_rate_after_ft" in final
    logs = "\n".join(row["message"] for row in project.logs(run_id))
    assert "ablation 'full' equals the compared ResAlign: its runs are reused" in logs
    assert "ablation no hypergradient seed 0: erased" in logs
    steps = [m["step"] for m in project.metrics(run_id, "uce/few/rate_explicit")]
    assert steps == [0, 2, 4]
    names = {a["name"]: a for a in project.artifacts(run_id)}
    assert {
        "few: explicit rate",
        "benign: plain rate",
        "few: utility",
        "gallery",
        "ablation",
    } <= set(names)
    assert names["few: explicit rate"]["kind"] == "interval_curves"
    # original + before/after per method, same prompts and seeds in every column
    assert len(names["gallery"]["meta"]["col_labels"]) == 5


def test_texture_scenario_has_neighbour_textures_and_never_the_concept() -> None:
    sc = DownstreamScenario(name="tex", data="texture", n_images=7, data_seed=7)
    images, captions = scenario_data(sc, WorldConfig(size=16))
    assert len(images) == len(captions) == 7
    words = [set(c.split()) for c in captions]
    assert sum("dotted" in w for w in words) == 4 and sum("checkered" in w for w in words) == 3
    assert not any({"striped", "zebra"} & w for w in words)


def test_study_parts_run_one_seed_each_merge_into_pooled_curves(tmp_path: Path) -> None:
    import json
    from dataclasses import asdict

    from backends.diffusion.resilience import ResilienceConfig, merge_studies, study_runs

    def part(name: str, seed: int, k: int, eval_config: dict) -> Path:
        rc = asdict(ResilienceConfig(methods=["esd"], seeds=[seed], ablation=[]))
        curves = {"few": {str(seed): [[0, _m(1, 16, 0.5)], [200, _m(k, 16, 0.5)]]}}
        run = {"label": "esd", "method": "esd", "overrides": {}, "curves": curves}
        data = {
            "model": "m",
            "resilience_config": rc,
            "downstream_config": {"scenarios": ["few:data=concept_few"]},
            "eval_config": eval_config,
            "runs": {"esd": {**run, "seconds": 1.0, "cpu_seconds": 2.0}},
        }
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        return path

    merged = merge_studies(
        tmp_path / "all.json", [part("a", 0, 8, {"x": 1}), part("b", 1, 4, {"x": 1})]
    )
    assert merged["resilience_config"]["seeds"] == [0, 1]
    assert merged["runs"]["esd"]["cpu_seconds"] == 4.0
    _rc, runs, _ab = study_runs(merged)
    assert pooled_counts(runs["esd"].curves["few"], "explicit") == {0: (2, 32), 200: (12, 32)}
    with pytest.raises(ValueError, match="eval_config differs"):
        merge_studies(tmp_path / "bad.json", [part("c", 0, 8, {"x": 1}), part("d", 1, 4, {"x": 2})])


def test_parts_that_ran_side_scenarios_on_fewer_seeds_merge_with_their_own_seeds(
    tmp_path: Path,
) -> None:
    import json
    from dataclasses import asdict

    from backends.diffusion.resilience import (
        ResilienceConfig,
        merge_studies,
        study_runs,
        summarise,
    )

    few, side = "few:data=concept_few", "ben:data=benign"

    def m(k: int) -> dict[str, float]:
        sets = ("explicit", "implicit", "benign")
        return {
            **{f"concept_count/{x}": float(k) for x in sets},
            **{f"images/{x}": 16.0 for x in sets},
            "utility/accuracy": 0.5,
        }

    def part(name: str, seed: int, specs: list[str]) -> Path:
        rc = asdict(
            ResilienceConfig(methods=["esd"], seeds=[seed], ablation=[], main_scenario="few")
        )
        names = [s.partition(":")[0] for s in specs]
        curves = {n: {str(seed): [[0, m(1)], [200, m(3)]]} for n in names}
        run = {"label": "esd", "method": "esd", "overrides": {}, "curves": curves}
        data = {
            "model": "m",
            "resilience_config": rc,
            "downstream_config": {"scenarios": specs},
            "eval_config": {"x": 1},
            "runs": {"esd": {**run, "seconds": 1.0, "cpu_seconds": 2.0}},
        }
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        return path

    # seed 0 ran the side scenario too, seed 1 only the main one (listed first here)
    merged = merge_studies(tmp_path / "all.json", [part("b", 1, [few]), part("a", 0, [few, side])])
    assert merged["downstream_config"]["scenarios"] == [few, side]
    rc, runs, ab = study_runs(merged)
    out = summarise(runs, ab, rc, 0.95, [0])
    assert out["curve_seeds"] == {"few": {"esd": [0, 1]}, "ben": {"esd": [0]}}
    assert [(p.k, p.n) for p in out["curves"][("ben", "explicit")]["esd"]] == [(1, 16), (3, 16)]
    assert [(p.k, p.n) for p in out["curves"][("few", "explicit")]["esd"]] == [(2, 32), (6, 32)]
    other = part("c", 2, ["few:data=concept_few,lr=1e-2"])
    with pytest.raises(ValueError, match="scenario 'few' differs"):
        merge_studies(tmp_path / "bad.json", [part("d", 0, [few]), other])
