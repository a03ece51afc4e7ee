"""Data contracts at stage boundaries: the checker that applies a run's contract mode around the validators.

A contract is a schema on a stage's input or output artifact (``@stage(inputs={...}, outputs={...})``).
Validators plug in through the ``stagekit_validate_artifact`` and ``stagekit_check_compatible`` hooks (the
built-in pandera one is :mod:`stagekit.contracts.pandera_validator`); nothing here imports pandera.

:class:`ContractChecker` applies the run's contract mode (strict / warn / off, overridable per stage) around
the validate hook; :func:`static_problems` compares producer and consumer schemas before any data flows.
"""

from __future__ import annotations

import functools
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from stagekit.errors import ContractError, ContractModeError, ContractWarning, ExecutorError, StageDefinitionError
from stagekit.records import ContractSpec
from stagekit.stage import CONTRACT_MODES, resolve_reference

if TYPE_CHECKING:
    from stagekit.stage import Stage

__all__ = ["ContractChecker", "checker_for", "describe_schema", "resolve_schema", "static_problems"]

BOUNDARIES = ("input", "output")
_CACHE_SIZE = 256


# --- the contract checker (used by the runner around each stage) ------------------------------------


class _Entry:
    """One validation of one value against one schema; concurrent askers wait for the first."""

    __slots__ = ("done", "outcome", "ref", "schema", "where")

    def __init__(self, value: Any, schema: Any, where: tuple[str, str, str]) -> None:
        try:
            self.ref: Callable[[], Any] = weakref.ref(value)
        except TypeError:  # ints, dicts...: keep the value alive instead, so its id is not reused
            self.ref = lambda: value
        self.schema = schema  # keeps id(schema) from being reused
        self.where = where  # (stage, artifact, boundary) that ran the validation
        self.done = threading.Event()
        self.outcome: ContractError | bool | BaseException | None = None


class ContractChecker:
    """Check a stage's input or output artifacts against its contracts, under a contract mode.

    ``validate`` is called with keyword arguments ``stage, artifact, value, schema, boundary`` (pass
    ``plugin_manager.hook.stagekit_validate_artifact``). The effective mode of a stage is "off" if the run's
    mode is "off"; otherwise ``stage_modes[stage.name]`` if given, then ``stage.contract_mode``, then the run's
    mode.
    Thread-safe. It pickles without its cache, but only if ``validate`` pickles (a pluggy hook does not):
    executors that run stages in other processes send ``spec`` instead, and the worker builds its own
    checker with :func:`checker_for`. ``emit_warnings=False`` leaves warning to the caller (the runner
    issues every stage's warnings in the driver): ``check`` still returns the errors.
    """

    def __init__(
        self,
        validate: Callable[..., ContractError | bool | None],
        mode: str = "strict",
        stage_modes: Mapping[str, str] | None = None,
        *,
        emit_warnings: bool = True,
        host: Any = None,
    ) -> None:
        _check_mode(mode, "the run's contract mode")
        modes = dict(stage_modes or {})
        for name, stage_mode in modes.items():
            _check_mode(stage_mode, f"the contract mode of stage {name!r}")
        self.validate = validate
        self.mode = mode
        self.stage_modes = modes
        self.emit_warnings = emit_warnings
        self.spec = ContractSpec(host, mode, tuple(sorted(modes.items())))  # how a worker rebuilds it
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, int], _Entry] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {"validate": self.validate, "mode": self.mode, "stage_modes": self.stage_modes,
                "emit_warnings": self.emit_warnings, "host": self.spec.host}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["validate"], state["mode"], state["stage_modes"],  # type: ignore[misc]
                      emit_warnings=state["emit_warnings"], host=state["host"])

    def mode_for(self, stage: Stage) -> str:
        """The contract mode that applies to ``stage`` in this run."""
        if self.mode == "off":
            return "off"
        return self.stage_modes.get(stage.name) or stage.contract_mode or self.mode

    def check(self, stage: Stage, boundary: str, values: Mapping[str, Any]) -> list[ContractError]:
        """Check ``stage.inputs`` ("input", before it runs) or ``stage.outputs`` ("output", after it runs).

        Strict: raise the ContractError (one error listing all if several artifacts fail). Warn: warn a
        :class:`ContractWarning` for each and return them. Off: return ``[]`` at once. Artifacts absent from
        ``values`` are skipped (the runner reports missing artifacts itself).
        """
        if self.mode == "off":
            return []
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be 'input' or 'output', not {boundary!r}")
        schemas = stage.inputs if boundary == "input" else stage.outputs
        if not schemas:
            return []
        mode = self.mode_for(stage)
        if mode == "off":
            return []
        errors = [
            err
            for artifact, schema in schemas.items()
            if artifact in values
            and (err := self._outcome(stage, artifact, values[artifact], schema, boundary)) is not None
        ]
        if not errors:
            return []
        if mode == "strict":
            raise errors[0] if len(errors) == 1 else _combined(stage, boundary, errors)
        if self.emit_warnings:
            for err in errors:
                warnings.warn(ContractWarning(str(err)), stacklevel=2)
        return errors

    def check_static(
        self, edges: Iterable[tuple[Stage, Stage, str]], check_compatible: Callable[..., list[str] | None]
    ) -> list[str]:
        """:func:`static_problems` under the consumers' modes: the problems that must refuse the run.

        Edges into a consumer whose mode is "off" are skipped; those into a "warn" consumer are warned
        (:class:`ContractWarning`) when this checker emits warnings, and otherwise not returned here (see
        :meth:`static_findings`)."""
        refused, warned = self.static_findings(edges, check_compatible)
        for problem in warned if self.emit_warnings else ():
            warnings.warn(ContractWarning(problem), stacklevel=2)
        return refused

    def static_findings(
        self, edges: Iterable[tuple[Stage, Stage, str]], check_compatible: Callable[..., list[str] | None]
    ) -> tuple[list[str], list[str]]:
        """(problems into strict consumers, problems into warn consumers), before any data flows."""
        refused: list[str] = []
        warned: list[str] = []
        if self.mode == "off":
            return refused, warned
        for edge in edges:
            mode = self.mode_for(edge[1])
            if mode != "off":
                (warned if mode == "warn" else refused).extend(static_problems([edge], check_compatible))
        return refused, warned

    def _outcome(
        self, stage: Stage, artifact: str, value: Any, schema: Any, boundary: str
    ) -> ContractError | None:
        where = (stage.name, artifact, boundary)
        schema = resolve_schema(schema, stage, boundary, artifact)
        entry, owner = self._claim(value, schema, where)
        if owner:
            try:
                entry.outcome = self.validate(
                    stage=stage, artifact=artifact, value=value, schema=schema, boundary=boundary
                )
            except BaseException as exc:
                entry.outcome = exc
                with self._lock:  # a crashed validation is not remembered: the next asker tries again
                    self._cache.pop((id(value), id(schema)), None)
                raise
            finally:
                entry.done.set()
        else:
            entry.done.wait()
        outcome = entry.outcome
        if isinstance(outcome, BaseException) and not isinstance(outcome, ContractError):
            raise outcome
        if outcome is None:
            return ContractError(
                f"stage {stage.name!r} {boundary} {artifact!r}: no contract validator knows its schema "
                f"({describe_schema(schema)}); pandera schemas are built in, other kinds need a plugin that "
                "implements stagekit_validate_artifact",
                stage=stage.name, artifact=artifact, boundary=boundary,
            )
        if outcome is True:
            return None
        if not isinstance(outcome, ContractError):
            return ContractError(
                f"stage {stage.name!r} {boundary} {artifact!r} breaks its contract "
                f"(the validator returned {outcome!r})",
                stage=stage.name, artifact=artifact, boundary=boundary,
            )
        return outcome if entry.where == where else _retarget(outcome, stage.name, artifact, boundary)

    def _claim(self, value: Any, schema: Any, where: tuple[str, str, str]) -> tuple[_Entry, bool]:
        key = (id(value), id(schema))
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry.ref() is value and entry.schema is schema:
                self._cache.move_to_end(key)
                return entry, False
            entry = _Entry(value, schema, where)
            self._cache[key] = entry
            if len(self._cache) > _CACHE_SIZE:
                self._evict()
            return entry, True

    def _evict(self) -> None:
        dead = [k for k, e in self._cache.items() if e.ref() is None]
        for k in dead:
            del self._cache[k]
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)


@functools.cache
def checker_for(spec: ContractSpec) -> ContractChecker:
    """The checker a worker process uses for a run's contract settings: built once per process and spec,
    from a plugin host rebuilt from ``spec.host``. Warnings are left to the driver, as under every executor."""
    if spec.host is None:
        raise ExecutorError("contracts need a plugin host in the worker, and the executor was given none")
    try:
        host = spec.host.build()
    except Exception as exc:
        raise ExecutorError(f"a worker cannot rebuild the plugin host (for contract validators) from "
                            f"{spec.host}: {type(exc).__name__}: {exc}") from exc
    return ContractChecker(host.hook.stagekit_validate_artifact, spec.mode, dict(spec.stage_modes),
                           emit_warnings=False, host=spec.host)


def _check_mode(mode: Any, what: str) -> None:
    if mode not in CONTRACT_MODES:
        raise ContractModeError(f"{what} must be one of {', '.join(CONTRACT_MODES)}, not {mode!r}")


def _combined(stage: Stage, boundary: str, errors: list[ContractError]) -> ContractError:
    names = ", ".join(repr(e.artifact) for e in errors)
    body = "\n\n".join(str(e) for e in errors)
    return ContractError(
        f"stage {stage.name!r}: {len(errors)} {boundary} artifacts break their contracts ({names}):"
        f"\n\n{body}",
        stage=stage.name, boundary=boundary, failures=errors,
    )


def _retarget(err: ContractError, stage: str, artifact: str, boundary: str) -> ContractError:
    """The error found at another boundary for the same value and schema, named for this one."""
    origin = f"stage {err.stage!r} {err.boundary} {err.artifact!r}"
    return ContractError(
        f"stage {stage!r} {boundary} {artifact!r} breaks its contract: the same value failed the same "
        f"schema at {origin}:\n{err}",
        stage=stage, artifact=artifact, boundary=boundary, failures=err.failures,
    )


# --- static compatibility ---------------------------------------------------------------------------


def static_problems(
    edges: Iterable[tuple[Stage, Stage, str]], check_compatible: Callable[..., list[str] | None]
) -> list[str]:
    """Compare producer output schemas with consumer input schemas along ``(producer, consumer, artifact)``.

    ``check_compatible`` is called with keyword arguments ``producer, consumer, artifact, produced,
    required`` (pass ``plugin_manager.hook.stagekit_check_compatible``); edges where either side declares
    no schema, or both declare the same schema object, are skipped, and so are schemas no validator knows.
    Lazy ``"module:attr"`` schemas are imported here; one that cannot be is a problem.
    """
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for producer, consumer, artifact in edges:
        key = (producer.name, consumer.name, artifact)
        produced, required = producer.outputs.get(artifact), consumer.inputs.get(artifact)
        if key in seen or produced is None or required is None or produced is required:
            continue
        seen.add(key)
        try:
            produced = resolve_schema(produced, producer, "output", artifact)
            required = resolve_schema(required, consumer, "input", artifact)
        except StageDefinitionError as exc:
            problems.append(str(exc))
            continue
        if produced is required:
            continue
        found = check_compatible(
            producer=producer, consumer=consumer, artifact=artifact, produced=produced, required=required
        )
        problems.extend(found or [])
    return problems


def resolve_schema(schema: Any, stage: Stage | None = None, boundary: str = "", artifact: str = "") -> Any:
    """The schema itself, or the object a lazy ``"module:attr"`` schema names (imported on first use).

    Naming schemas lazily keeps registering a stage free of pandera's import cost (and lets a stage with
    schemas pickle by reference). A reference that cannot be imported raises ``StageDefinitionError``.
    """
    if not isinstance(schema, str):
        return schema
    try:
        return resolve_reference(schema)
    except Exception as exc:
        where = f"stage {stage.name!r} {boundary} {artifact!r}: " if stage is not None else ""
        raise StageDefinitionError(f"{where}cannot import its schema {schema!r}: {exc}") from exc


def describe_schema(schema: Any) -> str:
    if isinstance(schema, type):
        return f"model {schema.__qualname__}"
    name = getattr(schema, "name", None)
    return f"{type(schema).__name__} {name!r}" if name else type(schema).__name__
