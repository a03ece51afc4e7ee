"""Faults never hang and never pass for success: every failure named, nothing finished lost, no stage can
change what another sees. Each fault of issue 13 reproduced under sequential, thread and process (the
``executor`` fixture); the rows of docs/faults.md ("Runs") point here. The CLI's side (exit statuses, one
line, Ctrl-C, SIGTERM) is in tests/integration/test_cli_faults.py, Ray's in the plugin's test_ray_faults.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import fault_stages as fs
import pytest

from stagekit import (
    ExecutorError,
    HookError,
    Host,
    InputMutatedError,
    MergeConflictError,
    MergeError,
    Pipeline,
    PipelineError,
    Stage,
    StageError,
    StageTimeoutError,
    hookimpl,
    stage,
)

GRACE = 0.5  # how long stages earlier in the DAG's order may still run after a failure (the default is 2 s)


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("STAGEKIT_CANCEL_GRACE", str(GRACE))
    yield


def run(stages: list[Stage], executor: str, host: Host | None = None, **options: Any) -> Any:
    return Pipeline(stages, host=host).run(executor=executor, workers=options.pop("workers", 2), **options)


def isolated_host(*plugins: object) -> Host:
    return Host(plugins=[(f"p{i}", p) for i, p in enumerate(plugins)], autoload=False, env={})


# --- 1. every way a stage can fail is a named failure -----------------------------------------------------


def test_a_stage_that_calls_sys_exit_fails_by_name(executor: str) -> None:
    bye = stage(fs.exits, name="bye", provides=["x"])
    fine = stage(fs.ok, name="fine", provides=["y"])
    start = time.perf_counter()
    with pytest.raises(StageError) as err:
        run([fine, bye], executor)
    assert time.perf_counter() - start < 10  # never a hang (it was one under thread)
    e = err.value
    assert e.stage == "bye" and isinstance(e.original, SystemExit) and "SystemExit: 3" in str(e)
    assert e.result.outputs["fine"] == {"y": 1}  # what finished is kept
    assert e.result.stages["bye"].status == "failed"


def test_a_stage_raising_a_base_exception_fails_by_name(executor: str) -> None:
    with pytest.raises(StageError, match="stage 'bail' failed: Bail: out of here") as err:
        run([stage(fs.bails, name="bail", provides=["x"])], executor)
    assert type(err.value.original).__name__ == "Bail"


def test_a_stage_that_returns_none_for_an_artifact_fails(executor: str) -> None:
    forgot = stage(fs.returns_none, name="forgot", provides=["x"])
    with pytest.raises(StageError, match="stage 'forgot' provides 'x' but returned None") as err:
        run([forgot], executor)
    assert isinstance(err.value.original, TypeError)
    meant = stage(fs.returns_none, name="meant", provides=["x"], types={"x": int | None})
    assert run([meant], executor).artifacts["x"] is None  # declared: None is a value of x


# --- 2. isolation of branches ------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:The inplace keyword")
def test_a_frame_mutated_in_place_changes_only_the_stage_copy(executor: str) -> None:
    stages = [stage(fs.make_frame, name="make", provides=["frame"]),
              stage(fs.mutate_frame, name="mutate", requires=["frame"], provides=["n"]),
              stage(fs.sum_frame, name="total", requires=["frame"], provides=["total"])]
    result = run(stages, executor)
    assert result.artifacts["total"] == 6  # not 500: the sibling saw the frame as it was made
    assert result.artifacts["n"] == 2  # the mutating stage saw its own edits
    frame = result.artifacts["frame"]
    assert frame["v"].tolist() == [1, 2, 3] and frame.index.name is None


def test_an_array_arrives_read_only(executor: str) -> None:
    stages = [stage(fs.make_array, name="make", provides=["array"]),
              stage(fs.sum_array, name="total", requires=["array"], provides=["total"], params={"wait": 0.0}),
              stage(fs.mutate_array, name="mutate", requires=["array"], provides=["m"])]
    with pytest.raises(StageError, match="stage 'mutate'.*read-only") as err:
        run(stages, executor)
    assert err.value.result.outputs["total"] == {"total": 3}
    assert err.value.result.artifacts["array"].tolist() == [0, 1, 2]


def test_strict_isolation_names_the_stage_that_changed_an_input(executor: str) -> None:
    stages = [stage(fs.make_dict, name="make", provides=["d"]),
              stage(fs.mutate_dict, name="sneak", requires=["d"], provides=["n"])]
    assert run(stages, executor).ok  # not checked by default
    with pytest.raises(InputMutatedError, match="stage 'sneak' changed its input artifact 'd'") as err:
        run(stages, executor, isolation="strict")
    assert (err.value.stage, err.value.artifact) == ("sneak", "d")
    assert run([stages[0], stage(fs.read_dict, name="reader", requires=["d"], provides=["n"])], executor,
               isolation="strict").artifacts["n"] == 1  # a stage that only reads passes the check
    with pytest.raises(PipelineError, match="isolation must be one of copy, strict"):
        run(stages, executor, isolation="paranoid")


# --- 3. merges and hooks ---------------------------------------------------------------------------------


class RaisingMerge:
    """Registers a merge for Box that raises something other than a conflict."""

    @hookimpl
    def stagekit_register_merges(self, register: Any) -> None:
        def merge(base: Any, branches: list[Any]) -> Any:
            raise RuntimeError("the merge is broken")

        register(fs.Box, merge)


class WrongTypeMerge:
    @hookimpl
    def stagekit_register_merges(self, register: Any) -> None:
        register(fs.Box, lambda base, branches: [item for b in branches for item in b.items])


def box_stages(hang: bool = False) -> list[Stage]:
    stages = [stage(fs.make_box, name="make", provides=["box"], types={"box": fs.Box}),
              stage(fs.add_item, name="left", requires=["box"], provides=["box"], params={"item": 1}),
              stage(fs.add_item, name="right", requires=["box"], provides=["box"], params={"item": 2, "wait": 0.3}),
              stage(fs.ok, name="read", requires=["box"], provides=["done"])]
    if hang:  # a stage still running when the merge fails (where stages run side by side): the run ends anyway
        stages.append(stage(fs.hangs, name="slowpoke", provides=["late"], after=["left"]))
    return stages


def test_a_merge_that_raises_is_a_merge_error_keeping_the_partial_result(executor: str) -> None:
    start = time.perf_counter()
    with pytest.raises(MergeError, match="merging artifact 'box' where branches join at 'read'") as err:
        run(box_stages(hang=executor != "sequential"), executor, host=isolated_host(RaisingMerge()), workers=3)
    assert time.perf_counter() - start < 10  # the hanging sibling was cancelled, not waited for
    e = err.value
    assert (e.join, e.artifact, e.branches) == ("read", "box", ["left", "right"])
    assert "plugin 'p0'" in e.origin and "RuntimeError: the merge is broken" in str(e)
    assert e.result.outputs["left"] == {"box": fs.Box((0, 1))}  # the branches' outputs are kept
    assert e.result.stages["read"].status == "failed"


def test_a_merge_returning_another_type_than_declared_is_a_merge_error(executor: str) -> None:
    with pytest.raises(MergeError) as err:
        run(box_stages(), executor, host=isolated_host(WrongTypeMerge()))
    message = str(err.value)
    assert "registered by plugin 'p0' returned a list" in message and "declared as Box" in message
    assert err.value.artifact == "box" and err.value.join == "read"


class FailingAfterRun:
    @hookimpl
    def stagekit_after_run(self, run: Any, result: Any) -> None:
        raise RuntimeError("the report server is down")


def test_a_hook_that_fails_after_the_run_keeps_the_run(executor: str) -> None:
    host = isolated_host(FailingAfterRun())
    with pytest.raises(HookError, match="hook stagekit_after_run of plugin 'p0' raised RuntimeError") as err:
        run([stage(fs.ok, name="one", provides=["x"])], executor, host=host)
    result = err.value.result
    assert result.ok and result.artifacts["x"] == 1 and result.stages["one"].status == "ok"


class Exploding:
    def __init__(self, hook: str, stage: str) -> None:
        self.hook, self.stage = hook, stage

    @hookimpl
    def stagekit_before_stage(self, run: Any, stage: Stage) -> None:
        if self.hook == "before" and stage.name == self.stage:
            raise SystemExit("the plugin quits")

    @hookimpl
    def stagekit_after_stage(self, run: Any, stage: Stage, record: Any) -> None:
        if self.hook == "after" and stage.name == self.stage:
            raise KeyError("bookkeeping")


def test_a_hook_that_raises_for_a_stage_names_the_plugin_and_stage(executor: str) -> None:
    stages = [stage(fs.make_dict, name="make", provides=["d"]),
              stage(fs.read_dict, name="reader", requires=["d"], provides=["n"])]
    with pytest.raises(HookError, match="hook stagekit_before_stage for stage 'reader' of plugin 'p0' raised "
                                        "SystemExit: the plugin quits") as err:
        run(stages, executor, host=isolated_host(Exploding("before", "reader")))
    assert (err.value.stage, err.value.hook) == ("reader", "stagekit_before_stage")
    assert err.value.result.outputs["make"] == {"d": {"base": 1}}
    with pytest.raises(HookError, match="stagekit_after_stage for stage 'make'.*KeyError") as err:
        run(stages, executor, host=isolated_host(Exploding("after", "make")))
    assert err.value.result.outputs["make"] == {"d": {"base": 1}}  # the stage's outputs are kept
    assert err.value.result.stages["reader"].status == "cancelled"


# --- 4. no hangs: cancelling, timeouts --------------------------------------------------------------------


def test_a_failure_does_not_wait_for_a_sibling_that_never_ends(executor: str) -> None:
    # declared first, the failing stage is earlier in the DAG's order: the hanging one is cancelled at once
    stages = [stage(fs.fails, name="bad", provides=["x"], params={"seconds": 0.1}),
              stage(fs.hangs, name="forever", provides=["y"])]
    start = time.perf_counter()
    with pytest.raises(StageError, match="stage 'bad'") as err:
        run(stages, executor)
    assert time.perf_counter() - start < 10
    status = err.value.result.stages["forever"].status
    assert status == {"thread": "abandoned", "process": "cancelled", "sequential": "cancelled"}[executor]


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_stages_earlier_in_the_order_get_a_grace_period_then_are_cancelled(executor: str) -> None:
    stages = [stage(fs.hangs, name="forever", provides=["y"]),
              stage(fs.slow_ok, name="quick", provides=["z"], params={"seconds": 0.2}),
              stage(fs.fails, name="bad", provides=["x"], params={"seconds": 0.05})]
    start = time.perf_counter()
    with pytest.raises(StageError, match="stage 'bad'") as err:
        run(stages, executor, workers=3)
    elapsed = time.perf_counter() - start
    assert GRACE <= elapsed < GRACE + 8
    records = err.value.result.stages
    assert records["quick"].status == "ok" and err.value.result.outputs["quick"] == {"z": 1}  # finished in time
    assert records["forever"].status == ("abandoned" if executor == "thread" else "cancelled")


def test_a_dead_worker_next_to_a_hanging_sibling_ends_the_run() -> None:
    stages = [stage(fs.dies, name="crasher", provides=["x"], params={"seconds": 0.1}),
              stage(fs.hangs, name="forever", provides=["y"])]
    start = time.perf_counter()
    with pytest.raises(ExecutorError, match="worker process running stage 'crasher' died") as err:
        run(stages, "process")
    assert time.perf_counter() - start < 10
    assert err.value.result.stages["forever"].status == "cancelled"


def test_a_dead_worker_is_always_blamed_on_the_stage_it_was_running() -> None:
    innocent = [stage(fs.slow_ok, name=f"ok{i}", provides=[f"y{i}"], params={"seconds": 0.05 * i})
                for i in range(3)]
    crasher = stage(fs.dies, name="crasher", provides=["x"], params={"seconds": 0.05})
    for _ in range(6):  # it was wrong in about 2 runs of 10
        with pytest.raises(ExecutorError) as err:
            run([*innocent, crasher], "process", workers=4)
        assert err.value.stage == "crasher" and "stage 'crasher' died" in str(err.value)
        assert all("ok" not in str(e) for e in err.value.result.errors)


def test_a_stage_past_its_timeout_is_stopped(executor: str) -> None:
    stages = [stage(fs.ok, name="fine", provides=["x"]),
              stage(fs.hangs, name="stuck", provides=["y"], timeout=0.3)]
    start = time.perf_counter()
    with pytest.raises(StageTimeoutError, match=r"stage 'stuck' timed out after 0.3 s \(its timeout\)") as err:
        run(stages, executor)
    assert time.perf_counter() - start < 8
    e = err.value
    assert (e.stage, e.scope, e.timeout) == ("stuck", "stage", 0.3) and isinstance(e, StageError)
    assert e.result.outputs["fine"] == {"x": 1} and e.result.stages["stuck"].status == "failed"


def test_stage_timeouts_given_to_the_run_override_the_stage(executor: str) -> None:
    stuck = stage(fs.hangs, name="stuck", provides=["y"], timeout=60)
    with pytest.raises(StageTimeoutError, match="after 0.2 s"):
        run([stuck], executor, stage_timeouts={"stuck": 0.2})


def test_the_run_timeout_names_the_stage_still_running(executor: str) -> None:
    stages = [stage(fs.ok, name="fine", provides=["x"]),
              stage(fs.hangs, name="stuck", requires=["x"], provides=["y"])]
    start = time.perf_counter()
    with pytest.raises(StageTimeoutError, match="stage 'stuck' was still running when the run timed out after "
                                                r"1.5 s \(the run's timeout\)") as err:
        run(stages, executor, timeout=1.5)
    assert time.perf_counter() - start < 1.5 + 8
    assert err.value.scope == "run" and err.value.result.outputs["fine"] == {"x": 1}


def test_timeouts_are_checked_before_the_run() -> None:
    stages = [stage(fs.ok, name="one", provides=["x"])]
    with pytest.raises(PipelineError) as err:
        Pipeline(stages).run(timeout=0, stage_timeouts={"onr": 1.0, "one": "soon"})  # type: ignore[dict-item]
    assert err.value.problems == [
        "the run's timeout must be a positive number of seconds, not 0",
        "unknown stage 'onr' (did you mean 'one'?) in the per-stage timeouts",
        "the timeout of stage 'one' must be a number of seconds, not str",
    ]


# --- 5. deterministic reports ----------------------------------------------------------------------------


def test_the_failure_reported_first_is_the_earliest_in_the_dag_order(executor: str) -> None:
    # 'late' fails at once, 'early' after a while; 'early' comes first in the DAG's order, so it is reported
    stages = [stage(fs.fails, name="early", provides=["a"], params={"seconds": 0.2}),
              stage(fs.fails, name="late", provides=["b"]),
              stage(fs.ok, name="after", requires=["b"], provides=["c"])]
    with pytest.raises(StageError) as err:
        run(stages, executor)
    assert err.value.stage == "early"
    errors = [e.stage for e in err.value.result.errors]  # all that happened are listed, the earliest first
    assert errors == (["early"] if executor == "sequential" else ["early", "late"])  # (sequential never ran 'late')
    if executor != "sequential":
        assert any("also: stage 'late'" in note for note in err.value.__notes__)


def test_several_conflicts_report_the_same_one_under_every_executor(executor: str) -> None:
    def pair(art: str, reader: str, wait: float) -> list[Stage]:
        return [stage(fs.make_dict, name=f"make_{art}", provides=[art]),
                *(stage(fs.add_key_after, name=f"{art}{i}", requires=[art], provides=[art],
                        params={"key": "k", "value": i, "wait": wait}) for i in (1, 2)),
                stage(fs.ok, name=reader, requires=[art], provides=[f"n_{art}"])]

    # the join at 'read_a' comes first in the DAG's order, but its branches finish later than those of 'read_b'
    stages = [*pair("a", "read_a", 0.3), *pair("b", "read_b", 0.0)]
    with pytest.raises(MergeConflictError) as err:
        run(stages, executor, workers=4)
    assert (err.value.join, err.value.artifact) == ("read_a", "a")
    assert (err.value.result.errors[0].join, err.value.result.errors[0].artifact) == ("read_a", "a")


def test_ctrl_c_in_the_driver_keeps_the_stages_that_finished() -> None:
    import signal
    import threading

    from stagekit import RunInterrupted

    stages = [stage(fs.ok, name="fine", provides=["x"]),
              stage(fs.hangs, name="sleeper", requires=["x"], provides=["y"], params={"seconds": 5}),
              stage(fs.ok, name="after", requires=["y"], provides=["z"])]
    main = threading.main_thread().ident
    assert main is not None
    threading.Timer(0.5, signal.pthread_kill, [main, signal.SIGINT]).start()  # Ctrl-C while 'sleeper' runs
    start = time.perf_counter()
    with pytest.raises(RunInterrupted) as err:
        run(stages, "sequential")
    assert time.perf_counter() - start < 4
    result = err.value.result
    assert result.outputs == {"fine": {"x": 1}}  # finished in the same wait() as the interrupted stage: kept
    assert {n: r.status for n, r in result.stages.items()} == {"fine": "ok", "sleeper": "cancelled",
                                                              "after": "cancelled"}


def test_a_validator_that_crashes_is_a_contract_error_naming_it(executor: str) -> None:
    import fault_validator

    from stagekit import ContractError

    host = Host(plugins=[fault_validator], autoload=False, env={})
    stages = [stage(fs.make_dict, name="make", provides=["d"]),
              stage(fs.read_dict, name="reader", requires=["d"], provides=["n"],
                    inputs={"d": fault_validator.CrashSchema()})]
    with pytest.raises(ContractError) as err:
        run(stages, executor, host=host)
    assert str(err.value) == ("the contract validator of plugin 'fault_validator' crashed checking stage 'reader' "
                              "input 'd': SystemExit: the validator quits")
    assert (err.value.stage, err.value.artifact, err.value.boundary) == ("reader", "d", "input")
    assert err.value.result.outputs["make"] == {"d": {"base": 1}}


class OldExecutor:
    """A plugin executor written before cancel() and wait(timeout): threads, no way to stop them."""

    name = "old"

    def __init__(self) -> None:
        import queue
        import threading

        self.done: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.threading = threading

    def submit(self, task: Any) -> None:
        from stagekit import run_task

        self.threading.Thread(target=lambda: self.done.put(run_task(task)), daemon=True).start()

    def wait(self) -> list[Any]:
        return [self.done.get()]

    def materialize(self, value: Any) -> Any:
        return value

    def collect_outputs(self, outputs: Any) -> Any:
        return outputs

    def run_merge(self, merge: Any, base: Any, branches: list[Any]) -> Any:
        return merge(base, branches)

    def shutdown(self, *, cancel: bool) -> None:
        pass


class OldPlugin:
    @hookimpl
    def stagekit_register_executors(self, register: Any) -> None:
        register("old", lambda workers=None, host=None: OldExecutor())


def test_an_executor_without_cancel_still_never_hangs_the_run() -> None:
    from stagekit import PipelineWarning

    host = isolated_host(OldPlugin())
    stages = [stage(fs.fails, name="bad", provides=["x"], params={"seconds": 0.1}),
              stage(fs.hangs, name="forever", provides=["y"])]
    start = time.perf_counter()
    with pytest.raises(StageError, match="stage 'bad'") as err:
        Pipeline(stages, host=host).run(executor="old")
    assert time.perf_counter() - start < 5  # nothing in flight is waited for
    assert err.value.result.stages["forever"].status == "cancelled"
    with pytest.warns(PipelineWarning, match="executor 'old' has no cancel\\(\\): timeouts are not enforced"):
        Pipeline([stage(fs.ok, name="one", provides=["x"])], host=host).run(executor="old", timeout=5)
