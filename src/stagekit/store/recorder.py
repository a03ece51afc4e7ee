"""RunRecorder: a lifecycle-hook plugin that records a run in the run database as it goes (a crash keeps
what finished). Registered on the host for the run by :class:`~stagekit.store.runstore.RunStore`.

Stage runs are committed in groups: a record waits at most :data:`GROUP_SECONDS` (a timer) for others to
share its transaction — a commit costs more than a fast stage — and a failure is written at once. A crash
loses at most the records of that last fraction of a second (those stages run again), never the database's
consistency."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from stagekit.errors import PipelineWarning, RunStoreError
from stagekit.hookspecs import hookimpl
from stagekit.store.rundb import RunDatabase, StageRun

if TYPE_CHECKING:
    from stagekit.records import RunInfo, RunResult, StageRecord
    from stagekit.stage import Stage

__all__ = ["GROUP_SECONDS", "RunRecorder"]

GROUP_SECONDS = 0.05


class RunRecorder:
    """A lifecycle-hook plugin that records each run into ``db`` as it goes: the run when it starts, each
    stage when it finishes or fails, the stages that never ran and the run's status when it ends.

    ``params`` are the run's param overrides by stage (recorded over each stage's defaults). A write that
    fails (a full disk) never breaks the run in the middle: recording stops there (what was written stays
    consistent), and when the run ends the error is raised, carrying the run's result, or, for a run that
    failed on its own, issued as a warning beside the run's own error.
    """

    def __init__(self, db: RunDatabase, pipeline_name: str, snapshot: str | None = None, *,
                 params: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.db = db
        self.pipeline_name = pipeline_name
        self.snapshot = snapshot
        self.params = dict(params or {})
        self._runs: dict[str, _Recording] = {}

    @hookimpl
    def stagekit_before_run(self, run: RunInfo) -> None:
        rec = self._runs[run.run_id] = _Recording()
        rec.attempt(lambda: self.db.begin_run(run.run_id, pipeline=self.pipeline_name, executor=run.executor,
                                              snapshot=self.snapshot or run.snapshot, stages=len(run.stages)))

    @hookimpl
    def stagekit_before_stage(self, run: RunInfo, stage: Stage) -> None:
        rec = self._runs.get(run.run_id)
        if rec is not None:
            rec.started[stage.name] = time.perf_counter()

    @hookimpl
    def stagekit_after_stage(self, run: RunInfo, stage: Stage, record: StageRecord) -> None:
        self._record(run, stage, record.status, record.duration, record=record)

    @hookimpl
    def stagekit_on_stage_error(self, run: RunInfo, stage: Stage, error: BaseException) -> None:
        rec = self._runs.get(run.run_id)
        began = rec.started.get(stage.name) if rec is not None else None
        duration = time.perf_counter() - began if began is not None else 0.0
        self._record(run, stage, "failed", duration, error=f"{type(error).__name__}: {error}")

    @hookimpl
    def stagekit_after_run(self, run: RunInfo, result: RunResult) -> None:
        rec = self._runs.pop(run.run_id, None)
        if rec is None:
            return
        rest = [StageRun(r.name, r.status, r.duration, error=None if r.error is None else str(r.error),
                         plugin=r.plugin, reason=r.reason)
                for r in result.stages.values() if r.name not in rec.recorded]
        rec.stop()
        rec.add(self.db, run.run_id, rest, now=True)  # never ran, or failed where branches join
        rec.attempt(lambda: self.db.end_run(run.run_id, _status(result)))
        if rec.error is None:
            return
        if result.ok:
            rec.error.result = result
            raise rec.error
        warnings.warn(PipelineWarning(f"the run was not fully recorded: {rec.error}"), stacklevel=2)

    def _record(self, run: RunInfo, stage: Stage, status: str, duration: float, *, record: StageRecord | None = None,
                error: str | None = None) -> None:
        rec = self._runs.get(run.run_id)
        if rec is None:
            return
        rec.recorded.add(stage.name)
        params = {**stage.params, **self.params.get(stage.name, {})}
        fp = record.fingerprint if record is not None else None
        stored = record.stored if record is not None else {}
        outputs = {a: (stored[a].to_json() if a in stored else None) for a in (record.provided if record else ())}
        entry = StageRun(stage.name, status, duration, fingerprint=getattr(fp, "digest", None), params=params,
                         inputs=dict(fp.inputs) if fp is not None else dict.fromkeys(stage.requires),
                         outputs=outputs, error=error, plugin=record.plugin if record is not None else None,
                         reason=record.reason if record is not None else None,
                         saved=record.saved if record is not None else 0.0,
                         # a cached run's parts are those of the run it reused (the one a later reason compares)
                         parts=fp.to_dict() if fp is not None and status != "cached" else None)
        rec.add(self.db, run.run_id, [entry], now=status == "failed")


class _Recording:
    """One run being recorded: which stages are, when each started, and the first write that failed."""

    def __init__(self) -> None:
        self.recorded: set[str] = set()
        self.started: dict[str, float] = {}
        self.error: RunStoreError | None = None
        self.pending: list[StageRun] = []  # recorded, not yet committed
        self.lock = threading.Lock()
        self.writing = threading.Lock()
        self.flusher: threading.Thread | None = None  # commits what is pending every GROUP_SECONDS
        self.done = threading.Event()

    def add(self, db: RunDatabase, run_id: str, entries: list[StageRun], *, now: bool) -> None:
        """Commit ``entries`` with those pending: at once (``now``), else within GROUP_SECONDS; the last
        call (``now``, at the run's end) also stops the flusher."""
        with self.lock:
            self.pending += entries
            if not now and self.flusher is None:
                self.flusher = threading.Thread(target=self._flush_every, args=(db, run_id), daemon=True,
                                                name="stagekit-run-recorder")
                self.flusher.start()
        if now:
            self.flush(db, run_id)

    def stop(self) -> None:
        self.done.set()
        if self.flusher is not None:
            self.flusher.join()

    def _flush_every(self, db: RunDatabase, run_id: str) -> None:
        while not self.done.wait(GROUP_SECONDS):
            self.flush(db, run_id)

    def flush(self, db: RunDatabase, run_id: str) -> None:
        with self.writing:  # one flush at a time, in order; adding goes on meanwhile (only ``lock`` held)
            with self.lock:
                pending, self.pending = self.pending, []
            if pending:
                self.attempt(lambda: db.record_stages(run_id, pending))

    def attempt(self, write: Callable[[], object]) -> None:
        if self.error is not None:  # after a failed write, nothing more: the records stay consistent
            return
        try:
            write()
        except RunStoreError as exc:
            self.error = exc


def _status(result: RunResult) -> str:
    if result.ok:
        return "ok"
    statuses = {r.status for r in result.stages.values()}
    return "interrupted" if "failed" not in statuses and "cancelled" in statuses else "failed"
