"""Stages for the Ray tests, importable by module name in Ray workers."""

from __future__ import annotations

import os
import time
from typing import Any

import pandas as pd

from stagekit.stage import stage


@stage(requires=["n"], provides=["prices"])
def make_prices(n: int) -> pd.DataFrame:
    return pd.DataFrame({"a": [float(i) for i in range(n)], "b": [2.0 * i for i in range(n)]})


@stage(requires=["prices"], provides=["stats"])
def base_stats(prices: pd.DataFrame) -> dict[str, Any]:
    return {"rows": len(prices)}


@stage(requires=["prices", "stats"], provides=["stats"])
def add_mean(prices: pd.DataFrame, stats: dict[str, Any]) -> dict[str, Any]:
    time.sleep(0.2)  # long enough that the worker-measured duration shows
    return {**stats, "mean_a": float(prices["a"].mean())}


@stage(requires=["prices", "stats"], provides=["stats"])
def add_max(prices: pd.DataFrame, stats: dict[str, Any]) -> dict[str, Any]:
    return {**stats, "max_b": float(prices["b"].max())}


@stage(requires=["prices", "stats"], provides=["report"])
def report(prices: pd.DataFrame, stats: dict[str, Any]) -> str:
    return f"{stats['rows']} rows, mean a {stats['mean_a']}, max b {stats['max_b']}"


@stage(requires=["stats"], provides=["stats"])
def set_owner_x(stats: dict[str, Any]) -> dict[str, Any]:
    return {**stats, "owner": "x"}


@stage(requires=["stats"], provides=["stats"])
def set_owner_y(stats: dict[str, Any]) -> dict[str, Any]:
    return {**stats, "owner": "y"}


@stage(requires=["prices"], provides=["checked"])
def explode(prices: pd.DataFrame) -> int:
    raise ValueError(f"cannot use {len(prices)} rows")


@stage(requires=["prices"], provides=["checked"])
def die(prices: pd.DataFrame) -> int:
    os._exit(3)


@stage(requires=["prices"], provides=["pid"])
def worker_pid(prices: pd.DataFrame) -> int:
    return os.getpid()


@stage(requires=["prices"], provides=["home"])
def worker_home(prices: pd.DataFrame) -> str | None:
    return os.environ.get("HOME")


# --- Ray Datasets ---------------------------------------------------------------------------------------

import pandera.pandas as pa  # noqa: E402

Positive = pa.DataFrameSchema({"id": pa.Column(int), "x": pa.Column(float, pa.Check.ge(0))},
                              name="positive x")


@stage(requires=["bad_row"], provides=["ds"], outputs={"ds": Positive})
def make_dataset(bad_row: int) -> Any:
    import ray.data

    frame = pd.DataFrame({"id": range(1000), "x": [float(i) for i in range(1000)]})
    if bad_row >= 0:
        frame.loc[bad_row, "x"] = -7.5
    return ray.data.from_pandas(frame).repartition(4)  # several blocks: several batches


@stage(requires=["ds"], provides=["total"])
def total_x(ds: Any) -> float:
    return float(ds.to_pandas()["x"].sum())


@stage(requires=["bad_row"], provides=["ds"])
def make_dataset_unchecked(bad_row: int) -> Any:
    return make_dataset.callable(bad_row)


@stage(requires=["ds"], provides=["total"], inputs={"ds": Positive})
def total_x_checked(ds: Any) -> float:
    return total_x.callable(ds)


@stage(requires=["parquet_dir"], provides=["returns"])
def returns_with_ray_data(parquet_dir: str) -> pd.DataFrame:
    from stagekit_ray.data import read_returns_matrix

    return read_returns_matrix(parquet_dir)


# --- contracts on pandas artifacts (checked in the worker, warnings reported by the driver) ----------------

NonNegative = pa.DataFrameSchema({"a": pa.Column(float, pa.Check.ge(0))}, name="non-negative a")


@stage(requires=["n"], provides=["prices"], outputs={"prices": NonNegative})
def make_negative_prices(n: int) -> pd.DataFrame:
    return pd.DataFrame({"a": [-1.0 - i for i in range(n)], "b": [2.0 * i for i in range(n)]})


@stage(requires=["prices"], provides=["stats"], inputs={"prices": NonNegative})
def checked_stats(prices: pd.DataFrame) -> dict[str, Any]:
    return {"rows": len(prices)}
