"""The process executor's hard cases: crashes, interrupts, unpicklable values, the spawn start method, and
what travels by value (lambdas, closures, values plain pickle refuses). Functions of ``__main__`` (scripts,
``python -c``, ``python -``) are tested from real interpreters in tests/integration/test_process_main.py, a
Jupyter kernel in tests/integration/test_notebook.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import cloudpickle
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


def _adder(n: int) -> Any:
    def add(x: int) -> int:
        return x + n
    return add


def test_lambdas_and_closures_run_as_under_threads() -> None:
    stages = [stage(lambda: 20, name="start", provides=["x"]),
              stage(_adder(22), name="add", requires=["x"], provides=["y"]),
              stage(lambda y, k: [y, k(y)], name="call", requires=["y"], provides=["z"],
                    params={"k": lambda v: v * 2})]  # a param plain pickle refuses travels too
    results = [Pipeline(stages).run(executor=ex, workers=2).artifacts for ex in ("thread", "process")]
    assert results[0] == results[1] == {"x": 20, "y": 42, "z": [42, 84]}


def test_values_plain_pickle_refuses_travel_both_ways() -> None:
    make = stage(lambda: {"f": lambda v: v + 1}, name="make", provides=["fn"])
    use = stage(lambda fn: fn["f"](1), name="use", requires=["fn"], provides=["two"])
    result = Pipeline([make, use]).run(executor="process")
    assert result.artifacts["two"] == 2 and result.artifacts["fn"]["f"](2) == 3


def test_a_stage_that_cannot_travel_at_all_is_refused_clearly() -> None:
    lock = threading.Lock()
    local = stage(lambda: lock.locked(), name="local", provides=["x"])
    # refused by the check before the run (nothing has started), as `stagekit check` reports it
    with pytest.raises(ExecutorError, match="stage 'local' cannot be sent to a worker of executor 'process'.*lock") \
            as err:
        Pipeline([local]).run(executor="process")
    assert "thread executor" in str(err.value)


def test_importable_functions_still_travel_by_reference() -> None:
    import pickle

    data = cloudpickle.dumps(ss.make)
    assert b"sample_stages:make_dict" in data and b"cloudpickle" not in data  # a name, not code
    assert pickle.loads(data).callable is ss.make_dict


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


def test_cloudpickle_is_imported_only_when_something_travels() -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom stagekit import Pipeline, ProcessExecutor, stage\n"
            "Pipeline([stage(lambda: 1, name='one', provides=['x'])]).run(executor='thread')\n"
            "print('cloudpickle' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
