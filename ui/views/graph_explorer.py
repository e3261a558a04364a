"""An explorer for node-link graphs (entanglement graphs, confusion graphs).

Pan and zoom with the mouse; type an entity in the search box to find it (it and its neighbours
are highlighted and the view centres on it); the artifact's ``highlight`` list (e.g. the entities a
prompt mentions) is drawn in red with its induced subgraph, whose edges carry their weights as
labels.  Node size follows the artifact's ``node_size`` attribute (e.g. chapter frequency) and
edge width its ``edge_weight``.  Labels are shown for every node in small graphs and for the
highlighted ones in large graphs, so a 300-entity graph stays readable.

Labels never overlap: a long name is elided (the full name shows when the mouse rests on the node
or its label), and after every zoom, pan or resize a label that would cover one of higher
priority (the focused node, the highlighted ones, then the larger nodes) is hidden; zoom in to
read more of them.  A click on a node focuses it and lists, beside the graph, the facts stored on
the node (its ``facts`` attribute) and the prompts whose entities include it; a click on a listed
prompt shows that prompt's entities.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ui.views.plotting import color, plot_widget, setup_pyqtgraph
from workbench.artifacts import Graph

__all__ = ["GraphViewer"]

ALL_LABELS_UP_TO = 40  # nodes; above this only highlighted / searched nodes are labelled
EDGE_LABELS_UP_TO = 60  # edges of a small graph all get their weight written on them
HIGHLIGHT = "#eb5757"
NEIGHBOUR = "#f2994a"
DIMMED = "#c8d1dc"
LABEL_CHARS = 16  # longer node names are elided on the graph (full name on hover and in the list)
LABEL_GAP_PX = 2  # labels closer than this count as overlapping
LABEL_ANCHORS = ((0.5, 1.6), (0.5, -0.6), (-0.15, 0.5), (1.15, 0.5))  # above, below, right, left


def elide(name: str, chars: int = LABEL_CHARS) -> str:
    return name if len(name) <= chars else name[: chars - 1] + "…"


def _layout(artifact: Graph) -> dict:
    """A layout for a graph stored without one: Kamada-Kawai spreads co-occurrence clusters far
    better than a spring layout (tried on a 60-entity graph); large graphs fall back to spring."""
    import networkx as nx

    graph = artifact.to_networkx()
    if graph.number_of_nodes() <= 300:
        try:
            return nx.kamada_kawai_layout(graph)
        except Exception:  # e.g. scipy missing: the spring layout needs nothing more
            pass
    return nx.spring_layout(graph, seed=0)


class GraphViewer(QWidget):
    """A node-link graph with search, highlighted induced subgraph and weighted edges."""

    def __init__(self, artifact: Graph, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        setup_pyqtgraph()
        self.artifact = artifact
        data = artifact.data
        self.nodes = [n["id"] for n in data.get("nodes", [])]
        attrs = {n["id"]: n for n in data.get("nodes", [])}
        self.links = data.get("links", data.get("edges", []))
        self.index = {str(n): i for i, n in enumerate(self.nodes)}
        layout = dict(artifact.layout)
        if self.nodes and any(str(n) not in layout for n in self.nodes):
            layout = {str(k): [float(v[0]), float(v[1])] for k, v in _layout(artifact).items()}
        self.pos = np.array([layout[str(n)] for n in self.nodes], dtype=float).reshape(-1, 2)
        self.adj = np.array(
            [[self.index[str(e["source"])], self.index[str(e["target"])]] for e in self.links],
            dtype=int,
        ).reshape(-1, 2)
        self.weights = np.array(
            [float(e.get(artifact.edge_weight, 1.0)) for e in self.links], dtype=float
        )
        self.neighbours: dict[int, set[int]] = {i: set() for i in range(len(self.nodes))}
        for a, b in self.adj:
            self.neighbours[int(a)].add(int(b))
            self.neighbours[int(b)].add(int(a))
        self.sizes = np.full(len(self.nodes), 22.0)
        if artifact.node_size:
            vals = np.array([float(attrs[n].get(artifact.node_size, 0.0)) for n in self.nodes])
            if vals.size and vals.max() > vals.min():
                self.sizes = 12 + 28 * (vals - vals.min()) / (vals.max() - vals.min())
        self.highlighted = {self.index[str(h)] for h in artifact.highlight if str(h) in self.index}
        self.focus: int | None = None
        self.facts = {str(n): [str(f) for f in attrs[n].get("facts", [])] for n in self.nodes}
        self.selected_node: int | None = None

        self.plot = plot_widget()
        self.plot_item = self.plot.getPlotItem()
        self.plot_item.showGrid(x=False, y=False)
        self.plot_item.hideAxis("bottom")
        self.plot_item.hideAxis("left")
        self.plot_item.setAspectLocked(True)
        self.graph = pg.GraphItem()
        self.plot_item.addItem(self.graph)
        self.labels: list[pg.TextItem] = []
        for n, (x, y) in zip(self.nodes, self.pos, strict=False):
            label = pg.TextItem(elide(str(n)), color="k", anchor=(0.5, 1.6))
            label.setFont(QFont("", 9, QFont.Weight.Bold))
            label.setToolTip(str(n))
            label.setPos(x, y)
            self.plot_item.addItem(label)
            self.labels.append(label)
        self.edge_labels: dict[int, pg.TextItem] = {}
        for i, (a, b) in enumerate(self.adj):
            mid = (self.pos[a] + self.pos[b]) / 2
            text = pg.TextItem(f"{self.weights[i]:g}", color="#34495e", anchor=(0.5, 0.5))
            text.setPos(*mid)
            self.plot_item.addItem(text)
            self.edge_labels[i] = text

        self.search = QLineEdit()
        self.search.setPlaceholderText("Find an entity…")
        completer = QCompleter([str(n) for n in self.nodes], self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.search.setCompleter(completer)
        self.search.returnPressed.connect(lambda: self.find(self.search.text()))
        completer.activated.connect(self.find)
        self.reset_button = QPushButton("Show all")
        self.reset_button.clicked.connect(self.clear_focus)
        self.sets = QComboBox()
        self.sets.addItem("(the run's highlighted entities)", None)
        for name in artifact.highlight_sets:
            self.sets.addItem(name, name)
        self.sets.setVisible(bool(artifact.highlight_sets))
        self.sets.setToolTip("Show one prompt's entities and their induced subgraph")
        self.sets.currentIndexChanged.connect(self._pick_set)
        self.status = QLabel()
        self.status.setStyleSheet("color: palette(dark);")
        self.node_title = QLabel("Click a node to list its facts and the prompts that name it.")
        self.node_title.setWordWrap(True)
        self.node_list = QListWidget()
        self.node_list.setWordWrap(True)
        self.node_list.itemClicked.connect(self._node_item_clicked)
        side = QWidget()
        side_lay = QVBoxLayout(side)
        side_lay.setContentsMargins(0, 0, 0, 0)
        side_lay.addWidget(self.node_title)
        side_lay.addWidget(self.node_list, 1)
        self.split = QSplitter()
        self.split.addWidget(self.plot)
        self.split.addWidget(side)
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 1)
        self.split.setSizes([600, 240])
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.reset_button)
        self.node_count, self.edge_count = len(self.nodes), len(self.links)
        info = QLabel(
            f"{len(self.nodes)} nodes, {len(self.links)} edges; edge width ∝ "
            f"{artifact.edge_weight or 'weight'}"
            + (f", node size ∝ {artifact.node_size}" if artifact.node_size else "")
            + (
                "; highlighted entities in red with the links among them"
                if self.highlighted
                else ""
            )
        )
        info.setStyleSheet("color: palette(dark);")
        lay = QVBoxLayout(self)
        if artifact.title:
            title = QLabel(artifact.title)
            title.setStyleSheet("font-weight: bold;")
            lay.addWidget(title)
        lay.addLayout(top)
        lay.addWidget(self.sets)
        lay.addWidget(self.split, 1)
        lay.addWidget(info)
        lay.addWidget(self.status)
        self.graph.scatter.sigClicked.connect(self._clicked)
        # after the view's new transform is in place (sigRangeChanged comes before it)
        self.plot_item.vb.sigTransformChanged.connect(self._declutter)
        self._redraw()
        if self.highlighted:  # open on the prompt's entities; "Show all" gives the overview
            self._zoom_to(self.highlighted)
        else:  # the whole graph now, not at the first paint: labels are placed for this view
            self.plot_item.autoRange()

    # -- a node's facts and prompts ----------------------------------------------------------
    def node_prompts(self, name: str) -> list[str]:
        """Names of the prompts (highlight sets) whose entities include ``name``."""
        return [k for k, members in self.artifact.highlight_sets.items() if name in members]

    def _clicked(self, _scatter: object, points: list, _ev: object = None) -> None:
        if len(points):
            self.select_node(int(points[0].index()))

    def select_node(self, index: int) -> None:
        """Focus node ``index`` and list its facts and prompts beside the graph."""
        name = str(self.nodes[index])
        self.selected_node = index
        self.focus = index
        facts, prompts = self.facts.get(name, []), self.node_prompts(name)
        self.node_title.setText(
            f"<b>{name}</b>: {len(self.neighbours[index])} neighbour(s), {len(facts)} fact(s), "
            f"{len(prompts)} prompt(s)"
        )
        self.node_list.clear()

        def header(text: str) -> None:
            item = QListWidgetItem(text)
            font = item.font()
            font.setBold(True)
            item.setFont(font)
            item.setFlags(Qt.ItemFlag.NoItemFlags | Qt.ItemFlag.ItemIsEnabled)
            self.node_list.addItem(item)

        header(f"Facts ({len(facts)})")
        for fact in facts:
            item = QListWidgetItem(fact)
            item.setToolTip(fact)
            self.node_list.addItem(item)
        if not facts:
            self.node_list.addItem(QListWidgetItem("(no facts stored on this node)"))
        header(f"Prompts naming it ({len(prompts)}; click one to show its entities)")
        for prompt in prompts:
            item = QListWidgetItem(prompt)
            item.setData(Qt.ItemDataRole.UserRole, prompt)
            item.setToolTip(prompt)
            self.node_list.addItem(item)
        self.status.setText(f"{name}: {len(self.neighbours[index])} neighbour(s)")
        self._redraw()

    def node_list_texts(self) -> list[str]:
        return [self.node_list.item(i).text() for i in range(self.node_list.count())]

    def _node_item_clicked(self, item: QListWidgetItem) -> None:
        name = item.data(Qt.ItemDataRole.UserRole)
        if name:
            index = self.sets.findData(name)
            if index >= 0:
                self.sets.setCurrentIndex(index)  # shows the set through _pick_set
            else:
                self.show_set(name)

    # -- interaction -------------------------------------------------------------------------
    def find(self, text: str) -> bool:
        """Focus the node whose name matches ``text`` (exact, else the first containing it)."""
        text = text.strip()
        names = [str(n) for n in self.nodes]
        match = next((i for i, n in enumerate(names) if n.lower() == text.lower()), None)
        if match is None:
            match = next((i for i, n in enumerate(names) if text.lower() in n.lower()), None)
        if match is None or not text:
            self.status.setText(f"No entity matches {text!r}." if text else "")
            return False
        self.focus = match
        self._zoom_to({match} | self.neighbours[match])
        deg = len(self.neighbours[match])
        self.status.setText(f"{names[match]}: {deg} neighbour(s)")
        self._redraw()
        return True

    def _zoom_to(self, nodes: set[int]) -> None:
        """Fit the view to these nodes (with a margin), however far the rest of the graph goes."""
        pts = self.pos[sorted(nodes)]
        lo, hi = pts.min(0), pts.max(0)
        pad = max(float((hi - lo).max()) * 0.25, 0.08 * float(np.ptp(self.pos, axis=0).max() or 1))
        self.plot_item.setRange(
            xRange=(lo[0] - pad, hi[0] + pad), yRange=(lo[1] - pad, hi[1] + pad), padding=0
        )

    def show_set(self, name: str | None) -> None:
        """Highlight a named node set (e.g. one prompt's entities); ``None``: the default set."""
        names = self.artifact.highlight if name is None else self.artifact.highlight_sets[name]
        self.highlighted = {self.index[str(h)] for h in names if str(h) in self.index}
        self.focus = None
        self._redraw()
        if self.highlighted:
            self._zoom_to(self.highlighted)
        label = "the run's highlighted entities" if name is None else name
        self.status.setText(
            f"{label}: {len(self.highlighted)} entities, {len(self.induced_edges)} links among them"
        )

    def _pick_set(self, index: int) -> None:
        self.show_set(self.sets.itemData(index))

    def clear_focus(self) -> None:
        self.focus = self.selected_node = None
        self.node_title.setText("Click a node to list its facts and the prompts that name it.")
        self.node_list.clear()
        self.status.setText("")
        self.plot_item.autoRange()
        self._redraw()

    def marked(self) -> set[int]:
        """Nodes drawn in colour: the highlighted set, and the focused node with its neighbours."""
        out = set(self.highlighted)
        if self.focus is not None:
            out |= {self.focus} | self.neighbours[self.focus]
        return out

    # -- drawing -----------------------------------------------------------------------------
    def _redraw(self) -> None:
        marked = self.marked()
        focus_set = {self.focus} if self.focus is not None else set()
        brushes = []
        for i in range(len(self.nodes)):
            if i in self.highlighted or i in focus_set:
                brushes.append(pg.mkBrush(HIGHLIGHT))
            elif i in marked:
                brushes.append(pg.mkBrush(NEIGHBOUR))
            else:
                brushes.append(pg.mkBrush(DIMMED if marked else color(0)))
        wmax = self.weights.max() if self.weights.size and self.weights.max() > 0 else 1.0
        pens = np.empty(
            len(self.links),
            dtype=[(c, np.ubyte) for c in ("red", "green", "blue", "alpha")] + [("width", float)],
        )
        induced = set()
        for i, (a, b) in enumerate(self.adj):
            width = 0.5 + 5.5 * self.weights[i] / wmax
            inside = (a in self.highlighted and b in self.highlighted) or (
                self.focus is not None and self.focus in (a, b)
            )
            if inside:
                induced.add(i)
                pens[i] = (235, 87, 87, 255, width + 1.0)
            elif marked:
                pens[i] = (180, 190, 205, 110, width)
            else:
                pens[i] = (90, 110, 140, 200, width)
        self.graph.setData(
            pos=self.pos,
            adj=self.adj if len(self.adj) else None,
            pen=pens if len(self.links) else None,
            size=self.sizes,
            symbolBrush=brushes,
            symbolPen=pg.mkPen("w", width=1.5),
            pxMode=True,
            data=[str(n) for n in self.nodes],
            hoverable=True,
            tip=lambda x, y, data: str(data),
        )
        show_all = len(self.nodes) <= ALL_LABELS_UP_TO
        for i, label in enumerate(self.labels):
            label.setVisible(show_all or i in marked)
        for i, text in self.edge_labels.items():
            text.setVisible(i in induced or (len(self.links) <= EDGE_LABELS_UP_TO and not marked))
        self.induced_edges = induced
        self._candidates = {i for i in range(len(self.nodes)) if show_all or i in marked}
        self._edge_candidates = {i for i, text in self.edge_labels.items() if text.isVisible()}
        self._declutter()

    def _declutter(self, *_: object) -> None:
        """Hide every label that would overlap one of higher priority (at the current zoom)."""
        candidates = getattr(self, "_candidates", set())
        marked = self.marked()
        order = sorted(
            candidates,
            key=lambda i: (
                i != self.focus,
                i not in self.highlighted,
                i not in marked,
                -float(self.sizes[i]),
                i,
            ),
        )
        kept: list = []
        for i in order:
            label = self.labels[i]
            # a hidden label's pixel size is stale until it is visible and its transform updated
            label.setVisible(True)
            label.updateTransform()
            # above the node; a marked node's name may move below, right or left of it instead
            # (the text moves inside the item, so the scene is told its geometry changes, else it
            # paints the label at its old place)
            for anchor in LABEL_ANCHORS if i in marked else LABEL_ANCHORS[:1]:
                if tuple(label.anchor) != anchor:
                    label.prepareGeometryChange()
                    label.setAnchor(anchor)
                rect = label.sceneBoundingRect().adjusted(
                    -LABEL_GAP_PX, -LABEL_GAP_PX, LABEL_GAP_PX, LABEL_GAP_PX
                )
                if not any(rect.intersects(other) for other in kept):
                    kept.append(rect)
                    break
            else:
                label.prepareGeometryChange()
                label.setAnchor(LABEL_ANCHORS[0])
                label.setVisible(False)
        for i, label in enumerate(self.labels):
            if i not in candidates:
                label.setVisible(False)
        # an edge's weight gives way to node names and to the weights drawn before it
        shown = getattr(self, "_edge_candidates", set())
        for i in sorted(shown, key=lambda e: (e not in self.induced_edges, e)):
            text = self.edge_labels[i]
            text.setVisible(True)
            text.updateTransform()
            rect = text.sceneBoundingRect()
            if any(rect.intersects(other) for other in kept):
                text.setVisible(False)
            else:
                text.setVisible(True)
                kept.append(rect)

    def visible_labels(self) -> list[int]:
        return [i for i, label in enumerate(self.labels) if label.isVisible()]
