"""The executor protocol, and the one function every executor uses to run a stage.

The runner submits a :class:`Task` (a stage plus only the artifacts it requires) and waits for
:class:`Outcome` objects. Executors differ only in where ``run_task`` runs; nothing in the runner's loop
looks at which executor it has.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

from stagekit.errors import ContractError, StagekitError, StageTimeoutError
from stagekit.records import Checker, LogEntry, Outcome, StoredValue, Task
from stagekit.run import isolation, logs
from stagekit.run.isolation import _KIND, guard
from stagekit.run.logs import current as _current

if TYPE_CHECKING:
    from stagekit.stage import Stage

_root = logging.getLogger()


def run_task(task: Task) -> Outcome:
    """Run one stage where the executor put it: check inputs, call, shape outputs, check outputs.

    Whatever the stage raises (``SystemExit`` and any other ``BaseException`` included, only
    ``KeyboardInterrupt`` excepted) is its outcome's ``error``. Its inputs are isolated (see
    :mod:`stagekit.run.isolation`): frames arrive as copy-on-write copies and arrays read-only.

    With ``task.log_level`` set, the records the stage logs in this thread while it runs are tagged with
    its name and kept on the outcome's ``logs`` (see :mod:`stagekit.run.logs`).
    """
    level = task.log_level
    if level is None:
        return _run(task) if task.store is None else _stored(task, _run(task))
    if _root.level > level or logs.installed() is None:  # once per worker process
        logs.ready(level)
    entries: list[LogEntry] = []
    token = _current.set((task.stage.name, level, entries))  # logs.begin, inlined: this runs per stage
    try:
        outcome = _run(task) if task.store is None else _stored(task, _run(task))
    finally:
        _current.reset(token)
    if entries:
        outcome.logs = entries
    return outcome


def _stored(task: Task, outcome: Outcome) -> Outcome:
    """With ``task.store`` (a run store the worker can reach): the outputs written there, here, so that big
    values are written where they were made (``Outcome.stored``)."""
    if outcome.outputs is not None and outcome.error is None:
        outcome.stored = task.store.put_all(outcome.outputs)
    return outcome


def _run(task: Task) -> Outcome:
    # Every way a stage can fail is its failure, BaseException included (a stage's sys.exit() fails that stage
    # instead of hanging a thread or ending the driver); only Ctrl-C (KeyboardInterrupt) stays an interrupt.
    stage = task.stage
    checker = task.checker
    kwargs = task.kwargs
    if task.store is not None:  # an input another worker left in the run store: read it here
        kwargs = {k: v.load() if v.__class__ is StoredValue else v for k, v in kwargs.items()}
    for name in stage.requires:  # frames as copy-on-write copies, arrays read-only: an edit stays here
        if _KIND.get(kwargs[name].__class__) != 0:  # (plain immutable values, the usual case, need nothing)
            kwargs = guard(kwargs, stage.requires)
            break
    start = perf_counter()
    if checker is None and not task.strict:  # the common, contract-free path: nothing but the call
        try:
            outputs = stage.outputs_from(stage.callable(**kwargs))
        except Exception as exc:
            return Outcome(stage.name, None, exc, perf_counter() - start)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            return Outcome(stage.name, None, exc, perf_counter() - start)
        return Outcome(stage.name, outputs, None, perf_counter() - start)
    warned: list[Any] = []
    try:
        before = None
        if task.strict and stage.requires:  # copies from each input's pickle, and the pickle's fingerprint
            kwargs, before = isolation.strict_copies(kwargs, stage.requires)
        if checker is not None and stage.inputs:
            warned += _checked(checker, stage, "input", {a: kwargs[a] for a in stage.inputs})
        outputs = stage.outputs_from(stage.callable(**kwargs))
        if before:
            mutated = isolation.changed(stage.name, kwargs, before)
            if mutated is not None:
                return Outcome(stage.name, None, mutated, perf_counter() - start, warned)
        if checker is not None and stage.outputs:
            warned += _checked(checker, stage, "output", outputs)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Outcome(stage.name, None, exc, perf_counter() - start, warned)
    return Outcome(stage.name, outputs, None, perf_counter() - start, warned)


def _checked(checker: Checker, stage: Stage, boundary: str, values: dict[str, Any]) -> list[Any]:
    """The checker's findings; a validator that crashes (anything but a ``StagekitError``, ``SystemExit``
    included) is a ``ContractError`` naming the validator's plugin, the stage, the boundary and the artifact."""
    try:
        return checker.check(stage, boundary, values)
    except (StagekitError, KeyboardInterrupt):
        raise
    except BaseException as exc:
        plugin = _raiser(getattr(checker, "validate", None), exc)
        who = f" of plugin {plugin!r}" if plugin else ""
        artifact = next(iter(values)) if len(values) == 1 else None
        what = f"{boundary} {artifact!r}" if artifact else f"{boundary}s {', '.join(map(repr, values))}"
        raise ContractError(f"the contract validator{who} crashed checking stage {stage.name!r} {what}: "
                            f"{type(exc).__name__}: {exc}", stage=stage.name, artifact=artifact,
                            boundary=boundary) from exc


def _raiser(caller: Any, exc: BaseException) -> str | None:
    """The plugin whose hook implementation is innermost in ``exc``'s traceback (None if none is)."""
    impls = getattr(caller, "get_hookimpls", None)
    if impls is None:
        return None
    codes = {getattr(i.function, "__code__", None): i.plugin_name for i in impls()}
    found, tb = None, exc.__traceback__
    while tb is not None:
        found = codes.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return found


def timed_out(task: Task, started: float | None = None) -> Outcome:
    """The outcome of a task stopped at its timeout (``task.timeout``), for an executor to report."""
    name, limit = task.stage.name, task.timeout or 0.0
    error = StageTimeoutError(f"stage {name!r} timed out after {limit:g} s (its timeout)", stage=name, timeout=limit)
    return Outcome(name, None, error, limit if started is None else perf_counter() - started)


def stopped(task: Task, how: str) -> Outcome:
    """The outcome of a task that :meth:`Executor.cancel` stopped: "cancelled", "killed" or "abandoned"."""
    return Outcome(task.stage.name, None, stopped=how)


class Executor(Protocol):
    """What the runner needs from an executor (see docs/executors.md for the whole contract)."""

    name: str

    def submit(self, task: Task) -> None:
        """Start running ``task`` (or queue it)."""

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        """Block until at least one submitted task finished, and return every finished one; with ``timeout``
        (seconds), return within about that time even if none did (then possibly an empty list).

        A task whose ``task.timeout`` runs out is stopped (its worker killed, or its thread abandoned) and
        returned with a :class:`~stagekit.errors.StageTimeoutError` (:func:`timed_out`); the time counts from
        when the task started running, not from when it was submitted.
        """

    def cancel(self, names: Collection[str] | None = None) -> list[Outcome]:
        """Stop the named tasks (every task not yet returned by :meth:`wait` if None) and return an outcome
        for each of them, at once: its own if it had finished, else one with ``stopped`` set ("cancelled":
        it never started; "killed": its worker was killed; "abandoned": it runs in a thread, which cannot be
        killed, and whatever it returns is ignored). Other tasks go on; after ``cancel`` the executor must
        still ``materialize``, ``run_merge`` and ``collect_outputs`` (the runner builds the run's result
        then), and ``shutdown`` follows."""

    def materialize(self, value: Any) -> Any:
        """Bring a value this executor produced into the driver (identity for in-process executors)."""

    def collect_outputs(self, outputs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Each finished stage's outputs (stage -> artifact -> value) as the run's result keeps them: called once,
        after the run, before ``shutdown`` (a distributed executor fetches them in one batch here)."""

    def run_merge(self, merge: Callable[[Any, list[Any]], Any], base: Any, branches: list[Any]) -> Any:
        """Merge branch values where they join; may run remotely and return a handle (a Ray ObjectRef).

        A :class:`~stagekit.errors.MergeConflictError` or :class:`~stagekit.errors.MergeError` must reach the
        runner from here (not later), so that it can name the join, the artifact and the branches.
        """

    def shutdown(self, *, cancel: bool) -> None:
        """Release workers; with ``cancel``, drop what has not started and stop promptly."""


class DriverMemoryExecutor:
    """Defaults shared by executors whose values live in the driver's memory."""

    name = "local"
    stores_outputs = True  # its workers run run_task where the workspace is: they write their outputs themselves

    def materialize(self, value: Any) -> Any:
        return value

    def collect_outputs(self, outputs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return outputs

    def run_merge(self, merge: Callable[[Any, list[Any]], Any], base: Any, branches: list[Any]) -> Any:
        return merge(base, branches)
