"""Small SVG charts for materialization metadata: Dagster's UI renders a markdown image with a data: URI.

One row per destination, each on its own scale (a destination of millions would flatten one of
thousands on a shared axis), drawn from the figures alone: no plotting library, no fonts, no network.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

_WIDTH, _ROW, _LABEL, _PLOT, _PAD = 720, 46, 230, 330, 8


def _compact(value: int) -> str:
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix}"
    return str(value)


def sparkline_rows_svg(
    series: Mapping[str, Mapping[dt.date, int]], first: dt.date, last: dt.date, title: str
) -> str:
    """An SVG of one sparkline per named series over the days ``first``..``last`` (gaps left open)."""
    days = (last - first).days
    height = 30 + _ROW * max(1, len(series))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{_WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{_PAD}" y="18" font-weight="bold">{escape(title)}</text>',
        f'<text x="{_LABEL + _PLOT}" y="18" text-anchor="end" fill="#666">{first} to {last}</text>',
    ]
    for row, (name, by_day) in enumerate(series.items()):
        top = 30 + row * _ROW
        points = sorted((d, v) for d, v in by_day.items() if first <= d <= last)
        parts.append(f'<text x="{_PAD}" y="{top + 26}">{escape(name)}</text>')
        parts.append(
            f'<line x1="{_LABEL}" y1="{top + _ROW - 6}" x2="{_LABEL + _PLOT}" y2="{top + _ROW - 6}" stroke="#ddd"/>'
        )
        if not points:
            continue
        low, high = min(v for _, v in points), max(v for _, v in points)
        span = (high - low) or 1

        def xy(day: dt.date, value: int, top: int = top, low: int = low, span: int = span) -> str:
            x = _LABEL + (_PLOT * (day - first).days / days if days else _PLOT)
            y = top + _ROW - 10 - (_ROW - 18) * (value - low) / span
            return f"{x:.1f},{y:.1f}"

        for segment in _runs(points):
            line = " ".join(xy(d, v) for d, v in segment)
            if len(segment) > 1:
                parts.append(f'<polyline points="{line}" fill="none" stroke="#4f43dd" stroke-width="2"/>')
            else:
                x, y = line.split(",")
                parts.append(f'<circle cx="{x}" cy="{y}" r="2" fill="#4f43dd"/>')
        end_day, end_value = points[-1]
        x, y = xy(end_day, end_value).split(",")
        parts.append(f'<circle cx="{x}" cy="{y}" r="3" fill="#4f43dd"/>')
        start_value = points[0][1]
        change = f"{100 * (end_value - start_value) / start_value:+.1f}%" if start_value else ""
        parts.append(
            f'<text x="{_LABEL + _PLOT + 12}" y="{top + 26}">{_compact(end_value)} '
            f'<tspan fill="#666">{change}</tspan></text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _runs(points: Sequence[tuple[dt.date, int]]) -> list[list[tuple[dt.date, int]]]:
    """Consecutive days, so a day without a snapshot shows as a gap, not as a straight line across it."""
    runs: list[list[tuple[dt.date, int]]] = []
    for day, value in points:
        if runs and (day - runs[-1][-1][0]).days == 1:
            runs[-1].append((day, value))
        else:
            runs.append([(day, value)])
    return runs


def markdown_image(svg: str, alt: str) -> str:
    return f"![{alt}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"
