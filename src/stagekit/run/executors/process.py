"""Run stages in worker processes.

Only the artifacts a stage requires travel to a worker, each pickled on its own so that an unpicklable one
is reported by stage and artifact name. A stage travels by reference ("module:qualname"). A worker builds
its contract checker from the run's :class:`~stagekit.records.ContractSpec` (the plugin host rebuilt from
entry-point names, once per worker), never from a pickled plugin manager, so the executor also works under
the ``spawn`` start method.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import traceback
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from stagekit.contracts.checker import checker_for
from stagekit.errors import ExecutorError
from stagekit.records import ContractSpec, Outcome, Task
from stagekit.run.executors.base import DriverMemoryExecutor, run_task


def _run_packed(stage_bytes: bytes, inputs: dict[str, bytes], params: dict[str, Any],
                contracts: ContractSpec | None) -> Outcome:
    """Runs in the worker: unpickle, run, and send back outputs pickled one by one."""
    stage = pickle.loads(stage_bytes)
    kwargs = {name: pickle.loads(data) for name, data in inputs.items()}
    kwargs.update(params)
    try:
        checker = None if contracts is None else checker_for(contracts)
    except Exception as exc:
        return Outcome(stage.name, None, _portable(exc))
    outcome = run_task(Task(stage, kwargs, checker))
    if outcome.error is not None:
        outcome.error = _portable(outcome.error)
        return outcome
    packed: dict[str, Any] = {}
    for name, value in (outcome.outputs or {}).items():
        try:
            packed[name] = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            return Outcome(stage.name, None, ExecutorError(
                f"stage {stage.name!r} provided artifact {name!r} ({type(value).__name__}), which cannot be "
                f"sent back from a worker process: {type(exc).__name__}: {exc}"), outcome.duration)
    outcome.outputs = packed
    outcome.warnings = [str(w) for w in outcome.warnings]
    return outcome


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RuntimeError that keeps its text and traceback."""
    text = "".join(traceback.format_exception(exc))
    try:
        exc.add_note("worker traceback:\n" + text)
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}\nworker traceback:\n{text}")


class ProcessExecutor(DriverMemoryExecutor):
    name = "process"

    def __init__(self, workers: int | None = None, host: Any = None, start_method: str | None = None) -> None:
        method = start_method or os.environ.get("STAGEKIT_START_METHOD") or "forkserver"
        if method not in multiprocessing.get_all_start_methods():
            raise ExecutorError(f"start method {method!r} is not available here; use one of "
                                f"{', '.join(multiprocessing.get_all_start_methods())}")
        self.workers = workers or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(method))
        self._done: queue.SimpleQueue[Future[Outcome] | Outcome] = queue.SimpleQueue()
        self._running: dict[Future[Outcome], str] = {}

    def submit(self, task: Task) -> None:
        name = task.stage.name
        try:
            stage_bytes = pickle.dumps(task.stage)
        except Exception as exc:
            self._done.put(Outcome(name, None, ExecutorError(
                f"stage {name!r} cannot be sent to a worker process (its function must be importable by "
                f"module and name): {exc}")))
            return
        inputs, params = {}, {}
        for key, value in task.kwargs.items():
            if key not in task.stage.requires:
                params[key] = value
                continue
            try:
                inputs[key] = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                self._done.put(Outcome(name, None, ExecutorError(
                    f"stage {name!r} requires artifact {key!r} ({type(value).__name__}), which cannot be sent "
                    f"to a worker process: {type(exc).__name__}: {exc}; use the thread executor")))
                return
        contracts = None if task.checker is None else task.checker.spec
        future = self._pool.submit(_run_packed, stage_bytes, inputs, params, contracts)
        self._running[future] = name
        future.add_done_callback(self._done.put)

    def wait(self) -> list[Outcome]:
        finished = [self._done.get()]
        while True:
            try:
                finished.append(self._done.get_nowait())
            except queue.Empty:
                break
        return [self._outcome(f) for f in finished]

    def _outcome(self, item: Future[Outcome] | Outcome) -> Outcome:
        if isinstance(item, Outcome):
            return item
        name = self._running.pop(item)
        try:
            outcome = item.result()
        except BrokenProcessPool:
            others = sorted(set(self._running.values()) - {name})
            also = f" (also in flight: {', '.join(others)})" if others else ""
            return Outcome(name, None, ExecutorError(
                f"the worker process running stage {name!r} died unexpectedly (killed, os._exit or a crash)"
                + also + "; if this happens at once from a script, guard the run with "
                "`if __name__ == '__main__':`, as multiprocessing requires"))
        except Exception as exc:
            return Outcome(name, None, exc)
        if outcome.outputs is not None:
            outcome.outputs = {k: pickle.loads(v) for k, v in outcome.outputs.items()}
        return outcome

    def shutdown(self, *, cancel: bool) -> None:
        if cancel:
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
