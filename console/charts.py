"""Small server-rendered SVG charts (no JavaScript, no chart library).

Pure functions from numbers to markup; every label is escaped. Each chart carries a
<title> and an aria-label so it reads as text too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, BAR_HEIGHT, PLOT_HEIGHT = 640, 22, 160


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    css_class: str


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def grouped_columns(title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    """Columns per label, one per series side by side (e.g. alerts opened vs reactivated)."""
    top = _nice_max(max((v for s in series for v in s.values), default=0.0))
    left, bottom = 40, 30
    slot = (WIDTH - left) / max(len(labels), 1)
    bar = max(slot * 0.8 / max(len(series), 1), 1.0)
    parts = [_open(title, WIDTH, PLOT_HEIGHT + bottom + 20)]
    parts.append(_axis(left, PLOT_HEIGHT, top))
    for i, label in enumerate(labels):
        x0 = left + i * slot + slot * 0.1
        for j, one in enumerate(series):
            value = one.values[i] if i < len(one.values) else 0.0
            height = PLOT_HEIGHT * value / top
            parts.append(
                f'<rect class="{escape(one.css_class)}" x="{x0 + j * bar:.1f}" '
                f'y="{PLOT_HEIGHT - height + 10:.1f}" width="{bar:.1f}" height="{height:.1f}">'
                f"<title>{escape(label)}: {escape(one.name)} {value:g}</title></rect>"
            )
        if len(labels) <= 14 or i % max(len(labels) // 10, 1) == 0:
            parts.append(
                f'<text x="{x0:.1f}" y="{PLOT_HEIGHT + 26}" class="tick">{escape(label)}</text>'
            )
    parts.append(_legend(series, left, PLOT_HEIGHT + 44))
    parts.append("</svg>")
    return "".join(parts)


def bars_against_limits(
    title: str, rows: Sequence[tuple[str, float, float | None]], unit: str
) -> str:
    """One horizontal bar per row (label, value, limit or None), the limit as a mark."""
    top = _nice_max(max((max(v, lim or 0.0) for _, v, lim in rows), default=0.0))
    left, right = 150, 90
    span = WIDTH - left - right
    height = max(len(rows), 1) * (BAR_HEIGHT + 8) + 10
    parts = [_open(title, WIDTH, height)]
    for i, (label, value, limit) in enumerate(rows):
        y = 5 + i * (BAR_HEIGHT + 8)
        over = limit is not None and value > limit
        parts.append(f'<text x="0" y="{y + 15}" class="label">{escape(label)}</text>')
        parts.append(
            f'<rect class="{"bar-over" if over else "bar"}" x="{left}" y="{y}" '
            f'width="{span * value / top:.1f}" height="{BAR_HEIGHT}">'
            f"<title>{escape(label)}: {value:,.2f} {escape(unit)}</title></rect>"
        )
        if limit is not None:
            x = left + span * limit / top
            parts.append(
                f'<line class="limit" x1="{x:.1f}" x2="{x:.1f}" y1="{y - 3}" '
                f'y2="{y + BAR_HEIGHT + 3}"><title>limit {limit:,.2f}</title></line>'
            )
        caption = f"{value:,.0f}" + (f" / {limit:,.0f}" if limit is not None else "")
        parts.append(
            f'<text x="{WIDTH - right + 6}" y="{y + 15}" class="label">{escape(caption)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _open(title: str, width: int, height: int) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{escape(title)}</title>'
    )


def _axis(left: int, plot_height: int, top: float) -> str:
    lines = []
    for share in (0.0, 0.5, 1.0):
        y = 10 + plot_height * (1 - share)
        lines.append(
            f'<line class="grid" x1="{left}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="0" y="{y + 4:.1f}">{top * share:g}</text>'
        )
    return "".join(lines)


def _legend(series: Sequence[Series], left: int, y: int) -> str:
    parts = []
    for j, one in enumerate(series):
        x = left + j * 160
        parts.append(
            f'<rect class="{escape(one.css_class)}" x="{x}" y="{y - 10}" width="12" height="12"/>'
            f'<text class="tick" x="{x + 18}" y="{y}">{escape(one.name)}</text>'
        )
    return "".join(parts)
