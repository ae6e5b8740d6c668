"""Figures of aiact.plots: each is one inline, self-contained SVG whose axis labels, tick labels,
value labels and limit lines are real text; the same input renders to the same bytes."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from aiact import plots
from aiact.plots import Limit

SVG = "{http://www.w3.org/2000/svg}"


def _svg(figure: str) -> ET.Element:
    """The figure's SVG element (the markup must be a <figure> around exactly one <svg>)."""
    assert figure.startswith("<figure><svg") and figure.count("<svg") == 1
    svg = figure[len("<figure>") : figure.index("</svg>") + len("</svg>")]
    return ET.fromstring(svg)


def _texts(figure: str) -> list[str]:
    """Every text element of the figure, as drawn (matplotlib's minus sign as '-')."""
    return [
        "".join(node.itertext()).replace("\u2212", "-").strip()
        for node in _svg(figure).iter(f"{SVG}text")
    ]


def _self_contained(figure: str) -> None:
    assert "<script" not in figure
    # Nothing fetched: the only URLs are XML namespaces; images are inline data.
    urls = set(re.findall(r"""(?:href|src)=["']([^"']+)""", figure))
    assert all(u.startswith(("#", "data:")) for u in urls), urls


def test_roc_curve_has_ticks_labels_auc_and_operating_point() -> None:
    figure = plots.roc_curve(
        [0.0, 0.1, 0.35, 1.0],
        [0.0, 0.55, 0.8, 1.0],
        0.81234,
        "ROC of the test",
        operating_point=(0.1, 0.55),
        operating_label="decision threshold 0.5",
    )
    texts = _texts(figure)
    assert {"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"} <= set(texts)
    assert "false positive rate (1 - specificity)" in texts
    assert "true positive rate (recall)" in texts
    assert "AUC = 0.8123" in texts and "model (AUC 0.8123)" in texts
    assert "chance (AUC 0.5)" in texts
    assert "decision threshold 0.5: FPR 0.100, TPR 0.550" in texts
    assert "<figcaption>ROC of the test</figcaption>" in figure
    assert _svg(figure).get("aria-label") == "ROC of the test"
    _self_contained(figure)


def test_reliability_curve_shows_the_diagonal_and_every_bins_count() -> None:
    bins = [
        {
            "lower": b / 10,
            "upper": (b + 1) / 10,
            "count": 7 * b + 3,
            "mean_score": b / 10 + 0.05,
            "observed_rate": b / 10 + 0.02,
        }
        for b in range(0, 10, 2)  # empty bins are omitted by the calibration code
    ]
    texts = _texts(plots.reliability_curve(bins, "calibration"))
    assert [t for t in texts if t in {"3", "17", "31", "45", "59"}] == ["3", "17", "31", "45", "59"]
    assert "perfect calibration" in texts
    assert "samples in bin" in texts and "observed positive rate" in texts
    assert "mean predicted probability (score bin)" in texts


def test_grouped_bars_label_every_value_and_name_every_limit() -> None:
    figure = plots.grouped_bars(
        ["sex=female", "sex=male"],
        {"selection rate": [0.6, 0.7], "false positive rate": [0.31, math.nan]},
        "fairness",
        limits=[
            Limit(0.6, "selection-rate floor", "selection rate"),
            Limit(0.45, "FPR ceiling", "false positive rate"),
            Limit(0.9, "policy line"),
        ],
        value_label="rate",
    )
    texts = _texts(figure)
    assert {"0.600", "0.700", "0.310", "n/a"} <= set(texts)
    assert {"sex=female", "sex=male", "rate"} <= set(texts)
    assert {"selection-rate floor = 0.600", "FPR ceiling = 0.450", "policy line = 0.900"} <= set(
        texts
    )
    # A limit on a series is drawn in that series' colour, one on no series in red.
    assert f"stroke: {plots.COLOURS[1]}" in figure and f"stroke: {plots.LIMIT_COLOUR}" in figure
    with pytest.raises(ValueError, match="one value per group"):
        plots.grouped_bars(["a", "b"], {"x": [1.0]}, "bad")


def test_horizontal_bars_for_many_features() -> None:
    names = [f"feature_{i}" for i in range(12)]
    figure = plots.grouped_bars(
        names,
        {"train_split": [i / 50 for i in range(12)]},
        "psi",
        limits=[Limit(0.2, "max_feature_psi")],
        horizontal=True,
        value_label="PSI",
    )
    texts = _texts(figure)
    assert set(names) <= set(texts)
    assert "0.220" in texts and "max_feature_psi = 0.200" in texts and "PSI" in texts


def test_confusion_matrix_shows_every_count_and_class() -> None:
    texts = _texts(plots.confusion_matrix([[50, 21], [9, 120]], ["reject", "approve"], "cm"))
    assert {"50", "21", "9", "120"} <= set(texts)
    assert texts.count("reject") == 2 and texts.count("approve") == 2  # both axes
    assert {"predicted class", "actual class"} <= set(texts)
    with pytest.raises(ValueError, match="2x2"):
        plots.confusion_matrix([[1, 2, 3]], ["a", "b"], "bad")


def test_line_over_time_has_dates_latest_values_and_limit() -> None:
    start = date(2026, 1, 5)
    dates = [start + timedelta(days=7 * i) for i in range(10)]
    figure = plots.line_over_time(
        dates,
        {
            "validation pass rate": [0.95 - 0.02 * i for i in range(10)],
            "fairness pass rate": [None, *[0.9] * 8, 0.87],
        },
        "gate success over time",
        y_label="pass rate",
        limit=Limit(0.8, "target"),
        y_range=(0.0, 1.0),
    )
    texts = _texts(figure)
    assert "Feb" in texts and "Mar" in texts and "2026" in " ".join(texts)
    assert "0.77" in texts and "0.87" in texts  # the latest value of each series
    assert "target = 0.80" in texts and "pass rate" in texts and "date" in texts
    assert {"validation pass rate", "fairness pass rate"} <= set(texts)
    with pytest.raises(ValueError, match="one value per date"):
        plots.line_over_time(dates, {"x": [1.0]}, "bad")


def test_loss_curves_mark_the_best_epoch() -> None:
    texts = _texts(
        plots.loss_curves(
            [1, 2, 3, 4, 5],
            {
                "train loss": [0.7, 0.5, 0.45, 0.43, 0.42],
                "validation loss": [0.68, 0.52, 0.49, 0.5, 0.51],
            },
            3,
            "loss",
            y_label="binary cross-entropy",
        )
    )
    assert {"1", "2", "3", "4", "5", "epoch", "binary cross-entropy"} <= set(texts)
    assert "best epoch 3" in texts and "validation loss 0.4900" in texts


def test_same_input_renders_to_the_same_bytes() -> None:
    def draw() -> str:
        return plots.grouped_bars(["a", "b"], {"x": [1.0, 2.0]}, "t", limits=[Limit(1.5, "l")])

    assert draw() == draw()
