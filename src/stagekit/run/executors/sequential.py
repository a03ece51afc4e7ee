"""Run each stage in the driver, one at a time, the moment it is submitted."""

from __future__ import annotations

from stagekit.records import Outcome, Task
from stagekit.run.executors.base import DriverMemoryExecutor, run_task


class SequentialExecutor(DriverMemoryExecutor):
    name = "sequential"

    def __init__(self, workers: int | None = None, host: object = None) -> None:
        self._done: list[Outcome] = []

    def submit(self, task: Task) -> None:
        self._done.append(run_task(task))

    def wait(self) -> list[Outcome]:
        done, self._done = self._done, []
        return done

    def shutdown(self, *, cancel: bool) -> None:
        self._done = []
