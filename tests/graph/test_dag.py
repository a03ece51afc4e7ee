from __future__ import annotations

from typing import Any

import pytest

from stagekit import CycleError, PipelineError, Stage, stage
from stagekit.graph.dag import INITIAL, build_dag


def noop(**kw: Any) -> None:
    return None


def s(name: str, requires: list[str] = [], provides: list[str] = [], after: list[str] = []) -> Any:  # noqa: B006
    return stage(noop, name=name, requires=requires, provides=provides, after=after)


def test_creator_updaters_and_readers() -> None:
    dag = build_dag([
        s("make", provides=["sel"]),
        s("f1", ["sel"], ["sel"]),
        s("f2", ["sel"], ["sel"]),
        s("use", ["sel"], ["out"]),
    ])
    role = dag.roles["sel"]
    assert role.creator == "make" and role.updaters == ["f1", "f2"] and role.readers == ["use"]
    assert dag.deps["f1"] == ["make"] and dag.deps["f2"] == ["make"]  # updaters run concurrently
    assert dag.deps["use"] == ["f1", "f2", "make"]  # the reader sees the merged value
    assert dag.order.index("use") > max(dag.order.index("f1"), dag.order.index("f2"))


def test_initial_artifacts_count_as_the_creator() -> None:
    dag = build_dag([s("a", ["x"], ["y"])], initial=["x"])
    assert dag.roles["x"].creator == INITIAL and dag.deps["a"] == []


def test_after_adds_order() -> None:
    dag = build_dag([s("a", provides=["x"]), s("b", after=["a"])])
    assert dag.deps["b"] == ["a"]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(PipelineError) as err:
        build_dag([
            s("a", ["missing"], ["x"]),
            s("b", provides=["x"]),
            s("c", after=["nope"]),
        ], origin=lambda n: f" (from plugin {n}-plugin)")
    problems = err.value.problems
    assert any("stage 'a' (from plugin a-plugin) requires artifact 'missing'" in p for p in problems)
    assert any("artifact 'x' is created by two stages: stage 'a'" in p and "stage 'b'" in p for p in problems)
    assert any("lists unknown stage 'nope' in after" in p for p in problems)


def test_two_creators_counting_the_initial_artifacts() -> None:
    with pytest.raises(PipelineError, match="created by two stages: the initial artifacts and stage 'a'"):
        build_dag([s("a", provides=["x"])], initial=["x"])


def test_a_cycle_prints_its_path_with_each_stage_plugin() -> None:
    with pytest.raises(CycleError) as err:
        build_dag([s("a", ["z"], ["x"]), s("b", ["x"], ["y"]), s("c", ["y"], ["z"]), s("d", ["z"], ["w"])],
                  origin=lambda n: f" [{n.upper()}]")
    assert set(err.value.cycle) >= {"a", "b", "c"}
    assert "a [A]" in str(err.value) and " -> " in str(err.value)
    assert isinstance(err.value, ValueError)  # errors also subclass the builtin they refine


def test_a_reader_ordered_before_an_updater_is_a_cycle() -> None:
    with pytest.raises(CycleError):
        build_dag([s("make", provides=["x"]), s("read", ["x"], ["y"]), s("upd", ["x"], ["x"], after=["read"])])


def fast(name: str, requires: tuple[str, ...], provides: tuple[str, ...]) -> Stage:
    return Stage(name=name, func=noop, requires=requires, provides=provides)  # skips @stage's checks


def test_a_100000_stage_chain_builds_without_recursion() -> None:
    n = 100_000
    stages = [fast("s0", (), ("a0",))] + [fast(f"s{i}", (f"a{i - 1}",), (f"a{i}",)) for i in range(1, n)]
    dag = build_dag(stages)
    assert dag.order[0] == "s0" and dag.order[-1] == f"s{n - 1}" and len(dag.order) == n


def test_a_100000_stage_cycle_is_found_without_recursion() -> None:
    n = 100_000
    stages = [fast("s0", (f"a{n - 1}",), ("a0",))]
    stages += [fast(f"s{i}", (f"a{i - 1}",), (f"a{i}",)) for i in range(1, n)]
    with pytest.raises(CycleError) as err:
        build_dag(stages)
    assert len(err.value.cycle) == n + 1
