"""A pandas Series of numbers as an inline SVG line chart: round y ticks, five x labels, and a line of facts
(points, first and last, min and max). Long series are reduced to the min and max of each of 500 buckets.

numpy is imported only when a chart is drawn: a Series exists then, so pandas and numpy are installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape
from typing import Any, NamedTuple

from stagekit.report.format import number

__all__ = ["nice_ticks", "series_chart"]

_W, _H = 900.0, 270.0  # the whole chart
_LEFT, _RIGHT, _TOP, _BOTTOM = 70.0, 24.0, 12.0, 30.0  # room around the plot for the axis labels
_MAX_POINTS, _BUCKETS = 1000, 500

Label = Callable[[int], str]  # the x label of a point, by its position in the Series


def series_chart(s: Any) -> str | None:
    """An SVG line chart of a numeric Series with a numeric or datetime index (None: not chartable)."""
    import numpy as np

    dates = getattr(s.index.dtype, "kind", "") == "M"
    if getattr(s.index.dtype, "kind", "") not in "iufM" or getattr(s.dtype, "kind", "") not in "iufb":
        return None
    y = s.to_numpy(dtype="float64", na_value=np.nan)
    valid = ~np.asarray(s.index.isna())
    x = np.zeros(len(s))
    x[valid] = (s.index[valid].to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9 if dates
                else s.index[valid].to_numpy(dtype="float64"))
    keep = np.flatnonzero(np.isfinite(y) & np.isfinite(x) & valid)
    if len(keep) == 0:
        return '<p class="muted">no finite values to chart</p>'
    keep = keep[np.argsort(x[keep], kind="stable")]
    drawn = _downsample(keep, y) if len(keep) > _MAX_POINTS else keep
    fmt = "%Y-%m-%d" if x[keep[-1]] - x[keep[0]] >= 3 * 86400 else "%Y-%m-%d %H:%M"  # a short span shows hours

    def label(i: int) -> str:
        return str(s.index[i].strftime(fmt)) if dates else number(s.index[i])

    return _chart(x[drawn], y[drawn], drawn, label, len(keep))


def _downsample(keep: Any, y: Any) -> Any:
    """The minimum and the maximum of each bucket (in x order): the shape survives, the file stays small."""
    import numpy as np

    size = -(-len(keep) // _BUCKETS)
    ranks: list[int] = []
    for a in range(0, len(keep), size):
        chunk = y[keep[a:a + size]]
        ranks += [a + int(np.argmin(chunk)), a + int(np.argmax(chunk))]
    return keep[np.unique(ranks)]


def nice_ticks(low: float, high: float) -> list[str]:
    """About five round values from ``low`` to ``high`` (a step of 1, 2, 2.5 or 5 times a power of ten)."""
    raw = (high - low) / 4
    power = math.floor(math.log10(raw))
    mult = next(m for m in (1, 2, 2.5, 5, 10) if m * 10.0**power >= raw * 0.6)
    step, places = mult * 10.0**power, max(0, -power + (mult == 2.5) - (mult == 10))
    first = math.ceil(low / step - 1e-9)
    return [f"{k * step:,.{places}f}" for k in range(first, math.floor(high / step + 1e-9) + 1)]


class _Scale(NamedTuple):
    """From data to pixels: x0..x1 across the plot, y0..y1 up it."""

    x0: float
    x1: float
    y0: float
    y1: float

    def px(self, v: float) -> float:
        return _LEFT + (v - self.x0) / (self.x1 - self.x0) * (_W - _LEFT - _RIGHT)

    def py(self, v: float) -> float:
        return _TOP + (self.y1 - v) / (self.y1 - self.y0) * (_H - _TOP - _BOTTOM)


def _y_ticks(y: Any) -> dict[str, float]:
    """Each y tick's text and value (a flat series gets one tick, its value)."""
    labels = nice_ticks(float(y.min()), float(y.max())) if y.max() > y.min() else [number(float(y[0]))]
    return {t: float(t.replace(",", "")) for t in labels}


def _scale(x: Any, y: Any, ticks: dict[str, float]) -> _Scale:
    """The data range widened to the ticks, never empty."""
    x0, x1 = float(x[0]), float(x[-1]) if x[-1] > x[0] else float(x[0]) + 1
    y0, y1 = min(*ticks.values(), float(y.min())), max(*ticks.values(), float(y.max()))
    y0, y1 = (y0, y1) if y1 > y0 else (y0 - 1, y1 + 1)
    return _Scale(x0, x1, y0, y1)


def _chart(x: Any, y: Any, where: Any, label: Label, count: int) -> str:
    """The chart of the drawn points ``x``, ``y`` (at positions ``where`` of the ``count`` valid ones)."""
    ticks = _y_ticks(y)
    scale = _scale(x, y, ticks)
    px, py, floor = scale.px, scale.py, scale.py(scale.y0)
    pts = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x.tolist(), y.tolist(), strict=True))
    grid = "".join(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eceef2"/>'
                   f'<text x="{_LEFT - 8}" y="{py(t) + 4:.1f}" text-anchor="end">{escape(text)}</text>'
                   for text, t in ticks.items())
    svg = (f'<svg class="chart" width="{_W:.0f}" height="{_H:.0f}" viewBox="0 0 {_W:.0f} {_H:.0f}" role="img" '
           f'font-size="11" fill="#4b5563">{grid}<polygon points="{_LEFT},{floor:.1f} {pts} '
           f'{px(float(x[-1])):.1f},{floor:.1f}" fill="#2563eb" fill-opacity="0.07"/><polyline points="{pts}" '
           f'fill="none" stroke="#2563eb" stroke-width="1.6" stroke-linejoin="round"/><line x1="{_LEFT}" '
           f'x2="{_W - _RIGHT}" y1="{_H - _BOTTOM}" y2="{_H - _BOTTOM}" stroke="#9ca3af"/>'
           f"{_x_labels(x, where, label, scale)}</svg>")
    return f'{svg}<p class="muted">{escape(_facts(y, where, label, count))}</p>'


def _x_labels(x: Any, where: Any, label: Label, scale: _Scale) -> str:
    """Five labels evenly spaced in x, at the nearest drawn points."""
    import numpy as np

    x0, x1, last = scale.x0, scale.x1, len(x) - 1
    texts = []
    for k in sorted({min(int(np.searchsorted(x, x0 + j * (x1 - x0) / 4)), last) for j in range(5)}):
        anchor = "start" if k == 0 else "end" if k == last else "middle"
        texts.append(f'<text x="{scale.px(float(x[k])):.1f}" y="{_H - 10}" text-anchor="{anchor}">'
                     f"{escape(label(where[k]))}</text>")
    return "".join(texts)


def _facts(y: Any, where: Any, label: Label, count: int) -> str:
    lo, hi = int(y.argmin()), int(y.argmax())
    drawn = f" ({len(y):,} drawn)" if len(y) < count else ""
    return (f"{count:,} points{drawn} · {label(where[0])} → {label(where[-1])} · first {number(float(y[0]))} · "
            f"last {number(float(y[-1]))} · min {number(float(y[lo]))} ({label(where[lo])}) · "
            f"max {number(float(y[hi]))} ({label(where[hi])})")
