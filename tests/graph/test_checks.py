"""Static checks before any stage runs: merges for concurrent updaters, contract compatibility."""

from __future__ import annotations

from typing import Any

import pytest

from stagekit import ContractError, Host, Pipeline, hookimpl, stage


class Plain:
    """A value type with no merge at all."""

    def __init__(self, n: int) -> None:
        self.n = n


def make() -> Plain:
    return Plain(0)


def bump(box: Plain) -> Plain:
    return Plain(box.n + 1)


def stages(declared: Any) -> list[Any]:
    return [
        stage(make, name="make", provides=["box"], types={"box": declared}),
        stage(bump, name="left", requires=["box"], provides=["box"], types={"box": declared}),
        stage(bump, name="right", requires=["box"], provides=["box"], types={"box": declared}),
    ]


def test_concurrent_updaters_of_a_type_without_merge_are_found_statically() -> None:
    problems = Pipeline(stages(Plain)).check()
    assert len(problems) == 1
    assert "artifact 'box' is updated concurrently by 'left', 'right'" in problems[0]
    assert "Plain has no merge" in problems[0]


def test_a_lazily_declared_type_is_resolved_for_the_check() -> None:
    problems = Pipeline(stages(f"{__name__}:Plain")).check()
    assert problems and "Plain has no merge" in problems[0]
    assert "cannot import" in Pipeline(stages("nowhere_xyz:Plain")).check()[0]


def test_a_registered_merge_satisfies_the_check_and_the_run() -> None:
    class Merges:
        @hookimpl
        def stagekit_register_merges(self, register: Any) -> None:
            register(Plain, lambda base, branches: Plain(base.n + sum(b.n - base.n for b in branches)))

    pipeline = Pipeline(stages(Plain), host=Host(plugins=[("merges", Merges())], autoload=False, env={}))
    assert pipeline.check() == []
    assert pipeline.run().artifacts["box"].n == 2


def test_ordered_updaters_need_no_merge() -> None:
    ordered = stages(Plain)
    ordered[2] = ordered[2].evolve(after=["left"])
    assert Pipeline(ordered).check() == []


def test_incompatible_contracts_are_refused_before_any_stage_runs() -> None:
    pa = pytest.importorskip("pandera.pandas")
    import pandas as pd

    ran: list[str] = []

    def produce() -> pd.DataFrame:
        ran.append("produce")
        return pd.DataFrame({"close": [1.0]})

    def consume(prices: pd.DataFrame) -> int:
        ran.append("consume")
        return len(prices)

    promised = pa.DataFrameSchema({"close": pa.Column(float)})
    needed = pa.DataFrameSchema({"close": pa.Column(float), "volume": pa.Column(float)})
    pipeline = Pipeline([
        stage(produce, provides=["prices"], outputs={"prices": promised}),
        stage(consume, requires=["prices"], provides=["n"], inputs={"prices": needed}),
    ])
    problems = pipeline.check()
    assert any("'volume'" in p and "produce" in p and "consume" in p for p in problems)
    with pytest.raises(ContractError, match="nothing was run"):
        pipeline.run()
    assert ran == []
    assert pipeline.run(contracts="off").artifacts["n"] == 1  # off: nothing checked
