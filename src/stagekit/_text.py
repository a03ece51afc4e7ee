"""Plain text for messages: tables (CLI listings, contract failures) and "did you mean" suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any


def table_lines(headers: Sequence[Any], rows: Sequence[Sequence[Any]], *, rule: bool = False) -> list[str]:
    """Left-aligned columns two spaces apart, trailing blanks trimmed; ``rule`` puts dashes under the header."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    if rule:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def table(headers: Sequence[Any], rows: Sequence[Sequence[Any]], *, rule: bool = False) -> str:
    """:func:`table_lines` joined into one string."""
    return "\n".join(table_lines(headers, rows, rule=rule))


def unknown_name(kind: str, name: str, known: Iterable[str]) -> str:
    """A message for an unknown name, with the closest known names as suggestions."""
    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}"
