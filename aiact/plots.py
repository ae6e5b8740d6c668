"""Figures for every HTML page the suite writes (gate reports, the approval review page, the
evidence bundle, the governance dashboard), drawn with matplotlib and embedded as inline SVG.

Inline SVG keeps each page self-contained (evidence must open offline, years later: no script
or style from a CDN), and with `svg.fonttype = none` every tick label, value label and title
stays real text in the page, so a browser search (and the tests) can read it."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")  # for any pyplot user in the process (scikit-learn's displays)

import matplotlib.dates as mdates
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

matplotlib.rcParams.update(
    {
        "svg.fonttype": "none",
        "svg.hashsalt": "aiact",  # deterministic ids: the same evidence renders to the same bytes
        "font.size": 9,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "figure.dpi": 96,
    }
)

_XML_HEADER = re.compile(r"^.*?(?=<svg)", re.DOTALL)


def new_figure(width: float = 6.0, height: float = 3.6) -> tuple[Figure, Any]:
    """A figure with one axes (inches); render it with `to_svg`.

    Figures are made with matplotlib's object API, never `pyplot`: no global figure registry
    to close, no GUI backend, and a stage process that draws a figure does not pay ~0.4 s for
    importing pyplot."""
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots()


def to_svg(figure: Figure, title: str = "") -> str:
    """The figure as an inline `<figure>` element (SVG markup, no XML prologue), then closed.

    `title` becomes the figure's caption and its accessible name."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = _XML_HEADER.sub("", buffer.getvalue(), count=1)
    if not title:
        return f"<figure>{svg}</figure>"
    from html import escape

    svg = svg.replace("<svg ", f"<svg role='img' aria-label='{escape(title, quote=True)}' ", 1)
    return f"<figure>{svg}<figcaption>{escape(title)}</figcaption></figure>"


# One palette for every figure (matplotlib's default cycle), so a series keeps its colour.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
LIMIT_COLOUR = "#d62728"
CHANCE_COLOUR = "#7f7f7f"


@dataclass(frozen=True)
class Limit:
    """A threshold line on a chart: `value` on the value axis, named by `label` (the legend
    shows `label = value`); drawn in the colour of `series` when it names one of the chart's
    series (a limit on that series only), else in red."""

    value: float
    label: str
    series: str = ""


def _number(value: float, fmt: str) -> str:
    return "n/a" if not math.isfinite(value) else format(value, fmt)


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


# Line styles of successive limit lines, so that two limits of one colour stay apart.
LIMIT_STYLES: tuple[Any, ...] = ("--", ":", "-.", (0, (6, 2, 1, 2, 1, 2)))


def _legend_below(figure: Figure, axes: Any, columns: int = 2) -> None:
    """A legend under the axes, outside the plot area, so it never covers a bar or a line
    (one column when its labels are long, so that it stays as wide as the figure)."""
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        width_in_chars = figure.get_figwidth() * 72 / 9 / 0.62  # ~0.62 em per character
        longest = max(len(label) for label in labels) + 6  # the handle and the padding
        fit = max(1, int(width_in_chars // longest))
        figure.legend(
            handles, labels, loc="outside lower center", ncols=min(columns, len(handles), fit)
        )


def roc_curve(
    fpr: Sequence[float],
    tpr: Sequence[float],
    auc: float,
    title: str,
    *,
    operating_point: tuple[float, float] | None = None,
    operating_label: str = "decision threshold",
) -> str:
    """A receiver operating characteristic curve from (0, 0) to (1, 1) with the chance
    diagonal, its area in the legend and on the plot, and optionally the model's operating
    point (FPR, TPR at its decision threshold).

    Args:
        fpr: False positive rates, ascending, from 0 to 1.
        tpr: True positive rates at the same thresholds.
        auc: The area under the curve (ROC AUC), shown to four decimals.
        title: Caption and accessible name of the figure.
        operating_point: (false positive rate, true positive rate) to mark, or None.
        operating_label: What the operating point is, for the legend.

    Returns:
        An inline `<figure>` (see `to_svg`).
    """
    figure, axes = new_figure(5.2, 4.6)
    axes.plot(fpr, tpr, color=COLOURS[0], linewidth=1.8, label=f"model (AUC {auc:.4f})")
    axes.fill_between(fpr, tpr, step=None, alpha=0.08, color=COLOURS[0])
    axes.plot(
        [0, 1], [0, 1], linestyle="--", color=CHANCE_COLOUR, linewidth=1, label="chance (AUC 0.5)"
    )
    if operating_point is not None:
        x, y = operating_point
        axes.plot(
            [x],
            [y],
            marker="o",
            color=LIMIT_COLOUR,
            linestyle="none",
            label=f"{operating_label}: FPR {x:.3f}, TPR {y:.3f}",
        )
    axes.text(0.97, 0.05, f"AUC = {auc:.4f}", ha="right", va="bottom", fontsize=11)
    ticks = [i / 5 for i in range(6)]
    axes.set_xticks(ticks)
    axes.set_yticks(ticks)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_aspect("equal")
    axes.set_xlabel("false positive rate (1 - specificity)")
    axes.set_ylabel("true positive rate (recall)")
    _legend_below(figure, axes, columns=1)
    return to_svg(figure, title)


def reliability_curve(bins: Sequence[Mapping[str, float]], title: str) -> str:
    """Observed rate against mean predicted probability per score bin, with the
    perfect-calibration diagonal, and underneath the number of samples in each bin (bars with
    their counts as value labels).

    Args:
        bins: One mapping per non-empty bin with `lower` and `upper` (the bin's score range),
            `count`, `mean_score` and `observed_rate` (components.evaluation.calibration).
        title: Caption and accessible name of the figure.

    Returns:
        An inline `<figure>` (see `to_svg`).
    """
    figure = Figure(figsize=(5.6, 5.4), layout="constrained")
    curve, counts = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1.3))
    predicted = [float(b["mean_score"]) for b in bins]
    observed = [float(b["observed_rate"]) for b in bins]
    curve.plot(
        [0, 1],
        [0, 1],
        linestyle="--",
        color=CHANCE_COLOUR,
        linewidth=1,
        label="perfect calibration",
    )
    curve.plot(predicted, observed, marker="o", color=COLOURS[0], label="model")
    ticks = [i / 5 for i in range(6)]
    curve.set_yticks(ticks)
    curve.set_xlim(0, 1)
    curve.set_ylim(0, 1.02)
    curve.set_ylabel("observed positive rate")
    curve.legend(loc="upper left")
    centres = [(float(b["lower"]) + float(b["upper"])) / 2 for b in bins]
    widths = [(float(b["upper"]) - float(b["lower"])) * 0.9 for b in bins]
    sizes = [int(b["count"]) for b in bins]
    bars = counts.bar(centres, sizes, width=widths, color=COLOURS[0], alpha=0.45)
    counts.bar_label(bars, labels=[str(n) for n in sizes], padding=2, fontsize=7)
    counts.set_ylim(0, max(sizes, default=1) * 1.35)
    counts.set_xticks(ticks)
    counts.set_xlabel("mean predicted probability (score bin)")
    counts.set_ylabel("samples in bin")
    return to_svg(figure, title)


def grouped_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    *,
    limits: Sequence[Limit] = (),
    value_label: str = "",
    group_label: str = "",
    horizontal: bool = False,
    value_format: str = ".3f",
) -> str:
    """Bars per group, one bar per series side by side, each with its value as a label, and
    dashed threshold lines (`limits`).

    Args:
        groups: The categories (e.g. the groups of a protected attribute, or feature names).
        series: Name -> one value per group, in the order of `groups` (NaN: drawn as "n/a").
        title: Caption and accessible name of the figure.
        limits: Threshold lines across the chart (see `Limit`).
        value_label: The value axis' label.
        group_label: The category axis' label.
        horizontal: Bars along the x axis, groups down the y axis (for many or long names).
        value_format: Format of the value labels (Python format spec).

    Returns:
        An inline `<figure>` (see `to_svg`).
    """
    names = list(series)
    if any(len(series[name]) != len(groups) for name in names):
        raise ValueError(f"every series needs one value per group ({len(groups)})")
    slots = max(len(groups) * max(len(names), 1), 1)
    if horizontal:
        figure, axes = new_figure(7.2, min(2.0 + 0.24 * slots, 18.0))
    else:
        figure, axes = new_figure(min(max(6.4, 1.6 + 0.55 * slots), 14.0), 4.2)
    width = 0.8 / max(len(names), 1)
    positions = list(range(len(groups)))
    for i, name in enumerate(names):
        values = [float(v) if v is not None else math.nan for v in series[name]]
        offset = (i - (len(names) - 1) / 2) * width
        places = [p + offset for p in positions]
        colour = COLOURS[i % len(COLOURS)]
        drawn = [v if math.isfinite(v) else 0.0 for v in values]
        if horizontal:
            bars = axes.barh(places, drawn, height=width, color=colour, label=name)
        else:
            bars = axes.bar(places, drawn, width=width, color=colour, label=name)
        axes.bar_label(
            bars, labels=[_number(v, value_format) for v in values], padding=2, fontsize=7
        )
    colours = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(names)}
    for i, limit in enumerate(limits):
        line = axes.axvline if horizontal else axes.axhline
        line(
            limit.value,
            color=colours.get(limit.series, LIMIT_COLOUR),
            linestyle=LIMIT_STYLES[i % len(LIMIT_STYLES)],
            linewidth=1.3,
            label=f"{limit.label} = {limit.value:{value_format}}",
        )
    values = _finite([v for name in names for v in series[name]]) + [
        limit.value for limit in limits
    ]
    top = max([*values, 0.0]) or 1.0
    bottom = min([*values, 0.0])
    span = (top - bottom) or 1.0
    value_range = (bottom - (0.05 * span if bottom < 0 else 0.0), top + 0.18 * span)
    if horizontal:
        axes.set_yticks(positions, list(groups))
        axes.invert_yaxis()  # the first group on top
        axes.set_xlim(*value_range)
        axes.set_xlabel(value_label)
        axes.set_ylabel(group_label)
    else:
        rotate = len(groups) > 6 or max((len(g) for g in groups), default=0) > 12
        axes.set_xticks(
            positions,
            list(groups),
            rotation=30 if rotate else 0,
            ha="right" if rotate else "center",
        )
        axes.set_ylim(*value_range)
        axes.set_ylabel(value_label)
        axes.set_xlabel(group_label)
    _legend_below(figure, axes)
    return to_svg(figure, title)


def confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> str:
    """A confusion-matrix heatmap (scikit-learn's display): true class down, predicted class
    across, the count in every cell.

    Args:
        matrix: Counts, `matrix[actual][predicted]`, in the order of `labels`.
        labels: Class names.
        title: Caption and accessible name of the figure.

    Returns:
        An inline `<figure>` (see `to_svg`).
    """
    from sklearn.metrics import ConfusionMatrixDisplay  # scikit-learn costs ~1 s to import

    counts = np.asarray(matrix, dtype=np.int64)
    if counts.shape != (len(labels), len(labels)):
        raise ValueError(f"a {len(labels)}x{len(labels)} matrix is needed, got {counts.shape}")
    figure, axes = new_figure(4.4, 3.8)
    ConfusionMatrixDisplay(counts, display_labels=list(labels)).plot(
        ax=axes, cmap="Blues", colorbar=True, values_format="d"
    )
    axes.grid(False)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("actual class")
    return to_svg(figure, title)


def line_over_time(
    dates: Sequence[date | datetime],
    series: Mapping[str, Sequence[float | None]],
    title: str,
    *,
    y_label: str = "",
    limit: Limit | None = None,
    value_format: str = ".2f",
    y_range: tuple[float, float] | None = None,
) -> str:
    """One or more series over time (dates on the x axis), the latest value of each labelled,
    with an optional threshold line.

    Args:
        dates: The time of each point, ascending (dates or datetimes).
        series: Name -> one value per date (None or NaN: no value then, a gap in the line).
        title: Caption and accessible name of the figure.
        y_label: The value axis' label.
        limit: A threshold line (see `Limit`), or None.
        value_format: Format of the value labels (Python format spec).
        y_range: Fixed value axis range (e.g. (0, 1) for rates), else matplotlib's.

    Returns:
        An inline `<figure>` (see `to_svg`).
    """
    if any(len(values) != len(dates) for values in series.values()):
        raise ValueError(f"every series needs one value per date ({len(dates)})")
    figure, axes = new_figure(7.0, 3.6)
    colours = {}
    for i, (name, raw) in enumerate(series.items()):
        values = [math.nan if v is None else float(v) for v in raw]
        colours[name] = COLOURS[i % len(COLOURS)]
        axes.plot(list(dates), values, marker="o", markersize=3, color=colours[name], label=name)
        latest = [(d, v) for d, v in zip(dates, values, strict=True) if math.isfinite(v)]
        if latest:
            when, value = latest[-1]
            axes.annotate(
                _number(value, value_format),
                (mdates.date2num(when), value),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=colours[name],
            )
    if limit is not None:
        axes.axhline(
            limit.value,
            color=colours.get(limit.series, LIMIT_COLOUR),
            linestyle="--",
            linewidth=1.3,
            label=f"{limit.label} = {limit.value:{value_format}}",
        )
    if dates and min(dates) == max(dates):
        # One point in time: a span of a day either side, not matplotlib's default of years.
        centre = mdates.date2num(dates[0])
        axes.set_xlim(centre - 1, centre + 1)
    locator = mdates.AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if y_range is not None:
        axes.set_ylim(*y_range)
    axes.set_xlabel("date")
    axes.set_ylabel(y_label)
    _legend_below(figure, axes)
    return to_svg(figure, title)


def loss_curves(
    epochs: Sequence[int],
    series: Mapping[str, Sequence[float]],
    best_epoch: int,
    title: str,
    *,
    y_label: str = "loss",
    best_series: str = "",
) -> str:
    """Loss per epoch (one line per split) with the best epoch marked: a vertical line and the
    best value of `best_series` (default: the last series, e.g. validation) labelled.

    Args:
        epochs: Epoch numbers (1-based), ascending.
        series: Split name -> loss per epoch.
        best_epoch: The epoch whose weights were kept.
        title: Caption and accessible name of the figure.
        y_label: The value axis' label (the loss function).
        best_series: The series the best epoch was chosen on ('' = the last one).

    Returns:
        An inline `<figure>` (see `to_svg`).
    """
    if any(len(values) != len(epochs) for values in series.values()):
        raise ValueError(f"every series needs one value per epoch ({len(epochs)})")
    figure, axes = new_figure(6.4, 3.8)
    for i, (name, values) in enumerate(series.items()):
        axes.plot(
            list(epochs), list(values), marker="o", markersize=3, color=COLOURS[i], label=name
        )
    axes.axvline(
        best_epoch,
        color=LIMIT_COLOUR,
        linestyle="--",
        linewidth=1.2,
        label=f"best epoch {best_epoch}",
    )
    chosen = best_series or (list(series)[-1] if series else "")
    if chosen and best_epoch in epochs:
        value = float(series[chosen][list(epochs).index(best_epoch)])
        axes.plot(
            [best_epoch], [value], marker="*", markersize=11, color=LIMIT_COLOUR, linestyle="none"
        )
        axes.annotate(
            f"{chosen} {value:.4f}",
            (best_epoch, value),
            textcoords="offset points",
            xytext=(6, 8),
            fontsize=8,
            color=LIMIT_COLOUR,
        )
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel(y_label)
    _legend_below(figure, axes)
    return to_svg(figure, title)
