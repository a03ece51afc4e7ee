"""L3 per-symbol features and the L4 matrices (dates x symbols) that selection and backtest stages read.

Returns are simple daily returns against the previous *observed* close: the day after a gap carries the
whole move since the last price, and a gap day itself has no return (NaN) — nothing is interpolated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stagekit_dataops import log


def compute_features(aligned_prices: pd.DataFrame, window: int = 20) -> pd.DataFrame:
    """L3: L2 plus ``ret``, ``log_ret``, ``volatility`` (rolling std of ``log_ret``) and ``dollar_volume``."""
    if not isinstance(window, int) or window < 2:
        raise ValueError(f"window must be an integer of at least 2, not {window!r}")
    df = aligned_prices
    symbol = df["symbol"]
    previous = df.groupby("symbol", sort=False)["close"].ffill().groupby(symbol, sort=False).shift(1)
    ratio = df["close"] / previous
    log_ret = pd.Series(np.log(ratio.to_numpy(dtype="float64", na_value=np.nan)), index=df.index)
    min_periods = max(2, (3 * window) // 4)  # tolerate a few gaps inside the window
    volatility = (log_ret.groupby(symbol, sort=False).rolling(window, min_periods=min_periods).std()
                  .reset_index(level=0, drop=True))
    features = df.assign(ret=ratio - 1.0, log_ret=log_ret, volatility=volatility,
                         dollar_volume=df["close"] * df["volume"])
    entries = log.entries("L3", log.file_counts(df["file"]), log.file_counts(features["file"]))
    return log.attach(features, "L3", entries)


def build_returns_matrix(features: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """L4: ``returns`` and ``volume``, each a float64 frame of unique sorted dates x sorted symbol columns."""
    out = {}
    for artifact, column in (("returns", "ret"), ("volume", "volume")):
        matrix = features.pivot(index="date", columns="symbol", values=column)
        matrix = matrix.sort_index().sort_index(axis=1).astype("float64")
        matrix.index = pd.DatetimeIndex(matrix.index, name="date")
        matrix.columns = pd.Index([str(c) for c in matrix.columns], name="symbol")
        out[artifact] = matrix
    # pivoting is lossless for unique (symbol, date) rows, which the L3 contract guarantees;
    # validate_ingestion checks the matrices against L3 independently
    counts = log.file_counts(features["file"])
    entries = log.entries("L4", counts, counts)
    for matrix in out.values():
        log.attach(matrix, "L4", entries)
    return out
