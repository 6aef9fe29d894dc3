"""Small charts for the metrics page, drawn on the server as SVG.

No charting library and no script: the page works under the site's Content-Security-Policy
and prints. Colours are SVG presentation attributes, which the policy allows.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 26
_BAR = "#4f46e5"
_LINE = "#b45309"
_GRID = "#d1d5db"
_TEXT = "#374151"


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str) -> SafeString:
    """One bar per label (e.g. decisions per day)."""
    top = _nice_maximum(max(values, default=0))
    slot = (WIDTH - LEFT - RIGHT) / max(len(values), 1)
    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>',
        (
            (
                _c(LEFT + index * slot + slot * 0.15),
                _c(_y(value, top)),
                _c(slot * 0.7),
                _c(_y(0, top) - _y(value, top)),
                _BAR,
                label,
                _number(value),
            )
            for index, (label, value) in enumerate(zip(labels, values, strict=True))
        ),
    )
    return _frame(title, top, labels, bars)


def line_chart(labels: Sequence[str], values: Sequence[float | None], *, title: str) -> SafeString:
    """A line over the labels; a missing value (None) breaks the line."""
    known = [value for value in values if value is not None]
    top = _nice_maximum(max(known, default=0))
    slot = (WIDTH - LEFT - RIGHT) / max(len(values), 1)
    runs: list[list[str]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            runs.append([])
            continue
        runs[-1].append(f"{LEFT + (index + 0.5) * slot:.1f},{_y(value, top):.1f}")
    lines = format_html_join(
        "",
        '<polyline points="{}" fill="none" stroke="{}" stroke-width="2"></polyline>',
        ((" ".join(run), _LINE) for run in runs if run),
    )
    points = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="2.5" fill="{}"><title>{}: {}</title></circle>',
        (
            (_c(LEFT + (index + 0.5) * slot), _c(_y(value, top)), _LINE, label, _number(value))
            for index, (label, value) in enumerate(zip(labels, values, strict=True))
            if value is not None
        ),
    )
    return _frame(title, top, labels, lines + points)


def _frame(title: str, top: float, labels: Sequence[str], marks: SafeString) -> SafeString:
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    # About six labels along the axis, whatever the number of points.
    every = max(1, round(len(labels) / 6))
    axis_labels = format_html_join(
        "",
        '<text x="{}" y="{}" font-size="10" text-anchor="middle" fill="{}">{}</text>',
        (
            (_c(LEFT + (index + 0.5) * slot), HEIGHT - 8, _TEXT, label)
            for index, label in enumerate(labels)
            if index % every == 0
        ),
    )
    grid = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}"></line>'
        '<text x="{}" y="{}" font-size="10" text-anchor="end" fill="{}">{}</text>',
        (
            (
                LEFT,
                WIDTH - RIGHT,
                _y(tick, top),
                _y(tick, top),
                _GRID,
                LEFT - 4,
                _y(tick, top) + 3,
                _TEXT,
                _number(tick),
            )
            for tick in (0, top / 2, top)
        ),
    )
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">'
        "<title>{}</title>{}{}{}</svg>",
        WIDTH,
        HEIGHT,
        title,
        title,
        grid,
        marks,
        axis_labels,
    )


def _c(coordinate: float) -> str:
    """A coordinate as SVG text (format_html escapes its arguments into strings first)."""
    return f"{coordinate:.1f}"


def _y(value: float, top: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)


def _nice_maximum(value: float) -> float:
    """The axis top: the next of 1, 2, 5 x 10^n at or above the data, at least 1."""
    if value <= 1:
        return 1.0
    scale = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * scale:
            return float(step * scale)
    return float(10 * scale)


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
