"""Stage logs: what a stage's code logs is kept on its record and shown in the driver, under every executor.

How it works, in three pieces:

* **Capture where the stage runs.** ``run_task`` sets a context variable naming the running stage (one per
  thread, so parallel thread stages never mix) for the duration of the call. A log-record factory, installed
  once per process, tags every record created in that context with ``record.stagekit_stage`` and keeps a plain,
  picklable :class:`~stagekit.records.LogEntry` of each one at the task's level or above. A stage that logs
  nothing costs a context-variable set and reset.
* **Records exist at the run's level.** A logger below its effective level creates no record at all, so the
  root logger's level is lowered to the run's ``log_level`` where needed: for the run's duration in the driver
  (:func:`run_level`, which also keeps records from outside stages that only the lowering let through off
  the handlers the driver already had), and for good in a worker process, which is ours.
* **Show in the driver.** In the driver (sequential, thread) a tagged record goes to the configured handlers
  the moment it is logged. A worker (process, Ray) prints nothing itself (:func:`prepare_worker`); its
  entries travel back on the :class:`~stagekit.records.Outcome` with ``forwarded=True`` and the runner
  re-emits them through the same loggers in the driver (:func:`emit`), tagged with the stage.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from stagekit.records import LogEntry

__all__ = ["begin", "capture", "emit", "end", "entry_of", "install", "level_number", "prepare_worker", "ready",
           "run_level"]


# The running stage of this thread (context): (its name, the level kept, the entries kept), or None.
_Sink = tuple[str, int, list[LogEntry]]
current: contextvars.ContextVar[_Sink | None] = contextvars.ContextVar("stagekit_stage_logs", default=None)
_install_lock = threading.Lock()
_installed: Callable[..., logging.LogRecord] | None = None


def entry_of(record: logging.LogRecord) -> LogEntry:
    """A record as plain data: its message with the arguments applied, and its traceback as text."""
    exc_text = record.exc_text
    if record.exc_info and not exc_text:
        exc_text = logging.Formatter().formatException(record.exc_info)
    if record.stack_info:
        exc_text = f"{exc_text}\n{record.stack_info}" if exc_text else record.stack_info
    return LogEntry(record.name, record.levelno, record.getMessage(), record.created, exc_text)


def install() -> None:
    """Wrap the process's log-record factory, once (again if someone replaced it since): the runner calls this
    once per run in the driver, :func:`begin` the first time in a worker."""
    global _installed
    if _installed is not None and logging.getLogRecordFactory() is _installed:
        return
    with _install_lock:
        previous = logging.getLogRecordFactory()
        if previous is _installed:
            return

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            sink = current.get()
            if sink is not None and not hasattr(record, "stagekit_stage"):  # not twice if a factory wraps ours
                record.stagekit_stage = sink[0]
                if record.levelno >= sink[1]:
                    sink[2].append(entry_of(record))
            return record

        _installed = factory
        logging.setLogRecordFactory(factory)


def installed() -> Callable[..., logging.LogRecord] | None:
    """The factory :func:`install` put in place, None before."""
    return _installed


def ready(level: int) -> None:
    """This process creates and tags records at ``level``: the factory installed, and the root logger lowered
    to ``level`` if it is higher (in a worker, for good: the process is ours; in the driver :func:`run_level`
    has already done it for the run)."""
    if _installed is None:
        install()
    if logging.root.level > level:
        logging.root.setLevel(level)


def begin(stage: str, level: int) -> tuple[contextvars.Token[_Sink | None], list[LogEntry]]:
    """Start keeping what this thread logs, tagged with ``stage``, at ``level`` or above: returns a token for
    :func:`end` and the list the entries go to."""
    ready(level)
    entries: list[LogEntry] = []
    return current.set((stage, level, entries)), entries


def end(token: contextvars.Token[_Sink | None]) -> None:
    current.reset(token)


@contextmanager
def capture(stage: str, level: int) -> Iterator[list[LogEntry]]:
    """:func:`begin` and :func:`end` around a block."""
    token, entries = begin(stage, level)
    try:
        yield entries
    finally:
        end(token)


def level_number(level: int | str | None) -> int:
    """``"INFO"``, ``"info"``, ``20`` -> 20; None -> the driver root logger's effective level."""
    if level is None:
        return logging.root.getEffectiveLevel()
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    number = logging.getLevelName(str(level).upper())
    if not isinstance(number, int):
        from stagekit.errors import PipelineError

        raise PipelineError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL "
                            "(or a number)")
    return number


class _OnlyStages(logging.Filter):
    """Drops the records below ``floor`` that come from outside any stage (the run's lowering let them in)."""

    def __init__(self, floor: int) -> None:
        super().__init__()
        self.floor = floor

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.floor or hasattr(record, "stagekit_stage")


@contextmanager
def run_level(level: int) -> Iterator[None]:
    """In the driver, for one run: the root logger at ``level`` at most, so that stage records are created.

    Where that lowers the root logger, the handlers it already had see only the stage records the lowering
    let through, not every library's; both are undone when the run ends.
    """
    install()
    root = logging.root
    before = root.level
    if before <= level:
        yield
        return
    gate = _OnlyStages(before)
    handlers = list(root.handlers)
    for handler in handlers:
        handler.addFilter(gate)
    root.setLevel(level)
    try:
        yield
    finally:
        if root.level == level:  # leave it alone if something else changed it meanwhile
            root.setLevel(before)
        for handler in handlers:
            handler.removeFilter(gate)


class _DropStageRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not hasattr(record, "stagekit_stage")


_worker_filter = _DropStageRecords()


def prepare_worker() -> None:
    """Call in a worker process (once is enough; again is free): stage records are forwarded to the driver,
    so none is printed here. The handlers the worker has (inherited under ``fork``, or its framework's) keep
    printing everything else; with none, a :class:`logging.NullHandler` keeps Python's last-resort handler
    from printing stage warnings on the worker's stderr."""
    root = logging.root
    if not root.handlers:
        root.addHandler(logging.NullHandler())
    for handler in root.handlers:
        if _worker_filter not in handler.filters:
            handler.addFilter(_worker_filter)


def emit(stage: str, entries: list[LogEntry]) -> list[LogEntry]:
    """Re-emit entries captured in a worker through the driver's loggers, each record tagged with ``stage``;
    return those the driver's logging configuration lets through (a logger set higher there drops its own),
    which are what the stage's record keeps, as it would have under an executor in the driver."""
    kept = []
    for e in entries:
        logger = logging.getLogger(e.logger)
        if not logger.isEnabledFor(e.level):
            continue
        kept.append(e)
        record = logger.makeRecord(e.logger, e.level, "(worker)", 0, e.message, (), None)
        record.stagekit_stage = stage
        record.created, record.exc_text = e.created, e.exc_text
        record.msecs = (e.created - int(e.created)) * 1000
        logger.handle(record)
    return kept


prepare_worker_logging = prepare_worker  # its public name (stagekit.prepare_worker_logging), for executor plugins
