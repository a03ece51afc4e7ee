"""Log lines on stderr for the ``stagekit`` command: ``--log-level`` (default INFO) and ``--quiet``.

One line per record: ``[stage] INFO logger.name: message`` for what a stage logged (under every executor: the
runner re-emits what process and Ray workers captured, tagged with the stage), ``WARNING logger.name: ...``
for anything else. Stage records show from the chosen level up; records from outside stages (libraries,
plugins loading) from WARNING up, or from the chosen level if that is higher, so that INFO chatter of imported
libraries does not drown the pipeline's own lines. On a terminal each line first clears the progress line
(:class:`stagekit.cli.progress.StatusLine`), which the next progress update draws again below it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

QUIET = logging.WARNING


class StageLogHandler(logging.Handler):
    """Writes ``[stage] LEVEL logger: message`` lines to ``stream``."""

    def __init__(self, level: int, stream: TextIO | None = None) -> None:
        super().__init__(logging.NOTSET)
        self._stream = stream  # None: sys.stderr as it is when a record comes
        self.stage_level = level
        self.other_level = max(level, logging.WARNING)

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def emit(self, record: logging.LogRecord) -> None:
        stage = getattr(record, "stagekit_stage", None)
        if record.levelno < (self.stage_level if stage is not None else self.other_level):
            return
        try:
            tag = f"[{stage}] " if stage is not None else ""
            text = f"{tag}{record.levelname} {record.name}: {record.getMessage()}"
            extra = record.exc_text
            if record.exc_info and not extra:
                extra = logging.Formatter().formatException(record.exc_info)
            if extra:
                text += "\n" + extra
            stream = self.stream
            clear = "\r\x1b[2K" if _is_terminal(stream) else ""  # the progress line, if one is drawn
            stream.write(f"{clear}{text}\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def resolve_level(level: str, quiet: bool) -> int:
    """The level number from ``--log-level`` and ``--quiet`` (quiet wins: warnings and errors only)."""
    if quiet:
        return QUIET
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(level)
    return number


@contextmanager
def stage_logs(level: int, stream: TextIO | None = None) -> Iterator[StageLogHandler]:
    """While the command runs: the handler on the root logger, and the root logger at ``level``, so that
    stages' records at that level are created in the driver too (a run passes the same level to its
    workers). Both are undone afterwards (``main`` may be called more than once in a process)."""
    handler = StageLogHandler(level, stream)
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
