"""stagekit: a plugin framework for pluggable, parallel, validated data pipelines.

The public API is ``__all__``: what pipeline users, plugin authors, executor and validator authors and
embedding apps need. Everything else is private. Names are imported on first use, so that ``import stagekit``
(and ``stagekit --version``) costs almost nothing and never imports pandas, pandera or ray.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from stagekit._version import __version__ as __version__

# ``stage`` is imported eagerly: as a lazy name it would be shadowed by the submodule ``stagekit.stage``
# as soon as anything imported that module (Python sets submodules as package attributes).
from stagekit.stage import Stage as Stage
from stagekit.stage import stage as stage

if TYPE_CHECKING:
    from stagekit.atomic import atomic_write as atomic_write
    from stagekit.atomic import atomic_write_bytes as atomic_write_bytes
    from stagekit.atomic import atomic_write_json as atomic_write_json
    from stagekit.atomic import atomic_write_parquet as atomic_write_parquet
    from stagekit.atomic import atomic_write_text as atomic_write_text
    from stagekit.atomic import fsync_dir as fsync_dir
    from stagekit.atomic import sync_filesystem as sync_filesystem
    from stagekit.contracts.checker import ContractChecker as ContractChecker
    from stagekit.contracts.checker import checker_for as checker_for
    from stagekit.contracts.checker import resolve_schema as resolve_schema
    from stagekit.contracts.pandera_validator import is_pandera_schema as is_pandera_schema
    from stagekit.contracts.pandera_validator import validate_with_pandera as validate_with_pandera
    from stagekit.errors import CatalogError as CatalogError
    from stagekit.errors import CodecError as CodecError
    from stagekit.errors import ContractError as ContractError
    from stagekit.errors import ContractModeError as ContractModeError
    from stagekit.errors import ContractWarning as ContractWarning
    from stagekit.errors import CorruptObjectError as CorruptObjectError
    from stagekit.errors import CycleError as CycleError
    from stagekit.errors import ExecutorError as ExecutorError
    from stagekit.errors import HookError as HookError
    from stagekit.errors import InputMutatedError as InputMutatedError
    from stagekit.errors import MergeConflictError as MergeConflictError
    from stagekit.errors import MergeError as MergeError
    from stagekit.errors import MergeStrategyError as MergeStrategyError
    from stagekit.errors import MissingInputError as MissingInputError
    from stagekit.errors import PipelineError as PipelineError
    from stagekit.errors import PipelineFileError as PipelineFileError
    from stagekit.errors import PipelineWarning as PipelineWarning
    from stagekit.errors import PluginConfigError as PluginConfigError
    from stagekit.errors import PluginError as PluginError
    from stagekit.errors import RegistrationError as RegistrationError
    from stagekit.errors import ReportError as ReportError
    from stagekit.errors import RunInterrupted as RunInterrupted
    from stagekit.errors import RunStoreError as RunStoreError
    from stagekit.errors import ScaffoldError as ScaffoldError
    from stagekit.errors import SnapshotCorruptError as SnapshotCorruptError
    from stagekit.errors import SnapshotError as SnapshotError
    from stagekit.errors import SnapshotExistsError as SnapshotExistsError
    from stagekit.errors import SnapshotNotFoundError as SnapshotNotFoundError
    from stagekit.errors import StageDefinitionError as StageDefinitionError
    from stagekit.errors import StageError as StageError
    from stagekit.errors import StagekitError as StagekitError
    from stagekit.errors import StageTimeoutError as StageTimeoutError
    from stagekit.errors import UnstorableError as UnstorableError
    from stagekit.errors import WorkspaceError as WorkspaceError
    from stagekit.errors import WorkspaceLockedError as WorkspaceLockedError
    from stagekit.frozenmap import FrozenMap as FrozenMap
    from stagekit.graph.checks import RunSettings as RunSettings
    from stagekit.graph.checks import Validation as Validation
    from stagekit.hookspecs import hookimpl as hookimpl
    from stagekit.hookspecs import hookspec as hookspec
    from stagekit.loading import LoadedPipeline as LoadedPipeline
    from stagekit.loading import load_pipeline as load_pipeline
    from stagekit.merge.builtin import builtin_merge_table as builtin_merge_table
    from stagekit.merge.builtin import merge_values as merge_values
    from stagekit.merge.equality import values_equal as values_equal
    from stagekit.merge.table import MergeTable as MergeTable
    from stagekit.pipeline import Pipeline as Pipeline
    from stagekit.plugins.host import Host as Host
    from stagekit.plugins.host import HostSpec as HostSpec
    from stagekit.plugins.host import PluginRecord as PluginRecord
    from stagekit.plugins.registry import Provenance as Provenance
    from stagekit.plugins.registry import Registry as Registry
    from stagekit.records import Checker as Checker
    from stagekit.records import ContractSpec as ContractSpec
    from stagekit.records import LogEntry as LogEntry
    from stagekit.records import Outcome as Outcome
    from stagekit.records import RunInfo as RunInfo
    from stagekit.records import RunResult as RunResult
    from stagekit.records import StageRecord as StageRecord
    from stagekit.records import Task as Task
    from stagekit.run.executors.base import DriverMemoryExecutor as DriverMemoryExecutor
    from stagekit.run.executors.base import Executor as Executor
    from stagekit.run.executors.base import run_task as run_task
    from stagekit.run.executors.process import ProcessExecutor as ProcessExecutor
    from stagekit.run.executors.sequential import SequentialExecutor as SequentialExecutor
    from stagekit.run.executors.thread import ThreadExecutor as ThreadExecutor
    from stagekit.run.logs import prepare_worker_logging as prepare_worker_logging
    from stagekit.snapshots.manifest import Snapshot as Snapshot
    from stagekit.workspace import Workspace as Workspace

__all__ = [
    "CatalogError",
    "Checker",
    "CodecError",
    "ContractChecker",
    "ContractError",
    "ContractModeError",
    "ContractSpec",
    "ContractWarning",
    "CorruptObjectError",
    "CycleError",
    "DriverMemoryExecutor",
    "Executor",
    "ExecutorError",
    "FrozenMap",
    "HookError",
    "Host",
    "HostSpec",
    "InputMutatedError",
    "LoadedPipeline",
    "LogEntry",
    "MergeConflictError",
    "MergeError",
    "MergeStrategyError",
    "MergeTable",
    "MissingInputError",
    "Outcome",
    "Pipeline",
    "PipelineError",
    "PipelineFileError",
    "PipelineWarning",
    "PluginConfigError",
    "PluginError",
    "PluginRecord",
    "ProcessExecutor",
    "Provenance",
    "RegistrationError",
    "Registry",
    "ReportError",
    "RunInfo",
    "RunInterrupted",
    "RunResult",
    "RunSettings",
    "RunStoreError",
    "ScaffoldError",
    "SequentialExecutor",
    "Snapshot",
    "SnapshotCorruptError",
    "SnapshotError",
    "SnapshotExistsError",
    "SnapshotNotFoundError",
    "Stage",
    "StageDefinitionError",
    "StageError",
    "StageRecord",
    "StageTimeoutError",
    "StagekitError",
    "Task",
    "ThreadExecutor",
    "UnstorableError",
    "Validation",
    "Workspace",
    "WorkspaceError",
    "WorkspaceLockedError",
    "__version__",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_parquet",
    "atomic_write_text",
    "builtin_merge_table",
    "checker_for",
    "fsync_dir",
    "hookimpl",
    "hookspec",
    "is_pandera_schema",
    "load_pipeline",
    "merge_values",
    "prepare_worker_logging",
    "resolve_schema",
    "run_task",
    "stage",
    "sync_filesystem",
    "validate_with_pandera",
    "values_equal",
]

_LAZY = {
    "atomic_write": "stagekit.atomic",
    "atomic_write_bytes": "stagekit.atomic",
    "atomic_write_json": "stagekit.atomic",
    "atomic_write_parquet": "stagekit.atomic",
    "atomic_write_text": "stagekit.atomic",
    "fsync_dir": "stagekit.atomic",
    "sync_filesystem": "stagekit.atomic",
    "CatalogError": "stagekit.errors",
    "CodecError": "stagekit.errors",
    "CorruptObjectError": "stagekit.errors",
    "MissingInputError": "stagekit.errors",
    "ContractError": "stagekit.errors",
    "UnstorableError": "stagekit.errors",
    "ContractModeError": "stagekit.errors",
    "ContractWarning": "stagekit.errors",
    "CycleError": "stagekit.errors",
    "ExecutorError": "stagekit.errors",
    "HookError": "stagekit.errors",
    "InputMutatedError": "stagekit.errors",
    "MergeConflictError": "stagekit.errors",
    "MergeError": "stagekit.errors",
    "MergeStrategyError": "stagekit.errors",
    "PipelineError": "stagekit.errors",
    "PipelineFileError": "stagekit.errors",
    "PipelineWarning": "stagekit.errors",
    "PluginConfigError": "stagekit.errors",
    "PluginError": "stagekit.errors",
    "RegistrationError": "stagekit.errors",
    "ReportError": "stagekit.errors",
    "RunInterrupted": "stagekit.errors",
    "RunStoreError": "stagekit.errors",
    "ScaffoldError": "stagekit.errors",
    "SnapshotCorruptError": "stagekit.errors",
    "SnapshotError": "stagekit.errors",
    "SnapshotExistsError": "stagekit.errors",
    "SnapshotNotFoundError": "stagekit.errors",
    "StageDefinitionError": "stagekit.errors",
    "StageError": "stagekit.errors",
    "StageTimeoutError": "stagekit.errors",
    "StagekitError": "stagekit.errors",
    "WorkspaceError": "stagekit.errors",
    "WorkspaceLockedError": "stagekit.errors",
    "FrozenMap": "stagekit.frozenmap",
    "hookimpl": "stagekit.hookspecs",
    "hookspec": "stagekit.hookspecs",
    "Checker": "stagekit.records",
    "LogEntry": "stagekit.records",
    "prepare_worker_logging": "stagekit.run.logs",
    "ContractSpec": "stagekit.records",
    "Outcome": "stagekit.records",
    "RunInfo": "stagekit.records",
    "RunResult": "stagekit.records",
    "StageRecord": "stagekit.records",
    "Task": "stagekit.records",
    "Pipeline": "stagekit.pipeline",
    "LoadedPipeline": "stagekit.loading",
    "load_pipeline": "stagekit.loading",
    "RunSettings": "stagekit.graph.checks",
    "Validation": "stagekit.graph.checks",
    "Host": "stagekit.plugins.host",
    "HostSpec": "stagekit.plugins.host",
    "PluginRecord": "stagekit.plugins.host",
    "Provenance": "stagekit.plugins.registry",
    "Registry": "stagekit.plugins.registry",
    "DriverMemoryExecutor": "stagekit.run.executors.base",
    "Executor": "stagekit.run.executors.base",
    "run_task": "stagekit.run.executors.base",
    "ProcessExecutor": "stagekit.run.executors.process",
    "SequentialExecutor": "stagekit.run.executors.sequential",
    "ThreadExecutor": "stagekit.run.executors.thread",
    "MergeTable": "stagekit.merge.table",
    "builtin_merge_table": "stagekit.merge.builtin",
    "merge_values": "stagekit.merge.builtin",
    "values_equal": "stagekit.merge.equality",
    "ContractChecker": "stagekit.contracts.checker",
    "checker_for": "stagekit.contracts.checker",
    "resolve_schema": "stagekit.contracts.checker",
    "is_pandera_schema": "stagekit.contracts.pandera_validator",
    "validate_with_pandera": "stagekit.contracts.pandera_validator",
    "Snapshot": "stagekit.snapshots.manifest",
    "Workspace": "stagekit.workspace",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'stagekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
