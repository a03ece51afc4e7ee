"""How a run stops: the runner's steps for failures, the grace period, timeouts and Ctrl-C.

When something fails (a stage, a join's merge, a hook, a timeout) the run stops deterministically: what is
reported first is the failure of the stage earliest in the DAG's order, the same under every executor.
From the first failure on, stages later in that order are not started and those running are cancelled at
once (``Executor.cancel``: workers killed, threads abandoned); stages earlier in the order still run, for
at most ``grace`` seconds after the first failure (one of them may fail too, and would then be the one
reported first), after which everything still running is cancelled. Every finished stage's outputs are kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stagekit.errors import ExecutorError
from stagekit.records import Outcome, StageRecord
from stagekit.run import faults

if TYPE_CHECKING:
    from stagekit.graph.dag import Dag
    from stagekit.run.options import RunOptions

__all__ = ["StoppingSteps"]

_ABSENT: Any = object()


class StoppingSteps:
    """The runner's steps that stop a run (the runner's ``_Run`` has them)."""

    # what they use of the run (set by ``_Run``)
    dag: Dag
    opts: RunOptions
    records: dict[str, StageRecord]
    running: dict[str, None]
    cancel: Callable[..., list[Outcome]] | None
    stopped: list[Outcome]
    batch: list[Outcome]
    failures: list[tuple[int, int, BaseException, str | None]]
    bound: int | None
    position: dict[str, int]
    grace_until: float | None
    ending: bool
    deadline: float | None
    run_timed_out: bool

    if TYPE_CHECKING:
        def finish(self, outcome: Outcome) -> bool: raise NotImplementedError

    def wait(self) -> list[Outcome]:
        executor = self.opts.executor
        if self.cancel is None:
            return executor.wait()
        until = self.deadline
        if self.grace_until is not None and (until is None or self.grace_until < until):
            until = self.grace_until
        if until is None:
            return executor.wait() or self.nothing()
        left = until - time.perf_counter()
        outcomes = executor.wait(left) if left > 0 else []
        if not outcomes and time.perf_counter() >= until:
            self.run_timed_out = self.deadline is not None and time.perf_counter() >= self.deadline
            self.stop_all()
        return outcomes

    def nothing(self) -> list[Outcome]:
        """An executor's wait() returned nothing without a timeout: a bug of its own, never a busy loop."""
        raise ExecutorError(f"executor {self.opts.executor.name!r}: wait() returned nothing while "
                            f"{', '.join(map(repr, self.running))} ran")

    def fail(self, name: str | None, error: BaseException) -> None:
        """Record a failure; from here on only stages earlier in the DAG's order start, for a while."""
        if not self.position:
            self.position = {n: i for i, n in enumerate(self.dag.order)}
        place = self.position[name] if name is not None else len(self.position)
        self.failures.append((place, len(self.failures), error, name))
        if self.bound is not None and place >= self.bound:
            return
        self.bound = place
        if self.grace_until is None:
            self.grace_until = time.perf_counter() + self.opts.grace
        if self.cancel is None:  # an executor that cannot cancel: nothing else starts, nothing is waited for
            self.ending = True
            self.running.clear()
            return
        later = [n for n in self.running if self.position[n] > place]
        if later:
            self.stopped += _covering(self.cancel(later), later)

    def stop_all(self) -> None:
        """Nothing more starts; everything still running is cancelled (Ctrl-C, the grace or timeout ran out)."""
        self.ending = True
        if self.bound is None:
            if not self.position:
                self.position = {n: i for i, n in enumerate(self.dag.order)}
            self.bound = len(self.position)
        if self.cancel is not None and self.running:
            self.stopped += _covering(self.cancel(), list(self.running))

    def settle(self) -> None:
        """After Ctrl-C: record what cancel() handed back (finished stages keep their outputs), run no more."""
        for outcome in [*self.batch, *self.stopped]:  # returned before the interrupt, not yet recorded
            if self.running.pop(outcome.name, _ABSENT) is not _ABSENT:
                self.finish(outcome)
        self.stopped = []
        self.stop_all()
        stopped, self.stopped = self.stopped, []
        for outcome in stopped:
            if self.running.pop(outcome.name, _ABSENT) is not _ABSENT:
                self.finish(outcome)

    def timed_out_check(self) -> None:
        """A run that timed out fails even where every stage it stopped was still waiting to start."""
        if self.run_timed_out and self.opts.timeout is not None and not self.failures:
            waiting = next((n for n in self.dag.order if n not in self.records), None)
            if waiting is not None:
                self.fail(waiting, faults.run_timeout(waiting, self.opts.timeout, started=False))


def _covering(outcomes: list[Outcome], names: list[str]) -> list[Outcome]:
    """``outcomes`` and a "cancelled" one for each of ``names`` they leave out (an executor's race, or one
    that lost track): every stage the runner cancels is accounted for, so the loop always ends."""
    covered = {o.name for o in outcomes}
    return outcomes + [Outcome(n, None, stopped="cancelled") for n in names if n not in covered]
