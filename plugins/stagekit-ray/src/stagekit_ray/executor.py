"""The ``ray`` executor: stages run as Ray tasks, artifacts stay in Ray's object store between them.

A stage's outputs come back as object references (``Outcome.outputs`` holds ``ray.ObjectRef``s); a later
stage gets them as arguments, one per artifact, so Ray resolves them in the worker and the data never
passes through the driver. Only a small status (duration, error, warnings) is fetched per stage. Merges
where branches join run as Ray tasks too. Values reach the driver only through :meth:`materialize` (the
run's final artifacts) and :meth:`collect_outputs` (the result's per-stage outputs, fetched in one batch at
the end of the run, unless ``fetch_outputs`` is false). :meth:`cancel` stops stages that are in flight
(``ray.cancel(force=True)``: their workers are killed), which the runner does on a failure, a timeout or
Ctrl-C *before* it builds the result, so the merges the result needs find free CPUs. :meth:`shutdown`,
which the runner calls once the result is built, releases the Ray session (a weakref finalizer does it too,
if ``shutdown`` never comes).

A stage's timeout (``task.timeout``) counts from when its task is handed to Ray: with a local cluster at
most ``workers`` tasks are in flight, so that is when it starts; on a cluster found running (no such bound)
it includes the time the task waits there for resources.

Options (the pipeline file's ``[executor_options]``): ``address`` (else ``STAGEKIT_RAY_ADDRESS``, else
``RAY_ADDRESS``, else a local cluster of ``num_cpus`` or ``workers`` CPUs), ``runtime_env``,
``task_options`` (for every stage task: ``num_cpus``, ``memory``...), ``max_retries`` (0: a stage runs
once), ``object_store_memory``, ``temp_dir``, ``keep_temp``, ``fetch_outputs``, ``init_options`` (more
``ray.init`` arguments).
"""

from __future__ import annotations

import collections
import time
import weakref
from collections.abc import Callable, Collection, Mapping
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError

from stagekit import ContractSpec, ExecutorError, Outcome, StageTimeoutError, Task
from stagekit_ray import worker
from stagekit_ray.cluster import Session, open_session

_SCALARS = (int, float, str, bool, bytes, type(None))


class RayExecutor:
    """Runs each stage as a Ray task; see the module docstring for the options."""

    name = "ray"

    def __init__(
        self,
        workers: int | None = None,
        host: Any = None,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        task_options: Mapping[str, Any] | None = None,
        max_retries: int = 0,
        object_store_memory: int | None = None,
        temp_dir: str | None = None,
        keep_temp: bool = False,
        fetch_outputs: bool = True,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.workers = workers
        # `host` is accepted as every executor factory's argument: contract settings (with the host spec the
        # workers rebuild) travel with each task, as its checker's `spec`.
        self.fetch_outputs = fetch_outputs
        self.session: Session = open_session(
            address=address, num_cpus=num_cpus or workers, runtime_env=runtime_env, temp_dir=temp_dir,
            keep_temp=keep_temp, object_store_memory=object_store_memory, init_options=init_options)
        # A cluster started here has `workers` CPUs, which bounds the stages in flight already (and lets Ray
        # pipeline them); a cluster found running gets the bound here.
        self._cap = workers if self.session.owned != "cluster" else None
        # With the run store: workers of a cluster started here share the driver's disk, so they write their
        # stages' outputs themselves (big values never travel through the driver); on another cluster the
        # workers may not reach the workspace, and outputs left in Ray's object store are not stored.
        self.stores_outputs = self.session.owned == "cluster"
        # the session is released by shutdown(); the safety net: when this executor is collected, or at exit
        self._finalizer = weakref.finalize(self, self.session.close)
        self._task_options = {"max_retries": max_retries, **(task_options or {})}
        self._stage_fn: Any = ray.remote(worker.run_stage)
        self._merge_fn: Any = ray.remote(worker.merge_values).options(num_returns=2, max_retries=max_retries,
                                                                      name="stagekit:merge")
        self._running: dict[Any, tuple[str, tuple[str, ...], list[Any]]] = {}  # status ref -> stage
        self._deadlines: dict[Any, tuple[float, float, Task]] = {}  # status ref -> (deadline, launched, task)
        self._queue: collections.deque[Task] = collections.deque()  # over the `workers` limit
        self._done: list[Outcome] = []  # failed before reaching Ray
        self._puts: dict[int, tuple[Any, Any]] = {}  # id(driver value) -> (value, its ref)
        self._merges: dict[int, tuple[Any, Any]] = {}  # id(merge function) -> (function, its ref)

    @property
    def address(self) -> str | None:
        return self.session.address

    # --- the executor protocol --------------------------------------------------------------------------

    def submit(self, task: Task) -> None:
        if self._cap is not None and len(self._running) >= self._cap:
            self._queue.append(task)
        else:
            self._launch(task)

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if not self._running and not self._done:
            if timeout is not None:
                return []
            raise ExecutorError("executor 'ray': wait() was called with no stage running")
        finished, self._done = self._done, []
        until = None if timeout is None else time.perf_counter() + timeout
        while self._running:
            wake = min([d for d, _, _ in self._deadlines.values()], default=None)
            if until is not None:
                wake = until if wake is None else min(wake, until)
            block = None if wake is None else max(wake - time.perf_counter(), 0.0)
            pending = list(self._running)
            ready, rest = ray.wait(pending, num_returns=1, timeout=0 if finished else block)
            if rest and ready:
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
            finished += [self._collect(ref) for ref in ready]
            finished += self._expired()
            if finished or (until is not None and time.perf_counter() >= until):
                break
        self._launch_queued()
        return finished + self._drain_done()

    def cancel(self, names: Collection[str] | None = None) -> list[Outcome]:
        """Stop the named stages (every one in flight if None): one that finished meanwhile is collected,
        one still running has its worker killed (``ray.cancel(force=True)``), one not yet launched is dropped."""

        def wanted(name: str) -> bool:
            return names is None or name in names

        out = [o for o in self._done if wanted(o.name)]
        self._done = [o for o in self._done if not wanted(o.name)]
        refs = [ref for ref, (name, _, _) in self._running.items() if wanted(name)]
        ready = set(ray.wait(refs, num_returns=len(refs), timeout=0)[0]) if refs else set()
        for ref in refs:
            if ref in ready:
                out.append(self._collect(ref))
                continue
            name = self._running.pop(ref)[0]
            self._deadlines.pop(ref, None)
            _cancel(ref)
            out.append(Outcome(name, None, stopped="killed"))
        kept: collections.deque[Task] = collections.deque()
        for task in self._queue:
            if wanted(task.stage.name):
                out.append(Outcome(task.stage.name, None, stopped="cancelled"))
            else:
                kept.append(task)
        self._queue = kept
        self._launch_queued()
        return out

    def materialize(self, value: Any) -> Any:
        return ray.get(value) if isinstance(value, ray.ObjectRef) else value

    def run_merge(self, merge: Callable[[Any, list[Any]], Any], base: Any, branches: list[Any]) -> Any:
        if not any(isinstance(v, ray.ObjectRef) for v in [base, *branches]):
            return merge(base, branches)  # everything is in the driver already
        merge_ref = self._merge_ref(merge)
        if merge_ref is None:  # the merge cannot travel: merge here
            return ray.put(merge(self.materialize(base), [self.materialize(b) for b in branches]))
        status, merged = self._merge_fn.remote(merge_ref, self._arg(base), *map(self._arg, branches))
        try:
            error = ray.get(status)
        except RayError as exc:
            raise ExecutorError(f"executor 'ray': a merge task failed: {type(exc).__name__}: {exc}") from exc
        if error is not None:
            raise error  # a MergeConflictError: the runner names the join, the artifact and the branches
        return merged

    def collect_outputs(self, outputs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The result's per-stage outputs: fetched in one batch (``fetch_outputs``), else left as references.

        An output lost with its worker keeps its reference (the others are still fetched).
        """
        if not self.fetch_outputs:
            return outputs
        collected = {stage: dict(outs) for stage, outs in outputs.items()}
        slots = [(outs, key) for outs in collected.values()
                 for key, value in outs.items() if isinstance(value, ray.ObjectRef)]
        if not slots:
            return collected
        try:
            values = ray.get([outs[key] for outs, key in slots])
        except RayError:  # one was lost with its worker: fetch one by one, keeping the reference of the lost
            values = [_fetch(outs[key]) for outs, key in slots]
        for (outs, key), value in zip(slots, values, strict=True):
            outs[key] = value
        return collected

    def shutdown(self, *, cancel: bool) -> None:
        """Cancel what is in flight (``cancel``), then release the Ray session; idempotent.

        The runner calls this after it built the result (final artifacts and outputs are in the driver by
        then). A session this executor found open is left running; a connection it made is closed, a local
        cluster it started is stopped.
        """
        if cancel:
            for ref in self._running:
                _cancel(ref)
            self._running.clear()
            self._deadlines.clear()
            self._queue.clear()
        self._puts.clear()
        self._merges.clear()
        self._finalizer()

    # --- internals --------------------------------------------------------------------------------------

    def _launch(self, task: Task) -> None:
        stage = task.stage
        names: list[str] = []
        values: list[Any] = []
        params: dict[str, Any] = {}
        try:
            for key, value in task.kwargs.items():
                if key in stage.requires:
                    names.append(key)
                    values.append(self._arg(value, stage.name, key))
                else:
                    params[key] = value
            options = {**self._task_options, "num_returns": 1 + len(stage.provides),
                       "name": f"stagekit:{stage.name}"}
            refs = self._stage_fn.options(**options).remote(
                stage, _by_value(stage), params, _spec(task), task.log_level, tuple(names), *values,
                strict=task.strict, store=task.store)
        except ExecutorError as exc:
            self._done.append(Outcome(stage.name, None, exc))
            return
        except Exception as exc:
            self._done.append(Outcome(stage.name, None, ExecutorError(
                f"stage {stage.name!r} cannot be sent to Ray (its function, params and contracts must be "
                f"serializable): {type(exc).__name__}: {exc}")))
            return
        status, outputs = (refs, []) if not stage.provides else (refs[0], list(refs[1:]))
        self._running[status] = (stage.name, stage.provides, outputs)
        if task.timeout is not None:
            launched = time.perf_counter()
            self._deadlines[status] = (launched + task.timeout, launched, task)

    def _launch_queued(self) -> None:
        while self._queue and (self._cap is None or len(self._running) < self._cap):
            self._launch(self._queue.popleft())

    def _expired(self) -> list[Outcome]:
        """Stages past their timeout: their workers killed, each a StageTimeoutError naming it."""
        now, found = time.perf_counter(), []
        for ref, (deadline, launched, task) in list(self._deadlines.items()):
            if deadline <= now and ref in self._running:
                del self._deadlines[ref]
                name = self._running.pop(ref)[0]
                _cancel(ref)
                limit = task.timeout or 0.0
                found.append(Outcome(name, None, StageTimeoutError(
                    f"stage {name!r} timed out after {limit:g} s (its timeout)", stage=name, timeout=limit),
                    now - launched))
        return found

    def _arg(self, value: Any, stage: str = "", artifact: str = "") -> Any:
        """An artifact as a task argument: a reference as is, a driver value put in the store once."""
        if isinstance(value, (ray.ObjectRef, *_SCALARS)):
            return value
        known = self._puts.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        try:
            ref = ray.put(value)
        except Exception as exc:
            where = f"stage {stage!r} requires artifact {artifact!r}" if stage else "a merge needs a value"
            raise ExecutorError(f"{where} ({type(value).__name__}), which cannot be put in Ray's object "
                                f"store: {type(exc).__name__}: {exc}") from exc
        self._puts[id(value)] = (value, ref)
        return ref

    def _merge_ref(self, merge: Callable[..., Any]) -> Any:
        known = self._merges.get(id(merge))
        if known is not None and known[0] is merge:
            return known[1]
        try:
            ref = ray.put(merge)
        except Exception:
            ref = None
        self._merges[id(merge)] = (merge, ref)
        return ref

    def _collect(self, status_ref: Any) -> Outcome:
        name, provides, outputs = self._running.pop(status_ref)
        self._deadlines.pop(status_ref, None)
        try:
            status: worker.Status = ray.get(status_ref)
        except RayTaskError as exc:  # the task failed outside the stage: its arguments, its unpickling
            cause = worker.unwrap(exc.cause) if isinstance(exc.cause, BaseException) else exc
            return Outcome(name, None, ExecutorError(
                f"stage {name!r} could not run on Ray: {type(cause).__name__}: {cause}"))
        except RayError as exc:  # the worker died, the object was lost, the task was cancelled
            return Outcome(name, None, ExecutorError(
                f"the Ray worker running stage {name!r} failed: {type(exc).__name__}: {exc}"))
        logs = list(status.logs)  # captured in the worker: the runner re-emits them in the driver
        if status.error is not None:
            return Outcome(name, None, status.error, status.duration, list(status.warnings), logs=logs,
                           forwarded=True)
        return Outcome(name, dict(zip(provides, outputs, strict=True)), None, status.duration,
                       list(status.warnings), logs=logs, forwarded=True, stored=status.stored)

    def _drain_done(self) -> list[Outcome]:
        done, self._done = self._done, []
        return done


def _by_value(stage: Any) -> Any:
    """The stage's function if it lives in the driver's ``__main__``, which a worker cannot import by name."""
    func = stage.func
    return func if callable(func) and getattr(func, "__module__", "") == "__main__" else None


def _spec(task: Task) -> ContractSpec | None:
    """The run's contract settings, as the worker rebuilds its checker from them (None: no contracts)."""
    return None if task.checker is None else task.checker.spec


def _cancel(ref: Any) -> None:
    """Kill the worker running the task of ``ref`` (a task not started yet is dropped)."""
    try:
        ray.cancel(ref, force=True)
    except Exception:  # already finished, or its worker is gone
        return


def _fetch(ref: Any) -> Any:
    try:
        return ray.get(ref)
    except RayError:
        return ref
