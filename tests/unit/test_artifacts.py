"""Artifacts: every kind saves to files and loads back equal; malformed data is refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from PIL import Image

from workbench.artifacts import (
    ARTIFACT_TYPES,
    Artifact,
    AttentionStack,
    Bars,
    Curves,
    FileRef,
    Graph,
    Heatmap,
    ImageGrid,
    PromptTable,
    Table,
    Text,
    load_artifact,
    safe_name,
)


def _round_trip(art: Artifact, folder: Path, name: str = "thing") -> Artifact:
    path, meta = art.save(folder, name)
    assert path.exists()
    json.dumps(meta)  # metadata goes into the catalogue as JSON
    return load_artifact(art.kind, path, json.loads(json.dumps(meta)))


def test_every_kind_is_registered() -> None:
    assert set(ARTIFACT_TYPES) == {
        "image_grid",
        "heatmap",
        "graph",
        "curves",
        "sine_functions",
        "interval_curves",
        "bars",
        "table",
        "prompt_table",
        "interval_matrix",
        "sweep_table",
        "scan_report",
        "influence",
        "pruning_curve",
        "leakage_matrix",
        "attention",
        "text",
        "file",
    }
    with pytest.raises(ValueError, match="unknown artifact kind 'video'; known: image_grid"):
        load_artifact("video", Path("x"), {})


def test_image_grid_from_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gray_u8 = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
    rgb_u8 = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    floats = rng.random((4, 4))
    out_of_range = np.array([[-1.0, 0.5], [2.0, 1.0]])
    grid = ImageGrid(
        [gray_u8, rgb_u8, floats, out_of_range],
        captions=["gray", "rgb", "float", "clipped"],
        row_labels=["r0", "r1"],
        col_labels=["c0", "c1"],
        title="Grid",
    )
    assert (grid.cols, grid.rows) == (2, 2)
    loaded = _round_trip(grid, tmp_path, "my grid/1")
    assert isinstance(loaded, ImageGrid)
    assert loaded.captions == ["gray", "rgb", "float", "clipped"]
    assert loaded.row_labels == ["r0", "r1"] and loaded.col_labels == ["c0", "c1"]
    assert (loaded.cols, loaded.rows, loaded.title) == (2, 2, "Grid")
    arrays = [np.asarray(im) for im in loaded.images]
    assert np.array_equal(arrays[0], gray_u8)
    assert np.array_equal(arrays[1], rgb_u8)
    assert np.array_equal(arrays[2], (floats * 255).round().astype(np.uint8))
    assert np.array_equal(arrays[3], np.array([[0, 128], [255, 255]], dtype=np.uint8))
    # loading from the folder alone (metadata lost) reads grid.json
    again = load_artifact("image_grid", tmp_path / safe_name("my grid/1"), {})
    assert isinstance(again, ImageGrid) and again.captions == loaded.captions


def test_image_grid_from_pil_images(tmp_path: Path) -> None:
    images = [Image.new("RGB", (3, 2), (i * 40, 10, 200)) for i in range(3)]
    loaded = _round_trip(ImageGrid(images, cols=1), tmp_path)
    assert isinstance(loaded, ImageGrid)
    assert (loaded.cols, loaded.rows) == (1, 3)
    for original, back in zip(images, loaded.images, strict=True):
        assert back.size == (3, 2)
        assert np.array_equal(np.asarray(back), np.asarray(original))


def test_image_grid_bad_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one caption per image"):
        ImageGrid([np.zeros((2, 2))] * 2, captions=["only one"])
    with pytest.raises(ValueError, match=r"image 1 .*shape \(1, 8, 8\)"):
        ImageGrid([np.zeros((8, 8)), np.zeros((1, 8, 8))])
    with pytest.raises(ValueError, match=r"image 0 .*shape \(5,\)"):
        ImageGrid([np.zeros(5)])
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2, 2\)"):
        ImageGrid([np.zeros((2, 2, 2, 2))])


def test_heatmap_round_trip(tmp_path: Path) -> None:
    matrix = np.arange(12, dtype=float).reshape(3, 4) - 5.5
    heat = Heatmap(
        matrix,
        x_labels=["a", "b", "c", "d"],
        y_labels=["x", "y", "z"],
        title="T",
        x_title="cols",
        y_title="rows",
        vmin=-6.0,
        vmax=6.0,
        diverging=True,
    )
    loaded = _round_trip(heat, tmp_path)
    assert isinstance(loaded, Heatmap)
    assert np.array_equal(loaded.matrix, matrix) and loaded.matrix.dtype == np.float64
    for attr in (
        "x_labels",
        "y_labels",
        "title",
        "x_title",
        "y_title",
        "vmin",
        "vmax",
        "diverging",
    ):
        assert getattr(loaded, attr) == getattr(heat, attr), attr


def test_heatmap_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"expected a 2-D matrix, got shape \(3,\)"):
        Heatmap([1, 2, 3])
    with pytest.raises(ValueError, match="3 x labels for 2 columns"):
        Heatmap(np.zeros((2, 2)), x_labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="1 y labels for 2 rows"):
        Heatmap(np.zeros((2, 2)), y_labels=["a"])


def test_graph_from_networkx_with_layout(tmp_path: Path) -> None:
    graph = nx.Graph()
    graph.add_node("a", accuracy=0.5)
    graph.add_node("b", accuracy=np.float64(0.75))
    graph.add_node("c", accuracy=1.0)
    graph.add_edge("a", "b", weight=2.0)
    graph.add_edge("b", "c", weight=np.float32(0.5))
    layout = nx.circular_layout(graph)
    art = Graph.from_networkx(
        graph, layout=layout, title="G", node_size="accuracy", highlight=["b"]
    )
    path, meta = art.save(tmp_path, "g")
    assert meta == {"nodes": 3, "edges": 2, "title": "G"}
    loaded = load_artifact("graph", path, meta)
    assert isinstance(loaded, Graph)
    assert loaded == art
    assert set(loaded.layout) == {"a", "b", "c"}
    assert loaded.layout["a"] == pytest.approx([float(v) for v in layout["a"]])
    back = loaded.to_networkx()
    assert nx.utils.graphs_equal(back, graph)
    assert sorted(back.edges(data="weight")) == [("a", "b", 2.0), ("b", "c", 0.5)]
    assert (loaded.node_size, loaded.highlight, loaded.edge_weight) == ("accuracy", ["b"], "weight")


def test_graph_with_integer_nodes(tmp_path: Path) -> None:
    graph = nx.path_graph(4)
    loaded = _round_trip(
        Graph.from_networkx(graph, layout=nx.spring_layout(graph, seed=1)), tmp_path
    )
    assert isinstance(loaded, Graph)
    back = loaded.to_networkx()
    assert sorted(back.nodes) == [0, 1, 2, 3]
    assert sorted(back.edges) == [(0, 1), (1, 2), (2, 3)]
    assert set(loaded.layout) == {"0", "1", "2", "3"}


def test_curves_round_trip(tmp_path: Path) -> None:
    curves = Curves(
        {"roc": (np.linspace(0, 1, 5), np.linspace(0, 1, 5) ** 2), "chance": ([0, 1], [0, 1])},
        x_label="FPR",
        y_label="TPR",
        title="ROC",
        log_x=True,
    )
    assert curves.series["roc"][1] == pytest.approx([0, 0.0625, 0.25, 0.5625, 1.0])
    loaded = _round_trip(curves, tmp_path)
    assert loaded == curves
    assert list(loaded.series) == ["roc", "chance"]


def test_curves_bad_shapes() -> None:
    with pytest.raises(ValueError, match="series 'roc' has 3 x and 2 y values"):
        Curves({"roc": ([0, 1, 2], [0, 1])})


def test_table_round_trip(tmp_path: Path) -> None:
    table = Table(
        ["class", "n", "accuracy"],
        [["0", np.int64(10), np.float32(0.5)], ["1", 3, 1.0]],
        title="Per class",
    )
    path, meta = table.save(tmp_path, "t")
    assert meta == {"columns": ["class", "n", "accuracy"], "n_rows": 2, "title": "Per class"}
    loaded = load_artifact("table", path, meta)
    assert loaded == Table(["class", "n", "accuracy"], [["0", 10, 0.5], ["1", 3, 1.0]], "Per class")


def test_table_bad_shapes() -> None:
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        Table(["a", "b"], [[1, 2], [3]])


def test_text_round_trip(tmp_path: Path) -> None:
    text = Text("Ünïcode answer\nsecond line ✓", title="Answer")
    assert _round_trip(text, tmp_path) == text


def test_file_ref_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "weights.safetensors"
    target.write_bytes(b"x")
    ref = FileRef(target, description="checkpoint")
    path, meta = ref.save(tmp_path, "ignored")
    assert path == target
    assert load_artifact("file", path, meta) == ref


def test_safe_name() -> None:
    assert safe_name("confusion matrix") == "confusion_matrix"
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("...") == "artifact"


def test_bars_round_trip(tmp_path: Path) -> None:
    bars = Bars(
        ["0", "1", "2"],
        {"original": [0.9, 0.8, 0.95], "unlearned": np.array([0.9, 0.0, 0.94])},
        title="Per-class accuracy",
        y_label="accuracy",
        highlight=["1"],
    )
    back = _round_trip(bars, tmp_path)
    assert back == bars
    assert back.series["unlearned"] == [0.9, 0.0, 0.94]


def test_bars_bad_shapes() -> None:
    with pytest.raises(ValueError, match="series 'a' has 2 values for 3 categories"):
        Bars(["x", "y", "z"], {"a": [1.0, 2.0]})


def test_scatter_curves_round_trip(tmp_path: Path) -> None:
    pts = Curves({"authority": ([0.1, 0.5, 0.9], [0.0, 1.0, 1.0])}, x_label="M5", scatter=True)
    back = _round_trip(pts, tmp_path)
    assert back == pts and back.scatter


def test_graph_highlight_sets_round_trip(tmp_path: Path) -> None:
    g = nx.path_graph(["x", "y", "z"])
    art = Graph.from_networkx(g, highlight=["x"], highlight_sets={"prompt 1": ["y", "z"]})
    back = _round_trip(art, tmp_path)
    assert back.highlight_sets == {"prompt 1": ["y", "z"]} and back.highlight == ["x"]


def test_image_grid_scores_round_trip(tmp_path: Path) -> None:
    images = [np.zeros((4, 4, 3), dtype=np.uint8)] * 3
    grid = ImageGrid(images, scores=[0.9, None, 0.1], score_name="stripe p", threshold=0.5)
    loaded = _round_trip(grid, tmp_path)
    assert isinstance(loaded, ImageGrid)
    assert loaded.scores == [0.9, None, 0.1]
    assert loaded.score_name == "stripe p" and loaded.threshold == 0.5
    with pytest.raises(ValueError, match="one score per image"):
        ImageGrid(images, scores=[0.5])


def test_attention_stack_round_trip_keeps_dtype_tokens_and_sink_mass(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    maps = rng.random((2, 3, 4, 4)).astype(np.float16)
    art = AttentionStack(
        maps,
        tokens=["<bos>", "a", " b", "c"],
        prompt="a bc",
        input_ids=[0, 5, 6, 7],
        sink_mass=rng.random((2, 3)),
        layer=1,
        head=2,
    )
    back = _round_trip(art, tmp_path)
    assert isinstance(back, AttentionStack) and back.maps.dtype == np.float16
    assert np.array_equal(back.maps, maps) and np.array_equal(back.sink_mass, art.sink_mass)
    assert (back.tokens, back.input_ids, back.layer, back.head) == (art.tokens, art.input_ids, 1, 2)
    assert (back.num_layers, back.num_heads) == (2, 3)
    with pytest.raises(ValueError, match="3 tokens for 4 positions"):
        AttentionStack(maps, tokens=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"expected \(layers, heads, T, T\)"):
        AttentionStack(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="sink mass of shape"):
        AttentionStack(maps, sink_mass=np.zeros((3, 2)))


def test_prompt_table_round_trip(tmp_path: Path) -> None:
    art = PromptTable(
        ["prompt", "answer", "m1"],
        [["Who?", "Ann.", 1.5]],
        long_columns=["prompt"],
        column_help={"m1": "edge sum"},
        legend="M1: edges",
    )
    back = _round_trip(art, tmp_path)
    assert back == art and isinstance(back, PromptTable)
    with pytest.raises(ValueError, match="long columns"):
        PromptTable(["a"], [], long_columns=["b"])
