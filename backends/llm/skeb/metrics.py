"""SKeB entanglement metrics M1-M9 of a prompt's entity set (spec section 5, metrics table).

M1-M8 follow the spec's table and the author's final notebook cell (``newKG.ipynb``). With
``entities`` the extracted list (it may repeat a name) and U its unique members present in the
graph (n = |U|), G[U] the induced subgraph:

* M1  edge-count entanglement: sum of w_ij over pairs i < j of the *list* joined by an edge;
      0 when the list has fewer than 2 items (the code skips M1 then). Repeats count again, so
      M1 exceeds M5 when a name repeats.
* M2  weighted node ratio: sum of freq(s) over the *list* / its length (0 for a missing node).
* M3  mean unweighted degree in the full graph over U.
* M4  density of G[U]: |E(G[U])| / (n(n-1)/2); 0 when n < 2.
* M5  edge-weight sum of G[U] (M1 over unique entities).
* M6  M5 / n.
* M7  mean shortest-path length (unweighted) in G[U]; inf when G[U] is disconnected; 0 when
      G[U] has no edges or n < 2 (the code's guard ``edges > 0 and n > 1``).
* M8  redundancy ratio |E(G[U])| / n.

An empty entity set gives 0 for every metric (the code returns no formulas and reads them as 0).

M9 is not in the author's code; the paper calls it a diffusion / spreading-activation metric. It
is implemented as one step of ACT-R spreading activation (Anderson & Reder 1999), see :func:`m9`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations

import networkx as nx

__all__ = [
    "METRIC_NAMES",
    "METRIC_LABELS",
    "METRIC_HELP",
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "m8",
    "m9",
    "fan",
    "association_strength",
    "all_metrics",
]

METRIC_NAMES = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9")
METRIC_LABELS = {
    "m1": "M1 edge-count entanglement",
    "m2": "M2 weighted node ratio",
    "m3": "M3 avg node degree",
    "m4": "M4 subgraph density",
    "m5": "M5 edge-weight sum",
    "m6": "M6 avg edge-weight sum",
    "m7": "M7 mean shortest path",
    "m8": "M8 redundancy ratio",
    "m9": "M9 spreading activation",
}
# What each metric measures, for the views' tooltips and legend (spec section 5, metrics table;
# S = the prompt's unique entities found in the domain graph, n = |S|, G[S] their subgraph)
METRIC_HELP = {
    "m1": "M1 edge-count entanglement: the sum of co-occurrence weights w_ij over every pair of "
    "entity mentions that share an edge (repeated mentions count again; 0 with fewer than 2).",
    "m2": "M2 weighted node ratio: the mean chapter frequency freq(s) of the mentioned entities.",
    "m3": "M3 average node degree: the mean number of neighbours the entities have in the whole "
    "domain graph (how connected the concepts are).",
    "m4": "M4 subgraph density: the edges among the entities divided by the n(n-1)/2 possible "
    "pairs (1 = every pair co-occurs; 0 with fewer than 2 entities).",
    "m5": "M5 edge-weight sum: the total co-occurrence weight of the edges among the unique "
    "entities (M1 without repeats).",
    "m6": "M6 average edge-weight sum: M5 divided by the number of unique entities.",
    "m7": "M7 mean shortest path: the mean number of hops between the entities inside their "
    "subgraph (inf if it falls apart, 0 if it has no edges).",
    "m8": "M8 redundancy ratio: edges among the entities per entity.",
    "m9": "M9 spreading activation (ACT-R, one step): each entity spreads W/n activation, "
    "weakened by ln of its fan (degree + 1), to the prompt entities it is linked to; the sum "
    "received. Like M5 but hubs count less. Not in the authors' code: this workbench's reading "
    "of the paper's diffusion metric.",
}


def _unique(graph: nx.Graph, entities: Sequence[str]) -> list[str]:
    """Unique entities present in the graph, in first-seen order."""
    out: list[str] = []
    for e in entities:
        if e in graph and e not in out:
            out.append(e)
    return out


def _weight(graph: nx.Graph, u: str, v: str) -> float:
    return float(graph[u][v].get("weight", 1.0))


def m1(graph: nx.Graph, entities: Sequence[str]) -> float:
    """Sum of edge weights over all pairs i < j of the entity list (repeats included)."""
    if len(entities) < 2:
        return 0.0
    return float(
        sum(
            _weight(graph, a, b)
            for a, b in combinations(entities, 2)
            if a in graph and b in graph and graph.has_edge(a, b)
        )
    )


def m2(graph: nx.Graph, entities: Sequence[str]) -> float:
    """Mean ``freq`` over the entity list (a name not in the graph contributes 0)."""
    if not entities:
        return 0.0
    total = sum(graph.nodes[e].get("freq", 0) if e in graph else 0 for e in entities)
    return float(total) / len(entities)


def m3(graph: nx.Graph, entities: Sequence[str]) -> float:
    """Mean unweighted degree in the full graph over the unique entities."""
    u = _unique(graph, entities)
    return float(sum(graph.degree(e) for e in u)) / len(u) if u else 0.0


def m4(graph: nx.Graph, entities: Sequence[str]) -> float:
    """Density of the induced subgraph: edges / (n(n-1)/2); 0 when n < 2."""
    u = _unique(graph, entities)
    n = len(u)
    if n < 2:
        return 0.0
    return graph.subgraph(u).number_of_edges() / (n * (n - 1) / 2)


def m5(graph: nx.Graph, entities: Sequence[str]) -> float:
    """Sum of edge weights in the induced subgraph of the unique entities."""
    sub = graph.subgraph(_unique(graph, entities))
    return float(sum(d.get("weight", 1.0) for _, _, d in sub.edges(data=True)))


def m6(graph: nx.Graph, entities: Sequence[str]) -> float:
    """M5 divided by the number of unique entities."""
    n = len(_unique(graph, entities))
    return m5(graph, entities) / n if n else 0.0


def m7(graph: nx.Graph, entities: Sequence[str]) -> float:
    """Mean shortest-path length in the induced subgraph (unweighted).

    ``inf`` if the subgraph is disconnected; 0 if it has no edges or fewer than 2 nodes.
    """
    u = _unique(graph, entities)
    sub = graph.subgraph(u)
    if len(u) < 2 or sub.number_of_edges() == 0:
        return 0.0
    if not nx.is_connected(sub):
        return math.inf
    return float(nx.average_shortest_path_length(sub))


def m8(graph: nx.Graph, entities: Sequence[str]) -> float:
    """Edges of the induced subgraph per unique entity."""
    u = _unique(graph, entities)
    return graph.subgraph(u).number_of_edges() / len(u) if u else 0.0


def fan(graph: nx.Graph, node: str) -> int:
    """ACT-R fan of a source: its number of associations (graph degree) plus 1 for itself."""
    return graph.degree(node) + 1


def association_strength(graph: nx.Graph, node: str, s_max: float | None = None) -> float:
    """S_j = max(0, S_max - ln fan_j), the strength from source ``node`` to each neighbour.

    ``s_max=None`` uses ln |V| (the rational ACT-R value: S_ji = ln(|V| / fan_j), never negative
    because fan_j <= |V|).
    """
    if s_max is None:
        s_max = math.log(max(graph.number_of_nodes(), 1))
    return max(0.0, s_max - math.log(fan(graph, node)))


def m9(
    graph: nx.Graph,
    entities: Sequence[str],
    *,
    s_max: float | None = None,
    source_activation: float = 1.0,
    target: str | None = None,
) -> float:
    """ACT-R spreading activation among the prompt's entities (one step).

    Sources are the unique entities U (n = |U|). Each source j gets weight W_j = W / n
    (``W = source_activation``, ACT-R's total source activation split equally), and sends
    S_j = max(0, S_max - ln fan_j) along each of its links, fan_j = deg_G(j) + 1. Node i receives
    A_i = sum over sources j adjacent to i of W_j * S_j.

    Without ``target``, M9 = sum over i in U of A_i: the activation the prompt's entities spread
    to one another. It is 0 when no two prompt entities are linked, and, unlike M5, discounts
    links from hub entities (high fan) that spread their activation thinly. With ``target``,
    M9 = A_target, the activation reaching that entity (e.g. the answer) from the prompt.
    """
    u = _unique(graph, entities)
    if not u:
        return 0.0
    w = source_activation / len(u)
    strength = {j: association_strength(graph, j, s_max) for j in u}

    def received(i: str) -> float:
        return sum(w * strength[j] for j in u if j != i and graph.has_edge(i, j))

    if target is not None:
        return received(target) if target in graph else 0.0
    return float(sum(received(i) for i in u))


def all_metrics(
    graph: nx.Graph,
    entities: Sequence[str],
    *,
    s_max: float | None = None,
    source_activation: float = 1.0,
) -> dict[str, float]:
    """All nine metrics as ``{"m1": ..., ..., "m9": ...}``."""
    out = {
        name: float(fn(graph, entities))
        for name, fn in (
            ("m1", m1),
            ("m2", m2),
            ("m3", m3),
            ("m4", m4),
            ("m5", m5),
            ("m6", m6),
            ("m7", m7),
            ("m8", m8),
        )
    }
    out["m9"] = m9(graph, entities, s_max=s_max, source_activation=source_activation)
    return out
