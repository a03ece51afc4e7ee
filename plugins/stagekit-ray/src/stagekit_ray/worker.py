"""What runs inside Ray workers: one stage, or one merge where branches join.

A stage task returns ``(status, *outputs)`` as separate objects: the driver fetches only the small
:class:`Status`, the outputs stay in the object store until a later task or the end of the run needs them.
A worker builds its contract checker from the run's :class:`~stagekit.ContractSpec` with
:func:`stagekit.checker_for`, as the process executor does: once per worker process and spec, from the plugin
host rebuilt from entry-point and module names, with warnings left to the driver (they travel back in the
status and the runner issues them once).
"""

from __future__ import annotations

import traceback
from typing import Any

import attrs

import stagekit
from stagekit import ContractError, ContractSpec, LogEntry, Stage, Task, checker_for, run_task


@attrs.frozen
class Status:
    """How a stage went in its worker: the duration measured there, the error, contract warnings, and the
    log records the stage emitted (the driver re-emits them, tagged with the stage)."""

    duration: float
    error: BaseException | None = None
    warnings: tuple[str, ...] = ()
    logs: tuple[LogEntry, ...] = ()
    stored: dict[str, Any] | None = None  # what the worker wrote to the run store (Outcome.stored)


def run_stage(stage: Stage, func: Any, params: dict[str, Any], contracts: ContractSpec | None,
              log_level: int | None, names: tuple[str, ...], *values: Any, strict: bool = False,
              store: Any = None) -> Any:
    """Run ``stage`` on the artifacts ``values`` (Ray resolved each one: they arrive as values).

    ``contracts`` is the run's contract settings (the driver's ``task.checker.spec``), None without contracts;
    ``log_level`` the level at which the stage's log records are kept (the driver's ``task.log_level``);
    ``strict`` the run's ``isolation="strict"`` (``task.strict``), ``store`` the run store the worker writes
    the outputs to (``task.store``: an ``ArtifactStore`` on a disk this worker shares, or None).
    """
    from stagekit_ray.datasets import lazy_checks

    stagekit.prepare_worker_logging()  # this worker prints no stage record: they travel back in the status
    if func is not None:  # a function of the driver's __main__ travels by value
        stage = attrs.evolve(stage, func=func)
    kwargs = dict(zip(names, values, strict=True))
    kwargs.update(params)
    try:
        checker = None if contracts is None else checker_for(contracts)
    except Exception as exc:
        return _pack(stage, Status(0.0, portable(exc)), {})
    with lazy_checks(checker, stage, kwargs) as replaced:
        outcome = run_task(Task(stage, kwargs, checker, log_level, strict=strict, store=store))
    logs = tuple(outcome.logs)
    if outcome.error is not None:
        return _pack(stage, Status(outcome.duration, portable(unwrap(outcome.error)), logs=logs), {})
    outputs = {**(outcome.outputs or {}), **replaced}  # datasets now checked batch by batch as they stream
    return _pack(stage, Status(outcome.duration, None, tuple(str(w) for w in outcome.warnings), logs,
                               outcome.stored), outputs)


def _pack(stage: Stage, status: Status, outputs: dict[str, Any]) -> Any:
    if not stage.provides:
        return status
    return (status, *(outputs.get(name) for name in stage.provides))


def merge_values(merge: Any, base: Any, *branches: Any) -> tuple[BaseException | None, Any]:
    """Merge where branches join; a conflict (or any failure) travels back as a value, for the driver to raise."""
    try:
        return None, merge(base, list(branches))
    except KeyboardInterrupt:  # how Ray cancels a task that is not force-killed
        raise
    except BaseException as exc:
        return portable(exc), None


def unwrap(exc: BaseException) -> BaseException:
    """The contract error inside a failure Ray wrapped (a dataset batch failed its check as it streamed)."""
    from ray.exceptions import RayError

    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ContractError) and not isinstance(item, RayError):
            return item
        todo += [item.__context__, item.__cause__, getattr(item, "cause", None)]
    return exc


def portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives serialization, else a RuntimeError with its text and traceback."""
    import ray

    dumps: Any = ray.cloudpickle.dumps
    text = "".join(traceback.format_exception(exc))
    try:
        exc.add_note("Ray worker traceback:\n" + text)
        ray.cloudpickle.loads(dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}\nRay worker traceback:\n{text}")
