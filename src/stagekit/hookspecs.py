"""The hook specifications: everything a plugin can implement.

Every hook is prefixed ``stagekit_`` and named by a verb. Registration hooks receive a ``register`` callback
(the host owns names, duplicate detection and provenance); lifecycle hooks fire in the driver process for
every stage, under every executor, with the same arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable

    from stagekit.errors import ContractError
    from stagekit.records import RunInfo, RunResult, StageRecord
    from stagekit.stage import Stage

PROJECT = "stagekit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- registration ------------------------------------------------------------------------------------


@hookspec
def stagekit_register_stages(register: Callable[[Stage], None]) -> None:
    """Call ``register(stage)`` for each stage this plugin provides."""


@hookspec
def stagekit_register_merges(register: Callable[[type | str, Callable[[Any, list[Any]], Any]], None]) -> None:
    """Call ``register(value_type, merge)`` for each value type this plugin knows how to merge.

    ``value_type`` is a class, or ``"module.QualName"`` to register without importing the type. Dispatch
    follows the value's MRO, most specific first; one registration per type. ``merge(base, branches)`` gets
    the value before the branches forked (None if absent) and the values of the branches that changed it, in
    a canonical order, and returns the merged value or raises ``MergeConflictError``. A type can instead
    carry a ``__stagekit_merge__(cls, base, branches)`` classmethod (see docs/merging.md).
    """


@hookspec
def stagekit_register_executors(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Call ``register(name, factory)`` for each executor.

    ``factory(workers=..., host=..., **options)`` builds one: ``host`` is a picklable
    :class:`stagekit.plugins.host.HostSpec` from which a worker can rebuild the plugin host, ``options`` come from
    the pipeline file's ``[executor_options]``. See :class:`stagekit.run.executors.base.Executor` for the protocol.
    """


@hookspec
def stagekit_register_codecs(register: Callable[[type | str, Any], None]) -> None:
    """Call ``register(value_type, codec)`` for each value type this plugin knows how to store.

    A codec writes a value to a file, reads it back, and fingerprints it (a content hash computed without
    pickling); ``value_type`` is a class or ``"module.QualName"``, resolved by MRO as merges are, one
    registration per type. See :mod:`stagekit.store.codecs` for the protocol.
    """


@hookspec
def stagekit_register_formats(register: Callable[[str, Any], None]) -> None:
    """Call ``register(name, file_format)`` for each catalog format (csv, parquet...) this plugin reads and
    writes; see :mod:`stagekit.store.catalog` for the protocol. One registration per name."""


# --- contracts ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def stagekit_validate_artifact(
    stage: Stage, artifact: str, value: Any, schema: Any, boundary: str
) -> ContractError | bool | None:
    """Check ``value`` against ``schema`` at a stage's ``boundary`` ("input" or "output").

    Return None if this validator does not know this kind of schema (the next one is asked), True if the
    value satisfies it, or a ``ContractError`` describing every failure. Do not raise it: the run's contract
    mode decides whether it fails the run or is reported.
    """


@hookspec(firstresult=True)
def stagekit_check_compatible(
    producer: Stage, consumer: Stage, artifact: str, produced: Any, required: Any
) -> list[str] | None:
    """Statically compare a producer's output schema with a consumer's input schema for ``artifact``.

    Return None if this validator does not know these schemas, else the list of problems (empty if none).
    """


# --- lifecycle ---------------------------------------------------------------------------------------


@hookspec
def stagekit_before_run(run: RunInfo) -> None:
    """A run is about to start."""


@hookspec
def stagekit_after_run(run: RunInfo, result: RunResult) -> None:
    """A run ended, successfully or not (``result.ok`` tells)."""


@hookspec
def stagekit_before_stage(run: RunInfo, stage: Stage) -> None:
    """A stage is about to be handed to the executor."""


@hookspec
def stagekit_after_stage(run: RunInfo, stage: Stage, record: StageRecord) -> None:
    """A stage finished successfully; ``record`` has its duration and what it provided."""


@hookspec
def stagekit_on_stage_error(run: RunInfo, stage: Stage, error: BaseException) -> None:
    """A stage failed; ``error`` is the exception it raised."""
