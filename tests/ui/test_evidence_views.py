"""Evidence views of the LLM family: the attention-sink view (every layer and head, grid, picker,
run-to-run difference), the SKeB prompt view (answer, verdict, M1-M9) and the domain graph's node
click. The artifacts come from real runs of the jobs on the shipped tiny GPT fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QFontMetrics, QMouseEvent
from PySide6.QtWidgets import QApplication

from ui.views.graph_explorer import GraphViewer
from ui.views.run_view import RunView
from ui.views.sink_view import LABEL_PX, AttentionMapWidget, SinkView
from ui.views.skeb_view import SkebView
from workbench.artifacts import load_artifact
from workbench.jobs import Engine
from workbench.store import Project

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "llm" / "tiny-gpt-small"
OTHER_PROMPT = "Q: Who is the sibling of nobody?\nA:"
SEED = 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Iterator[tuple[Project, dict[str, int]]]:
    """One project with two attention runs (the default prompt and another one) and a SKeB run,
    each on the shipped small tiny GPT, run one after the other."""
    folder = tmp_path_factory.mktemp("evidence")
    project = Project.create(folder / "project")
    perturbed = _perturbed_copy(folder / "perturbed-gpt")
    engine = Engine(project)
    ids = {}
    try:
        for name, job, config, model in (
            ("attention", "llm.attention", {"layer": 1, "head": 2}, SMALL),
            ("attention_other", "llm.attention", {"prompt": OTHER_PROMPT}, SMALL),
            ("attention_perturbed", "llm.attention", {}, perturbed),
            ("skeb", "llm.skeb", {"max_questions": 1, "max_new_tokens": 6}, SMALL),
        ):
            run_id = engine.submit(job, {"device": "cpu", **config}, model=str(model), seed=SEED)
            engine.wait(run_id, 300)
            assert project.run(run_id).status == "completed", project.run(run_id).error
            ids[name] = run_id
    finally:
        engine.shutdown()
    yield project, ids
    project.close()


def _perturbed_copy(folder: Path) -> Path:
    """The fixture with layer 2's query weights doubled (same tokenizer: same tokens, other maps;
    layers 0 and 1 are untouched, so their maps are the fixture's)."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    folder.mkdir()
    for item in SMALL.iterdir():
        if item.is_file():
            shutil.copy(item, folder / item.name)
    weights = load_file(SMALL / "model.safetensors")
    qkv = weights["transformer.h.2.attn.c_attn.weight"].clone()
    d = qkv.shape[0]
    qkv[:, :d] *= 2.0  # GPT-2's Conv1D: columns [0, d) are the query projection
    weights["transformer.h.2.attn.c_attn.weight"] = qkv
    save_file(
        {k: v.contiguous() for k, v in weights.items()},
        folder / "model.safetensors",
        metadata={"format": "pt"},
    )
    assert torch.equal(
        load_file(folder / "model.safetensors")["transformer.h.2.attn.c_attn.weight"], qkv
    )
    return folder


def _artifact(project: Project, run_id: int, name: str):
    row = next(a for a in project.artifacts(run_id) if a["name"] == name)
    return load_artifact(row["kind"], project.abspath(row["path"]), row["meta"])


# -- attention sink view ---------------------------------------------------------------------


def _sink_view(qtbot, project: Project, run_id: int) -> SinkView:
    view = SinkView(_artifact(project, run_id, "attention maps"))
    qtbot.addWidget(view)
    view.resize(900, 760)
    with qtbot.waitSignal(view.candidates_loaded, timeout=10_000):
        view.set_project(project, run_id)
    return view


def test_the_picker_switches_the_map_and_the_grid_opens_a_head(qtbot, runs) -> None:
    project, ids = runs
    view = _sink_view(qtbot, project, ids["attention"])
    stack = view.artifact
    assert (view.layer, view.head) == (1, 2)  # the job's layer / head open first
    assert np.array_equal(view.map.matrix, stack.maps[1, 2].astype(np.float64))
    view.layer_box.setCurrentIndex(3)
    view.head_box.setCurrentIndex(0)
    assert np.array_equal(view.map.matrix, stack.maps[3, 0].astype(np.float64))
    assert not np.array_equal(stack.maps[3, 0], stack.maps[1, 2])
    assert "Layer 3, head 0" in view.map.title
    # the grid: one thumbnail per (layer, head); a click opens that head in the map tab
    assert len(view.grid.cells) == stack.num_layers * stack.num_heads == 16
    assert f"sink {stack.sink_mass[2, 1]:.2f}" == view.grid.cells[(2, 1)].text()
    qtbot.mouseClick(view.grid.cells[(2, 1)], Qt.MouseButton.LeftButton)
    assert (view.layer, view.head) == (2, 1) and view.tabs.currentWidget() is view.map
    assert np.array_equal(view.map.matrix, stack.maps[2, 1].astype(np.float64))


def test_token_labels_never_overlap_and_hover_names_both_tokens(qtbot) -> None:
    rng = np.random.default_rng(SEED)
    n = 60
    maps = np.tril(rng.random((n, n)))
    maps /= maps.sum(-1, keepdims=True)
    tokens = ["<bos>", *(f" word{i}" for i in range(1, n - 1)), " a-very-long-token-indeed" * 3]
    widget = AttentionMapWidget()
    qtbot.addWidget(widget)
    widget.set_map(maps, tokens, title="60 tokens")
    widget.resize(700, 700)
    widget.show()
    qtbot.waitExposed(widget)
    line = QFontMetrics(widget.label_font).height()
    cell = widget.plot_rect().width() / n
    # cells smaller than a line of text: every k-th token is labelled, k cells >= one line apart
    stride = widget.label_stride()
    assert cell < line and stride > 1 and stride * cell >= line and (stride - 1) * cell < line
    widget.resize(1400, 1400)
    assert widget.label_stride() == 1  # room for every label
    # a long token is elided to a fixed width; the hover text names both tokens in full
    assert widget.plot_rect().left() <= LABEL_PX + 8
    rect, cell = widget.plot_rect(), widget.plot_rect().width() / n
    at = QPointF(rect.left() + 0.5 * cell, rect.bottom() - 0.5 * cell)
    move = QMouseEvent(
        QEvent.Type.MouseMove,
        at,
        widget.mapToGlobal(at),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(widget.hovered) as hovered:
        QApplication.sendEvent(widget, move)
    assert hovered.args[0].startswith(f"query {n - 1} '␣a-very-long-token-indeed")
    assert "key 0 '<bos>'" in hovered.args[0]


def test_difference_with_itself_is_zero_and_other_tokens_are_refused(qtbot, runs) -> None:
    project, ids = runs
    view = _sink_view(qtbot, project, ids["attention"])
    labels = [view.compare_box.itemText(i) for i in range(view.compare_box.count())]
    assert labels[1:] == [
        f"run #{ids['attention']}: attention maps (this run)",
        f"run #{ids['attention_other']}: attention maps",
        f"run #{ids['attention_perturbed']}: attention maps",
    ]
    with qtbot.waitSignal(view.compared, timeout=10_000):
        view.compare_box.setCurrentIndex(1)
    assert view.other is not None and view.map.diverging
    assert not view.shown_maps().any()  # A - A, every layer and head
    assert not view.map.matrix.any() and view.grid.cells[(0, 0)].text() == "max|Δ| 0"
    with qtbot.waitSignal(view.compared, timeout=10_000):
        view.compare_box.setCurrentIndex(2)
    assert view.other is None and view.compare_box.currentIndex() == 0
    assert (
        "other tokens" in view.note.text() and f"run #{ids['attention_other']}" in view.note.text()
    )
    assert not view.note.isHidden() and not view.map.diverging
    assert np.array_equal(view.map.matrix, view.artifact.maps[view.layer, view.head])
    # another model on the same tokens: A - B, zero where the models agree (layers 0 and 1 come
    # before the changed layer), and exactly the two runs' maps subtracted
    with qtbot.waitSignal(view.compared, timeout=10_000):
        view.compare_box.setCurrentIndex(3)
    other = _artifact(project, ids["attention_perturbed"], "attention maps")
    expected = view.artifact.maps.astype(np.float32) - other.maps.astype(np.float32)
    assert np.array_equal(view.shown_maps(), expected)
    assert not expected[:2].any() and np.abs(expected[2:]).max() > 0.05
    view.open_head(2, 0)
    assert view.map.diverging and np.array_equal(view.map.matrix, expected[2, 0])
    assert view.map.lo == -view.map.hi == -np.abs(expected[2, 0]).max()
    assert "this run - run #" in view.map.title and "red where this run" in view.grid_hint.text()
    # a crafted row pointing outside the project, and a file gone from disk: a note, no traceback
    for run_id, path, says in (
        (98, "../../outside.npz", "outside"),
        (99, "runs/1/artifacts/gone.npz", "could not be read"),
    ):
        view.compare_box.addItem(
            f"run #{run_id}", (run_id, {"name": "x", "kind": "attention", "path": path, "meta": {}})
        )
        with qtbot.waitSignal(view.compared, timeout=10_000):
            view.compare_box.setCurrentIndex(view.compare_box.count() - 1)
        assert (
            view.other is None and f"run #{run_id}" in view.note.text() and says in view.note.text()
        )


def test_the_run_view_opens_the_sink_view(qtbot, runs) -> None:
    project, ids = runs
    view = RunView()
    qtbot.addWidget(view)
    view.set_project(project)
    with qtbot.waitSignal(view.loaded, timeout=10_000):
        view.show_run(ids["attention"])
    sink = view.show_artifact("attention maps")
    assert isinstance(sink, SinkView) and sink.project is project
    assert sink.run_id == ids["attention"]


# -- SKeB --------------------------------------------------------------------------------------


def test_skeb_records_answer_and_verdict_of_every_evaluated_prompt(runs) -> None:
    """The job's per-prompt record on the shipped fixture: the questions of the seeded forget
    subset (unchanged held-out rules), in four framings, each with its answer and the verdict the
    judge gives that answer."""
    from backends.llm.jobs import _split, _subsample
    from backends.llm.skeb.analysis import verdict
    from backends.llm.skeb.judge import RuleJudge
    from backends.llm.universe import Universe

    project, ids = runs
    table = _artifact(project, ids["skeb"], "prompts")
    col = {c: i for i, c in enumerate(table.columns)}
    universe = Universe.load(SMALL / "universe.json")
    facts = _subsample(list(_split(universe, "entity", "", 1).forget), 1, SEED)
    assert len(table.rows) == 4
    assert [r[col["framing"]] for r in table.rows] == [
        "original",
        "emotional",
        "logical",
        "authority",
    ]
    judge = RuleJudge(universe.triples(), universe.entity_names(), universe.aliases())
    for row in table.rows:
        assert row[col["question"]] == facts[0].qa.question
        assert row[col["gold answer"]] == facts[0].answer
        assert facts[0].qa.question in row[col["prompt"]]  # the whole prompt, never cut
        again = judge.judge(
            row[col["answer"]], subject=facts[0].subject, relation=facts[0].relation, short=True
        )
        assert row[col["verdict"]] == verdict(again)
        assert row[col["factual %"]] == again.factual
    assert {f"M{i}" for i in range(1, 10)} <= set(table.columns)
    assert "spreading activation" in table.column_help["M9"] and "M9" in table.legend
    assert {"prompt", "answer", "verdict"} <= set(table.long_columns)


def test_selecting_a_prompt_shows_its_answer_verdict_and_metrics(qtbot, runs) -> None:
    project, ids = runs
    table = _artifact(project, ids["skeb"], "prompts")
    col = {c: i for i, c in enumerate(table.columns)}
    view = SkebView(table)
    qtbot.addWidget(view)
    assert "prompt" not in view.list_columns  # long text is read whole in the detail pane
    with qtbot.waitSignal(view.selected) as picked:
        view.table.selectRow(2)
    row = table.rows[picked.args[0]]
    text = view.detail_text()
    assert row[col["prompt"]] in text and f"Answer\n{row[col['answer']]}" in text
    assert f"Verdict\n{row[col['verdict']]}" in text and row[col["judge"]] in text
    # every metric with its value and its definition (also its tooltip)
    metrics = {view.metrics.item(i, 0).text(): i for i in range(view.metrics.rowCount())}
    assert list(metrics) == ["factual %", *(f"M{i}" for i in range(1, 10))]
    m9 = metrics["M9"]
    assert view.metrics.item(m9, 1).text() == f"{row[col['M9']]:.4g}"
    assert "spreading activation" in view.metrics.item(m9, 2).text()
    assert "spreading activation" in view.metrics.item(m9, 1).toolTip()
    header = view.table.horizontalHeaderItem(view.list_columns.index("M4"))
    assert "density" in header.toolTip()
    view.help_button.click()
    assert not view.legend.isHidden() and "M1 edge-count entanglement" in view.legend.text()
    # the verdict filter keeps the prompts with that verdict only
    verdicts = [r[col["verdict"]] for r in table.rows]
    view.verdict.setCurrentText(verdicts[0])
    assert [verdicts[i] for i in view.visible_rows()] == [v for v in verdicts if v == verdicts[0]]


def test_clicking_a_graph_node_lists_its_facts_and_prompts(qtbot, runs) -> None:
    project, ids = runs
    graph = _artifact(project, ids["skeb"], "domain graph")
    viewer = GraphViewer(graph)
    qtbot.addWidget(viewer)
    viewer.resize(1000, 700)
    viewer.show()
    qtbot.waitExposed(viewer)
    name = graph.highlight[0]  # an entity of the first prompt
    index = viewer.index[name]
    # a real click on the node, where the view draws it
    vb = viewer.plot_item.vb
    scene = vb.mapViewToScene(QPointF(*map(float, viewer.pos[index])))
    at = viewer.plot.mapFromScene(scene)
    with qtbot.waitSignal(viewer.graph.scatter.sigClicked, timeout=5000):
        qtbot.mouseClick(viewer.plot.viewport(), Qt.MouseButton.LeftButton, pos=at)
    assert viewer.selected_node == index and viewer.focus == index
    from backends.llm.universe import Universe

    universe = Universe.load(SMALL / "universe.json")
    facts = [f.canonical for f in universe.facts if name in (f.subject, f.object)]
    listed = viewer.node_list_texts()
    assert facts and all(f in listed for f in facts)
    prompts = [k for k, v in graph.highlight_sets.items() if name in v]
    assert prompts and all(p in listed for p in prompts)
    assert name in viewer.node_title.text()
    # a listed prompt shows its entities
    item = viewer.node_list.findItems(prompts[-1], Qt.MatchFlag.MatchExactly)[0]
    viewer.node_list.itemClicked.emit(item)
    assert viewer.highlighted == {viewer.index[e] for e in graph.highlight_sets[prompts[-1]]}
    # labels: elided when long, full name on hover, never overlapping
    assert all(len(viewer.labels[i].toPlainText()) <= 16 for i in range(len(viewer.nodes)))
    assert viewer.labels[index].toolTip() == name
    rects = {i: viewer.labels[i].sceneBoundingRect() for i in viewer.visible_labels()}
    assert rects and not any(rects[i].intersects(rects[j]) for i in rects for j in rects if i < j)


def test_graph_labels_are_elided_and_thinned_until_zoomed_in(qtbot, tmp_path: Path) -> None:
    import networkx as nx

    from workbench.artifacts import Graph

    names = [f"Entity with a rather long name {i:02d}" for i in range(30)]
    g = nx.cycle_graph(names)
    layout = {n: [float(np.cos(i / 5)), float(np.sin(i / 5))] for i, n in enumerate(names)}
    viewer = GraphViewer(Graph.from_networkx(g, layout=layout))
    qtbot.addWidget(viewer)
    viewer.resize(900, 700)
    viewer.show()
    qtbot.waitExposed(viewer)

    def overlapping() -> bool:
        rects = [viewer.labels[i].sceneBoundingRect() for i in viewer.visible_labels()]
        return any(a.intersects(b) for k, a in enumerate(rects) for b in rects[k + 1 :])

    assert viewer.labels[3].toPlainText() == "Entity with a r…"
    assert viewer.labels[3].toolTip() == names[3]
    assert viewer.graph.scatter.opts["hoverable"]
    assert viewer.graph.scatter.opts["tip"](x=0, y=0, data=names[3]) == names[3]
    top = [i for i, (x, y) in enumerate(viewer.pos) if -0.45 < x < 0.4 and y > 0.7]
    before = [i for i in viewer.visible_labels() if i in top]
    assert len(top) == 5 and 0 < len(before) < len(top) and not overlapping()  # crowded: thinned
    viewer.plot_item.setRange(xRange=(-0.45, 0.4), yRange=(0.7, 1.1), padding=0)
    # zoomed in (the view applies its new transform when it next paints), the same nodes all
    # have room for their names
    qtbot.waitUntil(lambda: [i for i in viewer.visible_labels() if i in top] == top, timeout=5000)
    assert not overlapping()
