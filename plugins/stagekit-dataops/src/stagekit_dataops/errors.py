"""The errors the ingestion stages raise (pandas-free)."""

from __future__ import annotations

from collections.abc import Sequence

from stagekit import StagekitError


class RawDataError(StagekitError, ValueError):
    """Raw price files cannot be ingested. ``file`` and ``rows`` name the culprit when there is one."""

    def __init__(self, message: str, *, file: str | None = None, rows: int | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.rows = rows


class IngestionError(StagekitError, ValueError):
    """The ingestion levels disagree, or too many rows were rejected. ``problems`` lists every problem."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems) or [message]
