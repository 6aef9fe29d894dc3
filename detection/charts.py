"""The P(fake) timeline of a video's tracks, drawn on the server as SVG.

No charting library, no inline script or style: colours are SVG presentation attributes,
which the Content-Security-Policy allows. The chart says where its plot area lies on the
time axis (data attributes), so that static/js/video.js can turn a click into a time and
seek the player there.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from detection import selectors
from detection.models import Submission, Track

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28
# Distinguishable for the common colour-vision deficiencies (Okabe and Ito's palette).
TRACK_COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000")
_GRID = "#d1d5db"
_TEXT = "#374151"
_FLAG = "#dc2626"
_UNCERTAIN = "#d97706"


def video_result_context(*, submission: Submission) -> dict[str, object]:
    """What the result page and the case page show of a video: its tracks, each with its
    colour on the chart, and the chart."""
    tracks = selectors.submission_tracks(submission=submission) if submission.is_final else []
    return {
        "tracks": [(track, track_colour(track.index)) for track in tracks],
        "timeline_chart": (
            timeline_chart(
                tracks,
                duration_s=submission.duration_s or 0.0,
                sample_interval_s=(submission.duration_s or 0.0)
                / max(submission.frames_analysed or 1, 1),
                flag_threshold=submission.flag_threshold,
                uncertain_threshold=submission.uncertain_threshold,
            )
            if tracks
            else None
        ),
    }


def track_colour(index: int) -> str:
    return TRACK_COLOURS[(index - 1) % len(TRACK_COLOURS)]


def timeline_chart(
    tracks: Sequence[Track],
    *,
    duration_s: float,
    sample_interval_s: float,
    flag_threshold: float | None,
    uncertain_threshold: float | None,
) -> SafeString:
    """One line per track over the clip's length; P(fake) from 0 to 1 upwards."""
    duration = max(duration_s, 1e-3)
    # A person absent for more than a sample or so (a cut, a turn away) breaks their line.
    gap = 1.5 * sample_interval_s
    lines = format_html_join(
        "",
        '<polyline points="{}" fill="none" stroke="{}" stroke-width="2" '
        'data-track="{}"></polyline>',
        (
            (
                " ".join(f"{_x(t, duration):.1f},{_y(p):.1f}" for t, p in run),
                track_colour(track.index),
                track.index,
            )
            for track in tracks
            for run in _runs(track.timeline, gap)
        ),
    )
    points = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="3" fill="{}"><title>Person {} at {} s: P(fake) {}</title>'
        "</circle>",
        (
            (
                f"{_x(t, duration):.1f}",
                f"{_y(p):.1f}",
                track_colour(track.index),
                track.index,
                f"{t:.1f}",
                f"{p:.3f}",
            )
            for track in tracks
            for t, p in track.timeline
        ),
    )
    thresholds = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-dasharray="4 3"></line>'
        '<text x="{}" y="{}" font-size="10" text-anchor="end" fill="{}">{}</text>',
        (
            (
                LEFT,
                WIDTH - RIGHT,
                _y(value),
                _y(value),
                colour,
                WIDTH - RIGHT,
                _y(value) - 3,
                colour,
                label,
            )
            for value, colour, label in (
                (flag_threshold, _FLAG, "likely manipulated"),
                # Where both thresholds coincide there is no uncertain band to mark.
                (
                    uncertain_threshold if uncertain_threshold != flag_threshold else None,
                    _UNCERTAIN,
                    "uncertain",
                ),
            )
            if value is not None
        ),
    )
    return format_html(
        '<svg class="chart timeline-chart" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'data-duration="{}" data-plot-left="{}" data-plot-width="{}">'
        "<title>{}</title>{}{}{}{}{}"
        '<line class="playhead" x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}" '
        'stroke-width="1.5"></line></svg>',
        WIDTH,
        HEIGHT,
        _TITLE,
        f"{duration:.3f}",
        LEFT,
        WIDTH - LEFT - RIGHT,
        _TITLE,
        _axes(),
        thresholds,
        lines,
        points,
        _time_labels(duration),
        LEFT,
        LEFT,
        TOP,
        HEIGHT - BOTTOM,
        _TEXT,
    )


_TITLE = "P(fake) of each person over the clip; click to play from that moment"


def _axes() -> SafeString:
    return format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}"></line>'
        '<text x="{}" y="{}" font-size="10" text-anchor="end" fill="{}">{}</text>',
        (
            (LEFT, WIDTH - RIGHT, _y(tick), _y(tick), _GRID, LEFT - 4, _y(tick) + 3, _TEXT, label)
            for tick, label in ((0.0, "0"), (0.5, "0.5"), (1.0, "1"))
        ),
    )


def _runs(timeline: list[list[float]], gap: float) -> list[list[list[float]]]:
    """The timeline cut wherever two points lie more than `gap` seconds apart."""
    runs: list[list[list[float]]] = []
    for point in timeline:
        if not runs or point[0] - runs[-1][-1][0] > gap:
            runs.append([])
        runs[-1].append(point)
    return runs


def _time_labels(duration: float) -> SafeString:
    step = _time_step(duration)
    ticks = [step * n for n in range(int(duration / step) + 1)]
    return format_html_join(
        "",
        '<text x="{}" y="{}" font-size="10" text-anchor="middle" fill="{}">{}</text>',
        ((f"{_x(tick, duration):.1f}", HEIGHT - 10, _TEXT, _clock(tick, step)) for tick in ticks),
    )


def _time_step(duration: float) -> float:
    """About six labels along the time axis, at round numbers of seconds."""
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60):
        if duration / step <= 7:
            return float(step)
    return 120.0


def _clock(seconds: float, step: float) -> str:
    """Seconds on a short clip's axis (0.5 s steps), minutes and seconds on a longer one."""
    if step < 1:
        return f"{seconds:g} s"
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def _x(seconds: float, duration: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * min(max(seconds / duration, 0.0), 1.0)


def _y(probability: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - min(max(probability, 0.0), 1.0))
