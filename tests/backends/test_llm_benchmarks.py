"""LLM benchmarks from local files (issue 17 part 1): loaders on hand-made fixtures in the
benchmarks' layouts, each metric on a hand-computed case, the tiny world's TOFU files, and the
TOFU / MUSE configs end to end on the tiny GPT (slow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from backends.llm.benchmarks import metrics as M
from backends.llm.benchmarks.loaders import (
    BenchmarkFileError,
    load_multiple_choice,
    load_muse,
    load_tofu,
    retain_split_for,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BENCH = FIXTURES / "benchmarks"
SMALL = FIXTURES / "llm" / "tiny-gpt-small"


# -- loaders -------------------------------------------------------------------------------------
def test_tofu_loader_reads_the_split_its_retain_split_and_the_perturbed_files() -> None:
    data = load_tofu(BENCH / "tofu", "forget01")
    assert [q.question for q in data.forget][0] == (
        "Where was the author Basil Mahfouz Al-Kuwaiti born?"
    )
    assert len(data.forget) == 2 and len(data.retain) == 3  # retain99 goes with forget01
    first = data.forget_perturbed[0]
    assert first.paraphrased_answer == "Kuwait City is the birthplace of Basil Mahfouz Al-Kuwaiti."
    assert len(first.perturbed_answers) == 3
    assert len(data.retain_perturbed) == 2
    assert data.real_authors == [] and data.world_facts == []  # optional files absent


def test_tofu_loader_names_the_missing_file_the_wrong_field_and_an_empty_file(
    tmp_path: Path,
) -> None:
    for f in (BENCH / "tofu").glob("*.json"):
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / "retain99.json").write_text("")
    with pytest.raises(BenchmarkFileError, match=r"retain99.json is empty; TOFU layout"):
        load_tofu(tmp_path, "forget01")
    with pytest.raises(BenchmarkFileError, match=r"tofu/forget05: no such split.*TOFU layout"):
        load_tofu(BENCH / "tofu", "forget05")
    with pytest.raises(
        BenchmarkFileError, match=r"tofu_bad/forget01.json lacks the field\(s\) answer"
    ):
        load_tofu(BENCH / "tofu_bad", "forget01")
    assert retain_split_for("forget10") == "retain90"
    with pytest.raises(ValueError, match="forgetNN"):
        retain_split_for("forget")


def test_muse_loader_reads_knowmem_verbmem_privleak_and_raw() -> None:
    data = load_muse(BENCH / "muse")
    assert data.forget_qa[1].answer == "About 12,000 people"
    assert len(data.forget_qa_icl) == 1 and len(data.retain_qa) == 2
    assert data.verbmem[0][0] == "The Harrow county council voted on Tuesday to"
    # privleak ships as JSON lists of strings; raw as lists of {"text": ...}
    assert len(data.privleak_forget) == 2 and len(data.privleak_holdout) == 2
    assert data.raw_retain[0] == "Maria Lopez won the county chess final on Sunday."
    with pytest.raises(BenchmarkFileError, match=r"no such folder; MUSE layout"):
        load_muse(BENCH / "tofu")


def test_multiple_choice_loader_reads_parquet_folders_and_letter_answers() -> None:
    bio = load_multiple_choice(BENCH / "wmdp" / "wmdp-bio")  # the hub's parquet layout
    assert [it.answer for it in bio] == [0, 0, 1]
    assert bio[1].choices == ("DNA", "Lipids", "Proteins", "Sugars")
    mmlu = load_multiple_choice(BENCH / "wmdp" / "mmlu.jsonl")
    assert [it.answer for it in mmlu] == [1, 2]  # "B" -> 1
    assert mmlu[0].subject == "elementary_mathematics"
    with pytest.raises(BenchmarkFileError, match=r"bad, row 0: answer 5 is not the index"):
        load_multiple_choice(BENCH / "wmdp" / "bad")
    with pytest.raises(BenchmarkFileError, match=r"nowhere: no such file"):
        load_multiple_choice(BENCH / "nowhere")


# -- metrics ---------------------------------------------------------------------------------------
def test_rouge_l_on_a_perfect_answer_and_a_hand_computed_pair() -> None:
    assert M.rouge_l("Kuwait City", "Kuwait City") == 1.0
    # a generation that contains the answer in order has recall 1 (TOFU's ROUGE is recall)
    assert M.rouge_l("He was born in Kuwait City, I think", "born in Kuwait City") == 1.0
    # LCS of "the cat sat on the mat" / "the cat on a mat" is the-cat-on-mat: 4 of 6, 4 of 5
    assert M.rouge_l("the cat on a mat", "the cat sat on the mat") == pytest.approx(4 / 6)
    f1 = 2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6)
    assert M.rouge_l("the cat on a mat", "the cat sat on the mat", "f1") == pytest.approx(f1)
    assert M.rouge_l("nothing alike", "the cat sat") == 0.0


def test_answer_probability_and_truth_ratio_by_hand() -> None:
    ln2, ln4, ln8 = math.log(2), math.log(4), math.log(8)
    assert M.answer_probability([ln2])[0] == pytest.approx(0.5)
    # q1: P_para 1/2, perturbed 1/4 and 1/4 -> R = 0.25 / 0.5 = 0.5
    # q2: P_para 1/4, perturbed mean NLL (ln2 + ln8) / 2 = ln4 -> 0.25 -> R = 1
    ratios = M.truth_ratios([ln2, ln4], [[ln4, ln4], [ln2, ln8]])
    assert ratios == pytest.approx([0.5, 1.0])
    assert M.truth_ratio_score(ratios, "closer_to_1_better") == pytest.approx(0.75)
    assert M.truth_ratio_score(ratios, "true_better") == pytest.approx(0.25)
    assert M.normalised_probability([0.5], [[0.25, 0.25]]) == pytest.approx([0.5])


def test_forget_quality_is_one_for_the_same_sample_and_tiny_for_disjoint_ones() -> None:
    x = np.linspace(0.1, 2.0, 20)
    assert M.forget_quality(x, x) == 1.0
    # KS statistic 1 between two disjoint samples of 10: exact p = 2 / C(20, 10)
    p = M.forget_quality(np.arange(10.0), np.arange(10.0) + 100)
    assert p == pytest.approx(2 / math.comb(20, 10))


def test_model_utility_is_the_harmonic_mean_and_zero_with_a_zero_score() -> None:
    assert M.model_utility([0.5, 0.25, 1.0]) == pytest.approx(3 / 7)
    assert M.model_utility([0.5, 0.0, 1.0]) == 0.0


def test_multiple_choice_accuracy_needs_the_strictly_highest_loglik() -> None:
    scores = [[-1.0, -2.0, -3.0], [-3.0, -1.0, -2.0], [-1.0, -1.0, -5.0]]
    assert list(M.mc_accuracy(scores, [0, 0, 0])) == [1.0, 0.0, 0.0]  # a tie is not a hit


def test_muse_privleak_by_hand_in_muse_orientation() -> None:
    # retrained: forget [1, 3], holdout [2, 4]: holdout above forget in 3 of 4 pairs -> AUC 0.75
    retrained = ([1.0, 3.0], [2.0, 4.0])
    # a model that still knows the forget set scores it above every holdout text: AUC 0 -> -100%
    target = M.muse_privleak(([3.0, 4.0], [1.0, 2.0]), retrained, n_bootstrap=200)
    assert target.value == pytest.approx(-1.0)
    # one that marks the forget set less member-like than the retrained model: (1 - .75) / .75
    over = M.muse_privleak(([1.0, 2.0], [3.0, 4.0]), retrained, n_bootstrap=200)
    assert over.value == pytest.approx(1 / 3)
    assert M.muse_auc([1.0, 3.0], [2.0, 4.0]) == pytest.approx(0.75)


def test_bootstrap_items_pairs_arrays_of_one_length() -> None:
    same = np.array([0.2, 0.4, 0.9, 1.3])
    # the same questions resampled for both models: identical samples stay identical -> p = 1
    est = M.bootstrap_items(
        lambda p: M.forget_quality(p[:, 0], p[:, 1]), np.stack([same, same], 1), n_bootstrap=200
    )
    assert (est.value, est.low, est.high) == (1.0, 1.0, 1.0)
    const = M.bootstrap_items(lambda x: float(np.mean(x)), np.full(5, 0.3), n_bootstrap=100)
    assert const.low == pytest.approx(0.3) and const.high == pytest.approx(0.3)


# -- the tiny world in the TOFU layout -------------------------------------------------------------
def test_tiny_world_writes_tofu_files_whose_evaluation_texts_were_never_trained(
    tmp_path: Path,
) -> None:
    from backends.llm.benchmarks.tofu_world import world_split, write_tofu_world
    from backends.llm.jobs import _split
    from backends.llm.universe import Universe

    universe = Universe.load(SMALL / "universe.json")
    split = _split(universe, "entity", "", 1)
    name = write_tofu_world(universe, split, tmp_path, n_retain_eval=10)
    pct = round(100 * len(split.forget) / (len(split.forget) + len(split.retain)))
    assert name == f"forget{pct:02d}"
    data = load_tofu(tmp_path, name)
    assert [q.answer for q in data.forget] == [f.object for f in split.forget]
    trained = set(universe.training_texts())
    for item in data.forget_perturbed + data.retain_perturbed:
        # the paraphrase is a held-out sentence: no model of the universe and no method saw it
        assert item.paraphrased_answer not in trained
        assert item.answer in item.paraphrased_answer
        assert all(item.answer not in p.split() for p in item.perturbed_answers)
    # the retain facts scored for utility are left out of what a method trains on
    eval_q = {q.question for q in data.retain_perturbed}
    assert len(eval_q) == 10 and not eval_q & {q.question for q in data.retain}
    assert world_split(tmp_path, universe)[1].forget == split.forget


# -- model side ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_lm():
    from backends.llm.models import load_causal_lm

    return load_causal_lm(SMALL, device="cpu")


def test_continuation_nll_scores_exactly_the_continuation_tokens(small_lm) -> None:
    from backends.llm.benchmarks.scoring import continuation_nll
    from backends.llm.evaluation import token_logprob_lists

    model, tok = small_lm.model, small_lm.tokenizer
    prompt, answer = "Q: Where does Zadroul Rouzhos live?\nA:", "Pylreach"
    ((nll, n),) = continuation_nll(model, tok, [(prompt, answer)])
    n_answer = len(tok(" " + answer, add_special_tokens=False)["input_ids"])
    # whole-sequence log-probs minus the prompt's: the continuation's own NLL
    whole = token_logprob_lists(model, tok, [prompt + " " + answer])[0]
    head = token_logprob_lists(model, tok, [prompt])[0]
    assert n == n_answer
    assert nll == pytest.approx(float(-(whole.sum() - head.sum())), rel=1e-4)


def test_a_perfect_model_scores_rouge_one_and_probability_one(monkeypatch, small_lm) -> None:
    """A model whose generations are the answers and whose answer NLL is 0."""
    from backends.llm.benchmarks import evaluate as E
    from backends.llm.benchmarks import scoring
    from backends.llm.benchmarks.configs import BenchmarkConfig

    data = load_tofu(BENCH / "tofu", "forget01")
    answers = {f"Q: {q.question}\nA:": q.answer for q in data.forget}
    monkeypatch.setattr(
        scoring, "generate", lambda m, t, prompts, *a, **k: [answers[p] for p in prompts]
    )
    monkeypatch.setattr(
        scoring, "continuation_nll", lambda m, t, pairs, **k: [(0.0, 3)] * len(pairs)
    )
    scores = E.score_qa(small_lm.model, small_lm.tokenizer, data.forget, BenchmarkConfig())
    assert list(scores.rouge) == [1.0, 1.0] and list(scores.prob) == [1.0, 1.0]


# -- end to end ------------------------------------------------------------------------------------
def _run_config(project, name: str, overrides: dict) -> int:
    from workbench.cli import read_run_file
    from workbench.jobs import Engine
    from workbench.paths import CONFIGS

    request = read_run_file(CONFIGS / "llm" / name)
    engine = Engine(project)
    try:
        run_id = engine.submit(
            request["job"],
            {**request["config"], **overrides},
            seed=request["seed"],
            model=str(SMALL),
        )
        engine.wait(run_id, 900)
    finally:
        engine.shutdown()
    return run_id


def test_tofu_config_without_a_path_says_what_to_fill_in(project) -> None:
    run_id = _run_config(project, "tofu-npo.yaml", {"device": "cpu", "epochs": 1})
    record = project.run(run_id)
    assert record.status == "failed"
    assert "config field 'benchmark_path' is empty: fill in the folder of your TOFU" in record.error


@pytest.mark.slow
def test_tofu_config_end_to_end_on_the_tiny_gpt_against_its_retrained_reference(project) -> None:
    overrides = {
        "device": "cpu",
        "benchmark_path": "tiny-world",
        "epochs": 1,
        "max_new_tokens": 4,
        "max_benchmark_items": 10,
        "n_bootstrap": 100,
    }
    run_id = _run_config(project, "tofu-npo.yaml", overrides)
    record = project.run(run_id)
    assert record.status == "completed", record.error
    final = project.final_metrics(run_id)
    keys = (
        "forget_prob",
        "forget_rouge",
        "forget_truth_ratio",
        "forget_quality",
        "retain_prob",
        "retain_rouge",
        "retain_truth_ratio",
        "model_utility",
    )
    for key in keys:
        assert f"before/{key}_low" in final and f"{key}_high" in final
    # the retrained reference against itself: identical truth ratios, forget quality exactly 1
    assert final["retrained/forget_quality"] == 1.0
    artifacts = {a["name"] for a in project.artifacts(run_id)}
    assert "before vs after" in artifacts


@pytest.mark.slow
def test_muse_config_end_to_end_on_the_fixture(project) -> None:
    overrides = {
        "device": "cpu",
        "benchmark_path": str(BENCH / "muse"),
        "epochs": 1,
        "knowmem_new_tokens": 4,
        "verbmem_new_tokens": 8,
        "retrained_auc": 0.5,
        "n_bootstrap": 100,
    }
    run_id = _run_config(project, "muse-npo.yaml", overrides)
    record = project.run(run_id)
    assert record.status == "completed", record.error
    final = project.final_metrics(run_id)
    for key in ("knowmem_forget", "knowmem_retain", "verbmem_forget", "privleak_auc", "privleak"):
        assert f"before/{key}" in final and key in final
    # PrivLeak against a published AUC of 0.5 is (AUC - 0.5) / 0.5, by definition
    assert final["privleak"] == pytest.approx((final["privleak_auc"] - 0.5) / 0.5)
    meta = json.loads(
        (Path(project.root) / "models").joinpath(f"npo-run{run_id}", "benchmark.json").read_text()
    )
    assert meta["benchmark"] == "muse"


@pytest.mark.slow
def test_wmdp_eval_config_on_the_parquet_fixture(project) -> None:
    from backends.common.stats import rate

    overrides = {"device": "cpu", "benchmark_path": str(BENCH / "wmdp" / "wmdp-bio")}
    run_id = _run_config(project, "wmdp-eval.yaml", overrides)
    record = project.run(run_id)
    assert record.status == "completed", record.error
    final = project.final_metrics(run_id)
    assert final["mc_n"] == 3
    k = round(final["mc_accuracy"] * 3)
    assert final["mc_accuracy_low"] == pytest.approx(rate(k, 3).low)


def test_a_benchmark_folder_added_as_a_dataset_becomes_the_unlearn_jobs_source(project) -> None:
    from types import SimpleNamespace

    from backends.llm.benchmarks.configs import BenchmarkConfig
    from backends.llm.benchmarks.jobs import benchmark_source, wants_benchmark
    from workbench.catalog import Catalog
    from workbench.registry import add_dataset_to_project, get_registry

    registry = get_registry()
    add_dataset_to_project(project, registry, "tofu", "my-tofu", str(BENCH / "tofu"))
    with pytest.raises(ValueError, match=r"holds no forgetNN split"):
        add_dataset_to_project(project, registry, "tofu", "not-tofu", str(BENCH / "muse"))
    ref = Catalog(project, registry).resolve_dataset("my-tofu")
    cfg = BenchmarkConfig(tofu_split="forget01")  # benchmark "none": the dataset decides
    ctx = SimpleNamespace(dataset=ref, part=lambda cls: cfg)
    assert wants_benchmark(ctx)
    src = benchmark_source(ctx, cfg, SMALL)
    assert (src.kind, src.path, src.tofu_split) == ("tofu", BENCH / "tofu", "forget01")
    # without a dataset, an empty path is the one clear error
    with pytest.raises(ValueError, match="config field 'benchmark_path' is empty"):
        benchmark_source(SimpleNamespace(dataset=None), BenchmarkConfig(benchmark="tofu"), SMALL)
