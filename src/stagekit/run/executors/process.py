"""Run stages in worker processes.

Only the artifacts a stage requires travel to a worker, each pickled on its own so that an unpicklable one
is reported by stage and artifact name. A stage travels by reference ("module:qualname"), and a worker
rebuilds what it needs (the plugin host, for contract validators) from entry-point names, never from a
pickled plugin manager — so the executor also works under the ``spawn`` start method.
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

from stagekit.errors import ExecutorError
from stagekit.run.executors.base import LocalExecutor, Outcome, Task, run_task

_worker_host: Any = None
_worker_checkers: dict[Any, Any] = {}


def _init_worker(host_spec: Any) -> None:
    global _worker_host
    _worker_host = host_spec


def _checker(config: tuple[str, tuple[tuple[str, str], ...]] | None) -> Any:
    """The worker's contract checker, built once per configuration from the host spec."""
    global _worker_host
    if config is None:
        return None
    if config not in _worker_checkers:
        if not hasattr(_worker_host, "hook"):
            _worker_host = _worker_host.build() if _worker_host is not None else None
        if _worker_host is None:
            raise ExecutorError("contracts need a plugin host in the worker, and none was given")
        from stagekit.contracts.checker import ContractChecker

        mode, stage_modes = config
        _worker_checkers[config] = ContractChecker(_worker_host.hook.stagekit_validate_artifact, mode,
                                                   dict(stage_modes), emit_warnings=False)
    return _worker_checkers[config]


def _run_packed(stage_bytes: bytes, inputs: dict[str, bytes], params: dict[str, Any],
                checker_config: Any) -> Outcome:
    """Runs in the worker: unpickle, run, and send back outputs pickled one by one."""
    stage = pickle.loads(stage_bytes)
    kwargs = {name: pickle.loads(data) for name, data in inputs.items()}
    kwargs.update(params)
    try:
        checker = _checker(checker_config)
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


class ProcessExecutor(LocalExecutor):
    name = "process"

    def __init__(self, workers: int | None = None, host: Any = None, start_method: str | None = None) -> None:
        method = start_method or os.environ.get("STAGEKIT_START_METHOD") or "forkserver"
        if method not in multiprocessing.get_all_start_methods():
            raise ExecutorError(f"start method {method!r} is not available here; use one of "
                                f"{', '.join(multiprocessing.get_all_start_methods())}")
        self.workers = workers or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(method),
                                         initializer=_init_worker, initargs=(host,))
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
        checker = task.checker
        config = None if checker is None else (
            checker.mode, tuple(sorted(getattr(checker, "stage_modes", {}).items())))  # type: ignore[attr-defined]
        future = self._pool.submit(_run_packed, stage_bytes, inputs, params, config)
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
