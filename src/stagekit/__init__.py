"""stagekit: a plugin framework for pluggable, parallel, validated data pipelines.

The public API is ``__all__``; everything else is private. Names are imported on first use, so that
``import stagekit`` (and ``stagekit --version``) costs almost nothing and never imports pandas, pandera or ray.
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
    from stagekit.contracts.checker import ContractWarning as ContractWarning
    from stagekit.errors import ContractError as ContractError
    from stagekit.errors import CycleError as CycleError
    from stagekit.errors import ExecutorError as ExecutorError
    from stagekit.errors import MergeConflictError as MergeConflictError
    from stagekit.errors import PipelineError as PipelineError
    from stagekit.errors import PipelineFileError as PipelineFileError
    from stagekit.errors import PluginConfigError as PluginConfigError
    from stagekit.errors import PluginError as PluginError
    from stagekit.errors import RegistrationError as RegistrationError
    from stagekit.errors import RunInterrupted as RunInterrupted
    from stagekit.errors import StageDefinitionError as StageDefinitionError
    from stagekit.errors import StageError as StageError
    from stagekit.errors import StagekitError as StagekitError
    from stagekit.frozenmap import FrozenMap as FrozenMap
    from stagekit.hookspecs import hookimpl as hookimpl
    from stagekit.hookspecs import hookspec as hookspec
    from stagekit.merge.table import merge_values as merge_values
    from stagekit.merge.table import values_equal as values_equal
    from stagekit.pipeline import Pipeline as Pipeline
    from stagekit.plugins.host import Host as Host
    from stagekit.plugins.host import PluginRecord as PluginRecord
    from stagekit.plugins.registry import Registry as Registry
    from stagekit.run.runner import RunResult as RunResult
    from stagekit.snapshots.snapshot import Snapshot as Snapshot
    from stagekit.snapshots.snapshot import SnapshotCorruptError as SnapshotCorruptError
    from stagekit.snapshots.snapshot import SnapshotError as SnapshotError
    from stagekit.snapshots.snapshot import SnapshotExistsError as SnapshotExistsError
    from stagekit.snapshots.snapshot import SnapshotNotFoundError as SnapshotNotFoundError
    from stagekit.snapshots.workspace import Workspace as Workspace
    from stagekit.snapshots.workspace import WorkspaceError as WorkspaceError
    from stagekit.snapshots.workspace import WorkspaceLockedError as WorkspaceLockedError

__all__ = [
    "ContractError",
    "ContractWarning",
    "CycleError",
    "ExecutorError",
    "FrozenMap",
    "Host",
    "MergeConflictError",
    "Pipeline",
    "PipelineError",
    "PipelineFileError",
    "PluginConfigError",
    "PluginError",
    "PluginRecord",
    "RegistrationError",
    "Registry",
    "RunInterrupted",
    "RunResult",
    "Snapshot",
    "SnapshotCorruptError",
    "SnapshotError",
    "SnapshotExistsError",
    "SnapshotNotFoundError",
    "Stage",
    "StageDefinitionError",
    "StageError",
    "StagekitError",
    "Workspace",
    "WorkspaceError",
    "WorkspaceLockedError",
    "__version__",
    "hookimpl",
    "hookspec",
    "merge_values",
    "stage",
    "values_equal",
]

_LAZY = {
    "FrozenMap": "stagekit.frozenmap",
    "Snapshot": "stagekit.snapshots.snapshot",
    "SnapshotCorruptError": "stagekit.snapshots.snapshot",
    "SnapshotError": "stagekit.snapshots.snapshot",
    "SnapshotExistsError": "stagekit.snapshots.snapshot",
    "SnapshotNotFoundError": "stagekit.snapshots.snapshot",
    "Workspace": "stagekit.snapshots.workspace",
    "WorkspaceError": "stagekit.snapshots.workspace",
    "WorkspaceLockedError": "stagekit.snapshots.workspace",
    "ContractError": "stagekit.errors",
    "CycleError": "stagekit.errors",
    "ExecutorError": "stagekit.errors",
    "MergeConflictError": "stagekit.errors",
    "PipelineError": "stagekit.errors",
    "PipelineFileError": "stagekit.errors",
    "PluginConfigError": "stagekit.errors",
    "PluginError": "stagekit.errors",
    "RegistrationError": "stagekit.errors",
    "RunInterrupted": "stagekit.errors",
    "StageDefinitionError": "stagekit.errors",
    "StageError": "stagekit.errors",
    "StagekitError": "stagekit.errors",
    "hookimpl": "stagekit.hookspecs",
    "hookspec": "stagekit.hookspecs",
    "Pipeline": "stagekit.pipeline",
    "Host": "stagekit.plugins.host",
    "PluginRecord": "stagekit.plugins.host",
    "Registry": "stagekit.plugins.registry",
    "RunResult": "stagekit.run.runner",
    "merge_values": "stagekit.merge.table",
    "values_equal": "stagekit.merge.table",
    "ContractWarning": "stagekit.contracts.checker",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'stagekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
