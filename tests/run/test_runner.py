from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sample_stages as ss
from stagekit import (
    ExecutorError,
    Host,
    MergeConflictError,
    Pipeline,
    PipelineError,
    Stage,
    StageError,
    hookimpl,
    stage,
)


class Recorder:
    """A lifecycle plugin that records every hook call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def stagekit_before_run(self, run: Any) -> None:
        self.calls.append(("before_run", run.executor))

    @hookimpl
    def stagekit_after_run(self, run: Any, result: Any) -> None:
        self.calls.append(("after_run", str(result.ok)))

    @hookimpl
    def stagekit_before_stage(self, run: Any, stage: Stage) -> None:
        self.calls.append(("before_stage", stage.name))

    @hookimpl
    def stagekit_after_stage(self, run: Any, stage: Stage, record: Any) -> None:
        assert record.status == "ok" and record.duration >= 0
        self.calls.append(("after_stage", stage.name))

    @hookimpl
    def stagekit_on_stage_error(self, run: Any, stage: Stage, error: BaseException) -> None:
        self.calls.append(("on_stage_error", f"{stage.name}:{type(error).__name__}"))


def host_with(*plugins: object) -> Host:
    return Host(plugins=[(f"p{i}", p) for i, p in enumerate(plugins)], autoload=False, env={})


def test_run_returns_every_artifact_and_per_stage_records() -> None:
    @stage(requires=["prices"], provides=["returns"])
    def compute_returns(prices: list[float]) -> list[float]:
        return [b / a - 1 for a, b in itertools.pairwise(prices)]

    @stage(requires=["returns"], provides=["mean", "n"])
    def stats(returns: list[float]) -> dict[str, Any]:
        return {"mean": sum(returns) / len(returns), "n": len(returns)}

    result = Pipeline([stats, compute_returns]).run(artifacts={"prices": [1.0, 2.0, 3.0]})
    assert result.ok
    assert result.artifacts == {"prices": [1.0, 2.0, 3.0], "returns": [1.0, 0.5], "mean": 0.75, "n": 2}
    assert list(result.stages) == ["compute_returns", "stats"]
    assert all(r.status == "ok" and r.duration > 0 for r in result.stages.values())
    assert result.stages["stats"].provided == ("mean", "n")


def test_lifecycle_hooks_fire_in_the_driver_for_every_stage(executor: str) -> None:
    rec = Recorder()
    Pipeline([ss.make, ss.upd_a, ss.upd_b, ss.read_d], host=host_with(rec)).run(executor=executor, workers=2)
    names = [n for kind, n in rec.calls if kind == "before_stage"]
    assert sorted(names) == ["make", "read_d", "upd_a", "upd_b"]
    assert sorted(n for kind, n in rec.calls if kind == "after_stage") == sorted(names)
    assert rec.calls[0] == ("before_run", executor) and rec.calls[-1] == ("after_run", "True")


def test_concurrent_updaters_merge_where_they_join(executor: str) -> None:
    result = Pipeline([ss.make, ss.upd_a, ss.upd_b, ss.read_d]).run(executor=executor, workers=2)
    assert result.artifacts["d"] == {"base": 1, "a": 1, "b": 2}
    assert result.artifacts["out"] == [("d", repr({"base": 1, "a": 1, "b": 2}))]


def test_a_conflict_names_the_join_artifact_and_branches() -> None:
    a = stage(ss.add_key, name="left", requires=["d"], provides=["d"], params={"key": "base", "value": 5})
    b = stage(ss.add_key, name="right", requires=["d"], provides=["d"], params={"key": "base", "value": 6})
    with pytest.raises(MergeConflictError) as err:
        Pipeline([ss.make, a, b, ss.read_d]).run()
    e = err.value
    assert (e.join, e.artifact, e.branches) == ("read_d", "d", ["left", "right"])
    assert "'base'" in str(e) and "5" in str(e) and "6" in str(e)
    assert e.result.outputs["left"] == {"d": {"base": 5}}  # what the branches produced is kept


def test_a_failing_stage_names_itself_and_keeps_what_was_produced(executor: str) -> None:
    rec = Recorder()
    bad = stage(ss.boom, name="bad", requires=["d"], provides=["x"])
    with pytest.raises(StageError) as err:
        Pipeline([ss.make, bad, ss.read_d], host=host_with(rec)).run(executor=executor)
    e = err.value
    assert e.stage == "bad" and isinstance(e.original, ValueError)
    assert "stage 'bad'" in str(e) and "ValueError: the data is bad" in str(e)
    assert e.result.artifacts["d"] == {"base": 1} and e.result.stages["bad"].status == "failed"
    assert ("on_stage_error", "bad:ValueError") in rec.calls


def test_a_failing_stage_from_a_plugin_names_the_plugin() -> None:
    class Plugin:
        @hookimpl
        def stagekit_register_stages(self, register: Any) -> None:
            register(stage(ss.boom, name="bad", provides=["x"]))

    host = Host(plugins=[("acme", Plugin())], autoload=False, env={})
    with pytest.raises(StageError, match="plugin 'acme'") as err:
        Pipeline.from_host(host).run()
    assert err.value.plugin == "acme"


def test_params_are_passed_and_can_be_overridden() -> None:
    result = Pipeline([ss.make, ss.upd_a]).run(params={"upd_a": {"value": 42}})
    assert result.artifacts["d"] == {"base": 1, "a": 42}
    with pytest.raises(PipelineError, match="unknown stage 'nope'"):
        Pipeline([ss.make]).run(params={"nope": {}})


def test_an_unknown_executor_is_a_clear_error() -> None:
    with pytest.raises(ExecutorError, match="unknown executor 'threads'.*did you mean 'thread'"):
        Pipeline([ss.make]).run(executor="threads")


def test_forking_never_copies_values() -> None:
    seen: list[int] = []

    def branch(x: Any, i: int) -> int:
        seen.append(id(x))
        return i

    big = object()
    branches = [stage(branch, name=f"b{i}", requires=["x"], provides=[f"y{i}"], params={"i": i}) for i in range(8)]
    Pipeline(branches).run({"x": big}, executor="thread", workers=4)
    assert seen == [id(big)] * 8


def test_a_100000_stage_chain_runs() -> None:
    n = 100_000
    stages = [Stage(name="s0", func=ss.make_dict, provides=("a0",))]
    stages += [Stage(name=f"s{i}", func=_pass, requires=(f"a{i - 1}",), provides=(f"a{i}",)) for i in range(1, n)]
    result = Pipeline(stages).run()
    assert result.artifacts[f"a{n - 1}"] == {"base": 1} and len(result.stages) == n


def _pass(**kw: Any) -> Any:
    (value,) = kw.values()
    return value


# --- property: random DAGs ------------------------------------------------------------------------


@st.composite
def random_dags(draw: st.DrawFn) -> list[Stage]:
    """Stages over a few artifacts: creators, updaters and readers, plus some ``after`` edges."""
    n = draw(st.integers(2, 12))
    stages: list[Stage] = []
    created: list[str] = []
    for i in range(n):
        kind = draw(st.sampled_from(["create", "update", "read"])) if created else "create"
        name = f"s{i}"
        after = [f"s{j}" for j in draw(st.sets(st.integers(0, i - 1), max_size=2))] if i else []
        if kind == "create":
            art = f"a{len(created)}"
            created.append(art)
            reqs = draw(st.sets(st.sampled_from(created[:-1]), max_size=2)) if len(created) > 1 else set()
            stages.append(stage(ss.echo, name=name, requires=sorted(reqs), provides=[art], after=after))
        elif kind == "update":
            art = draw(st.sampled_from(created))
            stages.append(stage(ss.echo, name=name, requires=[art], provides=[art], after=after))
        else:
            reqs = draw(st.sets(st.sampled_from(created), min_size=1, max_size=2))
            stages.append(stage(ss.echo, name=name, requires=sorted(reqs), provides=[f"r{i}"], after=after))
    return stages


class Order:
    def __init__(self) -> None:
        self.done: list[str] = []

    @hookimpl
    def stagekit_after_stage(self, run: Any, stage: Stage, record: Any) -> None:
        self.done.append(stage.name)


@given(random_dags())
def test_every_stage_runs_exactly_once_after_all_it_depends_on(stages: list[Stage]) -> None:
    order = Order()
    pipeline = Pipeline(stages, host=host_with(order))
    try:
        dag = pipeline.dag()
    except PipelineError:
        return  # a generated cycle (after + artifacts) is refused before anything runs: fine
    try:
        pipeline.run(executor="thread", workers=3)
    except MergeConflictError:
        return  # echo values of concurrent branches differ: a conflict is the right answer
    assert sorted(order.done) == sorted(s.name for s in stages)
    position = {name: i for i, name in enumerate(order.done)}
    for name, preds in dag.deps.items():
        assert all(position[p] < position[name] for p in preds)


@st.composite
def mergeable_dags(draw: st.DrawFn) -> list[Stage]:
    """A dict artifact, updated by random concurrent and ordered branches that each add their own key."""
    n = draw(st.integers(1, 6))
    stages = [ss.make]
    for i in range(n):
        after = [f"u{j}" for j in draw(st.sets(st.integers(0, i - 1), max_size=2))] if i else []
        stages.append(stage(ss.add_key, name=f"u{i}", requires=["d"], provides=["d"], after=after,
                            params={"key": f"k{i}", "value": i}))
    stages.append(ss.read_d)
    return stages


@given(mergeable_dags())
def test_results_do_not_depend_on_the_executor(stages: list[Stage]) -> None:
    results = [Pipeline(stages).run(executor=ex, workers=2).artifacts for ex in ("sequential", "thread")]
    assert results[0] == results[1]
    assert results[0]["d"] == {"base": 1, **{f"k{i}": i for i in range(len(stages) - 2)}}


@settings(max_examples=6)  # each example starts a process pool: a few random DAGs, not forty
@given(mergeable_dags())
def test_results_do_not_depend_on_the_executor_including_processes(stages: list[Stage]) -> None:
    results = [Pipeline(stages).run(executor=ex, workers=2).artifacts for ex in ("sequential", "thread", "process")]
    assert results[0] == results[1] == results[2]
