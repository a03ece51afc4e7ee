"""A vectorised backtest of monthly target weights with turnover-based transaction costs. Imports pandas.

Timing: the weights row dated ``d`` is traded at the close of the day before ``d`` and held from ``d``'s
return on. Between rebalances the holdings drift with their returns (buy and hold), the rest is cash at 0%.
A held symbol with a missing return that day is taken as unchanged (0%).

Costs: at each rebalance the two-sided turnover ``sum |w_target - w_drifted|`` (from all cash at the first)
costs ``turnover * cost_bps / 10_000`` of the portfolio's value, charged on ``d``:
``net_d = (1 - cost_d) * (1 + gross_d) - 1``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from stagekit_backtest.context import BacktestContext
from stagekit_backtest.weights import portfolio_returns

if TYPE_CHECKING:
    import pandas as pd


def _check_weights(weights: pd.DataFrame, returns: pd.DataFrame) -> None:
    import pandas as pd

    if not isinstance(weights, pd.DataFrame) or weights.empty:
        raise ValueError(f"artifact 'weights' must be a non-empty DataFrame, got {type(weights).__name__}")
    if not weights.index.is_monotonic_increasing or not weights.index.is_unique:
        raise ValueError("artifact 'weights' must have unique rebalance dates in increasing order")
    outside = weights.index[~weights.index.isin(returns.index)]
    if len(outside):
        raise ValueError(f"rebalance dates {list(outside[:3])} of 'weights' are not dates of 'returns'")
    if not np.isfinite(weights.to_numpy(dtype="float64")).all():
        raise ValueError("artifact 'weights' has missing or infinite weights")


def simulate(returns: pd.DataFrame, weights: pd.DataFrame, cost_bps: float = 10.0) -> BacktestContext:
    """Run the backtest; every result series starts at the first rebalance date."""
    import pandas as pd

    r = portfolio_returns(returns, [str(c) for c in weights.columns])
    _check_weights(weights, r)
    r = r.loc[weights.index[0]:].fillna(0.0)
    dates = r.index
    target = weights.to_numpy(dtype="float64")
    period = np.searchsorted(weights.index.to_numpy(), dates.to_numpy(), side="right") - 1
    held = target[period]  # each day's target weights, (days x symbols)
    # growth of each holding since its period's rebalance, at today's close and at yesterday's
    growth = pd.DataFrame(1.0 + r.to_numpy()).groupby(period).cumprod().to_numpy()
    starts = np.flatnonzero(np.r_[True, np.diff(period) != 0])
    before = np.vstack([np.ones((1, growth.shape[1])), growth[:-1]])
    before[starts] = 1.0
    cash = 1.0 - held.sum(axis=1)
    value = cash + (held * growth).sum(axis=1)
    gross = value / (cash + (held * before).sum(axis=1)) - 1.0

    ends = np.r_[starts[1:] - 1, len(dates) - 1]
    drifted = held[ends] * growth[ends] / value[ends, None]  # weights just before the next rebalance
    pre_trade = np.vstack([np.zeros((1, target.shape[1])), drifted[:-1]])
    turnover = np.abs(target - pre_trade).sum(axis=1)
    daily_cost = np.zeros(len(dates))
    daily_cost[starts] = turnover * cost_bps / 10_000.0
    net = (1.0 - daily_cost) * (1.0 + gross) - 1.0

    def series(values: np.ndarray, name: str, index: pd.Index = dates) -> pd.Series:
        return pd.Series(values, index=index, name=name, dtype="float64")

    return BacktestContext(
        weights=weights,
        gross_returns=series(gross, "gross_return"),
        costs=series(daily_cost, "cost"),
        returns=series(net, "return"),
        equity=series(np.cumprod(1.0 + net), "equity"),
        turnover=series(turnover, "turnover", weights.index),
        cost_bps=float(cost_bps),
        notes=(f"run_backtest: {len(weights)} rebalances, {len(dates)} days, cost {cost_bps:g} bps",),
    )
