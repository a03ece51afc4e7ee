"""The runner: one ``get_ready``/``done`` loop over an executor (graphlib's protocol, with counters).

The loop resolves each ready stage's inputs (merging concurrent branches where they join), fires the
lifecycle hooks in the driver, hands the stage to the executor, and records what comes back. Per-stage work
is constant: nothing in the loop grows with the size of the pipeline.

How a run stops when something fails is in :mod:`stagekit.run.stopping`; what changes with a run store
(stages reused instead of run) in :mod:`stagekit.run.incremental`.
"""

from __future__ import annotations

import functools
import gc
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from stagekit._collector import collector_paused
from stagekit.errors import (
    ContractWarning,
    CorruptObjectError,
    ExecutorError,
    MergeConflictError,
    MergeError,
    PipelineWarning,
    StagekitError,
)
from stagekit.graph.dag import INITIAL, Dag
from stagekit.graph.plan import Merged, Version, VersionPlan, plan_versions
from stagekit.records import Decision, LazyValues, Outcome, RunInfo, RunResult, StageRecord, StoredValue, Task
from stagekit.run import faults, logs
from stagekit.run.incremental import Incremental, IncrementalSteps
from stagekit.run.options import RunOptions
from stagekit.run.stopping import StoppingSteps

_ABSENT: Any = object()


class _Run(IncrementalSteps, StoppingSteps):
    """The state of one run. Only the loop in :meth:`execute` touches it."""

    def __init__(self, dag: Dag, artifacts: Mapping[str, Any], opts: RunOptions) -> None:
        self.dag, self.opts = dag, opts
        if dag.plan is None:  # planned once per DAG: a pipeline run again reuses it
            with collector_paused():
                dag.plan = plan_versions(dag)
        self.plan: VersionPlan = dag.plan
        self.produced: dict[str, dict[str, Any]] = {INITIAL: dict(artifacts)}
        self.merged: dict[tuple[str, Merged], Any] = {}
        self.records: dict[str, StageRecord] = {}  # filled as stages finish; the rest are cancelled
        self.info = opts.info or RunInfo(uuid.uuid4().hex[:12], tuple(dag.order), opts.executor.name, None, "off")
        hook = opts.hook
        # the hooks' callers, called directly (this is per stage); what one raises becomes a HookError here
        self.before = faults.implemented(hook, "stagekit_before_stage")
        self.after = faults.implemented(hook, "stagekit_after_stage")
        self.on_error = faults.implemented(hook, "stagekit_on_stage_error")
        self.submit_task = opts.executor.submit
        self.stage_timeouts = opts.stage_timeouts or None
        self.checker, self.strict = opts.checker, opts.strict
        self.log_level = logs.level_number(opts.log_level)
        self.running: dict[str, None] = {}  # submitted, not finished (insertion-ordered)
        self.cancel: Callable[..., list[Outcome]] | None = getattr(opts.executor, "cancel", None)
        self.stopped: list[Outcome] = []  # outcomes cancel() handed back, for the loop to record
        self.batch: list[Outcome] = []  # the outcomes the loop is recording
        self.failures: list[tuple[int, int, BaseException, str | None]] = []  # (position, seq, error, stage)
        self.bound: int | None = None  # the DAG position of the earliest failure: nothing from there starts
        self.position: dict[str, int] = {}  # filled at the first failure: the cost of a failed run only
        self.grace_until: float | None = None
        self.ending = False  # nothing more starts (the grace or the run's timeout ran out, or no cancel())
        self.deadline = None if opts.timeout is None else time.perf_counter() + opts.timeout
        self.run_timed_out = False
        self.declared: dict[str, Any] = {}  # artifact -> the classes its merges must return (None: unchecked)
        # with a run store: fingerprints of what the run made, and the stages it takes from the store
        self.inc = None if opts.cache is None else Incremental(opts.cache, self.plan, self.produced[INITIAL])
        self.worker_store = None if opts.cache is None or not getattr(opts.executor, "stores_outputs", False) \
            else opts.cache.worker_store
        self.instant: list[Outcome] = []  # reused stages: finished without the executor
        self.decisions: dict[str, Decision] = {}  # why each stage that runs runs
        if self.cancel is None and (opts.timeout is not None or opts.stage_timeouts or
                                    any(s.timeout is not None for s in dag.stages.values())):
            warnings.warn(PipelineWarning(f"executor {opts.executor.name!r} has no cancel(): timeouts are not "
                                          "enforced"), stacklevel=4)

    # --- values and merges ----------------------------------------------------------------------------

    def value(self, artifact: str, version: Version, join: str) -> Any:
        if isinstance(version, str):
            return self.produced[version][artifact]
        key = (artifact, version)
        if key not in self.merged:
            base = self.value(artifact, version.base, join)
            branches = [self.value(artifact, w, join) for w in version.writers]
            merge = self.opts.merge
            accepted = self.accepted(artifact)
            if accepted is not None:
                merge = faults.TypeCheckedMerge(merge, accepted, faults.declared_label(self.dag, artifact), artifact)
            try:
                self.merged[key] = self.opts.executor.run_merge(merge, base, branches)
            except (MergeConflictError, MergeError) as exc:
                exc.join, exc.artifact, exc.branches = join, artifact, list(version.writers)
                raise
        return self.merged[key]

    def accepted(self, artifact: str) -> Any:
        """The classes a merge of ``artifact`` must return (from the stages' ``types``), or None: unchecked."""
        if artifact not in self.declared:
            self.declared[artifact] = faults.accepted_classes(faults.declared_type(self.dag, artifact))
        return self.declared[artifact]

    # --- the loop -------------------------------------------------------------------------------------

    def submit(self, name: str) -> None:
        stage = self.dag.stages[name]
        params = {**stage.params, **self.opts.params.get(name, {})} if stage.params or name in self.opts.params \
            else None
        if self.inc is not None and self.reuse(name, stage, params or {}):
            return
        try:
            produced = self.produced
            kwargs = {a: produced[v][a] if v.__class__ is str else self.value(a, v, name)
                      for a, v in self.plan.inputs[name]}
        except CorruptObjectError as exc:  # a reused stage's stored output: that stage runs again
            return self.corrupt(name, exc)
        except StagekitError as exc:  # a conflict or a failed merge where branches join
            return self.refuse(name, exc)
        if params:
            kwargs.update(params)
        if self.before is not None:
            try:
                self.before(run=self.info, stage=stage)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                return self.refuse(name, self.hook_error(self.before, exc, name))
        timeout = stage.timeout
        if self.stage_timeouts is not None:
            timeout = self.stage_timeouts.get(name, timeout)
        self.running[name] = None
        self.submit_task(Task(stage, kwargs, self.checker, self.log_level, timeout, self.strict, self.worker_store))

    def refuse(self, name: str, error: StagekitError) -> None:
        """A stage that could not be handed to the executor: failed, with what stopped it."""
        self.records[name] = StageRecord(name, self.plugin_of(name), "failed", error=error)
        self.fail(name, error)

    def hook_error(self, caller: Any, exc: BaseException, stage: str | None) -> StagekitError:
        error = faults.HookCaller(caller, caller.name, self.opts.describe_plugin).error(exc, stage)
        error.__cause__ = exc
        return error

    def finish(self, outcome: Outcome) -> bool:
        name = outcome.name
        if outcome.stopped is not None:
            return self.record_stopped(outcome)
        if outcome.reused is not None:
            return self.finish_reused(outcome)
        record = self.records[name] = StageRecord(name, self.plugin_of(name), "ok", outcome.duration)
        decision = self.decisions.pop(name, None)
        if decision is not None:
            record.reason, record.fingerprint = decision.reason, decision.fingerprint
        if outcome.warnings:
            record.warnings = outcome.warnings
            _warn(name, outcome.warnings)
        if outcome.logs:  # shown where they were logged, or (from a worker) re-emitted here
            record.logs = logs.emit(name, outcome.logs) if outcome.forwarded else outcome.logs
        stage = self.dag.stages[name]
        if outcome.error is not None or outcome.outputs is None:
            self.stage_failed(name, stage, record, outcome.error,
                              outcome.error or ExecutorError(f"stage {name!r} gave no outputs and no error"))
            return False
        self.produced[name] = outcome.outputs
        record.provided = stage.provides
        if self.inc is not None and not self.store(name, stage, record, outcome):
            return False
        return self.finished(name, stage, record)

    def stage_failed(self, name: str, stage: Any, record: StageRecord, error: BaseException | None,
                     reported: BaseException) -> None:
        """The stage failed with ``error``: recorded, the run fails (with ``reported``), the error hook fires."""
        record.status, record.error = "failed", error
        self.fail(name, reported)
        if self.on_error is not None:
            try:
                self.on_error(run=self.info, stage=stage, error=error)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                self.fail(name, self.hook_error(self.on_error, exc, name))

    def finished(self, name: str, stage: Any, record: StageRecord) -> bool:
        if self.after is not None:
            try:
                self.after(run=self.info, stage=stage, record=record)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # the stage's outputs are kept; the run fails, naming the hook
                self.fail(name, self.hook_error(self.after, exc, name))
                return False
        return True

    def record_stopped(self, outcome: Outcome) -> bool:
        name = outcome.name
        record = self.records[name] = StageRecord(name, self.plugin_of(name), "cancelled")
        if outcome.stopped == "abandoned":
            record.status = "abandoned"
        if self.run_timed_out and outcome.stopped != "cancelled" and self.opts.timeout is not None:
            record.status = "failed"
            record.error = faults.run_timeout(name, self.opts.timeout)
            self.fail(name, record.error)
        return False

    def execute(self) -> None:
        # The DAG was validated (no cycle) when it was built, so plain counters replace graphlib here.
        deps, successors = self.dag.deps, self.dag.successors
        waiting = {name: len(preds) for name, preds in deps.items()}
        ready = [name for name, n in waiting.items() if n == 0]
        running, wait = self.running, self.opts.executor.wait
        while True:
            for name in ready:
                if self.bound is None or (not self.ending and self.position[name] < self.bound):
                    self.submit(name)
            ready = []
            if self.instant:  # stages reused from the run store, finished without the executor
                outcomes, self.instant = self.instant, []
            elif not running:
                break
            elif self.stopped:
                outcomes, self.stopped = self.stopped, []
            elif self.deadline is None and self.grace_until is None:  # no clock: the common case
                outcomes = wait() or self.nothing()
            else:
                outcomes = self.wait()
            self.batch = outcomes  # what Ctrl-C in the middle of this loop would leave unrecorded: settle()
            for outcome in outcomes:
                if running.pop(outcome.name, _ABSENT) is _ABSENT and outcome.reused is None:
                    continue  # not (or no longer) in flight: cancel() reported it already
                if self.finish(outcome):
                    if self.inc is not None and outcome.name in self.inc.waiting_for:  # ran again: a corrupt object
                        ready += self.inc.waiting_for.pop(outcome.name)
                        continue
                    for nxt in successors[outcome.name]:
                        waiting[nxt] -= 1
                        if not waiting[nxt]:
                            ready.append(nxt)

    def plugin_of(self, name: str) -> str | None:
        origin = self.opts.origins.get(name)
        return origin.plugin if origin is not None else None

    # --- the result -----------------------------------------------------------------------------------

    def result(self, started: float) -> RunResult:
        records = self.records
        if self.failures or len(records) < len(self.dag.order):  # in the DAG's order, cancelled included
            self.records = records = {n: records.get(n) or StageRecord(n, self.plugin_of(n), "cancelled")
                                      for n in self.dag.order}
        done = {n for n, r in records.items() if r.status in ("ok", "cached")}
        complete = len(done) == len(records)
        artifacts: dict[str, Any] = {}
        materialize = self.opts.executor.materialize
        deferred: dict[str, Any] = {}
        for artifact in self.dag.roles:
            version = self.plan.final(artifact, None if complete else done)
            if version is None:
                continue
            lazy = self.produced.get(version) if isinstance(version, str) else None
            if isinstance(lazy, LazyValues) and not lazy.loaded(artifact):  # reused: read only if asked for
                deferred[artifact] = lazy.loader(artifact)
                continue
            if lazy is not None and lazy[artifact].__class__ is StoredValue:  # left in the store by its worker
                deferred[artifact] = functools.partial(materialize, lazy[artifact])
                continue
            try:
                artifacts[artifact] = materialize(self.value(artifact, version, "the end of the run"))
            except StagekitError as exc:
                self.fail(None, exc)
            except Exception as exc:
                self.fail(None, ExecutorError(f"artifact {artifact!r} cannot be brought into the driver: "
                                              f"{type(exc).__name__}: {exc}"))
        outputs = {n: o for n, o in self.produced.items() if n != INITIAL}
        if deferred:
            artifacts = LazyValues(deferred, artifacts)  # type: ignore[assignment]
        return RunResult(
            run_id=self.info.run_id, ok=not self.failures, artifacts=artifacts, stages=self.records,
            outputs=self.opts.executor.collect_outputs(outputs), duration=time.perf_counter() - started,
            executor=self.info.executor, snapshot=self.info.snapshot,
        )

    def errors(self, result: RunResult) -> list[BaseException]:
        """Every failure, named, in the DAG's order (the first is the one to raise)."""
        return [faults.named(error, name, self.opts.origins, result)
                for _, _, error, name in sorted(self.failures, key=lambda f: (f[0], f[1]))]


def run_dag(dag: Dag, artifacts: Mapping[str, Any], opts: RunOptions) -> RunResult:
    """Run every stage of ``dag`` once, in dependency order, and return what they produced."""
    started = time.perf_counter()
    run = _Run(dag, artifacts, opts)
    hook = opts.hook
    if hook is not None and hook.stagekit_before_run.get_hookimpls():
        try:
            faults.HookCaller(hook.stagekit_before_run, "stagekit_before_run", opts.describe_plugin)(run=run.info)
        except StagekitError as exc:  # nothing has run: the executor is released, the error names the plugin
            result = run.result(started)
            opts.executor.shutdown(cancel=True)
            exc.result = result  # type: ignore[attr-defined]
            raise
    interrupted: list[str] = []
    # Everything allocated so far (stages, DAG, plan) lives through the run: keep the collector from
    # rescanning it on every full collection, which otherwise makes per-stage cost grow with size.
    gc.freeze()
    try:
        with logs.run_level(run.log_level), faults.sigterm_interrupts(interrupted):
            try:
                run.execute()
            except KeyboardInterrupt:
                interrupted.insert(0, "SIGINT")
                run.settle()  # in-flight work is stopped before the result is built (which may need merges)
        run.timed_out_check()
        result = run.result(started)
    except BaseException:  # a second Ctrl-C while stopping, or a bug: never leave workers behind
        opts.executor.shutdown(cancel=True)
        raise
    finally:
        gc.unfreeze()
    opts.executor.shutdown(cancel=bool(interrupted or run.failures))
    return _end(run, result, interrupted)


def _end(run: _Run, result: RunResult, interrupted: list[str]) -> RunResult:
    """Fire stagekit_after_run, then return the result or raise what ended the run."""
    result.errors = run.errors(result)
    result.ok = not result.errors and not interrupted
    return faults.conclude(result, interrupted, run.opts.hook, run.info, run.opts.describe_plugin)


def _warn(stage: str, found: list[Any]) -> None:
    """Issue a stage's contract warnings in the driver, whichever executor ran it."""
    for w in found:
        warnings.warn(ContractWarning(str(w)), stacklevel=3)


__all__ = ["run_dag"]
