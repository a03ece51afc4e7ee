"""The backtest stages run by stagekit's runner: the metric stages run in parallel as updaters of
``backtest`` and the runner merges them through the merge this plugin registered, under every executor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import stagekit_backtest.plugin as plugin
from stagekit_backtest import BacktestContext
from stagekit_backtest import metrics as m

from stagekit import Host, Pipeline
from stagekit.testing import isolated_host

METRIC_STAGES = ("return_metrics", "drawdown_metrics", "turnover_metrics")


@pytest.fixture(scope="module")
def host() -> Host:
    return isolated_host(plugin)  # stagekit's built-ins and this plugin only


@pytest.fixture(scope="module")
def artifacts() -> dict[str, object]:
    rng = np.random.default_rng(5)
    index = pd.bdate_range("2021-01-01", periods=500)
    vols = np.array([0.005, 0.01, 0.02, 0.03])
    returns = pd.DataFrame(rng.normal(0.0004, 1.0, (500, 4)) * vols, index=index, columns=list("ABCD"))
    returns.iloc[:100, 3] = np.nan  # D starts trading later
    return {"returns": returns, "portfolio": ("A", "B", "C", "D")}


@pytest.mark.parametrize("executor", ["sequential", "thread", "process"])
def test_metrics_merge_from_parallel_stages(host: Host, artifacts: dict[str, object], executor: str) -> None:
    pipeline = Pipeline.from_host(host, targets=["summarize_backtest"])
    params: dict[str, dict[str, object]] = {
        "target_weights": {"scheme": "inverse_vol"}, "run_backtest": {"cost_bps": 25.0}
    }
    result = pipeline.run(artifacts=artifacts, executor=executor, workers=3, params=params)
    assert result.ok
    ran = result.outputs["run_backtest"]["backtest"]
    merged = result.artifacts["backtest"]
    assert isinstance(merged, BacktestContext)
    assert merged.equity is not None and merged.equity.equals(ran.equity)
    assert merged.cost_bps == 25.0

    net = ran.returns
    expected = {
        "cagr": m.cagr(net), "volatility": m.annual_volatility(net), "sharpe": m.sharpe(net),
        "max_drawdown": m.max_drawdown(ran.equity), "turnover": m.annual_turnover(ran.turnover, len(net)),
    }
    assert result.artifacts["metrics"] == expected  # every parallel stage's metrics, merged
    for name in METRIC_STAGES:
        assert set(result.outputs[name]["backtest"].metrics) < set(expected)
    assert merged.notes[0].startswith("run_backtest:")
    assert sorted(n.split(":")[0] for n in merged.notes[1:]) == sorted(METRIC_STAGES)
    assert result.artifacts["equity_curve"].equals(ran.equity)

    # inverse volatility: the calmest symbol gets the most weight; D only once it has history
    weights = result.artifacts["weights"]
    assert (weights["A"] > weights["C"]).all()
    assert weights["D"].iloc[0] == 0.0 and weights["D"].iloc[-1] > 0.0
    assert np.allclose(weights.sum(axis=1), 1.0)


def test_costs_lower_every_return_metric(host: Host, artifacts: dict[str, object]) -> None:
    pipeline = Pipeline.from_host(host, targets=["summarize_backtest"])
    free, costly = (
        pipeline.run(artifacts=artifacts, executor="thread",
                     params={"run_backtest": {"cost_bps": bps}}).artifacts["metrics"]
        for bps in (0.0, 100.0)
    )
    assert costly["cagr"] < free["cagr"] and costly["sharpe"] < free["sharpe"]
    assert costly["turnover"] == free["turnover"] > 0
