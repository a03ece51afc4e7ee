"""Run stages on a pool of threads in the driver process.

Artifacts are shared by reference: forking a context for eight branches copies no value. Worker threads are
daemons fed from one queue, so an interrupted run returns at once instead of joining busy threads.

A thread cannot be killed. A stage past its timeout, or still running when the run is cancelled, is
*abandoned*: its thread may go on, whatever it returns is ignored, and the thread ends when the stage does
(a stage abandoned at its timeout is replaced by a fresh thread, so the pool keeps its size).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Collection
from time import perf_counter

from stagekit.records import Outcome, Task
from stagekit.run.executors.base import DriverMemoryExecutor, run_task, stopped, timed_out

_STOP = None


class ThreadExecutor(DriverMemoryExecutor):
    name = "thread"

    def __init__(self, workers: int | None = None, host: object = None) -> None:
        self.workers = workers or min(32, (os.cpu_count() or 1) + 4)
        self._todo: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()  # None: a timed task started
        self._threads: list[threading.Thread] = []
        # Shared with the worker threads, by task id. Whoever pops a task from `_running` ends it: the worker
        # when the stage returns (its outcome counts), or wait()/cancel() when they abandon it (it does not).
        self._running: dict[int, Task] = {}
        self._deadlines: dict[int, tuple[float, float, Task]] = {}  # timed tasks: (deadline, started, task)
        self._dropped: set[int] = set()  # cancelled before they started: a worker skips them
        self._stopped = False  # cancel() of everything, or shutdown: workers skip whatever is left
        self._outstanding: dict[str, Task] = {}  # submitted, not yet returned (main thread only)
        self._held: list[Outcome] = []  # finished outcomes read but not returned yet
        self._abandoned = False  # some thread still runs a stage nobody waits for

    def _work(self) -> None:
        running, dropped, done = self._running, self._dropped, self._done
        while (task := self._todo.get()) is not _STOP:
            key = id(task)
            if self._stopped or (dropped and key in dropped):
                continue
            running[key] = task
            if dropped and key in dropped:  # cancelled while this thread picked it up
                running.pop(key, None)
                continue
            limit = task.timeout
            if limit is not None:
                now = perf_counter()
                self._deadlines[key] = (now + limit, now, task)
                done.put(None)  # wake wait(): there is a new deadline to keep
            try:
                outcome = run_task(task)
            except BaseException as exc:  # run_task's own failure: never a silent dead thread
                outcome = Outcome(task.stage.name, None, exc)
            if running.pop(key, None) is None:  # abandoned meanwhile: this thread was replaced, or the run
                return  # is over; either way it is not needed any more
            if limit is not None:
                self._deadlines.pop(key, None)
            done.put(outcome)

    def _start_thread(self) -> None:
        t = threading.Thread(target=self._work, name=f"stagekit-{len(self._threads)}", daemon=True)
        t.start()
        self._threads.append(t)

    def submit(self, task: Task) -> None:
        if len(self._threads) < self.workers:  # start threads lazily: a short run needs few
            self._start_thread()
        self._outstanding[task.stage.name] = task
        self._todo.put(task)

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if timeout is None and not self._deadlines and not self._held:  # the common case: block, then drain
            done, outstanding = self._done, self._outstanding
            item = done.get()
            if item is not None:  # (None: a timed task started; its deadline is kept below)
                found = [item] if outstanding.pop(item.name, None) is not None else []
                while True:  # the others that finished meanwhile (not those cancel() reported already)
                    try:
                        item = done.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None and outstanding.pop(item.name, None) is not None:
                        found.append(item)
                if found:
                    return found
        until = None if timeout is None else perf_counter() + timeout
        while True:
            found = self._returned(self._drain())
            if not found and self._deadlines:
                found = self._expired()
            if found:
                return found
            wake = min([d for d, _, _ in list(self._deadlines.values())], default=None)
            if until is not None:
                wake = until if wake is None else min(wake, until)
            try:
                item = self._done.get(timeout=None if wake is None else max(wake - perf_counter(), 0.0))
            except queue.Empty:
                if until is not None and perf_counter() >= until:
                    return []
                continue
            if item is not None:
                self._held.append(item)

    def _drain(self) -> list[Outcome]:
        """Every finished outcome not returned yet (those cancel() read first)."""
        found, self._held = self._held, []
        while True:
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                return found
            if item is not None:
                found.append(item)

    def _returned(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Those of ``outcomes`` still outstanding (cancel() may have reported one already), now returned."""
        return [o for o in outcomes if self._outstanding.pop(o.name, None) is not None]

    def _expired(self) -> list[Outcome]:
        now, found = perf_counter(), []
        for key, (deadline, started, task) in list(self._deadlines.items()):
            if deadline <= now and self._running.pop(key, None) is not None:
                self._deadlines.pop(key, None)
                self._outstanding.pop(task.stage.name, None)
                found.append(timed_out(task, started))
                self._abandoned = True
                self._start_thread()  # the abandoned thread ends with its stage: keep the pool's size
        return found

    def cancel(self, names: Collection[str] | None = None) -> list[Outcome]:
        if names is None:
            self._stopped = True
        wanted = set(self._outstanding) if names is None else set(names) & self._outstanding.keys()
        finished = self._drain()
        self._held = [o for o in finished if o.name not in wanted]
        out = self._returned([o for o in finished if o.name in wanted])
        for name in wanted - {o.name for o in out}:
            task = self._outstanding.pop(name)
            key = id(task)
            self._dropped.add(key)
            if self._running.pop(key, None) is not None:
                self._deadlines.pop(key, None)
                self._abandoned = True
                out.append(stopped(task, "abandoned"))
            else:
                out.append(stopped(task, "cancelled"))
        return out

    def shutdown(self, *, cancel: bool) -> None:
        if cancel:
            self._stopped = True
        for _ in self._threads:
            self._todo.put(_STOP)
        if not cancel and not self._abandoned:  # every thread is idle: each takes a stop and ends
            for t in self._threads:
                t.join()
        self._threads = []
