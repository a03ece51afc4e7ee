"""Performance metrics of a backtest's daily net returns. Imports pandas (through its arguments).

Formulas, with ``n`` daily returns ``r`` and ``P`` periods a year (252):

- ``cagr``: ``prod(1 + r) ** (P / n) - 1``
- ``volatility``: ``std(r, ddof=1) * sqrt(P)``
- ``sharpe``: ``mean(r - rf / P) / std(r, ddof=1) * sqrt(P)`` (NaN if the std is 0)
- ``max_drawdown``: ``min(E / cummax(E) - 1)`` over the equity curve ``E`` with its starting 1.0, so a
  negative number (-0.25: a fall of 25% from a peak) or 0
- ``turnover``: the rebalances' two-sided turnover summed, per year: ``sum(turnover) * P / n``
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def cagr(returns: pd.Series, periods_per_year: int = 252) -> float:
    r = returns.to_numpy(dtype="float64")
    if not len(r):
        return math.nan
    return float(np.prod(1.0 + r) ** (periods_per_year / len(r)) - 1.0)


def annual_volatility(returns: pd.Series, periods_per_year: int = 252) -> float:
    r = returns.to_numpy(dtype="float64")
    if len(r) < 2:
        return math.nan
    return float(np.std(r, ddof=1) * math.sqrt(periods_per_year))


def sharpe(returns: pd.Series, periods_per_year: int = 252, risk_free: float = 0.0) -> float:
    r = returns.to_numpy(dtype="float64")
    if len(r) < 2:
        return math.nan
    std = float(np.std(r, ddof=1))
    if std == 0.0:
        return math.nan
    return float(np.mean(r - risk_free / periods_per_year) / std * math.sqrt(periods_per_year))


def max_drawdown(equity: pd.Series) -> float:
    e = np.r_[1.0, equity.to_numpy(dtype="float64")]
    return float(np.min(e / np.maximum.accumulate(e) - 1.0))


def annual_turnover(turnover: pd.Series, days: int, periods_per_year: int = 252) -> float:
    if days <= 0:
        return math.nan
    return float(turnover.to_numpy(dtype="float64").sum() * periods_per_year / days)
