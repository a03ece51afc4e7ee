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
(:func:`_main_hidden`): an unguarded script, ``python -c`` and ``python -`` work as a guarded script does.

A worker builds its contract checker from the run's :class:`~stagekit.records.ContractSpec` (the plugin host
rebuilt from entry-point names, once per worker), never from a pickled plugin manager. Stage log records are
captured in the worker and travel back on the outcome, for the runner to show in the driver.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import pickle
import queue
import sys
import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

from stagekit.contracts.checker import checker_for
from stagekit.errors import ExecutorError
from stagekit.records import ContractSpec, Outcome, Task
from stagekit.run import logs
from stagekit.run.executors.base import DriverMemoryExecutor, run_task


def _dumps(value: Any) -> bytes:
    import cloudpickle  # type: ignore[import-untyped]  # imported here: `import stagekit` stays light

    data: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return data


def _run_packed(stage_bytes: bytes, inputs: dict[str, bytes], params_bytes: bytes,
                contracts: ContractSpec | None, log_level: int | None) -> bytes:
    """Runs in the worker: unpickle, run, and send back the outcome (its outputs pickled one by one)."""
    stage = pickle.loads(stage_bytes)
    kwargs = {name: pickle.loads(data) for name, data in inputs.items()}
    kwargs.update(pickle.loads(params_bytes))
    try:
        checker = None if contracts is None else checker_for(contracts)
    except Exception as exc:
        return _pack(Outcome(stage.name, None, _portable(exc)))
    outcome = run_task(Task(stage, kwargs, checker, log_level))
    outcome.forwarded = True  # captured here, not seen by the driver's handlers: the runner re-emits them
    outcome.warnings = [str(w) for w in outcome.warnings]
    if outcome.error is not None:
        outcome.error = _portable(outcome.error)
        return _pack(outcome)
    packed: dict[str, Any] = {}
    for name, value in (outcome.outputs or {}).items():
        try:
            packed[name] = _dumps(value)
        except Exception as exc:
            outcome.outputs, outcome.error = None, ExecutorError(
                f"stage {stage.name!r} provided artifact {name!r} ({type(value).__name__}), which cannot be "
                f"sent back from a worker process: {type(exc).__name__}: {exc}")
            return _pack(outcome)
    outcome.outputs = packed
    return _pack(outcome)


def _pack(outcome: Outcome) -> bytes:
    try:
        return _dumps(outcome)
    except Exception as exc:  # a log message or a warning that does not pickle: keep the rest
        outcome.logs, outcome.warnings = [], [str(w) for w in outcome.warnings]
        outcome.error = outcome.error or RuntimeError(f"the outcome cannot be sent back: {exc}")
        return _dumps(outcome)


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RuntimeError that keeps its text and traceback."""
    text = "".join(traceback.format_exception(exc))
    try:
        exc.add_note("worker traceback:\n" + text)
        pickle.loads(_dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}\nworker traceback:\n{text}")


def _init_worker() -> None:
    logs.prepare_worker()


# --- starting workers without the driver's main module ------------------------------------------------

_main_lock = threading.Lock()


@contextmanager
def _main_hidden() -> Iterator[None]:
    """While a worker starts: ``__main__`` has no ``__file__`` and no ``__spec__``, so that multiprocessing's
    preparation (``spawn.get_preparation_data``) gives the worker no main module to run again."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    with _main_lock:  # one start at a time: two interleaved save/restore pairs would lose __file__
        saved: dict[str, Any] = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
        main.__dict__.pop("__file__", None)
        main.__dict__["__spec__"] = None
        try:
            yield
        finally:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


class _HiddenMainStart:
    """Mixed into a start method's process class: the process starts with the main module hidden."""

    def start(self) -> None:
        with _main_hidden():
            super().start()  # type: ignore[misc]


# The process classes are pickled to the new process by ``spawn`` and ``forkserver``: they live at module level.
_WORKERS: dict[str, type[Any]] = {}
for _method in multiprocessing.get_all_start_methods():
    _base: Any = multiprocessing.get_context(_method)
    _class_name = f"_{_method.capitalize()}Worker"
    _WORKERS[_method] = globals()[_class_name] = type(_class_name, (_HiddenMainStart, _base.Process), {})


def _context(method: str) -> multiprocessing.context.BaseContext:
    """The start method's context, whose processes start with the main module hidden (see above)."""
    base: Any = multiprocessing.get_context(method)
    context_class = type(f"_{method.capitalize()}Context", (type(base),), {"Process": _WORKERS[method]})
    context: multiprocessing.context.BaseContext = context_class()
    return context


class ProcessExecutor(DriverMemoryExecutor):
    name = "process"

    def __init__(self, workers: int | None = None, host: Any = None, start_method: str | None = None) -> None:
        method = start_method or os.environ.get("STAGEKIT_START_METHOD") or "forkserver"
        if method not in multiprocessing.get_all_start_methods():
            raise ExecutorError(f"start method {method!r} is not available here; use one of "
                                f"{', '.join(multiprocessing.get_all_start_methods())}")
        self.workers = workers or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(self.workers, mp_context=_context(method), initializer=_init_worker)
        self._done: queue.SimpleQueue[Future[bytes] | Outcome] = queue.SimpleQueue()
        self._running: dict[Future[bytes], str] = {}

    def submit(self, task: Task) -> None:
        name = task.stage.name
        try:
            stage_bytes = _dumps(task.stage)
        except Exception as exc:
            self._done.put(Outcome(name, None, ExecutorError(
                f"stage {name!r} cannot be sent to a worker process (its function, or something it uses, "
                f"cannot be pickled): {type(exc).__name__}: {exc}; use the thread executor")))
            return
        inputs, params = {}, {}
        for key, value in task.kwargs.items():
            if key not in task.stage.requires:
                params[key] = value
                continue
            try:
                inputs[key] = _dumps(value)
            except Exception as exc:
                self._done.put(Outcome(name, None, ExecutorError(
                    f"stage {name!r} requires artifact {key!r} ({type(value).__name__}), which cannot be sent "
                    f"to a worker process: {type(exc).__name__}: {exc}; use the thread executor")))
                return
        try:
            params_bytes = _dumps(params)
        except Exception as exc:
            self._done.put(Outcome(name, None, ExecutorError(
                f"stage {name!r} has a param that cannot be sent to a worker process: "
                f"{type(exc).__name__}: {exc}; use the thread executor")))
            return
        contracts = None if task.checker is None else task.checker.spec
        future = self._pool.submit(_run_packed, stage_bytes, inputs, params_bytes, contracts, task.log_level)
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

    def _outcome(self, item: Future[bytes] | Outcome) -> Outcome:
        if isinstance(item, Outcome):
            return item
        name = self._running.pop(item)
        try:
            outcome: Outcome = pickle.loads(item.result())
        except BrokenProcessPool:
            others = sorted(set(self._running.values()) - {name})
            also = f" (also in flight: {', '.join(others)})" if others else ""
            return Outcome(name, None, ExecutorError(
                f"the worker process running stage {name!r} died unexpectedly (killed, os._exit or a crash)"
                + also))
        except Exception as exc:
            return Outcome(name, None, exc)
        if outcome.outputs is not None:
            outputs = {}
            for key, data in outcome.outputs.items():
                try:
                    outputs[key] = pickle.loads(data)
                except Exception as exc:
                    return Outcome(name, None, ExecutorError(
                        f"stage {name!r} provided artifact {key!r}, which the driver cannot load back from "
                        f"its worker process: {type(exc).__name__}: {exc}"), outcome.duration,
                        outcome.warnings, outcome.logs, outcome.forwarded)
            outcome.outputs = outputs
        return outcome

    def shutdown(self, *, cancel: bool) -> None:
        if cancel:
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
