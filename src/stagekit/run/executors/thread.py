"""Run stages on a pool of threads in the driver process.

Artifacts are shared by reference: forking a context for eight branches copies no value. Worker threads are
daemons fed from one queue, so an interrupted run returns at once instead of joining busy threads.
"""

from __future__ import annotations

import os
import queue
import threading

from stagekit.records import Outcome, Task
from stagekit.run.executors.base import DriverMemoryExecutor, run_task

_STOP = None


class ThreadExecutor(DriverMemoryExecutor):
    name = "thread"

    def __init__(self, workers: int | None = None, host: object = None) -> None:
        self.workers = workers or min(32, (os.cpu_count() or 1) + 4)
        self._todo: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._cancelled = threading.Event()

    def _work(self) -> None:
        while (task := self._todo.get()) is not _STOP:
            if self._cancelled.is_set():
                continue
            self._done.put(run_task(task))

    def submit(self, task: Task) -> None:
        if len(self._threads) < self.workers:  # start threads lazily: a short run needs few
            t = threading.Thread(target=self._work, name=f"stagekit-{len(self._threads)}", daemon=True)
            t.start()
            self._threads.append(t)
        self._todo.put(task)

    def wait(self) -> list[Outcome]:
        done = [self._done.get()]
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue.Empty:
                return done

    def shutdown(self, *, cancel: bool) -> None:
        if cancel:
            self._cancelled.set()
        for _ in self._threads:
            self._todo.put(_STOP)
        if not cancel:
            for t in self._threads:
                t.join()
        self._threads = []
