"""How values and types are named in merge messages: without importing a type, and never printing a frame."""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any

from stagekit._typedispatch import type_name  # the one home of the rule; re-exported for messages

__all__ = ["display_name", "reprs", "short_repr", "type_name"]


def display_name(cls: type) -> str:
    """A type's name for messages: ``int`` for builtins, else :func:`type_name`."""
    return cls.__qualname__ if cls.__module__ == "builtins" else type_name(cls)


# --- short reprs for messages --------------------------------------------------------------------------

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 40, 60
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = 4


def short_repr(value: Any, limit: int = 80) -> str:
    """A one-line repr of at most ``limit`` characters; arrays and frames are summarized, never printed."""
    try:
        text = _summary(value) or _REPR.repr(value)
    except Exception as exc:  # a broken __repr__ must not hide the conflict
        text = f"<{type_name(type(value))} (repr failed: {type(exc).__name__})>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _summary(value: Any) -> str | None:
    root = type(value).__module__.partition(".")[0]
    name = type(value).__name__
    if root not in ("pandas", "numpy", "pyarrow"):
        return None
    if name == "DataFrame":
        return f"DataFrame({len(value)} rows, columns {_head(list(value.columns))})"
    if name in ("Table", "RecordBatch"):
        return f"{name}({value.num_rows} rows, columns {_head(value.column_names)})"
    if name == "Series":
        return f"Series({value.name!r}, {value.dtype}, {len(value)} rows: {_head(value.iloc[:4].tolist())})"
    if name == "ndarray":
        return f"ndarray({value.shape}, {value.dtype}: {_head(value.ravel()[:4].tolist())})"
    if root == "pyarrow" and hasattr(value, "to_pylist") and hasattr(value, "slice"):  # Array, ChunkedArray
        return f"{name}({value.type}, {len(value)} rows: {_head(value.slice(0, 4).to_pylist())})"
    return None


def _head(items: list[Any], n: int = 3) -> str:
    """The first ``n`` items, and "..." if there are more (callers pass ``n + 1`` items to tell)."""
    shown = ", ".join(_REPR.repr(x) for x in items[:n])
    return f"[{shown}{', ...' if len(items) > n else ''}]"


def reprs(values: Sequence[Any]) -> str:
    return ", ".join(short_repr(v) for v in values)
