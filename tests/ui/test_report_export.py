"""The report in Qt (issue 18 part 2): Qt's rich-text engine (QTextDocument / QTextBrowser, our
headless browser) loads the HTML with every embedded figure decoded, and File → Export report
writes the shown run's report."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QTextDocument

from tests.unit.test_report import make_run
from ui.report_action import export_report, report_browser, report_runs
from workbench.report import write_report
from workbench.store import Project


def _image_names(doc: QTextDocument) -> list[str]:
    names = []
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fmt = it.fragment().charFormat()
            if fmt.isImageFormat():
                names.append(fmt.toImageFormat().name())
            it += 1
        block = block.next()
    return names


def test_qtextbrowser_loads_the_report_with_its_figures(qtbot, project: Project, tmp_path) -> None:
    run = make_run(project)
    (html, *_tables) = write_report(project, [run], tmp_path / "r.html")
    browser = report_browser(html)
    qtbot.addWidget(browser)
    doc = browser.document()
    text = doc.toPlainText()
    assert f"Run {run}: classifier.unlearn.ga [completed]" in text
    assert "0.123456789" in text  # the final metrics table, in full
    names = _image_names(doc)
    # the ROC curve, the bars, the loss curve (SVG) and the two grid images (PNG)
    assert sum(n.startswith("data:image/svg+xml") for n in names) == 3
    assert sum(n.startswith("data:image/png") for n in names) == 2
    for name in names:
        image = doc.resource(QTextDocument.ResourceType.ImageResource, QUrl(name))
        assert image is not None and not image.isNull(), name[:40]


def test_file_export_report_writes_the_shown_run(
    make_window, qtbot, project: Project, tmp_path: Path
) -> None:
    run = make_run(project)
    root = project.root
    project.close()
    window = make_window(root)
    window.select_run(run)
    assert report_runs(window) == [run]
    assert window.export_report_action.text() == "Export &report…"
    out = export_report(window, tmp_path / "exported.html")
    assert out == tmp_path / "exported.html"
    assert f"Run {run}: classifier.unlearn.ga" in out.read_text(encoding="utf-8")
    assert (tmp_path / "exported_tables" / f"run{run}-metrics.csv").exists()
