"""Short text for the report: durations, numbers, table cells, the first line of an error.

Shared by the page, the DAG drawing and the charts, and importing none of them.
"""

from __future__ import annotations

import datetime
import math
import numbers
from typing import Any

__all__ = ["cell", "duration", "first_line", "number"]


def duration(seconds: float) -> str:
    """``0.4 ms``, ``250 ms``, ``3.14 s``, ``2 min 5 s``."""
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"


def number(value: Any) -> str:
    """Integers with thousands separators; reals with four significant digits, or two decimals from 1,000 on,
    or in scientific notation when very large or very small. Anything else (bools too) as ``str``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    v = float(value)
    if not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("∞" if v > 0 else "-∞")
    if v == 0:
        return "0"
    if abs(v) >= 1e15 or abs(v) < 1e-4:
        return f"{v:.4e}"
    return f"{v:,.2f}" if abs(v) >= 1000 else f"{v:.4g}"


def cell(value: Any, width: int = 60) -> str:
    """A value as short text: numbers formatted, a midnight timestamp as its date, long text clipped."""
    text = number(value) if isinstance(value, numbers.Number) else str(value)
    if isinstance(value, datetime.datetime) and not (value.hour or value.minute or value.second or value.microsecond):
        text = value.date().isoformat()
    return text if len(text) <= width else text[: width - 1] + "…"


def first_line(error: BaseException | None) -> str:
    """``ValueError: <the first line of its message>``; empty for no error."""
    if error is None:
        return ""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"
