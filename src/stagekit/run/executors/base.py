"""The executor protocol, and the one function every executor uses to run a stage.

The runner submits a :class:`Task` (a stage plus only the artifacts it requires) and waits for
:class:`Outcome` objects. Executors differ only in where ``run_task`` runs; nothing in the runner's loop
looks at which executor it has.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import perf_counter
from typing import Any, Protocol

from stagekit.records import LogEntry, Outcome, Task
from stagekit.run import logs
from stagekit.run.logs import current as _current

_root = logging.getLogger()


def run_task(task: Task) -> Outcome:
    """Run one stage where the executor put it: check inputs, call, shape outputs, check outputs.

    With ``task.log_level`` set, the records the stage logs in this thread while it runs are tagged with
    its name and kept on the outcome's ``logs`` (see :mod:`stagekit.run.logs`).
    """
    level = task.log_level
    if level is None:
        return _run(task)
    if _root.level > level or logs.installed() is None:  # once per worker process
        logs.ready(level)
    entries: list[LogEntry] = []
    token = _current.set((task.stage.name, level, entries))  # logs.begin, inlined: this runs per stage
    try:
        outcome = _run(task)
    finally:
        _current.reset(token)
    if entries:
        outcome.logs = entries
    return outcome


def _run(task: Task) -> Outcome:
    stage = task.stage
    checker = task.checker
    start = perf_counter()
    if checker is None:  # the common, contract-free path: nothing but the call
        try:
            outputs = stage.outputs_from(stage.callable(**task.kwargs))
        except Exception as exc:
            return Outcome(stage.name, None, exc, perf_counter() - start)
        return Outcome(stage.name, outputs, None, perf_counter() - start)
    warned: list[Any] = []
    try:
        if stage.inputs:
            warned += checker.check(stage, "input", {a: task.kwargs[a] for a in stage.inputs})
        outputs = stage.outputs_from(stage.callable(**task.kwargs))
        if stage.outputs:
            warned += checker.check(stage, "output", outputs)
    except Exception as exc:
        return Outcome(stage.name, None, exc, perf_counter() - start, warned)
    return Outcome(stage.name, outputs, None, perf_counter() - start, warned)


class Executor(Protocol):
    """What the runner needs from an executor."""

    name: str

    def submit(self, task: Task) -> None:
        """Start running ``task`` (or queue it)."""

    def wait(self) -> list[Outcome]:
        """Block until at least one submitted task finished; return every finished one."""

    def materialize(self, value: Any) -> Any:
        """Bring a value this executor produced into the driver (identity for in-process executors)."""

    def collect_outputs(self, outputs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Each finished stage's outputs (stage -> artifact -> value) as the run's result keeps them: called once,
        after the run, before ``shutdown`` (a distributed executor fetches them in one batch here)."""

    def run_merge(self, merge: Callable[[Any, list[Any]], Any], base: Any, branches: list[Any]) -> Any:
        """Merge branch values where they join; may run remotely and return a handle (a Ray ObjectRef).

        A :class:`~stagekit.errors.MergeConflictError` must reach the runner from here (not later), so that
        it can name the join, the artifact and the branches.
        """

    def shutdown(self, *, cancel: bool) -> None:
        """Release workers; with ``cancel``, drop what has not started and stop promptly."""


class DriverMemoryExecutor:
    """Defaults shared by executors whose values live in the driver's memory."""

    name = "local"

    def materialize(self, value: Any) -> Any:
        return value

    def collect_outputs(self, outputs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return outputs

    def run_merge(self, merge: Callable[[Any, list[Any]], Any], base: Any, branches: list[Any]) -> Any:
        return merge(base, branches)
