"""Issue 13 under the ray executor: stage logs forwarded, failures that cancel what runs (its workers
killed), timeouts, Ctrl-C while stages hold the CPUs a merge of the result needs, merges that raise or
return another type, a stage's sys.exit. docs/faults.md ("Runs") points here."""

from __future__ import annotations

import _thread
import logging
import threading
import time
from typing import Any

import pytest
import ray_fault_stages as rf
import stagekit_ray.plugin

from stagekit import (
    Host,
    MergeError,
    Pipeline,
    RunInterrupted,
    StageError,
    StageTimeoutError,
    hookimpl,
    stage,
)

pytestmark = pytest.mark.ray


class BoxMerges:
    def __init__(self, merge: Any) -> None:
        self.merge = merge

    @hookimpl
    def stagekit_register_merges(self, register: Any) -> None:
        register(rf.Box, self.merge)


def host(*extra: object) -> Host:
    return Host(plugins=[stagekit_ray.plugin, *extra], autoload=False, env={})


def run(stages: list[Any], *plugins: object, **options: Any) -> Any:
    return Pipeline(stages, host=host(*plugins)).run(executor="ray", **options)


def test_stage_logs_are_forwarded_from_ray_workers(ray_cluster: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        result = run([stage(rf.logs_info, name="chatty", provides=["x"])], log_level="INFO")
    (entry,) = result.stages["chatty"].logs
    assert (entry.level_name, entry.logger, entry.message) == ("INFO", "rayfaults", "hello from a Ray worker")
    shown = [r for r in caplog.records if r.name == "rayfaults"]
    assert [(r.getMessage(), r.stagekit_stage) for r in shown] == [("hello from a Ray worker", "chatty")]


def test_a_stage_that_calls_sys_exit_fails_by_name(ray_cluster: Any) -> None:
    with pytest.raises(StageError, match="stage 'bye' failed: SystemExit: 3"):
        run([stage(rf.exits, name="bye", provides=["x"])])


def test_a_failure_kills_a_sibling_that_never_ends(ray_cluster: Any) -> None:
    stages = [stage(rf.fails, name="bad", provides=["x"], params={"seconds": 0.2}),
              stage(rf.hangs, name="forever", provides=["y"])]
    start = time.perf_counter()
    with pytest.raises(StageError, match="stage 'bad'") as err:
        run(stages)
    assert time.perf_counter() - start < 30
    assert err.value.result.stages["forever"].status == "cancelled"


def test_a_stage_past_its_timeout_is_stopped(ray_cluster: Any) -> None:
    start = time.perf_counter()
    with pytest.raises(StageTimeoutError, match=r"stage 'stuck' timed out after 1 s \(its timeout\)") as err:
        run([stage(rf.ok, name="fine", provides=["x"]), stage(rf.hangs, name="stuck", provides=["y"], timeout=1)])
    assert time.perf_counter() - start < 30
    assert err.value.result.stages["fine"].status == "ok" and err.value.result.outputs["fine"] == {"x": 1}


def test_ctrl_c_while_stages_hold_the_cpus_a_merge_needs(ray_cluster: Any) -> None:
    # the two-CPU session cluster: both hanging stages hold a CPU, and the result needs d merged (a Ray task
    # that needs a CPU too): the running stages must be cancelled before the result is built
    stages = [stage(rf.make_dict, name="make", provides=["d"]),
              stage(rf.add_key, name="upd_a", requires=["d"], provides=["d"], params={"key": "a", "value": 1}),
              stage(rf.add_key, name="upd_b", requires=["d"], provides=["d"], params={"key": "b", "value": 2}),
              stage(rf.hangs, name="hang1", requires=["d"], provides=["h1"], after=["upd_a", "upd_b"]),
              stage(rf.hangs, name="hang2", requires=["d"], provides=["h2"], after=["upd_a", "upd_b"])]
    stages[3:] = [s.evolve(requires=[]) for s in stages[3:]]  # they read nothing: d stays unread in the run

    class Interrupt:
        @hookimpl
        def stagekit_before_stage(self, run: Any, stage: Any) -> None:
            if stage.name == "hang2":  # both hanging stages handed to Ray: press Ctrl-C a moment later
                threading.Timer(1.5, _thread.interrupt_main).start()

    start = time.perf_counter()
    with pytest.raises(RunInterrupted) as err:
        run(stages, Interrupt())
    assert time.perf_counter() - start < 40
    result = err.value.result
    assert result.artifacts["d"] == {"base": 1, "a": 1, "b": 2}  # merged after the stages were cancelled
    assert {n: r.status for n, r in result.stages.items() if n.startswith("hang")} == {
        "hang1": "cancelled", "hang2": "cancelled"}


def _raising(base: Any, branches: list[Any]) -> Any:
    raise RuntimeError("the merge is broken")


def _listing(base: Any, branches: list[Any]) -> Any:
    return [item for b in branches for item in b.items]


@pytest.mark.parametrize(("merge", "message"), [(_raising, "RuntimeError: the merge is broken"),
                                                (_listing, "returned a list, but artifact 'box' is declared as Box")])
def test_a_merge_that_fails_in_a_ray_task_is_a_merge_error(ray_cluster: Any, merge: Any, message: str) -> None:
    stages = [stage(rf.make_box, name="make", provides=["box"], types={"box": rf.Box}),
              stage(rf.add_item, name="left", requires=["box"], provides=["box"], params={"item": 1}),
              stage(rf.add_item, name="right", requires=["box"], provides=["box"], params={"item": 2}),
              stage(rf.ok, name="read", requires=["box"], provides=["done"])]
    with pytest.raises(MergeError, match=message) as err:
        run(stages, BoxMerges(merge))
    e = err.value
    assert (e.join, e.artifact, e.branches) == ("read", "box", ["left", "right"])
    assert e.result.outputs["left"] == {"box": rf.Box((0, 1))}


@pytest.mark.filterwarnings("ignore:The inplace keyword")
def test_frames_are_isolated_between_ray_stages(ray_cluster: Any) -> None:
    stages = [stage(rf.make_frame, name="make", provides=["frame"]),
              stage(rf.mutate_frame, name="mutate", requires=["frame"], provides=["n"]),
              stage(rf.sum_frame, name="total", requires=["frame"], provides=["total"])]
    result = run(stages)
    assert (result.artifacts["total"], result.artifacts["n"]) == (6, 2)
