"""What a contract check costs over calling pandera directly, and what contracts "off" cost.

On one 1,000,000 x 10 frame: the median time of ``ContractChecker.check`` (through a real pluggy hook with
stagekit's pandera validator registered) against ``schema.validate(df, lazy=True)``, run side by side in
alternation so that drift hits both; then the cost of ``check`` in mode "off" and of a repeated check of the
same object (the cache). Run: ``python benchmarks/contracts.py [--rows N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from stagekit.contracts.checker import ContractChecker
from stagekit.stage import stage
from stagekit.testing import isolated_host


def make_frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    symbols = np.array([f"S{i:03d}" for i in range(500)])
    return pd.DataFrame({
        "symbol": symbols[rng.integers(0, 500, rows)],
        "date": pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3650, rows), unit="D"),
        "open": rng.uniform(1, 100, rows),
        "high": rng.uniform(100, 200, rows),
        "low": rng.uniform(0.5, 1, rows),
        "close": rng.uniform(1, 100, rows),
        "volume": rng.integers(0, 1_000_000, rows),
        "ret": rng.normal(0, 0.02, rows),
        "vol20": rng.uniform(0, 1, rows),
        "dollar_volume": rng.uniform(0, 1e8, rows),
    })


SCHEMA = pa.DataFrameSchema({
    "symbol": pa.Column(str),
    "date": pa.Column("datetime64[ns]"),
    "open": pa.Column(float, pa.Check.gt(0)),
    "high": pa.Column(float, pa.Check.gt(0)),
    "low": pa.Column(float, pa.Check.gt(0)),
    "close": pa.Column(float, pa.Check.gt(0)),
    "volume": pa.Column("int64", pa.Check.ge(0)),
    "ret": pa.Column(float, pa.Check.in_range(-1, 1)),
    "vol20": pa.Column(float, pa.Check.ge(0)),
    "dollar_volume": pa.Column(float, pa.Check.ge(0)),
}, name="Bars")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _passthrough(bars: pd.DataFrame) -> pd.DataFrame:
    return bars


def pipeline_off_cost(df: pd.DataFrame, stages: int, repeat: int) -> tuple[float, float]:
    """Median run time of a chain of stages declaring contracts, run with contracts off, against the same
    chain declaring none (what "off" must cost: nothing)."""
    from stagekit import Pipeline

    def chain(with_contracts: bool) -> list[Any]:
        out = []
        for i in range(stages):
            schemas = {"inputs": {"bars": SCHEMA}, "outputs": {"bars": SCHEMA}} if with_contracts else {}
            out.append(stage(_passthrough, name=f"s{i}", requires=["bars"], provides=["bars"],
                             after=[f"s{i - 1}"] if i else [], **schemas))
        return out

    declared, bare = Pipeline(chain(True)), Pipeline(chain(False))
    off_times: list[float] = []
    bare_times: list[float] = []
    for _ in range(repeat):
        off_times.append(timed(lambda: declared.run(artifacts={"bars": df}, contracts="off")))
        bare_times.append(timed(lambda: bare.run(artifacts={"bars": df}, contracts="off")))
    return statistics.median(off_times), statistics.median(bare_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()

    df = make_frame(args.rows)
    validate = isolated_host().hook.stagekit_validate_artifact
    bars = stage(lambda bars: None, name="consume", requires=["bars"], inputs={"bars": SCHEMA})
    values = {"bars": df}

    def direct() -> None:
        SCHEMA.validate(df, lazy=True)

    def through_stagekit() -> None:
        # a fresh checker each time, so that its cache does not skip the validation being measured
        assert ContractChecker(validate).check(bars, "input", values) == []

    direct()  # warm up: imports, pandera backends, caches
    through_stagekit()
    d_times: list[float] = []
    s_times: list[float] = []
    for i in range(args.repeat):
        order = (direct, through_stagekit) if i % 2 == 0 else (through_stagekit, direct)
        for fn in order:
            (d_times if fn is direct else s_times).append(timed(fn))
    d, s = statistics.median(d_times), statistics.median(s_times)

    off = ContractChecker(validate, mode="off")
    n = 1_000_000
    start = time.perf_counter()
    for _ in range(n):
        off.check(bars, "input", values)
    off_ns = (time.perf_counter() - start) / n * 1e9

    cached = ContractChecker(validate)
    cached.check(bars, "input", values)
    m = 100_000
    start = time.perf_counter()
    for _ in range(m):
        cached.check(bars, "input", values)
    hit_us = (time.perf_counter() - start) / m * 1e6

    print(f"frame: {len(df):,} rows x {df.shape[1]} columns, {args.repeat} runs each, alternating")
    print(f"pandera schema.validate(df, lazy=True)   median {d * 1e3:9.1f} ms")
    print(f"ContractChecker.check via pluggy hook    median {s * 1e3:9.1f} ms")
    print(f"ratio check / validate                   {s / d:9.3f}x   (target <= 1.05x)")
    print(f"overhead (median difference)             {(s - d) * 1e3:+9.2f} ms")
    print(f"check() with contracts 'off'             {off_ns:9.0f} ns per call")
    print(f"check() of an already checked object     {hit_us:9.2f} us per call (cache hit)")
    off_run, bare_run = pipeline_off_cost(df, stages=50, repeat=args.repeat)
    print(f"50-stage pipeline, contracts declared, run with contracts off  median {off_run * 1e3:8.2f} ms")
    print(f"50-stage pipeline, no contracts declared                       median {bare_run * 1e3:8.2f} ms")
    print(f"ratio off / none                                               {off_run / bare_run:8.3f}x")


if __name__ == "__main__":
    main()
