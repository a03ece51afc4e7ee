from __future__ import annotations

from typing import Any

from stagekit import stage
from stagekit.graph.dag import INITIAL, build_dag
from stagekit.graph.plan import Merged, plan_versions


def noop(**kw: Any) -> None:
    return None


def s(name: str, requires: list[str] = [], provides: list[str] = [], after: list[str] = []) -> Any:  # noqa: B006
    return stage(noop, name=name, requires=requires, provides=provides, after=after)


def test_a_single_writer_is_seen_directly() -> None:
    plan = plan_versions(build_dag([s("a", ["x"], ["y"]), s("b", ["y"], ["z"])], initial=["x"]))
    assert plan.inputs["a"] == [("x", INITIAL)] and plan.inputs["b"] == [("y", "a")]


def test_concurrent_updaters_are_merged_against_the_creator() -> None:
    plan = plan_versions(build_dag([
        s("make", provides=["sel"]), s("f2", ["sel"], ["sel"]), s("f1", ["sel"], ["sel"]), s("use", ["sel"], ["o"]),
    ]))
    assert plan.inputs["f1"] == [("sel", "make")]  # each branch starts from the creator's value
    assert plan.inputs["use"] == [("sel", Merged(("f1", "f2"), "make"))]  # canonical order: by name
    assert plan.final("sel") == Merged(("f1", "f2"), "make")


def test_ordered_updaters_form_a_chain_not_a_merge() -> None:
    plan = plan_versions(build_dag([
        s("make", provides=["x"]), s("u1", ["x"], ["x"]), s("u2", ["x"], ["x"], after=["u1"]), s("r", ["x"], ["o"]),
    ]))
    assert plan.inputs["u2"] == [("x", "u1")]
    assert plan.inputs["r"] == [("x", "u2")]


def test_the_base_of_a_merge_is_the_nearest_common_ancestor() -> None:
    # u1 -> u3 is one branch, u2 another: their merge base is the creator, not u1
    plan = plan_versions(build_dag([
        s("make", provides=["x"]), s("u1", ["x"], ["x"]), s("u2", ["x"], ["x"]),
        s("u3", ["x"], ["x"], after=["u1"]), s("r", ["x"], ["o"]),
    ]))
    assert plan.inputs["r"] == [("x", Merged(("u2", "u3"), "make"))]
    # u4 after u1 and u2 sees their merge; a later branch from u0 then merges against it
    plan = plan_versions(build_dag([
        s("make", provides=["x"]), s("u0", ["x"], ["x"]), s("u1", ["x"], ["x"], after=["u0"]),
        s("u2", ["x"], ["x"], after=["u0"]), s("r", ["x"], ["o"]),
    ]))
    assert plan.inputs["r"] == [("x", Merged(("u1", "u2"), "u0"))]


def test_partial_final_versions_use_only_completed_writers() -> None:
    plan = plan_versions(build_dag([
        s("make", provides=["x"]), s("u1", ["x"], ["x"]), s("u2", ["x"], ["x"]),
    ]))
    assert plan.final("x", done={"make", "u1"}) == "u1"
    assert plan.final("x", done=set()) is None
