"""The graph explorer: search, a prompt's entities with their induced subgraph, edge weights."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np

from ui.views.artifact_views import make_viewer
from ui.views.graph_explorer import ALL_LABELS_UP_TO, GraphViewer
from workbench.artifacts import Graph


def _cooccurrence_graph(n_entities: int = 60, chapters: int = 40, seed: int = 0) -> nx.Graph:
    rng = np.random.default_rng(seed)
    names = [f"Entity {i:02d}" for i in range(n_entities)]
    g = nx.Graph()
    for name in names:
        g.add_node(name, freq=0)
    for _ in range(chapters):
        members = rng.choice(names, size=4, replace=False)
        for m in members:
            g.nodes[m]["freq"] += 1
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                w = g.edges[a, b]["weight"] + 1 if g.has_edge(a, b) else 1
                g.add_edge(a, b, weight=w)
    return g


def _viewer(qtbot, tmp_path: Path, graph: nx.Graph, highlight: list[str]) -> GraphViewer:
    art = Graph.from_networkx(
        graph,
        layout=nx.spring_layout(graph, seed=0),
        node_size="freq",
        highlight=highlight,
        title="Entanglement graph",
    )
    path, meta = art.save(tmp_path, "graph")
    viewer = make_viewer("graph", path, meta)
    qtbot.addWidget(viewer)
    assert isinstance(viewer, GraphViewer)
    viewer.resize(900, 700)
    viewer.show()
    qtbot.waitExposed(viewer)
    return viewer


def _overlapping(viewer: GraphViewer) -> list[tuple[int, int]]:
    rects = {i: viewer.labels[i].sceneBoundingRect() for i in viewer.visible_labels()}
    return [(i, j) for i in rects for j in rects if i < j and rects[i].intersects(rects[j])]


def test_prompt_entities_and_their_induced_subgraph(qtbot, tmp_path: Path) -> None:
    g = _cooccurrence_graph()
    a, b = next(iter(g.edges))
    lonely = next(
        n for n in g.nodes if not g.has_edge(a, n) and not g.has_edge(b, n) and n not in (a, b)
    )
    viewer = _viewer(qtbot, tmp_path, g, [a, b, lonely])
    idx = viewer.index
    assert viewer.highlighted == {idx[a], idx[b], idx[lonely]}
    # exactly the edges among highlighted entities form the induced subgraph, weights written
    induced = {
        tuple(sorted((viewer.nodes[i], viewer.nodes[j])))
        for i, j in viewer.adj[list(viewer.induced_edges)]
    }
    assert induced == {tuple(sorted(e)) for e in g.subgraph([a, b, lonely]).edges}
    for e in viewer.induced_edges:
        assert viewer.edge_labels[e].isVisible()
        assert viewer.edge_labels[e].toPlainText() == f"{viewer.weights[e]:g}"
    # a big graph labels only what is marked
    assert g.number_of_nodes() > ALL_LABELS_UP_TO
    visible = {viewer.nodes[i] for i, lbl in enumerate(viewer.labels) if lbl.isVisible()}
    assert visible == {a, b, lonely} and not _overlapping(viewer)
    # node size follows frequency
    freq = np.array([g.nodes[n]["freq"] for n in viewer.nodes])
    assert viewer.sizes[freq.argmax()] == viewer.sizes.max()


def test_search_focuses_an_entity_and_its_neighbours(qtbot, tmp_path: Path) -> None:
    g = _cooccurrence_graph()
    viewer = _viewer(qtbot, tmp_path, g, [])
    target = max(g.nodes, key=g.degree)
    assert viewer.find(target.lower().replace("entity", "ENTITY"))
    assert viewer.focus == viewer.index[target]
    assert {viewer.nodes[i] for i in viewer.marked()} == {target, *g.neighbors(target)}
    assert f"{g.degree(target)} neighbour(s)" in viewer.status.text()
    assert not viewer.find("Nobody At All")
    assert "No entity matches" in viewer.status.text()
    viewer.clear_focus()
    assert viewer.focus is None and viewer.marked() == set()


def test_pick_a_prompt_to_see_its_entities(qtbot, tmp_path: Path) -> None:
    g = _cooccurrence_graph()
    a, b = next(iter(g.edges))
    c, d = list(g.edges)[5]
    art = Graph.from_networkx(
        g,
        node_size="freq",
        highlight=[a, b],
        highlight_sets={"emotional #0": [c, d], "original #1": [a]},
    )
    path, meta = art.save(tmp_path, "graph")
    viewer = make_viewer("graph", path, meta)
    qtbot.addWidget(viewer)
    assert viewer.sets.count() == 3 and not viewer.sets.isHidden()
    viewer.sets.setCurrentIndex(1)  # the user picks "emotional #0"
    assert viewer.highlighted == {viewer.index[c], viewer.index[d]}
    assert len(viewer.induced_edges) == 1 and "2 entities, 1 links" in viewer.status.text()
    viewer.sets.setCurrentIndex(0)
    assert viewer.highlighted == {viewer.index[a], viewer.index[b]}
