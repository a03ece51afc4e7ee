"""The core's own plugin: the built-in executors, registered through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stagekit.hookspecs import hookimpl

# Each factory's signature is the executor's options: the check before a run refuses any other option by name.
# The executor modules are imported only when one is built (``stagekit --version`` and listings stay fast).


def _sequential(workers: int | None = None, host: Any = None) -> Any:
    from stagekit.run.executors.sequential import SequentialExecutor

    return SequentialExecutor(workers)


def _thread(workers: int | None = None, host: Any = None) -> Any:
    from stagekit.run.executors.thread import ThreadExecutor

    return ThreadExecutor(workers)


def _process(workers: int | None = None, host: Any = None, start_method: str | None = None) -> Any:
    from stagekit.run.executors.process import ProcessExecutor

    return ProcessExecutor(workers, host, start_method=start_method)


@hookimpl
def stagekit_register_executors(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("sequential", _sequential)
    register("thread", _thread)
    register("process", _process)
