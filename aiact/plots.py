"""Figures for every HTML page the suite writes (gate reports, the approval review page, the
evidence bundle, the governance dashboard), drawn with matplotlib and embedded as inline SVG.

Inline SVG keeps each page self-contained (evidence must open offline, years later: no script
or style from a CDN), and with `svg.fonttype = none` every tick label, value label and title
stays real text in the page, so a browser search (and the tests) can read it."""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

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
    """A figure with one axes (inches); close it with `to_svg`."""
    figure, axes = plt.subplots(figsize=(width, height), layout="constrained")
    return figure, axes


def to_svg(figure: Figure, title: str = "") -> str:
    """The figure as an inline `<figure>` element (SVG markup, no XML prologue), then closed.

    `title` becomes the figure's caption and its accessible name."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(figure)
    svg = _XML_HEADER.sub("", buffer.getvalue(), count=1)
    if not title:
        return f"<figure>{svg}</figure>"
    from html import escape

    svg = svg.replace("<svg ", f"<svg role='img' aria-label='{escape(title, quote=True)}' ", 1)
    return f"<figure>{svg}<figcaption>{escape(title)}</figcaption></figure>"
