"""The influence-pruning views (spec section 4): the histogram's threshold follows the chosen
level and says how many points it drops; the curve shows the chosen quality group and names the
compute points it cannot show."""

from __future__ import annotations

import math

import numpy as np

from ui.views.influence_view import InfluenceView, PruningCurveView
from workbench.influence_artifacts import InfluenceScores, PruningCurve


def test_histogram_threshold_follows_the_level(qtbot) -> None:
    scores = np.logspace(-4, 0, 40)  # four decades: binned on log10
    art = InfluenceScores(scores, {"q00": -math.inf, "q25": float(scores[9])}, "exact", "t")
    view = InfluenceView(art)
    qtbot.addWidget(view)
    assert view.log.isChecked()
    view.level.setCurrentText("q25")
    assert view.line.isVisible()
    assert math.isclose(view.line.value(), math.log10(scores[9]))
    assert "10 of 40 forget points dropped (25%), 30 unlearned" in view.summary.text()
    view.log.setChecked(False)
    assert math.isclose(view.line.value(), scores[9])
    view.level.setCurrentText("q00")
    assert view.summary.text() == "q00: nothing dropped (40 forget points kept)"
    assert not view.line.isVisible()


def test_curve_switches_quality_groups_and_names_off_scale_points(qtbot) -> None:
    def d(*v: float) -> dict[str, list[float]]:
        return {"mean": list(v), "low": [x - 0.01 for x in v], "high": [x + 0.01 for x in v]}

    art = PruningCurve(
        [0.0, 0.5],
        {"test_acc": d(0.9, 0.88), "forget_acc": d(0.8, 0.85), "umia_auc": d(0.55, 0.56)},
        {"saved_fraction": d(0.0, 0.5), "saved_wall_net": d(0.0, -12.0)},
    )
    view = PruningCurveView(art)
    qtbot.addWidget(view)
    assert view.off_scale == "saved_wall_net -12.0 at 0.5"
    assert sorted(view.quality.items) == ["forget_acc", "test_acc"]
    view.group.setCurrentText("MIAs")
    assert sorted(view.quality.items) == ["umia_auc"]


def test_the_job_form_says_why_a_class_forget_set_is_refused(qtbot) -> None:
    from ui.forms import ConfigForm
    from workbench.registry import get_registry

    spec = get_registry().job("classifier.influence_pruning")
    form = ConfigForm(spec.config, job=spec.name)
    qtbot.addWidget(form)
    assert form.validate() is not None  # the default, a random forget set, is accepted
    form.editors["forget_kind"].set_value("class")
    assert form.validate() is None and form.error_field == "forget_kind"
    shown = form.field_errors["forget_kind"]
    assert not shown.isHidden()
    assert "A forgotten class has no low-influence points to drop" in shown.text()
