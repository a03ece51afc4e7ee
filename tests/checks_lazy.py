"""A module named lazily by stages ("checks_lazy:..."), imported only when a check or a run needs it."""

from __future__ import annotations


def scale(frame: object, factor: float = 2.0) -> object:
    return frame
