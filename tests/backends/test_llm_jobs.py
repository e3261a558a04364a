"""The LLM family's jobs through the real engine, on the built-in tiny GPT (small budgets)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.jobs import Engine, EngineError
from workbench.paths import BUILTIN_MODELS
from workbench.store import Project

TINY = BUILTIN_MODELS / "tiny-gpt"


@pytest.fixture
def engine(project: Project) -> Iterator[Engine]:
    eng = Engine(project)
    yield eng
    eng.shutdown()


def _run(engine: Engine, project: Project, job: str, config: dict, **kw: object) -> int:
    run_id = engine.submit(job, {"device": "cpu", **config}, **kw)
    engine.wait(run_id, 600)
    record = project.run(run_id)
    assert record.status == "completed", record.error
    return run_id


SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "llm" / "tiny-gpt-small"


def test_unlearn_records_before_and_after_and_privleak_against_the_retrained_model(
    engine: Engine, project: Project
) -> None:
    """NPO on the shipped small variant (fixed weights), with its shipped retrained reference."""
    run_id = _run(
        engine,
        project,
        "llm.unlearn.npo",
        {"epochs": 3, "max_eval_items": 20, "n_bootstrap": 100},
        model=str(SMALL),
    )
    final = project.final_metrics(run_id)
    # the forget recall drop is held: the intervals (exact binomial, n = 27) do not overlap, and
    # retain recall keeps a floor (NPO with its KL retain term). Measured: forget 25/27 -> 1/27;
    # Min-K AUC 0.99 [0.97, 1.00] before, PrivLeak before 2.03 [0.73, 5.64], after 0.36 [-0.06, 0.97]
    assert final["before/forget_recall_low"] > final["forget_recall_high"]
    assert final["retain_recall"] >= 0.6  # measured 0.75 (15/20; retrained 0.95)
    # positive control: the original tells its forget facts from never-trained facts
    assert final["before/min_k_mia_auc_low"] > 0.5
    assert final["before/privleak_min_k_low"] > 0.0
    # the retrained reference never saw the forget facts: it does not recall them
    assert final["retrained/forget_recall"] < final["before/forget_recall_low"]
    assert final["forget_recall_n"] == 27 and final["retrained/forget_recall_n"] == 27
    assert {"privleak_min_k", "privleak_loss", "retrained/min_k_mia_auc"} <= set(final)
    messages = [line["message"] for line in project.logs(run_id)]
    assert any("copied from the shipped" in m for m in messages)
    assert any("13 never-trained facts" in m for m in messages)
    row = project.model(f"npo-run{run_id}")
    assert row is not None and row["kind"] == "llm.causal"
    from backends.llm.models import load_causal_lm

    loaded = load_causal_lm(project.abspath(row["path"]), device="cpu")
    assert loaded.bos_token_id is not None
    kinds = {a["name"]: a["kind"] for a in project.artifacts(run_id)}
    assert kinds == {"recall": "bars", "before vs after": "table"}


def test_attention_and_skeb_jobs_produce_their_views(engine: Engine, project: Project) -> None:
    run_id = _run(
        engine, project, "llm.attention", {"compare_prompt": "Q: Who?\nA:"}, model="tiny-gpt"
    )
    final = project.final_metrics(run_id)
    # the job's numbers are the attention module's on the same prompt (the first QA prompt)
    from backends.llm.attention import attention_maps, sink_mass
    from backends.llm.models import load_causal_lm
    from backends.llm.universe import Universe

    prompt = Universe.load(TINY / "universe.json").qa_pairs()[0].prompt
    mass = sink_mass(
        attention_maps(load_causal_lm(TINY, device="cpu", attention="eager"), prompt=prompt)
    )
    assert final["sink_ratio"] == pytest.approx(float((mass > 0.3).float().mean()))
    assert final["mean_sink_mass"] == pytest.approx(float(mass.mean()), rel=1e-5)
    assert {a["name"] for a in project.artifacts(run_id)} >= {"sink mass", "difference"}
    run_id = _run(
        engine, project, "llm.skeb", {"max_questions": 2, "max_new_tokens": 6}, model="tiny-gpt"
    )
    final = project.final_metrics(run_id)
    for framing in ("original", "emotional", "logical", "authority"):
        assert final[f"{framing}/n"] == 2
        assert final[f"{framing}/factual"] + final[f"{framing}/non_factual"] + final[
            f"{framing}/hallucinated"
        ] == pytest.approx(100.0)
    arts = {a["name"]: a for a in project.artifacts(run_id)}
    names = {n: a["kind"] for n, a in arts.items()}
    assert names["domain graph"] == "graph" and names["correlations"] == "heatmap"
    from workbench.artifacts import load_artifact

    graph = load_artifact("graph", project.abspath(arts["domain graph"]["path"]), {})
    assert len(graph.highlight_sets) == 8  # 2 questions x 4 framings, each prompt pickable
    prompts = load_artifact("prompt_table", project.abspath(arts["prompts"]["path"]), {})
    # a base model's answer is one line: the Q/A pairs it invents after it are not judged
    answer = prompts.columns.index("answer")
    assert len(prompts.rows) == 8 and all("\n" not in row[answer] for row in prompts.rows)
    # the matrix's headline (authority/recall) has the exact interval of the per-question
    # verdicts: k recalled of the 2 authority-framed questions
    from backends.common.stats import binomial_interval
    from workbench.attack_matrix import headline_of
    from workbench.registry import get_registry

    framing, said = prompts.columns.index("framing"), prompts.columns.index("verdict")
    verdicts = [row[said] for row in prompts.rows if row[framing] == "authority"]
    low, high = binomial_interval(verdicts.count("recalled"), len(verdicts))
    cell = headline_of(get_registry().job("llm.skeb"), {}, final)
    assert (cell["low"], cell["high"]) == (100 * low, 100 * high)
    assert cell["low"] <= cell["value"] <= cell["high"]
    assert names["rates by framing"] == "bars" and names["M9 vs recall"] == "curves"


def test_a_model_folder_without_tokenizer_is_refused(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(TINY / name, folder / name)
    with pytest.raises(EngineError, match="tokenizer"):
        engine.submit("llm.attention", {}, model=str(folder))


def test_skeb_takes_a_domain_graph_from_a_csv_table(
    engine: Engine, project: Project, tmp_path: Path
) -> None:
    from backends.llm.universe import Universe

    universe = Universe.load(TINY / "universe.json")
    rows = ["Chapter,Entities"] + [
        f'{i},"{", ".join(chapter)}"' for i, chapter in enumerate(universe.chapters()[:20])
    ]
    (tmp_path / "kg.csv").write_text("\n".join(rows) + "\n")
    run_id = _run(
        engine,
        project,
        "llm.skeb",
        {"max_questions": 1, "max_new_tokens": 4, "graph_csv": str(tmp_path / "kg.csv")},
        model="tiny-gpt",
    )
    assert any("domain graph from" in line["message"] for line in project.logs(run_id))
    (tmp_path / "bad.csv").write_text("Book,Names\n1,x\n")
    run_id = engine.submit(
        "llm.skeb", {"device": "cpu", "graph_csv": str(tmp_path / "bad.csv")}, model="tiny-gpt"
    )
    engine.wait(run_id, 600)
    record = project.run(run_id)
    assert record.status == "failed" and "Chapter" in record.status_text
