"""The ray executor runs the same pipelines as the sequential one, with the same results and hooks."""

from __future__ import annotations

import logging
import os
import re
import threading
import warnings
from typing import Any

import pandas as pd
import pytest
import ray_stages as rs
import stagekit_ray.plugin

from stagekit import (
    ContractSpec,
    ContractWarning,
    ExecutorError,
    Host,
    MergeConflictError,
    Pipeline,
    StageError,
    Task,
    hookimpl,
    stage,
)

pytestmark = pytest.mark.ray

JOIN = [rs.make_prices, rs.base_stats, rs.add_mean, rs.add_max, rs.report]


class Recorder:
    """Records the lifecycle hooks, as a plugin passed in code."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.durations: dict[str, float] = {}
        self.pids: set[int] = set()

    @hookimpl
    def stagekit_before_stage(self, run: Any, stage: Any) -> None:
        self.calls.append(("before", stage.name))
        self.pids.add(os.getpid())

    @hookimpl
    def stagekit_after_stage(self, run: Any, stage: Any, record: Any) -> None:
        self.calls.append(("after", stage.name))
        self.durations[stage.name] = record.duration
        self.pids.add(os.getpid())

    @hookimpl
    def stagekit_on_stage_error(self, run: Any, stage: Any, error: BaseException) -> None:
        self.calls.append(("error", stage.name))


def host(*extra: object) -> Host:
    return Host(plugins=[stagekit_ray.plugin, *extra], autoload=False, env={})


def run(stages: list[Any], executor: str, recorder: Recorder | None = None, **options: Any) -> Any:
    plugins = [recorder] if recorder is not None else []
    return Pipeline(stages, host=host(*plugins)).run({"n": 50}, executor=executor, **options)


def test_a_join_with_a_merge_gives_the_same_artifacts_and_hooks_as_sequential(ray_cluster: Any) -> None:
    seq_hooks, ray_hooks = Recorder(), Recorder()
    expected = run(JOIN, "sequential", seq_hooks)
    got = run(JOIN, "ray", ray_hooks)
    assert got.ok and got.executor == "ray"
    assert got.artifacts.keys() == expected.artifacts.keys()
    pd.testing.assert_frame_equal(got.artifacts["prices"], expected.artifacts["prices"])
    assert got.artifacts["stats"] == expected.artifacts["stats"]
    assert got.artifacts["stats"] == {"rows": 50, "mean_a": 24.5, "max_b": 98.0}
    assert got.artifacts["report"] == expected.artifacts["report"]
    # the per-stage outputs come back to the driver too, equal to sequential's
    assert got.outputs["add_mean"] == expected.outputs["add_mean"]
    made, made_seq = got.outputs["make_prices"]["prices"], expected.outputs["make_prices"]["prices"]
    pd.testing.assert_frame_equal(made, made_seq)
    # hooks fire in the driver for every stage, with durations measured in the worker
    assert sorted(ray_hooks.calls) == sorted(seq_hooks.calls)
    assert ray_hooks.pids == {os.getpid()}
    assert ray_hooks.durations["add_mean"] >= 0.2


def test_stages_run_in_ray_workers_and_outputs_stay_in_the_object_store(ray_cluster: Any) -> None:
    import ray

    ex = stagekit_ray.plugin.make_executor(workers=2, host=host().spec())
    ex.submit(Task(rs.make_prices, {"n": 3}))
    (made,) = ex.wait()
    assert made.error is None and isinstance(made.outputs["prices"], ray.ObjectRef)
    ex.submit(Task(rs.worker_pid, {"prices": made.outputs["prices"]}))
    (pid,) = ex.wait()
    assert ex.materialize(pid.outputs["pid"]) != os.getpid()
    ex.submit(Task(rs.worker_home, {"prices": made.outputs["prices"]}))
    (home,) = ex.wait()  # Ray's own daemons run with a home under the cluster's temporary directory
    assert ex.materialize(home.outputs["home"]) == os.environ.get("HOME")
    assert len(ex.materialize(made.outputs["prices"])) == 3
    ex.shutdown(cancel=False)
    ex.shutdown(cancel=False)  # idempotent
    assert ray.is_initialized()  # the session was the test's: left running


def test_a_failing_stage_fails_the_run_naming_it_and_keeps_what_was_produced(ray_cluster: Any) -> None:
    recorder = Recorder()
    with pytest.raises(StageError) as info:
        run([rs.make_prices, rs.explode], "ray", recorder)
    err = info.value
    assert err.stage == "explode"
    assert isinstance(err.original, ValueError) and "cannot use 50 rows" in str(err.original)
    assert "stage 'explode'" in str(err) and "ValueError: cannot use 50 rows" in str(err)
    assert err.result.stages["explode"].status == "failed"
    assert len(err.result.artifacts["prices"]) == 50  # what completed is kept, in the driver
    assert ("error", "explode") in recorder.calls


def test_a_merge_conflict_names_the_join_the_artifact_and_the_branches(ray_cluster: Any) -> None:
    stages = [rs.make_prices, rs.base_stats, rs.set_owner_x, rs.set_owner_y, rs.report]
    with pytest.raises(MergeConflictError) as info:
        run(stages, "ray")
    err = info.value
    assert err.join == "report" and err.artifact == "stats"
    assert sorted(err.branches) == ["set_owner_x", "set_owner_y"]
    assert "owner" in str(err)


def test_a_worker_that_dies_fails_the_run_naming_the_stage(ray_cluster: Any) -> None:
    with pytest.raises(ExecutorError, match="stage 'die'"):
        run([rs.make_prices, rs.die], "ray")


def test_an_artifact_ray_cannot_store_is_reported_by_stage_and_artifact(ray_cluster: Any) -> None:
    consume = stage(lambda lock: 1, name="consume", requires=["lock"], provides=["one"])
    with pytest.raises(ExecutorError, match=r"stage 'consume' requires artifact 'lock'"):
        Pipeline([consume], host=host()).run({"lock": threading.Lock()}, executor="ray")


def test_the_workers_limit_caps_the_stages_in_flight(ray_cluster: Any) -> None:
    result = run(JOIN, "ray", workers=1)
    assert result.artifacts["stats"]["max_b"] == 98.0


def test_an_unknown_executor_option_names_the_executor(ray_cluster: Any) -> None:
    with pytest.raises(ExecutorError, match=r"executor 'ray'.*unexpected keyword argument 'adress'"):
        run(JOIN, "ray", executor_options={"adress": "auto"})


def test_fetch_outputs_brings_the_outputs_back_or_leaves_the_references(ray_cluster: Any) -> None:
    import ray

    fetched = run(JOIN, "ray")
    values = [v for outs in fetched.outputs.values() for v in outs.values()]
    assert values and not any(isinstance(v, ray.ObjectRef) for v in values)
    kept = run(JOIN, "ray", executor_options={"fetch_outputs": False})
    assert kept.outputs.keys() == fetched.outputs.keys()
    refs = kept.outputs["add_mean"]["stats"]
    assert isinstance(refs, ray.ObjectRef) and ray.get(refs) == fetched.outputs["add_mean"]["stats"]
    assert all(isinstance(v, ray.ObjectRef) for outs in kept.outputs.values() for v in outs.values())
    assert kept.artifacts["stats"] == fetched.artifacts["stats"]  # the final artifacts always come back


def test_collect_outputs_fetches_references_in_one_batch_and_keeps_driver_values(ray_cluster: Any) -> None:
    import ray

    ex = stagekit_ray.plugin.make_executor(workers=2, host=host().spec())
    outputs = {"a": {"x": ray.put([1, 2]), "y": "here"}, "b": {"z": ray.put(3)}}
    got = ex.collect_outputs(outputs)
    assert got == {"a": {"x": [1, 2], "y": "here"}, "b": {"z": 3}}
    assert isinstance(outputs["a"]["x"], ray.ObjectRef)  # what it was given is left as it was
    ex.shutdown(cancel=False)
    lazy = stagekit_ray.plugin.make_executor(workers=2, host=host().spec(), fetch_outputs=False)
    assert lazy.collect_outputs(outputs) is outputs
    lazy.shutdown(cancel=False)


def contract_warnings(caught: list[warnings.WarningMessage]) -> list[tuple[str, str, str]]:
    """(stage, boundary, artifact) of each ContractWarning issued, in order."""
    found = []
    for w in caught:
        if issubclass(w.category, ContractWarning):
            where = re.match(r"stage '(\w+)' (input|output) '(\w+)'", str(w.message))
            assert where is not None, str(w.message)
            found.append(where.groups())
    return found


def test_warn_mode_reports_each_broken_contract_once_as_under_sequential(ray_cluster: Any) -> None:
    stages = [rs.make_negative_prices, rs.checked_stats]
    reported = {}
    for executor in ("sequential", "ray"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run(stages, executor, contracts="warn")
        assert result.ok and result.artifacts["stats"] == {"rows": 50}
        assert len(result.stages["make_negative_prices"].warnings) == 1
        assert len(result.stages["checked_stats"].warnings) == 1
        reported[executor] = contract_warnings(caught)
    assert sorted(reported["ray"]) == [("checked_stats", "input", "prices"),
                                       ("make_negative_prices", "output", "prices")]
    assert sorted(reported["ray"]) == sorted(reported["sequential"])


def test_the_worker_leaves_contract_warnings_to_the_driver() -> None:
    from stagekit_ray import worker

    from stagekit.run import logs

    spec = ContractSpec(host().spec(), "warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            status, prices = worker.run_stage(rs.make_negative_prices, None, {}, spec, None, ("n",), 3)
    finally:  # run here, in the driver, the worker readied this process's logging as a worker's: undo that
        for handler in logging.root.handlers:
            handler.removeFilter(logs._worker_filter)
    assert contract_warnings(caught) == []  # nothing issued where the stage ran
    assert status.error is None and len(prices) == 3
    assert len(status.warnings) == 1 and "make_negative_prices" in status.warnings[0]  # sent back instead
