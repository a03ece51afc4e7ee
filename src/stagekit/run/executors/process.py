"""Run stages in worker processes.

What the thread executor runs, this one runs: everything crossing to a worker and back is serialized with
cloudpickle, so a stage's function travels *by reference* when a worker can import it by module and name,
and *by value* otherwise (functions defined in ``__main__``: a script, ``python -c``, ``python -``, a Jupyter
notebook; lambdas; closures). Artifacts, params and errors travel the same way, so a value of a class defined
in a notebook comes back as an instance of that class. Only the artifacts a stage requires travel, each
serialized on its own so that one that cannot travel is reported by stage and artifact name.

Workers never re-run the driver's main module. multiprocessing's ``spawn`` and ``forkserver`` start methods
normally execute the parent's ``__main__`` again in every worker (as ``__mp_main__``), so that functions
pickled as ``__main__.f`` can be found; that is why a script without an ``if __name__ == "__main__":`` guard
re-runs its pipeline in each worker and fails with pages of tracebacks. Here nothing travels as a reference
to ``__main__``, so workers are started with the main module hidden from multiprocessing's preparation
(:mod:`~stagekit.run.executors.process_worker`): an unguarded script, ``python -c`` and ``python -`` work as
a guarded script does.

The pool is the executor's own: each worker has a pipe to the driver and runs one task at a time, so the
driver always knows which stage each worker runs. A worker that dies fails exactly the stage it was running;
a stage past its timeout, or cancelled while it runs, has its worker killed (a fresh one takes its place);
and a task goes to a worker only when one is free, so a stage's timeout counts from when it starts.

A worker builds its contract checker from the run's :class:`~stagekit.records.ContractSpec` (the plugin host
rebuilt from entry-point names, once per worker), never from a pickled plugin manager. Stage log records are
captured in the worker and travel back on the outcome, for the runner to show in the driver.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.util
import os
import pickle
import signal
from collections import deque
from collections.abc import Callable, Collection
from multiprocessing.connection import Connection, wait
from time import perf_counter
from typing import Any

from stagekit.errors import ExecutorError
from stagekit.records import LazyValues, Outcome, StoredValue, Task
from stagekit.run.executors.base import DriverMemoryExecutor, stopped, timed_out
from stagekit.run.executors.process_worker import context, dumps, worker_main

_Packed = tuple[Task, bytes, list[bytes], int]  # a task, its header, its inputs (ready to send), tries left


class _Worker:
    """One worker process, its pipe, and the task it runs (None while idle)."""

    __slots__ = ("alive", "conn", "deadline", "process", "started", "task")

    def __init__(self, process: Any, conn: Connection, alive: Connection) -> None:
        self.process, self.conn, self.alive = process, conn, alive
        self.task: Task | None = None
        self.started = 0.0
        self.deadline: float | None = None

    def end(self, *, kill: bool) -> None:
        """Stop the process (at once with ``kill``, else ask it and wait a moment) and close its pipes."""
        process = self.process
        if not kill:
            with contextlib.suppress(OSError):
                self.conn.send_bytes(b"")
            process.join(1.0)
        if process.exitcode is None:
            process.kill()
            process.join(5.0)
        self.conn.close()
        self.alive.close()


def _end_all(workers: list[_Worker]) -> None:
    """Every worker still there, ended: at shutdown, when the executor is collected, and at exit."""
    for w in list(workers):
        w.end(kill=w.task is not None)
    workers.clear()


class ProcessExecutor(DriverMemoryExecutor):
    name = "process"

    def __init__(self, workers: int | None = None, host: Any = None, start_method: str | None = None) -> None:
        method = start_method or os.environ.get("STAGEKIT_START_METHOD") or "forkserver"
        if method not in multiprocessing.get_all_start_methods():
            raise ExecutorError(f"start method {method!r} is not available here; use one of "
                                f"{', '.join(multiprocessing.get_all_start_methods())}")
        self.workers = workers or os.cpu_count() or 1
        self._context: Any = context(method)
        self._all: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._busy: dict[Connection, _Worker] = {}
        self._queue: deque[_Packed] = deque()
        self._store: tuple[Any, bytes] | None = None  # the run store and its pickle
        self._done: list[Outcome] = []
        # before multiprocessing joins its children at exit, and when this executor is collected
        self._finalizer = multiprocessing.util.Finalize(self, _end_all, args=(self._all,), exitpriority=10)

    # --- the executor protocol --------------------------------------------------------------------------

    def submit(self, task: Task) -> None:
        packed = self._pack(task)
        if packed is None:
            return
        self._queue.append(packed)
        self._dispatch()

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        until = None if timeout is None else perf_counter() + timeout
        while True:
            if not self._done and self._busy:
                self._expire()
            if self._done:
                done, self._done = self._done, []
                return done
            if not self._busy:
                return []
            wake = min([w.deadline for w in self._busy.values() if w.deadline is not None], default=None)
            if until is not None:
                wake = until if wake is None else min(wake, until)
            self._collect(None if wake is None else max(wake - perf_counter(), 0.0))
            if not self._done and until is not None and perf_counter() >= until:
                return []

    def cancel(self, names: Collection[str] | None = None) -> list[Outcome]:
        def wanted(task: Task) -> bool:
            return names is None or task.stage.name in names

        if self._busy:
            self._collect(0)  # what finished already is kept, not killed
        out = [o for o in self._done if names is None or o.name in names]
        self._done = [o for o in self._done if not (names is None or o.name in names)]
        kept: deque[_Packed] = deque()
        for packed in self._queue:
            if wanted(packed[0]):
                out.append(stopped(packed[0], "cancelled"))
            else:
                kept.append(packed)
        self._queue = kept
        for w in list(self._busy.values()):
            assert w.task is not None
            if wanted(w.task):
                out.append(stopped(w.task, "killed"))
                self._retire(w, kill=True)
        self._dispatch()
        return out

    # --- values a worker left in the run store (StoredValue): read where they are needed in the driver ---

    def materialize(self, value: Any) -> Any:
        return value.load() if value.__class__ is StoredValue else value

    def run_merge(self, merge: Callable[[Any, list[Any]], Any], base: Any, branches: list[Any]) -> Any:
        return merge(self.materialize(base), [self.materialize(b) for b in branches])

    def collect_outputs(self, outputs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Each stage's outputs; those left in the store are read only if asked for (``LazyValues``)."""
        for name, values in outputs.items():
            if isinstance(values, LazyValues):  # reused from the store: read when asked for already
                continue
            left = {a: v.load for a, v in values.items() if v.__class__ is StoredValue}
            if left:
                outputs[name] = LazyValues(left, {a: v for a, v in values.items() if a not in left})  # type: ignore[assignment]
        return outputs

    def _store_bytes(self, store: Any) -> bytes:
        """The run store, pickled once a run (it is the same for every task)."""
        if self._store is None or self._store[0] is not store:
            self._store = (store, dumps(store))
        return self._store[1]

    def shutdown(self, *, cancel: bool) -> None:
        self._queue.clear()
        self._idle, self._busy = [], {}
        self._finalizer()  # ends every worker (the busy ones killed): idempotent

    # --- internals --------------------------------------------------------------------------------------

    def _pack(self, task: Task) -> _Packed | None:
        name = task.stage.name
        try:
            stage_bytes = dumps(task.stage)
        except Exception as exc:
            return self._refused(name, f"stage {name!r} cannot be sent to a worker process (its function, or "
                                      f"something it uses, cannot be pickled): {type(exc).__name__}: {exc}; use "
                                      "the thread executor")
        names, inputs, params = [], [], {}
        for key, value in task.kwargs.items():
            if key not in task.stage.requires:
                params[key] = value
                continue
            try:
                inputs.append(dumps(value))
            except Exception as exc:
                return self._refused(name, f"stage {name!r} requires artifact {key!r} ({type(value).__name__}), "
                                          f"which cannot be sent to a worker process: {type(exc).__name__}: {exc}; "
                                          "use the thread executor")
            names.append(key)
        try:
            params_bytes = dumps(params)
        except Exception as exc:
            return self._refused(name, f"stage {name!r} has a param that cannot be sent to a worker process: "
                                      f"{type(exc).__name__}: {exc}; use the thread executor")
        contracts = None if task.checker is None else task.checker.spec
        store_bytes = None if task.store is None else self._store_bytes(task.store)
        header = pickle.dumps((name, stage_bytes, names, params_bytes, contracts, task.log_level, task.strict,
                               store_bytes), protocol=pickle.HIGHEST_PROTOCOL)
        return task, header, inputs, 1

    def _refuse(self, name: str, message: str) -> None:
        self._done.append(Outcome(name, None, ExecutorError(message)))

    def _refused(self, name: str, message: str) -> _Packed | None:
        self._refuse(name, message)
        return None

    def _dispatch(self) -> None:
        """Hand queued tasks to free workers, starting workers up to the limit."""
        while self._queue:
            if self._idle:
                worker = self._idle.pop()
            elif len(self._all) < self.workers:
                try:
                    worker = self._start()
                except Exception as exc:
                    task = self._queue.popleft()[0]
                    self._refuse(task.stage.name, f"no worker process could be started for stage "
                                                  f"{task.stage.name!r}: {type(exc).__name__}: {exc}")
                    continue
            else:
                return
            task, header, inputs, tries = self._queue.popleft()
            try:
                worker.conn.send_bytes(header)
                for data in inputs:
                    worker.conn.send_bytes(data)
            except OSError as exc:  # it died while idle (none of this task ran): the task goes to another one
                self._retire(worker, kill=True)
                if tries:
                    self._queue.appendleft((task, header, inputs, tries - 1))
                else:
                    self._refuse(task.stage.name, f"the worker processes for stage {task.stage.name!r} died "
                                                  f"before it could be sent to them: {exc}")
                continue
            worker.task, worker.started = task, perf_counter()
            worker.deadline = None if task.timeout is None else worker.started + task.timeout
            self._busy[worker.conn] = worker

    def _start(self) -> _Worker:
        conn, child = multiprocessing.Pipe()
        alive_r, alive_w = multiprocessing.Pipe(duplex=False)  # only the driver holds alive_w: see the worker
        process = self._context.Process(target=worker_main, args=(child, alive_r), name="stagekit-worker")
        try:
            process.start()
        except BaseException:
            conn.close()
            alive_w.close()
            raise
        finally:
            child.close()
            alive_r.close()
        worker = _Worker(process, conn, alive_w)
        self._all.append(worker)
        return worker

    def _collect(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` for busy workers to answer or die; move what came in to ``_done``."""
        conns = dict(self._busy)
        sentinels = {w.process.sentinel: w for w in conns.values()}
        for ready in wait([*conns, *sentinels], timeout):
            worker = sentinels.get(ready) if isinstance(ready, int) else conns.get(ready)  # type: ignore[call-overload]
            if worker is None or worker.conn not in self._busy:
                continue  # its answer and its end were both ready: handled once
            self._answer(worker)
        self._dispatch()

    def _answer(self, worker: _Worker) -> None:
        task = worker.task
        assert task is not None
        try:
            data = worker.conn.recv_bytes() if worker.conn.poll() else None
        except (EOFError, OSError):
            data = None
        if data is None:
            self._done.append(Outcome(task.stage.name, None, self._death(worker), perf_counter() - worker.started))
            self._retire(worker, kill=True)
            return
        del self._busy[worker.conn]
        worker.task = None
        self._idle.append(worker)
        self._done.append(self._unpack(task.stage.name, data))

    def _death(self, worker: _Worker) -> ExecutorError:
        worker.process.join(1.0)
        code = worker.process.exitcode
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exit code {code}"
        name = worker.task.stage.name if worker.task is not None else "?"
        return ExecutorError(f"the worker process running stage {name!r} died unexpectedly (pid "
                             f"{worker.process.pid}, {how}: killed, os._exit or a crash)")

    def _expire(self) -> None:
        now = perf_counter()
        for w in list(self._busy.values()):
            if w.deadline is not None and w.deadline <= now and w.task is not None:
                if w.conn.poll():  # it answered just in time
                    self._answer(w)
                    continue
                self._done.append(timed_out(w.task, w.started))
                self._retire(w, kill=True)
        self._dispatch()

    def _retire(self, worker: _Worker, *, kill: bool) -> None:
        self._busy.pop(worker.conn, None)
        if worker in self._idle:
            self._idle.remove(worker)
        if worker in self._all:
            self._all.remove(worker)
        worker.end(kill=kill)

    def _unpack(self, name: str, data: bytes) -> Outcome:
        try:
            outcome: Outcome = pickle.loads(data)
        except Exception as exc:
            return Outcome(name, None, ExecutorError(
                f"the outcome of stage {name!r} cannot be loaded back from its worker process: "
                f"{type(exc).__name__}: {exc}"))
        if outcome.outputs is not None:
            outputs = {}
            for key, packed in outcome.outputs.items():
                try:
                    outputs[key] = pickle.loads(packed)
                except Exception as exc:
                    return Outcome(name, None, ExecutorError(
                        f"stage {name!r} provided artifact {key!r}, which the driver cannot load back from "
                        f"its worker process: {type(exc).__name__}: {exc}"), outcome.duration,
                        outcome.warnings, outcome.logs, outcome.forwarded)
            outcome.outputs = outputs
        return outcome
