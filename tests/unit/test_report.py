"""The self-contained HTML report (issue 18 part 2) on a hand-made run: nothing refers outside
the file, its tables are the ones ``workbench show --json`` prints, every table is also written
as CSV and JSON, and the SVG curves put points where the axes say."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from workbench import cli
from workbench.artifacts import Bars, Curves, Heatmap, ImageGrid, Table, Text
from workbench.leakage_matrix import LeakageMatrix
from workbench.report import build_report, svg_curves, write_report
from workbench.store import Project


def make_run(project: Project) -> int:
    """A finished run with metrics (one a curve over steps) and one artifact of each kind the
    report draws, written as a job would write them."""
    run = project.create_run(
        job="classifier.unlearn.ga",
        kind="unlearn",
        family="classifier",
        method="ga",
        config={"epochs": 3, "lr": 0.001},
        seed=11,
        versions={"python": "3.11.7", "torch": "2.13.0+cpu", "unlearning-workbench": "0.1.0"},
    )
    project.update_run(run, status="completed", status_text="done")
    rows = [
        {"run_id": run, "step": s, "name": "loss", "value": 1.0 / (s + 1), "time": 0.0}
        for s in range(4)
    ]
    rows += [
        {"run_id": run, "step": 0, "name": "forget_acc", "value": 0.123456789, "time": 0.0},
        {"run_id": run, "step": 0, "name": "umia_auc", "value": 0.5, "time": 0.0},
    ]
    project.add_metrics(rows)
    folder = project.run_dir(run) / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    artifacts = {
        "roc": Curves({"ga": ([0.01, 0.1, 1.0], [0.1, 0.5, 1.0])}, log_x=True, title="ROC"),
        "metrics": Table(["metric", "value"], [["forget_acc", 0.12], ["umia_auc", 0.5]]),
        "per-class": Bars(["0", "1"], {"ga": [0.9, 0.1], "retrained": [0.95, 0.0]}),
        "confusion": Heatmap(np.eye(2), x_labels=["a", "b"], y_labels=["a", "b"]),
        "images": ImageGrid([np.zeros((4, 4)), np.ones((4, 4))], captions=["x", "y"]),
        "about": Text("a note <with> brackets"),
        "matrix": LeakageMatrix(
            rows=["run 1 · ga"],
            row_runs=[1],
            columns=["a.attack"],
            values=[[0.7]],
            lows=[[0.6]],
            highs=[[0.8]],
            references=[[0.5]],
            child_runs=[[run]],
        ),
    }
    for name, art in artifacts.items():
        path, meta = art.save(folder, name)
        project.add_artifact(run, art.kind, name, str(path), meta)
    return run


class Tables(HTMLParser):
    """The tables of an HTML document by id (cell texts), and every src attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.srcs: list[str] = []
        self.depth = 0
        self._current: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "src" in a:
            self.srcs.append(a["src"] or "")
        if tag == "table":
            self._current = a.get("id") or f"anon{len(self.tables)}"
            self.tables[self._current] = []
        elif tag == "tr" and self._current is not None:
            self.tables[self._current].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._current is not None:
            self.tables[self._current][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _show_json(project: Project, run: int) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["show", str(run), "--json", "--project", str(project.root)]) == 0
    return json.loads(out.getvalue())


def test_the_report_is_self_contained_and_its_tables_match_show_json(project: Project) -> None:
    run = make_run(project)
    report = build_report(project, [run])
    assert not re.search(r"https?://", report.html)
    parser = Tables()
    parser.feed(report.html)
    parser.close()
    assert parser.srcs and all(s.startswith("data:image/") for s in parser.srcs)
    shown = _show_json(project, run)
    metrics = {k: json.loads(v) for k, v in parser.tables[f"run{run}-metrics"][1:]}
    assert metrics == shown["metrics"]
    summary = dict(parser.tables[f"run{run}-summary"][1:])
    for key in ("job", "status", "model", "dataset", "seed"):
        if shown[key] is not None:
            assert summary[key] == str(shown[key])
    versions = dict(parser.tables[f"run{run}-versions"][1:])
    assert versions == shown["versions"]
    # the leakage matrix: cell text with interval and reference, coloured (red: leaks more)
    matrix = parser.tables[f"run{run}-artifact-matrix"]
    assert matrix[1] == ["run 1 · ga", "0.700 [0.600, 0.800]\nref 0.500"]
    # its one cell is the column's largest distance: 75% of the way from white to red
    assert '<td bgcolor="#e0887a">0.700' in report.html
    assert "a note &lt;with&gt; brackets" in report.html  # text is escaped, never markup


def test_every_table_is_written_as_csv_and_json(project: Project, tmp_path: Path) -> None:
    run = make_run(project)
    written = write_report(project, [run], tmp_path / "out" / "r.html")
    assert written[0] == tmp_path / "out" / "r.html"
    report = build_report(project, [run])
    folder = tmp_path / "out" / "r_tables"
    assert {p.stem for p in folder.glob("*.csv")} == set(report.tables)
    for name, (header, rows) in report.tables.items():
        payload = json.loads((folder / f"{name}.json").read_text())
        assert payload["columns"] == header and len(payload["rows"]) == len(rows)
        with (folder / f"{name}.csv").open(newline="") as fh:
            assert sum(1 for _ in csv.reader(fh)) == len(rows) + 1
    series = report.tables[f"run{run}-metric-series"][1]
    assert series == [["loss", s, 1.0 / (s + 1)] for s in range(4)]


def test_several_runs_are_compared_side_by_side(project: Project) -> None:
    a, b = make_run(project), make_run(project)
    report = build_report(project, [a, b])
    header, rows = report.tables["comparison"]
    assert header == ["metric", f"run {a}", f"run {b}"]
    assert ["forget_acc", 0.123456789, 0.123456789] in rows


def test_svg_curves_put_points_where_the_axes_say() -> None:
    svg = svg_curves({"s": ([0.0, 1.0], [0.0, 1.0])}, title="t")
    assert svg is not None
    (points,) = re.findall(r'points="([^"]+)"', svg)
    (x0, y0), (x1, y1) = (tuple(map(float, p.split(","))) for p in points.split())
    # plot box: left 60 .. 560 - 170 = 390 wide; top 28 .. 300 - 44 = 256 high
    assert (x0, y0, x1, y1) == (60.0, 256.0, 390.0, 28.0)
    # a log axis drops non-positive points; nothing finite: no figure
    log = svg_curves({"s": ([0.0, 0.1, 1.0], [1.0, 2.0, 3.0])}, log_x=True)
    assert log is not None and len(re.findall(r"<circle", log)) == 2
    assert svg_curves({"s": ([float("nan")], [1.0])}) is None


def test_the_cli_writes_the_report_or_says_which_run_is_missing(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(project)
    out = tmp_path / "report.html"
    assert cli.main(["report", str(run), "--project", str(project.root), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    code = cli.main(["report", "99", "--project", str(project.root), "--out", str(out)])
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: no run 99 in {project.root}"]
