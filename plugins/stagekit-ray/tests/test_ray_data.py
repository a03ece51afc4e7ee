"""read_returns_matrix: the dataops returns matrix from long parquet rows, with Ray Data streaming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import ray_stages as rs
import stagekit_ray.plugin
from stagekit_ray.data import DuplicateRowError, read_returns_matrix, returns_long, returns_matrix_pandas

from stagekit import Host, Pipeline

pytestmark = pytest.mark.ray


def long_rows(seed: int = 7, symbols: int = 12, days: int = 40) -> pd.DataFrame:
    """Prices with what real files have: gaps (missing rows), null closes, symbols of different spans."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2024-01-01", periods=days)
    frames = []
    for i in range(symbols):
        span = dates[rng.integers(0, 5):days - rng.integers(0, 5)]
        keep = span[rng.random(len(span)) > 0.15]  # gaps
        close = 50 + np.cumsum(rng.normal(0, 1, len(keep)))
        close[rng.random(len(keep)) < 0.1] = np.nan  # days without a price
        frames.append(pd.DataFrame({"date": keep, "symbol": f"S{i:03d}", "close": close}))
    rows = pd.concat(frames, ignore_index=True)
    return rows.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # any row order


def write_parts(rows: pd.DataFrame, where: Path, parts: int = 3) -> Path:
    where.mkdir()
    for k, part in enumerate(np.array_split(np.arange(len(rows)), parts)):
        rows.iloc[part].to_parquet(where / f"part-{k}.parquet", index=False)
    return where


def dataops_formula(rows: pd.DataFrame) -> pd.DataFrame:
    """The dataops plugin's own L4 computation (features.py), on sorted rows with the same columns.

    Its L2 contract has dates as datetime64[ns], which its L4 matrix then keeps.
    """
    df = rows.astype({"date": "datetime64[ns]"}).sort_values(["symbol", "date"], ignore_index=True)
    previous = df.groupby("symbol", sort=False)["close"].ffill().groupby(df["symbol"], sort=False).shift(1)
    df = df.assign(ret=df["close"] / previous - 1.0)
    matrix = df.pivot(index="date", columns="symbol", values="ret").sort_index().sort_index(axis=1)
    matrix = matrix.astype("float64")
    matrix.index = pd.DatetimeIndex(matrix.index, name="date")
    matrix.columns = pd.Index([str(c) for c in matrix.columns], name="symbol")
    return matrix


def test_the_streamed_matrix_is_the_pandas_and_dataops_matrix(ray_cluster: Any, tmp_path: Path) -> None:
    rows = long_rows()
    folder = write_parts(rows, tmp_path / "prices")
    got = read_returns_matrix(str(folder), chunk_columns=5)  # several column blocks
    pd.testing.assert_frame_equal(got, returns_matrix_pandas(rows))
    pd.testing.assert_frame_equal(got, dataops_formula(rows))
    assert got.index.is_monotonic_increasing and got.index.dtype == "datetime64[ns]"
    assert list(got.columns) == sorted(rows["symbol"].unique()) and (got.dtypes == "float64").all()
    assert got.notna().sum().sum() > 0.5 * len(rows)


def test_the_long_dataset_holds_one_return_per_input_row(ray_cluster: Any, tmp_path: Path) -> None:
    rows = long_rows(seed=3, symbols=5, days=20)
    folder = write_parts(rows, tmp_path / "prices", parts=2)
    long = read_returns_matrix(str(folder), output="dataset").to_pandas()
    expected = returns_long(rows)
    got = long.sort_values(["symbol", "date"], ignore_index=True)
    got = got.assign(date=got["date"].astype("datetime64[ns]"), symbol=got["symbol"].astype(str))
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    matrix = returns_matrix_pandas(rows)
    looked_up = [matrix.at[d, s] for d, s in zip(expected["date"], expected["symbol"], strict=True)]
    np.testing.assert_array_equal(np.asarray(looked_up, dtype="float64"), expected["ret"].to_numpy("float64"))


def test_a_duplicated_symbol_and_date_is_an_error_naming_them(ray_cluster: Any, tmp_path: Path) -> None:
    rows = long_rows(seed=5, symbols=3, days=10)
    twice = pd.concat([rows, rows.iloc[[4]]], ignore_index=True)
    folder = write_parts(twice, tmp_path / "prices", parts=2)
    with pytest.raises(DuplicateRowError, match=rf"symbol '{rows.iloc[4]['symbol']}' has more than one row"):
        read_returns_matrix(str(folder))
    with pytest.raises(DuplicateRowError):
        returns_matrix_pandas(twice)


def test_a_stage_reads_the_matrix_with_ray_data_under_ray(ray_cluster: Any, tmp_path: Path) -> None:
    rows = long_rows(seed=11, symbols=6, days=25)
    folder = write_parts(rows, tmp_path / "prices")
    host = Host(plugins=[stagekit_ray.plugin], autoload=False, env={})
    result = Pipeline([rs.returns_with_ray_data], host=host).run({"parquet_dir": str(folder)}, executor="ray")
    pd.testing.assert_frame_equal(result.artifacts["returns"], returns_matrix_pandas(rows))


def test_dataops_reads_the_same_matrix_with_ray_as_with_pandas(ray_cluster: Any, tmp_path: Path) -> None:
    pytest.importorskip("stagekit_dataops")
    from stagekit_dataops.bulk import load_returns_matrix

    data = write_parts(long_rows(), tmp_path / "prices")
    with_pandas = load_returns_matrix(str(data), engine="pandas")
    with_ray = load_returns_matrix(str(data), engine="ray")
    pd.testing.assert_frame_equal(with_ray, with_pandas, check_freq=False)
