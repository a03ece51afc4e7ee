"""Metric formulas against hand-computed values, and the metric stages merged like parallel branches."""

from __future__ import annotations

import math
import pickle

import attrs
import pandas as pd
import pytest
from stagekit_backtest import BacktestContext, merge_backtest
from stagekit_backtest import metrics as m
from stagekit_backtest.plugin import backtest_stages

from stagekit.errors import MergeConflictError

STAGES = {s.name: s for s in backtest_stages()}
R = pd.Series([0.10, -0.05, 0.02])  # growth 1.1 * 0.95 * 1.02 = 1.0659
STD = math.sqrt((0.0766666666**2 + 0.0733333333**2 + 0.0033333333**2) / 2)  # mean 0.0233333


def test_cagr() -> None:
    assert m.cagr(R, periods_per_year=3) == pytest.approx(0.0659)
    assert m.cagr(R, periods_per_year=6) == pytest.approx(1.0659**2 - 1)
    assert math.isnan(m.cagr(pd.Series([], dtype="float64")))


def test_volatility_and_sharpe() -> None:
    assert m.annual_volatility(R, periods_per_year=4) == pytest.approx(STD * 2)
    assert m.sharpe(R, periods_per_year=4) == pytest.approx(0.0233333333 / STD * 2)
    # risk-free 0.04 a year is 0.01 a period at 4 periods a year
    assert m.sharpe(R, periods_per_year=4, risk_free=0.04) == pytest.approx(0.0133333333 / STD * 2)
    assert math.isnan(m.sharpe(pd.Series([0.01, 0.01, 0.01])))  # no risk, no ratio


def test_max_drawdown() -> None:
    # equity 0.8, 1.2, 0.6, 0.66: the worst fall is from 1.2 to 0.6
    assert m.max_drawdown(pd.Series([0.8, 1.2, 0.6, 0.66])) == pytest.approx(-0.5)
    # a loss on the first day counts from the starting 1.0
    assert m.max_drawdown(pd.Series([0.9, 0.95])) == pytest.approx(-0.1)
    assert m.max_drawdown(pd.Series([1.1, 1.2])) == 0.0


def test_annual_turnover() -> None:
    assert m.annual_turnover(pd.Series([1.0, 0.5, 0.25]), days=504) == pytest.approx(0.875)


INDEX = pd.bdate_range("2024-01-01", periods=3)
RETURNS = pd.Series([0.10, -0.05, 0.02], index=INDEX)
EQUITY = (1 + RETURNS).cumprod()
WEIGHTS = pd.DataFrame({"A": [1.0]}, index=INDEX[:1])


@pytest.fixture
def backtest() -> BacktestContext:
    return BacktestContext(
        weights=WEIGHTS, gross_returns=RETURNS, costs=pd.Series(0.0, index=INDEX), returns=RETURNS,
        equity=EQUITY, turnover=pd.Series([1.0], index=INDEX[:1]), notes=("run_backtest: test",),
    )


def test_metric_stages_merge_as_parallel_branches(backtest: BacktestContext) -> None:
    branches = [
        STAGES["return_metrics"](backtest=backtest, periods_per_year=3),
        STAGES["drawdown_metrics"](backtest=backtest),
        STAGES["turnover_metrics"](backtest=backtest, periods_per_year=3),
    ]
    merged = merge_backtest(backtest, branches)
    assert dict(merged.metrics) == pytest.approx({
        "cagr": 0.0659, "volatility": STD * math.sqrt(3), "sharpe": 0.0233333333 / STD * math.sqrt(3),
        "max_drawdown": 1.045 / 1.1 - 1, "turnover": 1.0,
    })
    assert merged.notes == (
        "run_backtest: test",
        "return_metrics: computed cagr, volatility, sharpe",
        "drawdown_metrics: computed max_drawdown",
        "turnover_metrics: computed turnover",
    )
    assert merged.equity is backtest.equity and merged.weights is backtest.weights
    summary = STAGES["summarize_backtest"](backtest=merged)
    assert summary["equity_curve"] is backtest.equity
    assert summary["metrics"] == dict(merged.metrics)


def test_results_changed_by_one_branch_are_taken(backtest: BacktestContext) -> None:
    rerun = BacktestContext(
        weights=backtest.weights, gross_returns=backtest.gross_returns, costs=backtest.costs,
        returns=backtest.returns, equity=EQUITY * 2, turnover=backtest.turnover,
        notes=backtest.notes, cost_bps=5.0,
    )
    merged = merge_backtest(backtest, [rerun, backtest.with_metrics({"x": 1.0}, stage="s")])
    assert merged.equity is rerun.equity
    assert merged.cost_bps == 5.0
    assert dict(merged.metrics) == {"x": 1.0}
    # an equal (not identical) copy is no change at all
    copy = attrs.evolve(backtest, weights=WEIGHTS.copy(), equity=EQUITY.copy())
    assert copy.equity is not backtest.equity
    assert merge_backtest(backtest, [copy, rerun]).equity is rerun.equity


def test_conflicts(backtest: BacktestContext) -> None:
    one = backtest.with_metrics({"cagr": 0.1}, stage="one")
    two = backtest.with_metrics({"cagr": 0.2}, stage="two")
    with pytest.raises(MergeConflictError, match="set metric 'cagr' differently") as info:
        merge_backtest(backtest, [one, two])
    assert info.value.path == ["metrics", "cagr"]
    assert merge_backtest(backtest, [one, one]).metrics == {"cagr": 0.1}  # agreeing values merge
    nan = backtest.with_metrics({"sharpe": math.nan}, stage="n")
    assert math.isnan(merge_backtest(backtest, [nan, nan]).metrics["sharpe"])

    doubled = BacktestContext(equity=EQUITY * 2, notes=backtest.notes)
    tripled = BacktestContext(equity=EQUITY * 3, notes=backtest.notes)
    with pytest.raises(MergeConflictError, match="both changed equity to different values"):
        merge_backtest(BacktestContext(equity=backtest.equity, notes=backtest.notes), [doubled, tripled])

    with pytest.raises(MergeConflictError, match="rewrote the notes"):
        merge_backtest(backtest, [one, BacktestContext()])
    with pytest.raises(MergeConflictError, match="branch 0 produced a dict"):
        merge_backtest(backtest, [{}])  # type: ignore[list-item]


def test_removed_metric_conflicts_with_a_change() -> None:
    base = BacktestContext(metrics={"cagr": 0.1})
    with pytest.raises(MergeConflictError, match="removed metric 'cagr'"):
        merge_backtest(base, [BacktestContext(), base.with_metrics({"cagr": 0.3}, stage="x")])
    assert "cagr" not in merge_backtest(base, [BacktestContext(), base]).metrics


def test_context_is_immutable_and_pickles(backtest: BacktestContext) -> None:
    done = backtest.with_metrics({"cagr": 0.5}, stage="s")
    with pytest.raises(TypeError):
        done.metrics["cagr"] = 1.0  # type: ignore[index]
    again = pickle.loads(pickle.dumps(done))
    assert again == done and again is not done
    assert hash(again) == hash(done)


def test_metric_stages_need_a_run_backtest() -> None:
    with pytest.raises(ValueError, match="return_metrics: the backtest has no returns yet"):
        STAGES["return_metrics"](backtest=BacktestContext())
