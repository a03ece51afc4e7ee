"""The executor protocol's cancel() and wait(timeout), and stage timeouts, on each built-in executor directly:
what the runner builds on to never hang (docs/executors.md, "Writing an executor")."""

from __future__ import annotations

import time
from typing import Any

import fault_stages as fs
import pytest

from stagekit import ProcessExecutor, SequentialExecutor, StageTimeoutError, Task, ThreadExecutor, stage


def make(executor: str) -> Any:
    return {"sequential": SequentialExecutor, "thread": ThreadExecutor, "process": ProcessExecutor}[executor](1)


def task(func: Any, name: str, timeout: float | None = None, **params: Any) -> Task:
    return Task(stage(func, name=name, provides=[f"{name}_out"], params=params), dict(params), timeout=timeout)


def test_cancel_stops_what_runs_and_drops_what_waits(executor: str) -> None:
    ex = make(executor)  # one worker: 'first' runs, then 'stuck'; 'queued' waits behind it
    try:
        ex.submit(task(fs.slow_ok, "first", seconds=0.1))
        (done,) = ex.wait()
        assert (done.name, done.outputs) == ("first", {"first_out": 1})
        ex.submit(task(fs.hangs, "stuck"))
        ex.submit(task(fs.ok, "queued"))
        start = time.perf_counter()
        assert ex.wait(0.3) == []  # nothing else finishes: it returns after about the time given
        assert 0.25 < time.perf_counter() - start < 5
        stopped = {o.name: o.stopped for o in ex.cancel()}
        running = {"sequential": "abandoned", "thread": "abandoned", "process": "killed"}[executor]
        assert stopped == {"stuck": running, "queued": "cancelled"}
        assert ex.cancel() == []  # everything is accounted for once
    finally:
        start = time.perf_counter()
        ex.shutdown(cancel=True)
        assert time.perf_counter() - start < 5


def test_cancel_keeps_what_finished_and_stops_only_what_it_names(executor: str) -> None:
    ex = make(executor)
    try:
        ex.submit(task(fs.ok, "quick"))
        ex.submit(task(fs.ok, "other"))
        if executor == "sequential":  # it runs what is queued only when waited for, and then up to a failure
            assert [o.name for o in ex.cancel(["other"])] == ["other"]  # not started: cancelled
            assert [(o.name, o.outputs) for o in ex.wait()] == [("quick", {"quick_out": 1})]
            return
        time.sleep(1.0)  # both finish, unread
        names = {o.name: (o.stopped, o.outputs) for o in ex.cancel(["quick"])}
        assert names == {"quick": (None, {"quick_out": 1})}  # finished: its own outcome, not a stop
        assert [(o.name, o.outputs) for o in ex.wait()] == [("other", {"other_out": 1})]
    finally:
        ex.shutdown(cancel=True)


def test_a_task_past_its_timeout_ends_with_a_stage_timeout_error(executor: str) -> None:
    ex = make(executor)
    try:
        ex.submit(task(fs.hangs, "stuck", timeout=0.3))
        ex.submit(task(fs.ok, "next"))  # the pool goes on: a fresh worker (or thread) takes the next task
        start = time.perf_counter()
        (out,) = ex.wait()
        assert time.perf_counter() - start < 5
        assert out.name == "stuck" and isinstance(out.error, StageTimeoutError)
        assert (out.error.stage, out.error.timeout, out.error.scope) == ("stuck", 0.3, "stage")
        assert [(o.name, o.outputs) for o in ex.wait()] == [("next", {"next_out": 1})]
    finally:
        ex.shutdown(cancel=True)


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_timeout_counts_from_when_the_stage_starts(executor: str) -> None:
    ex = make(executor)  # one worker: 'second' waits 0.6 s for 'first', longer than its own timeout
    try:
        ex.submit(task(fs.slow_ok, "first", seconds=0.6))
        ex.submit(task(fs.slow_ok, "second", timeout=0.5, seconds=0.05))
        outcomes = ex.wait() + ex.wait()
        assert [(o.name, o.error) for o in outcomes] == [("first", None), ("second", None)]
    finally:
        ex.shutdown(cancel=True)
