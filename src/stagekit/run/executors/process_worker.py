"""The process executor's worker processes: how one starts without the driver's main module, and what it
runs (one task at a time, sent over its pipe by :class:`~stagekit.run.executors.process.ProcessExecutor`).

A worker ignores Ctrl-C (the driver decides, and stops its workers itself) and ends when the driver is gone,
however the driver ended (even killed with SIGKILL): a thread watches a pipe whose other end only the driver
holds, and exits the process when that pipe closes. So no worker outlives the run that started it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.context
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

from stagekit.contracts.checker import checker_for
from stagekit.errors import ExecutorError
from stagekit.records import ContractSpec, Outcome, StoredValue, Task
from stagekit.run import logs
from stagekit.run.executors.base import run_task


def dumps(value: Any) -> bytes:
    import cloudpickle  # type: ignore[import-untyped]  # imported here: `import stagekit` stays light

    data: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return data


LEFT_IN_STORE = 1 << 20
"""With the run store: an output stored in at least this many bytes stays there (a :class:`StoredValue` goes
back instead), so that a big value is written once by its worker and read by the next one, never sent
through the driver."""


def run_packed(stage_bytes: bytes, inputs: dict[str, bytes], params_bytes: bytes,
               contracts: ContractSpec | None, log_level: int | None, strict: bool = False,
               store_bytes: bytes | None = None) -> bytes:
    """Runs in the worker: unpickle, run, and send back the outcome (its outputs pickled one by one)."""
    stage = pickle.loads(stage_bytes)
    store = None if store_bytes is None else pickle.loads(store_bytes)
    kwargs = {name: pickle.loads(data) for name, data in inputs.items()}
    kwargs.update(pickle.loads(params_bytes))
    try:
        checker = None if contracts is None else checker_for(contracts)
    except Exception as exc:
        return pack(Outcome(stage.name, None, portable(exc)))
    outcome = run_task(Task(stage, kwargs, checker, log_level, strict=strict, store=store))
    outcome.forwarded = True  # captured here, not seen by the driver's handlers: the runner re-emits them
    outcome.warnings = [str(w) for w in outcome.warnings]
    if outcome.error is not None:
        outcome.error = portable(outcome.error)
        return pack(outcome)
    packed: dict[str, Any] = {}
    stored = outcome.stored or {}
    for name, value in (outcome.outputs or {}).items():
        kept = stored.get(name)
        if getattr(kept, "size", 0) >= LEFT_IN_STORE:
            value = StoredValue(store, kept, name)
        try:
            packed[name] = dumps(value)
        except Exception as exc:
            outcome.outputs, outcome.error = None, ExecutorError(
                f"stage {stage.name!r} provided artifact {name!r} ({type(value).__name__}), which cannot be "
                f"sent back from a worker process: {type(exc).__name__}: {exc}")
            return pack(outcome)
    outcome.outputs = packed
    return pack(outcome)


def pack(outcome: Outcome) -> bytes:
    try:
        return dumps(outcome)
    except Exception as exc:  # a log message or a warning that does not pickle: keep the rest
        outcome.logs, outcome.warnings = [], [str(w) for w in outcome.warnings]
        outcome.error = outcome.error or RuntimeError(f"the outcome cannot be sent back: {exc}")
        return dumps(outcome)


def portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RuntimeError that keeps its text and traceback."""
    text = "".join(traceback.format_exception(exc))
    try:
        exc.add_note("worker traceback:\n" + text)
        pickle.loads(dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}\nworker traceback:\n{text}")


def worker_main(conn: Connection, alive: Connection) -> None:
    """A worker process: run each task it is sent until told to stop (an empty message) or the driver is gone.

    A task is a header (the stage's name, the pickled stage and params, the contract settings, the log level,
    strict) followed by one message per required artifact; the answer is the packed outcome."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's: it stops this process itself
    threading.Thread(target=_exit_with_driver, args=(alive,), name="stagekit-driver-watch", daemon=True).start()
    logs.prepare_worker()
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not message:
            return
        name, stage_bytes, names, params_bytes, contracts, log_level, strict, store_bytes = pickle.loads(message)
        try:
            inputs = {n: conn.recv_bytes() for n in names}
        except (EOFError, OSError):
            return
        try:
            answer = run_packed(stage_bytes, inputs, params_bytes, contracts, log_level, strict, store_bytes)
        except BaseException as exc:  # unpickling the stage or an input failed: still this task's outcome
            answer = pack(Outcome(name, None, portable(exc)))
        del inputs
        try:
            conn.send_bytes(answer)
        except OSError:
            return


def _exit_with_driver(alive: Connection) -> None:
    # The driver never writes: this ends (EOFError, OSError) only when its end is closed, i.e. it is gone.
    with contextlib.suppress(BaseException):
        alive.recv_bytes()
    os._exit(1)


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


def context(method: str) -> multiprocessing.context.BaseContext:
    """The start method's context, whose processes start with the main module hidden (see above)."""
    base: Any = multiprocessing.get_context(method)
    context_class = type(f"_{method.capitalize()}Context", (type(base),), {"Process": _WORKERS[method]})
    made: multiprocessing.context.BaseContext = context_class()
    return made
