"""stagekit: a plugin framework for pluggable, parallel, validated data pipelines.

The public API is ``__all__``; everything else is private. Importing stagekit imports neither pandas,
pandera nor ray.
"""

from __future__ import annotations

from typing import Any

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
from stagekit.hookspecs import hookimpl as hookimpl
from stagekit.hookspecs import hookspec as hookspec
from stagekit.pipeline import Pipeline as Pipeline
from stagekit.plugins import Host as Host
from stagekit.plugins import PluginRecord as PluginRecord
from stagekit.registry import Registry as Registry
from stagekit.runner import RunResult as RunResult
from stagekit.stage import Stage as Stage
from stagekit.stage import stage as stage

__all__ = [
    "ContractError",
    "CycleError",
    "ExecutorError",
    "Host",
    "MergeConflictError",
    "Pipeline",
    "PipelineError",
    "PipelineFileError",
    "PluginConfigError",
    "PluginError",
    "PluginRecord",
    "Registry",
    "RegistrationError",
    "RunInterrupted",
    "RunResult",
    "Stage",
    "StageDefinitionError",
    "StageError",
    "StagekitError",
    "__version__",
    "hookimpl",
    "hookspec",
    "merge_values",
    "stage",
    "values_equal",
]

_LAZY = {"merge_values": "stagekit.merge", "values_equal": "stagekit.merge"}


def __getattr__(name: str) -> Any:
    # The version comes from the installed metadata, looked up only when asked for.
    if name == "__version__":
        from stagekit._version import version

        return version()
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stagekit' has no attribute {name!r}")
