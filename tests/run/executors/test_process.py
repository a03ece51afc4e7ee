"""The process executor's hard cases: crashes, interrupts, unpicklable values, the spawn start method."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from interrupting import interrupt_run

import sample_stages as ss
from stagekit import ExecutorError, Pipeline, StageError, stage

TESTS = Path(__file__).parents[2]


@pytest.mark.parametrize("crash", [ss.die, ss.segfault])
def test_a_worker_that_dies_fails_the_run_naming_the_stage(crash: object) -> None:
    dead = stage(crash, name="crasher", requires=["d"], provides=["x"])  # type: ignore[arg-type]
    start = time.perf_counter()
    with pytest.raises(ExecutorError, match="worker process running stage 'crasher' died") as err:
        Pipeline([ss.make, dead]).run(executor="process", workers=2)
    assert time.perf_counter() - start < 60  # never a hang
    assert err.value.result.artifacts["d"] == {"base": 1}  # what completed is kept


def test_an_unpicklable_input_names_the_stage_and_artifact() -> None:
    lock = stage(ss.make_lock, name="lock", provides=["lock"])
    use = stage(ss.echo, name="use", requires=["lock"], provides=["y"])
    with pytest.raises(ExecutorError, match="stage 'lock' provided artifact 'lock'"):
        Pipeline([lock, use]).run(executor="process")
    with pytest.raises(ExecutorError, match="stage 'use' requires artifact 'lock'.*cannot be sent"):
        Pipeline([use]).run({"lock": ss.make_lock()}, executor="process")


def test_a_stage_that_is_not_importable_is_refused_clearly() -> None:
    local = stage(lambda: 1, name="local", provides=["x"])
    with pytest.raises(ExecutorError, match="stage 'local' cannot be sent to a worker process"):
        Pipeline([local]).run(executor="process")


def test_the_original_exception_survives_the_trip_back() -> None:
    bad = stage(ss.boom, name="bad", provides=["x"])
    with pytest.raises(StageError) as err:
        Pipeline([bad]).run(executor="process")
    assert isinstance(err.value.original, ValueError)
    assert any("worker traceback" in note for note in getattr(err.value.original, "__notes__", []))


def test_the_spawn_start_method_works() -> None:
    result = Pipeline([ss.make, ss.upd_a, ss.upd_b, ss.read_d]).run(
        executor="process", workers=2, executor_options={"start_method": "spawn"})
    assert result.artifacts["d"] == {"base": 1, "a": 1, "b": 2}


def test_two_cpu_bound_branches_run_in_parallel() -> None:
    branches = [stage(ss.burn, name=f"burn{i}", provides=[f"n{i}"], params={"seconds": 0.5}) for i in range(2)]
    result = Pipeline(branches).run(executor="process", workers=2)
    assert all(r.status == "ok" for r in result.stages.values())


def test_ctrl_c_cancels_promptly_and_keeps_what_completed(tmp_path: Path) -> None:
    code, out, seconds = interrupt_run("process", tmp_path)
    assert (code, seconds < 10) == (130, True), out
    assert "interrupted {'base': 1} ['cancelled', 'ok']" in out
