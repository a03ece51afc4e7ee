"""Monthly target weights for a portfolio of symbols. Imports pandas.

No look-ahead: the weights dated ``d`` (the first trading day of a month) are held from ``d``'s return on
and are computed from returns up to the day before ``d`` only (the frame is shifted one day first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

SCHEMES = ("equal", "inverse_vol")


def rebalance_dates(index: pd.DatetimeIndex, start: str | None = None) -> pd.DatetimeIndex:
    """The first trading day of each month in ``index`` (on or after ``start``)."""
    months = index.to_period("M")
    firsts = index[~months.duplicated()]
    if start is not None:
        import pandas as pd

        firsts = firsts[firsts >= pd.Timestamp(start)]
    return firsts


def portfolio_returns(returns: pd.DataFrame, portfolio: Sequence[str]) -> pd.DataFrame:
    """The portfolio's columns of ``returns`` as float64; raises naming the symbols that are missing."""
    import pandas as pd

    if not isinstance(returns, pd.DataFrame) or not isinstance(returns.index, pd.DatetimeIndex):
        raise TypeError(
            f"artifact 'returns' must be a DataFrame with a DatetimeIndex, got {type(returns).__name__}"
        )
    if not returns.index.is_monotonic_increasing or not returns.index.is_unique:
        raise ValueError("artifact 'returns' must have unique dates in increasing order")
    symbols = [str(s) for s in portfolio]
    if not symbols:
        raise ValueError("the portfolio is empty: nothing to weight")
    frame = returns.set_axis([str(c) for c in returns.columns], axis=1)
    missing = [s for s in symbols if s not in frame.columns]
    if missing:
        raise ValueError(f"portfolio symbols {missing[:10]} are not columns of 'returns'")
    return frame[symbols].astype("float64")


def target_weights(
    returns: pd.DataFrame, portfolio: Sequence[str], *, scheme: str = "equal", lookback: int = 63,
    min_periods: int = 20, start: str | None = None,
) -> pd.DataFrame:
    """Weights at each monthly rebalance: equal or inverse-volatility, over symbols with enough history.

    A symbol is eligible at ``d`` if it has ``min_periods`` returns in the ``lookback`` days before ``d``
    (and, for ``inverse_vol``, a positive volatility). Weights sum to 1 over eligible symbols; rebalances
    before the first one with an eligible symbol are dropped.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown weighting scheme {scheme!r}; choose one of {SCHEMES}")
    import pandas as pd

    past = portfolio_returns(returns, portfolio).shift(1)  # row d sees data up to d-1 only
    dates = rebalance_dates(pd.DatetimeIndex(past.index), start)
    if scheme == "equal":
        count = past.notna().rolling(lookback, min_periods=1).sum()
        raw = (count >= min_periods).astype("float64")
    else:
        vol = past.rolling(lookback, min_periods=min_periods).std()
        raw = (1.0 / vol.where(vol > 0)).fillna(0.0)
    raw = raw.loc[dates]
    total = raw.sum(axis=1)
    weights = raw.div(total.where(total > 0), axis=0).fillna(0.0)
    active = np.flatnonzero(total.to_numpy() > 0)
    if not len(active):
        raise ValueError(
            f"no rebalance date has a portfolio symbol with {min_periods} returns "
            f"in the {lookback} days before it"
        )
    return weights.iloc[active[0]:]
