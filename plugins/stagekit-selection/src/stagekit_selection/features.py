"""Per-symbol features computed from ``returns`` / ``volume`` frames (dates x symbols). Imports pandas.

Each feature is a float64 Series indexed by symbol (a string), NaN where a symbol has too little data.
``as_of`` (a date or None for the last date) drops every row after it, so a selection made "as of" a date
never sees later data.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def upto(frame: pd.DataFrame, as_of: str | None, *, artifact: str) -> pd.DataFrame:
    """Rows up to and including ``as_of``; symbols as strings. Raises if the frame is unusable."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame) or not isinstance(frame.index, pd.DatetimeIndex):
        raise TypeError(
            f"artifact {artifact!r} must be a DataFrame with a DatetimeIndex, got {type(frame).__name__}"
        )
    if not frame.index.is_monotonic_increasing or not frame.index.is_unique:
        raise ValueError(f"artifact {artifact!r} must have unique dates in increasing order")
    out = frame if as_of is None else frame.loc[: pd.Timestamp(as_of)]
    out = out.set_axis([str(c) for c in out.columns], axis=1)
    return out.astype("float64")


def momentum(
    returns: pd.DataFrame, *, lookback: int = 252, skip: int = 21, min_fraction: float = 0.8,
    as_of: str | None = None,
) -> pd.Series:
    """12-1 momentum: compounded return over the last ``lookback`` days, leaving out the latest ``skip``."""
    if not 0 <= skip < lookback:
        raise ValueError(f"momentum needs 0 <= skip < lookback, got skip={skip}, lookback={lookback}")
    r = upto(returns, as_of, artifact="returns")
    n = len(r)
    window = r.iloc[max(0, n - lookback): n - skip]
    needed = max(1, math.ceil(min_fraction * (lookback - skip)))
    log_growth = window.transform(np.log1p).sum(min_count=needed)
    return log_growth.transform(np.expm1).rename("momentum")


def volatility(
    returns: pd.DataFrame, *, lookback: int = 63, min_periods: int = 20, periods_per_year: int = 252,
    as_of: str | None = None,
) -> pd.Series:
    """Annualised standard deviation of daily returns over the last ``lookback`` days."""
    r = upto(returns, as_of, artifact="returns").iloc[-lookback:]
    vol = r.std(ddof=1) * math.sqrt(periods_per_year)
    return vol.where(r.count() >= min_periods).rename("volatility")


def liquidity(
    volume: pd.DataFrame, *, lookback: int = 63, min_periods: int = 20, as_of: str | None = None,
) -> pd.Series:
    """Median daily traded volume over the last ``lookback`` days."""
    v = upto(volume, as_of, artifact="volume").iloc[-lookback:]
    return v.median().where(v.count() >= min_periods).rename("liquidity")


def pairwise_corr(values: np.ndarray, min_periods: int = 1) -> np.ndarray:
    """Pearson correlation of every pair of columns over the rows where both are present.

    The same as ``DataFrame.corr(min_periods=...)`` (NaN where fewer than ``min_periods`` rows pair up),
    but as a few matrix products instead of a loop over pairs.
    """
    valid = ~np.isnan(values)
    mask = valid.astype("float64")
    # centre each column first: the one-pass sums below then lose no precision
    mean = np.nansum(values, axis=0) / np.maximum(mask.sum(axis=0), 1.0)
    x = np.where(valid, values - mean, 0.0)
    n = mask.T @ mask  # rows where both i and j are present
    sum_x = x.T @ mask  # [i, j]: sum of x_i over rows where j is present too
    sum_xx = (x * x).T @ mask
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = x.T @ x - sum_x * sum_x.T / n
        var = sum_xx - sum_x * sum_x / n
        corr = cov / np.sqrt(var * var.T)
    corr[(n < max(min_periods, 2)) | ~np.isfinite(corr)] = np.nan
    clipped: np.ndarray = np.clip(corr, -1.0, 1.0)
    return clipped
