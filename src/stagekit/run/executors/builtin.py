"""The core's own plugin: the built-in executors, registered through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stagekit.hookspecs import hookimpl


def _sequential(workers: int | None = None, **options: Any) -> Any:
    from stagekit.run.executors.sequential import SequentialExecutor

    return SequentialExecutor(workers, **options)


def _thread(workers: int | None = None, **options: Any) -> Any:
    from stagekit.run.executors.thread import ThreadExecutor

    return ThreadExecutor(workers, **options)


def _process(workers: int | None = None, **options: Any) -> Any:
    from stagekit.run.executors.process import ProcessExecutor

    return ProcessExecutor(workers, **options)


@hookimpl
def stagekit_register_executors(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("sequential", _sequential)
    register("thread", _thread)
    register("process", _process)
