"""The runner: one ``get_ready``/``done`` loop over an executor (graphlib's protocol, with counters).

The loop resolves each ready stage's inputs (merging concurrent branches where they join), fires the
lifecycle hooks in the driver, hands the stage to the executor, and records what comes back. Per-stage work
is constant: nothing in the loop grows with the size of the pipeline.
"""

from __future__ import annotations

import gc
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from stagekit._collector import collector_paused
from stagekit.errors import ContractWarning, MergeConflictError, RunInterrupted, StageError, StagekitError
from stagekit.graph.dag import INITIAL, Dag
from stagekit.graph.plan import Merged, Version, VersionPlan, plan_versions
from stagekit.plugins.registry import Provenance
from stagekit.records import Checker, Outcome, RunInfo, RunResult, StageRecord, Task
from stagekit.run import logs
from stagekit.run.executors.base import Executor


@attrs.define
class RunOptions:
    executor: Executor
    merge: Callable[[Any, list[Any]], Any]
    hook: Any = None  # the plugin manager's hook relay; None runs without lifecycle hooks
    checker: Checker | None = None
    params: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    origins: Mapping[str, Provenance] = attrs.field(factory=dict)
    info: RunInfo | None = None
    # the level at which stages' log records are created and kept ("INFO", 20...); None: the driver root
    # logger's effective level, i.e. whatever the driver's logging configuration lets through
    log_level: int | str | None = None


class _Run:
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
        self.before = _caller(hook, "stagekit_before_stage")
        self.after = _caller(hook, "stagekit_after_stage")
        self.on_error = _caller(hook, "stagekit_on_stage_error")
        self.failure: BaseException | None = None
        self.failed_stage: str | None = None
        self.log_level = logs.level_number(opts.log_level)

    def value(self, artifact: str, version: Version, join: str) -> Any:
        if isinstance(version, str):
            return self.produced[version][artifact]
        key = (artifact, version)
        if key not in self.merged:
            base = self.value(artifact, version.base, join)
            branches = [self.value(artifact, w, join) for w in version.writers]
            try:
                self.merged[key] = self.opts.executor.run_merge(self.opts.merge, base, branches)
            except MergeConflictError as exc:
                exc.join, exc.artifact, exc.branches = join, artifact, list(version.writers)
                raise
        return self.merged[key]

    def submit(self, name: str) -> None:
        stage = self.dag.stages[name]
        produced = self.produced
        kwargs = {a: produced[v][a] if v.__class__ is str else self.value(a, v, name)
                  for a, v in self.plan.inputs[name]}
        if stage.params or name in self.opts.params:
            kwargs.update(stage.params)
            kwargs.update(self.opts.params.get(name, {}))
        if self.before is not None:
            self.before(run=self.info, stage=stage)
        self.opts.executor.submit(Task(stage, kwargs, self.opts.checker, self.log_level))

    def finish(self, outcome: Outcome) -> bool:
        name = outcome.name
        record = self.records[name] = StageRecord(name, self.plugin_of(name), "ok", outcome.duration)
        if outcome.warnings:
            record.warnings = outcome.warnings
            _warn(name, outcome.warnings)
        if outcome.logs:  # shown where they were logged, or (from a worker) re-emitted here
            record.logs = logs.emit(name, outcome.logs) if outcome.forwarded else outcome.logs
        stage = self.dag.stages[name]
        if outcome.error is not None or outcome.outputs is None:
            record.status, record.error = "failed", outcome.error
            if self.failure is None:
                self.failure, self.failed_stage = outcome.error, outcome.name
            if self.on_error is not None:
                self.on_error(run=self.info, stage=stage, error=outcome.error)
            return False
        self.produced[name] = outcome.outputs
        record.provided = stage.provides
        if self.after is not None:
            self.after(run=self.info, stage=stage, record=record)
        return True

    def execute(self) -> None:
        # The DAG was validated (no cycle) when it was built, so plain counters replace graphlib here.
        deps, successors = self.dag.deps, self.dag.successors
        waiting = {name: len(preds) for name, preds in deps.items()}
        ready = [name for name, n in waiting.items() if n == 0]
        executor, in_flight = self.opts.executor, 0
        while ready or in_flight:
            if self.failure is None:
                for name in ready:
                    try:
                        self.submit(name)
                    except StagekitError as exc:  # e.g. a merge conflict where branches join
                        self.failure, self.failed_stage = exc, name
                        self.records[name] = StageRecord(name, self.plugin_of(name), "failed", error=exc)
                        break
                    in_flight += 1
            ready = []
            if in_flight == 0:
                break
            for outcome in executor.wait():
                in_flight -= 1
                if self.finish(outcome):
                    for nxt in successors[outcome.name]:
                        waiting[nxt] -= 1
                        if not waiting[nxt]:
                            ready.append(nxt)

    def plugin_of(self, name: str) -> str | None:
        origin = self.opts.origins.get(name)
        return origin.plugin if origin is not None else None

    def result(self, started: float) -> RunResult:
        records = self.records
        if len(records) < len(self.dag.order):  # keep the records in the DAG's order, cancelled included
            self.records = records = {n: records.get(n) or StageRecord(n, self.plugin_of(n), "cancelled")
                                      for n in self.dag.order}
        done = {n for n, r in records.items() if r.status == "ok"}
        complete = len(done) == len(records)
        artifacts: dict[str, Any] = {}
        materialize = self.opts.executor.materialize
        for artifact in self.dag.roles:
            version = self.plan.final(artifact, None if complete else done)
            if version is None:
                continue
            try:
                artifacts[artifact] = materialize(self.value(artifact, version, "the end of the run"))
            except MergeConflictError as exc:
                if self.failure is None:
                    self.failure, self.failed_stage = exc, None
        return RunResult(
            run_id=self.info.run_id, ok=self.failure is None, artifacts=artifacts, stages=self.records,
            outputs=self.opts.executor.collect_outputs({n: o for n, o in self.produced.items() if n != INITIAL}),
            duration=time.perf_counter() - started,
            executor=self.info.executor, snapshot=self.info.snapshot,
        )


def run_dag(dag: Dag, artifacts: Mapping[str, Any], opts: RunOptions) -> RunResult:
    """Run every stage of ``dag`` once, in dependency order, and return what they produced."""
    started = time.perf_counter()
    run = _Run(dag, artifacts, opts)
    hook = opts.hook
    if hook is not None:
        hook.stagekit_before_run(run=run.info)
    interrupted = False
    # Everything allocated so far (stages, DAG, plan) lives through the run: keep the collector from
    # rescanning it on every full collection, which otherwise makes per-stage cost grow with size.
    gc.freeze()
    try:
        with logs.run_level(run.log_level):
            run.execute()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        gc.unfreeze()
    # The result is built while the executor still runs: its final values may live in its workers (Ray).
    try:
        result = run.result(started)
    finally:
        opts.executor.shutdown(cancel=interrupted)
    result.ok = result.ok and not interrupted
    if hook is not None:
        hook.stagekit_after_run(run=run.info, result=result)
    if interrupted:
        raise RunInterrupted("run interrupted; the stages that completed are kept on this error's result",
                             result=result)
    if run.failure is not None:
        error = _failure_error(run, result)
        if error is run.failure:
            raise error
        raise error from run.failure
    return result


def _failure_error(run: _Run, result: RunResult) -> BaseException:
    exc, name = run.failure, run.failed_stage
    assert exc is not None
    plugin = _plugin(run.opts.origins, name) if name else None
    if isinstance(exc, StagekitError):
        # our own errors (a contract, a merge conflict) already say what is wrong: keep their type
        exc.result = result  # type: ignore[attr-defined]
        if getattr(exc, "stage", None) is None:
            exc.stage = name  # type: ignore[attr-defined]
        return exc
    origin = run.opts.origins.get(name or "")
    where = f" [{origin}]" if origin else ""
    return StageError(
        f"stage {name!r}{where} failed: {type(exc).__name__}: {exc}",
        stage=name or "?", plugin=plugin, original=exc, result=result,
    )


def _plugin(origins: Mapping[str, Provenance], name: str | None) -> str | None:
    origin = origins.get(name or "")
    return origin.plugin if origin else None


def _warn(stage: str, found: list[Any]) -> None:
    """Issue a stage's contract warnings in the driver, whichever executor ran it."""
    for w in found:
        warnings.warn(ContractWarning(str(w)), stacklevel=3)


def _caller(hook: Any, name: str) -> Callable[..., Any] | None:
    """The hook caller if any plugin implements it: hooks nobody implements cost nothing per stage."""
    if hook is None:
        return None
    caller = getattr(hook, name)
    return caller if caller.get_hookimpls() else None


__all__ = ["RunOptions", "run_dag"]
