"""The gallery of image grids: verdict badges, per-column summaries, row filter, zoom dialog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from ui.views.artifact_views import ImageGridViewer, make_viewer
from ui.views.gallery import GalleryViewer, ImageZoomDialog, badge_text, column_summary, verdict
from workbench.artifacts import ImageGrid

STAGES = ["original", "erased", "attacked", "recovered"]
ROWS = ["a cat, seed 0", "a dog, seed 0", "a cat, seed 1", "a bird, seed 0"]
# per row: original, erased, attacked, recovered; threshold 0.5, "present" when score > 0.5
SCORES = [
    [0.93, 0.04, 0.81, 0.10],
    [0.88, 0.50, 0.20, None],  # 0.50 is not above the threshold: absent
    [0.77, 0.61, 0.95, 0.30],
    [None, 0.02, 0.66, 0.07],
]


def _image(seed: int, size: tuple[int, int] = (32, 32)) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def _gallery(qtbot, tmp_path: Path, grid: ImageGrid) -> GalleryViewer:
    path, meta = grid.save(tmp_path, "gallery")
    viewer = make_viewer("image_grid", path, meta)
    qtbot.addWidget(viewer)
    assert isinstance(viewer, GalleryViewer), getattr(viewer, "message", "")
    viewer.resize(900, 700)
    viewer.show()
    qtbot.waitExposed(viewer)
    return viewer


def _scored_grid(size: tuple[int, int] = (32, 32)) -> ImageGrid:
    n = len(ROWS) * len(STAGES)
    return ImageGrid(
        [_image(i, size) for i in range(n)],
        captions=[f"img {i}" for i in range(n)],
        row_labels=ROWS,
        col_labels=STAGES,
        cols=len(STAGES),
        title="erasure",
        scores=[s for row in SCORES for s in row],
        score_name="stripe p",
        threshold=0.5,
    )


def test_the_image_grid_viewer_is_the_gallery() -> None:
    assert ImageGridViewer is GalleryViewer


def test_badges_show_score_and_verdict(qtbot, tmp_path: Path) -> None:
    viewer = _gallery(qtbot, tmp_path, _scored_grid())
    texts = [b.text() for b in viewer.badges]
    assert len(texts) == len(viewer.cells) == 16
    assert texts[0] == "stripe p 0.93 ▲ present"
    assert texts[1] == "stripe p 0.04 absent"
    assert texts[5] == "stripe p 0.50 absent"  # equal to the threshold is not above it
    assert texts[7] == texts[12] == "—"
    verdicts = [b.property("verdict") for b in viewer.badges]
    assert verdicts[:4] == ["present", "absent", "present", "absent"]
    assert verdicts[7] == verdicts[12] == ""
    # red-ish for present, green-ish for absent, grey without a score
    assert "#f8d7da" in viewer.badges[0].styleSheet()
    assert "#d1e7dd" in viewer.badges[1].styleSheet()
    assert "#e9ecef" in viewer.badges[7].styleSheet()
    # the caption is still there, below its badge
    assert [c.text() for c in viewer.captions][:2] == ["img 0", "img 1"]
    assert all(b.isVisible() for b in viewer.badges)
    assert viewer.badges[0].geometry().bottom() <= viewer.captions[0].geometry().top()


def test_verdict_and_badge_text_helpers() -> None:
    assert verdict(0.51, 0.5) == "present" and verdict(0.5, 0.5) == "absent"
    assert verdict(None, 0.5) is None and verdict(0.9, None) is None
    assert badge_text(0.93, "stripe p", None) == "stripe p 0.93"  # no threshold, no verdict
    assert badge_text(0.04, "", 0.5) == "0.04 absent"
    assert badge_text(None, "stripe p", 0.5) == "—"


def test_column_summary_counts_present_among_scored(qtbot, tmp_path: Path) -> None:
    grid = _scored_grid()
    # original: 3 scored (one None), all present; erased: 1 of 4; attacked 3 of 4; recovered 0 of 3
    assert column_summary(grid) == [(3, 3), (1, 4), (3, 4), (0, 3)]
    viewer = _gallery(qtbot, tmp_path, grid)
    assert viewer.summary_texts() == [
        "present in 3 / 3",
        "present in 1 / 4",
        "present in 3 / 4",
        "present in 0 / 3",
    ]
    assert [c.text() for c in viewer.col_labels] == STAGES
    assert all(s.isVisible() for s in viewer.summaries)


def test_row_filter_hides_rows_and_recounts(qtbot, tmp_path: Path) -> None:
    viewer = _gallery(qtbot, tmp_path, _scored_grid())
    assert viewer.filter.isVisible()
    qtbot.keyClicks(viewer.filter, "CAT")  # any case
    assert viewer.visible_rows() == [0, 2]
    for i, frame in enumerate(viewer.frames):
        assert frame.isVisible() == (i // 4 in (0, 2)), i
    assert [lbl.isVisible() for lbl in viewer.row_labels] == [True, False, True, False]
    assert viewer.summary_texts() == [
        "present in 2 / 2",
        "present in 1 / 2",
        "present in 2 / 2",
        "present in 0 / 2",
    ]
    assert viewer.status.text() == "2 of 4 rows"
    viewer.filter.clear()
    assert all(frame.isVisible() for frame in viewer.frames)
    assert viewer.summary_texts()[1] == "present in 1 / 4"
    viewer.set_filter("nobody")
    assert not any(frame.isVisible() for frame in viewer.frames)
    assert viewer.summary_texts() == ["no scores"] * 4


def test_clicking_an_image_opens_the_zoom_dialog(qtbot, tmp_path: Path) -> None:
    viewer = _gallery(qtbot, tmp_path, _scored_grid(size=(32, 24)))
    assert viewer.zoom_dialog is None
    qtbot.mouseClick(viewer.cells[5], Qt.MouseButton.RightButton)
    assert viewer.zoom_dialog is None  # only the left button opens it
    qtbot.mouseClick(viewer.cells[5], Qt.MouseButton.LeftButton)
    dialog = viewer.zoom_dialog
    assert isinstance(dialog, ImageZoomDialog) and dialog.isVisible()
    pix = dialog.image.pixmap()
    assert (pix.width(), pix.height()) == (32 * 8, 24 * 8)
    # nearest neighbour: every source pixel becomes an 8x8 block of the same colour
    src = viewer.pixmaps[5].toImage()
    big = pix.toImage()
    assert big.pixelColor(8 * 3 + 7, 8 * 2) == src.pixelColor(3, 2)
    assert big.pixelColor(8 * 3, 8 * 2 + 7) == src.pixelColor(3, 2)
    assert dialog.heading.text() == "a dog, seed 0 · erased"
    assert dialog.caption.text() == "img 5"
    assert dialog.badge.text() == "stripe p 0.50 absent"
    assert "≤ threshold 0.5" in dialog.score_detail.text()
    # another image replaces the dialog
    qtbot.mouseClick(viewer.cells[0], Qt.MouseButton.LeftButton)
    assert viewer.zoom_dialog is not dialog and viewer.zoom_dialog.isVisible()
    assert viewer.zoom_dialog.badge.text() == "stripe p 0.93 ▲ present"


def test_zoom_slider_scales_images_crisply(qtbot, tmp_path: Path) -> None:
    viewer = _gallery(qtbot, tmp_path, _scored_grid())
    assert viewer.zoom.value() == 3  # 32 px images at about 96 px
    assert viewer.cells[0].pixmap().width() == 96
    viewer.zoom.setValue(5)
    assert viewer.zoom_label.text() == "5×"
    assert {(c.pixmap().width(), c.pixmap().height()) for c in viewer.cells} == {(160, 160)}
    img = viewer.cells[0].pixmap().toImage()
    src = viewer.pixmaps[0].toImage()
    assert img.pixelColor(5 * 7 + 4, 5 * 9) == src.pixelColor(7, 9)


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_grid_without_scores_is_plain(qtbot, tmp_path: Path, threshold: float | None) -> None:
    grid = ImageGrid(
        [_image(i, (28, 28)) for i in range(6)],
        captions=[f"c{i}" for i in range(6)],
        cols=3,
        threshold=threshold,
    )
    viewer = _gallery(qtbot, tmp_path, grid)
    assert len(viewer.cells) == 6 and viewer.badges == [] and viewer.summaries == []
    assert not viewer.legend.isVisible() and not viewer.filter.isVisible()
    assert [c.text() for c in viewer.captions] == [f"c{i}" for i in range(6)]
    assert viewer.cells[0].pixmap().width() == 28 * 3
    qtbot.mouseClick(viewer.cells[4], Qt.MouseButton.LeftButton)
    dialog = viewer.zoom_dialog
    assert dialog is not None and not dialog.badge.isVisible()
    assert dialog.caption.text() == "c4" and dialog.image.pixmap().width() == 28 * 8


def test_scores_without_threshold_show_values_only(qtbot, tmp_path: Path) -> None:
    grid = ImageGrid([_image(i) for i in range(2)], cols=2, scores=[0.9, None], score_name="clip")
    viewer = _gallery(qtbot, tmp_path, grid)
    assert [b.text() for b in viewer.badges] == ["clip 0.90", "—"]
    assert viewer.summaries == []
    assert "no threshold" in viewer.legend.text()


def test_a_long_badge_is_never_clipped(qtbot, tmp_path: Path) -> None:
    # "stripe probe 1.00 ▲ present" is wider than the smallest cell: the cell grows to hold it
    grid = _scored_grid()
    grid.score_name = "stripe probe of the shapes world"
    viewer = _gallery(qtbot, tmp_path, grid)
    qtbot.waitUntil(lambda: viewer.badges[0].width() > 0)
    for badge in viewer.badges:
        assert badge.width() >= badge.sizeHint().width(), badge.text()
