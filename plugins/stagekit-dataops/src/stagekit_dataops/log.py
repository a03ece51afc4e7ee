"""The ingestion log: what each level did to each raw file's rows, carried on the level's own frame.

Every ingestion stage attaches to its output frame (``frame.attrs``) one entry per raw file: rows in, rows
out, rows rejected (and why), rows added (calendar gaps). ``attrs`` survive pickling, so the log travels
with its frame through any executor; ``validate_ingestion`` reads the entries back and cross-checks them.
The log is stored as one JSON string: pandas deep-copies ``attrs`` on every operation that derives a frame,
and copying a string is free where copying hundreds of dicts is not.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict, TypeVar

F = TypeVar("F")

LOG_KEY = "stagekit_dataops.log"
LEVELS = ("L0", "L1", "L2", "L3", "L4")


class Entry(TypedDict):
    file: str
    level: str
    rows_in: int
    rows_out: int
    rows_rejected: int
    rows_added: int
    why: dict[str, int]  # reason -> rows (0 for a whole-file rejection with no readable rows)


def entries(
    level: str,
    rows_in: Mapping[str, int],
    rows_out: Mapping[str, int],
    rejected: Mapping[str, Counter[str]] | None = None,
    added: Mapping[str, int] | None = None,
) -> list[Entry]:
    """One entry per file in ``rows_in``, sorted by file name."""
    rejected, added = rejected or {}, added or {}
    out: list[Entry] = []
    for file in sorted(rows_in):
        why = dict(rejected.get(file, Counter()))
        out.append(Entry(
            file=file, level=level, rows_in=int(rows_in[file]), rows_out=int(rows_out.get(file, 0)),
            rows_rejected=sum(why.values()), rows_added=int(added.get(file, 0)), why=why,
        ))
    return out


def attach(frame: F, level: str, log: Iterable[Entry]) -> F:
    """Set ``level``'s log on ``frame`` (replacing anything inherited from the frame it was made from)."""
    frame.attrs = {LOG_KEY: json.dumps({"level": level, "entries": list(log)})}  # type: ignore[attr-defined]
    return frame


def read(frame: Any, level: str) -> list[Entry] | None:
    """The log ``level`` attached to ``frame``, or None if it has none (it did not come from that stage)."""
    text = getattr(frame, "attrs", {}).get(LOG_KEY)
    if not isinstance(text, str):
        return None
    found = json.loads(text)
    if not isinstance(found, dict) or found.get("level") != level:
        return None
    return list(found["entries"])



def file_counts(files: Any) -> dict[str, int]:
    """Rows per file, from a pandas Series of file names."""
    return {str(k): int(v) for k, v in files.value_counts().items()}
