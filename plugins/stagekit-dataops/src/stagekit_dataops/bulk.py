"""L4 straight from a stored parquet dataset of long price rows, for data too big for the L0-L3 chain.

``engine="pandas"`` reads the dataset whole with ``pd.read_parquet``; ``engine="ray"`` streams it with
``ray.data.read_parquet`` (the stagekit-ray plugin), so the rows never sit in one process at once. Both give
the same matrix: simple returns against each symbol's previous known close.
"""

from __future__ import annotations

import importlib

import pandas as pd

ENGINES = ("pandas", "ray")


def load_returns_matrix(prices_dataset: str, engine: str = "pandas") -> pd.DataFrame:
    """The returns matrix (unique sorted dates x sorted symbols, float64) of a parquet dataset of rows
    ``date, symbol, close`` (a file, a directory of files, or a list of them)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if engine == "ray":
        try:  # an optional plugin: imported by name, so dataops neither needs it installed nor type-checks it
            ray_data = importlib.import_module("stagekit_ray.data")
        except ImportError as exc:
            raise RuntimeError("engine='ray' needs the Ray plugin: pip install stagekit-ray") from exc
        matrix: pd.DataFrame = ray_data.read_returns_matrix(prices_dataset, date="date", symbol="symbol",
                                                            close="close")
        return matrix
    rows = pd.read_parquet(prices_dataset, columns=["date", "symbol", "close"])
    return returns_matrix(rows)


def returns_matrix(rows: pd.DataFrame) -> pd.DataFrame:
    """Long rows -> the returns matrix, with pandas."""
    df = pd.DataFrame({"date": pd.to_datetime(rows["date"]).astype("datetime64[ns]"),
                       "symbol": rows["symbol"].astype(str), "close": rows["close"].astype("float64")})
    twice = df.duplicated(["date", "symbol"])
    if twice.any():
        first = df[twice].iloc[0]
        raise ValueError(f"symbol {first['symbol']!r} has more than one row for {first['date']:%Y-%m-%d}")
    df = df.sort_values(["symbol", "date"], kind="stable", ignore_index=True)
    previous = df.groupby("symbol", sort=False)["close"].ffill().groupby(df["symbol"], sort=False).shift(1)
    df["ret"] = df["close"] / previous - 1.0
    matrix = df.pivot(index="date", columns="symbol", values="ret").sort_index().sort_index(axis=1)
    matrix = matrix.astype("float64")
    matrix.index = pd.DatetimeIndex(matrix.index, name="date")
    matrix.columns = pd.Index([str(c) for c in matrix.columns], name="symbol")
    return matrix
