"""What runs inside Ray workers: one stage, or one merge where branches join.

A stage task returns ``(status, *outputs)`` as separate objects: the driver fetches only the small
:class:`Status`, the outputs stay in the object store until a later task or the end of the run needs them.
Workers rebuild the plugin host (for contract validators) from its entry-point and module names, once per
worker process, as the process executor does.
"""

from __future__ import annotations

import traceback
from typing import Any

import attrs

from stagekit.errors import ContractError, ExecutorError
from stagekit.run.executors.base import Task, run_task
from stagekit.stage import Stage

_hosts: dict[Any, Any] = {}
_checkers: dict[Any, Any] = {}

CheckerConfig = tuple[Any, str, tuple[tuple[str, str], ...]]  # (host spec, mode, per-stage modes)


@attrs.frozen
class Status:
    """How a stage went in its worker: the duration measured there, the error, contract warnings."""

    duration: float
    error: BaseException | None = None
    warnings: tuple[str, ...] = ()


def run_stage(stage: Stage, func: Any, params: dict[str, Any], config: CheckerConfig | None,
              names: tuple[str, ...], *values: Any) -> Any:
    """Run ``stage`` on the artifacts ``values`` (Ray resolved each one: they arrive as values)."""
    from stagekit_ray.datasets import lazy_checks

    if func is not None:  # a function of the driver's __main__ travels by value
        stage = attrs.evolve(stage, func=func)
    kwargs = dict(zip(names, values, strict=True))
    kwargs.update(params)
    try:
        checker = _checker(config)
    except Exception as exc:
        return _pack(stage, Status(0.0, portable(exc)), {})
    with lazy_checks(checker, stage, kwargs) as replaced:
        outcome = run_task(Task(stage, kwargs, checker))
    if outcome.error is not None:
        return _pack(stage, Status(outcome.duration, portable(unwrap(outcome.error))), {})
    outputs = {**(outcome.outputs or {}), **replaced}  # datasets now checked batch by batch as they stream
    return _pack(stage, Status(outcome.duration, None, tuple(str(w) for w in outcome.warnings)), outputs)


def _pack(stage: Stage, status: Status, outputs: dict[str, Any]) -> Any:
    if not stage.provides:
        return status
    return (status, *(outputs.get(name) for name in stage.provides))


def merge_values(merge: Any, base: Any, *branches: Any) -> tuple[BaseException | None, Any]:
    """Merge where branches join; a conflict travels back as a value, so the driver can raise it."""
    try:
        return None, merge(base, list(branches))
    except Exception as exc:
        return portable(exc), None


def _checker(config: CheckerConfig | None) -> Any:
    """The contract checker of this worker, built once per run configuration."""
    if config is None:
        return None
    if config not in _checkers:
        spec, mode, stage_modes = config
        if spec is None:
            raise ExecutorError("contracts need a plugin host in the Ray worker, and the executor got none")
        if spec not in _hosts:
            try:
                _hosts[spec] = spec.build()
            except Exception as exc:
                raise ExecutorError(f"a Ray worker cannot rebuild the plugin host (for contract validators) "
                                    f"from {spec}: {type(exc).__name__}: {exc}") from exc
        from stagekit.contracts.checker import ContractChecker

        validate = _hosts[spec].hook.stagekit_validate_artifact
        _checkers[config] = ContractChecker(validate, mode, dict(stage_modes))
    return _checkers[config]


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
