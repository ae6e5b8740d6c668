"""Small self-contained SVG charts for HTML evidence reports (no plotting dependency): the
KFP UI shows them inline, without downloading anything."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
WIDTH, HEIGHT, MARGIN = 480, 300, 48


def _frame(title: str, width: int, height: int, body: list[str]) -> str:
    return (
        f"<figure><svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{escape(title)}'>"
        f"<rect width='{width}' height='{height}' fill='white'/>" + "".join(body) + "</svg>"
        f"<figcaption>{escape(title)}</figcaption></figure>"
    )


def _legend(names: Sequence[str], x: float, y: float) -> list[str]:
    return [
        f"<rect x='{x}' y='{y + 14 * i - 8}' width='10' height='10' "
        f"fill='{COLOURS[i % len(COLOURS)]}'/>"
        f"<text x='{x + 14}' y='{y + 14 * i + 1}' font-size='11'>{escape(name)}</text>"
        for i, name in enumerate(names)
    ]


def line_chart(
    title: str,
    series: dict[str, Sequence[tuple[float, float]]],
    x_label: str,
    y_label: str,
    *,
    diagonal: bool = False,
) -> str:
    """Lines (with point markers) over a shared axis range; `diagonal` draws y = x."""
    points = [p for line in series.values() for p in line]
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    if diagonal:
        x_lo = y_lo = min(x_lo, y_lo, 0.0)
        x_hi = y_hi = max(x_hi, y_hi, 1.0)
    x_span, y_span = (x_hi - x_lo) or 1.0, (y_hi - y_lo) or 1.0
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN

    def xy(x: float, y: float) -> str:
        px = MARGIN + (x - x_lo) / x_span * plot_w
        py = HEIGHT - MARGIN - (y - y_lo) / y_span * plot_h
        return f"{px:.1f},{py:.1f}"

    body = [
        f"<rect x='{MARGIN}' y='{MARGIN}' width='{plot_w}' height='{plot_h}' fill='none' "
        "stroke='#999'/>",
        f"<text x='{WIDTH / 2}' y='{HEIGHT - 10}' font-size='12' text-anchor='middle'>"
        f"{escape(x_label)}</text>",
        f"<text x='14' y='{HEIGHT / 2}' font-size='12' text-anchor='middle' "
        f"transform='rotate(-90 14 {HEIGHT / 2})'>{escape(y_label)}</text>",
        f"<text x='{MARGIN}' y='{HEIGHT - MARGIN + 14}' font-size='10'>{x_lo:.3g}</text>",
        f"<text x='{WIDTH - MARGIN}' y='{HEIGHT - MARGIN + 14}' font-size='10' "
        f"text-anchor='end'>{x_hi:.3g}</text>",
        f"<text x='{MARGIN - 4}' y='{HEIGHT - MARGIN}' font-size='10' text-anchor='end'>"
        f"{y_lo:.3g}</text>",
        f"<text x='{MARGIN - 4}' y='{MARGIN + 8}' font-size='10' text-anchor='end'>"
        f"{y_hi:.3g}</text>",
    ]
    if diagonal:
        body.append(
            f"<polyline points='{xy(x_lo, y_lo)} {xy(x_hi, y_hi)}' stroke='#bbb' "
            "stroke-dasharray='4' fill='none'/>"
        )
    for i, line in enumerate(series.values()):
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(xy(x, y) for x, y in line)
        body.append(f"<polyline points='{coords}' stroke='{colour}' fill='none'/>")
        body += [
            f"<circle cx='{xy(x, y).split(',')[0]}' cy='{xy(x, y).split(',')[1]}' r='2.5' "
            f"fill='{colour}'/>"
            for x, y in line
        ]
    body += _legend(list(series), MARGIN + 8, MARGIN + 14)
    return _frame(title, WIDTH, HEIGHT, body)


def bar_chart(
    title: str, categories: Sequence[str], series: dict[str, Sequence[float]], *, limit: float = 0.0
) -> str:
    """Horizontal grouped bars, one group per category; `limit` (when > 0) draws a red line."""
    label_w, bar_h, width = 220, 12, WIDTH + 100
    row_h = 6 + bar_h * len(series)
    plot_w = width - label_w - 30
    top = max([limit, *[v for values in series.values() for v in values]]) or 1.0
    body = []
    for row, category in enumerate(categories):
        y0 = 10 + row * row_h
        body.append(
            f"<text x='{label_w - 6}' y='{y0 + row_h / 2 + 4}' font-size='11' "
            f"text-anchor='end'>{escape(category)}</text>"
        )
        for i, values in enumerate(series.values()):
            bar = max(values[row], 0.0) / top * plot_w
            body.append(
                f"<rect x='{label_w}' y='{y0 + 3 + i * bar_h}' width='{bar:.1f}' "
                f"height='{bar_h - 2}' fill='{COLOURS[i % len(COLOURS)]}'><title>"
                f"{escape(category)}: {values[row]:.4g}</title></rect>"
            )
    bottom = 10 + row_h * len(categories)
    body.append(
        f"<text x='{label_w}' y='{bottom + 14}' font-size='10'>0</text>"
        f"<text x='{label_w + plot_w}' y='{bottom + 14}' font-size='10' "
        f"text-anchor='end'>{top:.3g}</text>"
    )
    if limit > 0:
        x = label_w + limit / top * plot_w
        body.append(
            f"<line x1='{x:.1f}' y1='10' x2='{x:.1f}' y2='{bottom}' stroke='#d00' "
            f"stroke-dasharray='4'><title>limit {limit:.4g}</title></line>"
        )
    legend = list(series) if len(series) > 1 else []
    body += _legend(legend, label_w, bottom + 34)
    return _frame(title, width, int(bottom + 24 + 14 * len(legend)), body)
