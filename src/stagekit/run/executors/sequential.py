"""Run each stage in the driver, one at a time, in the order submitted.

A submitted stage waits in a queue; :meth:`SequentialExecutor.wait` runs them in order, up to the first that
fails. So when a stage fails, the runner learns it before the next one starts, and can cancel what is still
queued.

A stage runs in the calling thread, unless there is a clock to keep: a stage with a timeout, or a ``wait``
with one (the run's timeout), runs in a helper thread that is waited for only that long. Past its timeout
the stage is abandoned (a thread cannot be killed: it may go on, and whatever it returns is ignored).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Collection
from time import perf_counter

from stagekit.records import Outcome, Task
from stagekit.run.executors.base import DriverMemoryExecutor, run_task, stopped, timed_out


class _Helper:
    """One stage running in a daemon thread, with the time it started."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.outcome: Outcome | None = None
        self.done = threading.Event()
        self.started = perf_counter()
        threading.Thread(target=self._run, name=f"stagekit-{task.stage.name}", daemon=True).start()

    def _run(self) -> None:
        try:
            self.outcome = run_task(self.task)
        except BaseException as exc:  # run_task's own failure (never a KeyboardInterrupt: not in this thread)
            self.outcome = Outcome(self.task.stage.name, None, exc)
        self.done.set()


class SequentialExecutor(DriverMemoryExecutor):
    name = "sequential"

    def __init__(self, workers: int | None = None, host: object = None) -> None:
        self._queue: deque[Task] = deque()
        self._current: _Helper | None = None  # the stage running in a helper thread, if any
        self._held: list[Outcome] = []  # finished in a wait() that Ctrl-C interrupted

    def submit(self, task: Task) -> None:
        self._queue.append(task)

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        helper = self._current
        if helper is None:
            queue = self._queue
            if not queue:
                return []
            if timeout is None and queue[0].timeout is None:  # no clock to keep: run them right here,
                done = self._held = []  # one after the other, up to the first failure (the runner decides
                while queue and queue[0].timeout is None:  # what follows)
                    outcome = run_task(queue.popleft())
                    done.append(outcome)
                    if outcome.error is not None:
                        break
                self._held = []  # (kept there until now: after Ctrl-C, cancel() hands them back)
                return done
            helper = self._current = _Helper(queue.popleft())
        limit = helper.task.timeout
        until = None if timeout is None else perf_counter() + timeout
        while True:
            wake = None if limit is None else helper.started + limit
            if until is not None and (wake is None or until < wake):
                wake = until
            if helper.done.wait(None if wake is None else max(wake - perf_counter(), 0.0)):
                self._current = None
                assert helper.outcome is not None
                return [helper.outcome]
            if limit is not None and perf_counter() - helper.started >= limit:
                self._current = None  # abandoned: its thread may go on, its outcome is ignored
                return [timed_out(helper.task, helper.started)]
            if until is not None and perf_counter() >= until:
                return []

    def cancel(self, names: Collection[str] | None = None) -> list[Outcome]:
        out = [o for o in self._held if names is None or o.name in names]
        self._held = [o for o in self._held if not (names is None or o.name in names)]
        helper = self._current
        if helper is not None and (names is None or helper.task.stage.name in names):
            self._current = None
            finished = helper.outcome if helper.done.is_set() else None
            out.append(finished if finished is not None else stopped(helper.task, "abandoned"))
        kept: deque[Task] = deque()
        for task in self._queue:
            if names is None or task.stage.name in names:
                out.append(stopped(task, "cancelled"))
            else:
                kept.append(task)
        self._queue = kept
        return out

    def shutdown(self, *, cancel: bool) -> None:
        self._queue.clear()
        self._current = None
