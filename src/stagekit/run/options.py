"""How one run is to go: the executor, the merge, the hooks, the contract checker, params, timeouts, logs."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from stagekit.plugins.registry import Provenance
from stagekit.records import Checker, RunInfo, StageCache
from stagekit.run.executors.base import Executor

__all__ = ["RunOptions"]


def _default_grace() -> float:
    return float(os.environ.get("STAGEKIT_CANCEL_GRACE") or 2.0)


@attrs.define
class RunOptions:
    executor: Executor
    merge: Callable[[Any, list[Any]], Any]
    hook: Any = None  # the plugin manager's hook relay; None runs without lifecycle hooks
    checker: Checker | None = None
    params: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    origins: Mapping[str, Provenance] = attrs.field(factory=dict)
    info: RunInfo | None = None
    # the level at which stages' log records are created and kept ("INFO", 20...); None: the driver root
    # logger's effective level, i.e. whatever the driver's logging configuration lets through
    log_level: int | str | None = None
    timeout: float | None = None  # the run's, in seconds
    stage_timeouts: Mapping[str, float] = attrs.field(factory=dict)  # per stage, over Stage.timeout
    strict: bool = False  # isolation="strict": fingerprint each stage's inputs before and after it
    # after the first failure, how long stages earlier in the DAG's order may still run ($STAGEKIT_CANCEL_GRACE)
    grace: float = attrs.field(factory=_default_grace)
    describe_plugin: Callable[[str], str] | None = None  # a plugin's name -> "plugin 'x' (distribution d 1.0)"
    cache: StageCache | None = None  # the run store (stagekit.store.runstore.RunStore); None: nothing stored
