"""The selection stages run by stagekit's runner: the four refining branches run in parallel and the
runner merges them through the merge this plugin registered, the same under every executor."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import stagekit_selection.plugin as plugin
from stagekit_selection import SelectionContext, merge_selection

from stagekit import Host, Pipeline
from stagekit.testing import isolated_host

BRANCHES = ("momentum_rank", "volatility_filter", "liquidity_filter", "correlation_cluster")


def synthetic(symbols: int = 40, days: int = 400, seed: int = 11) -> dict[str, pd.DataFrame]:
    """Returns with a few correlated groups and varied volatility; volume that varies by symbol."""
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2020-01-01", periods=days)
    names = [f"S{i:02d}" for i in range(symbols)]
    groups = rng.normal(0, 0.01, (days, 5))
    scale = np.linspace(0.5, 2.0, symbols)
    drift = rng.normal(0.0004, 0.0004, symbols)
    returns = groups[:, np.arange(symbols) % 5] * scale + rng.normal(0, 0.006, (days, symbols)) + drift
    returns[:300, 0] = np.nan  # too little history for the universe
    volume = rng.lognormal(12, 0.3, (days, symbols)) * np.linspace(0.1, 3.0, symbols)
    return {
        "returns": pd.DataFrame(returns, index=index, columns=names),
        "volume": pd.DataFrame(volume, index=index, columns=names),
    }


@pytest.fixture(scope="module")
def host() -> Host:
    return isolated_host(plugin)  # stagekit's built-ins and this plugin only


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return synthetic()


@pytest.mark.parametrize("executor", ["sequential", "thread", "process"])
def test_parallel_branches_merge_through_the_registered_merge(
    host: Host, data: dict[str, pd.DataFrame], executor: str
) -> None:
    pipeline = Pipeline.from_host(host, targets=["finalize_selection"])
    result = pipeline.run(artifacts=data, executor=executor, workers=2,
                          params={"finalize_selection": {"top_n": 5}, "correlation_cluster": {"keep": 2}})
    assert result.ok
    seed = result.outputs["seed_selection"]["selection"]
    branches = [result.outputs[name]["selection"] for name in BRANCHES]
    merged = result.artifacts["selection"]
    assert isinstance(merged, SelectionContext)

    # the runner's merge is merge_selection over the branches in its canonical order
    assert any(merge_selection(seed, list(order)) == merged for order in itertools.permutations(branches))
    # and the rules hold: rejections are the union, scores are momentum_rank's (the only scorer)
    assert set(merged.rejections) == set().union(*(b.rejections for b in branches))
    assert merged.candidates == result.outputs["momentum_rank"]["selection"].candidates
    assert "S00" not in merged.universe
    stages_logged = [e.stage for e in merged.audit]
    assert stages_logged[0] == "seed_selection" and sorted(set(stages_logged[1:])) == sorted(BRANCHES)
    for name in ("volatility_filter", "liquidity_filter", "correlation_cluster"):
        assert any(r.startswith(name) for reasons in merged.rejections.values() for r in reasons), name

    portfolio = result.artifacts["portfolio"]
    assert portfolio == merged.top(5) and len(portfolio) == 5
    assert not set(portfolio) & set(merged.rejections)


def test_every_executor_gives_the_same_selection(host: Host, data: dict[str, pd.DataFrame]) -> None:
    pipeline = Pipeline.from_host(host, targets=["finalize_selection"])
    results = [pipeline.run(artifacts=data, executor=ex, workers=4).artifacts["selection"]
               for ex in ("sequential", "thread")]
    assert results[0] == results[1]
    assert results[0].audit == results[1].audit  # even the order of the log
